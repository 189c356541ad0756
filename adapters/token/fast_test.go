package token

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/halobestie/mitra-availability/ports"
)

// hs256 signs header.payload (both given as JSON) with key, as any HS256
// implementation could.
func hs256(t *testing.T, key []byte, header, payload string) string {
	t.Helper()
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload))
	sig, err := jwt.SigningMethodHS256.Sign(signing, key)
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + enc.EncodeToString(sig)
}

// TestVerifyFastAgreesWithTheLibrary: for tokens of every shape, Verify
// decides as the general library path does (valid or not, and the same
// claims), and the fast path takes the tokens Sign issues.
func TestVerifyFastAgreesWithTheLibrary(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	s, err := NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 500_000_000)
	exp, iat := now.Unix()+60, now.Unix()-10
	std := `{"alg":"HS256","typ":"JWT"}`
	claims := func(extra string) string {
		return fmt.Sprintf(`{"role":"mitra","sid":"s-1","typ":"access","iss":"mitra-availability","sub":"u-1","exp":%d,"iat":%d,"jti":"ab12"%s}`, exp, iat, extra)
	}
	signed, err := s.Sign(ports.AccessClaims{UserID: "u-1", Role: ports.RoleMitra, SessionID: "s-1", IssuedAt: now, ExpiresAt: now.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	tamper := func(tok string, at int) string {
		b := []byte(tok)
		if b[at] == 'A' {
			b[at] = 'B'
		} else {
			b[at] = 'A'
		}
		return string(b)
	}
	cases := map[string]struct {
		tok  string
		fast bool // decided by the fast path
	}{
		"issued by Sign":       {signed, true},
		"tampered payload":     {tamper(signed, len(hs256Header)+5), true},
		"tampered signature":   {tamper(signed, len(signed)-3), true},
		"signature too long":   {signed + "AAAA", true},
		"signature too short":  {signed[:len(signed)-4], true},
		"signature not base64": {signed[:len(signed)-2] + "!!", true},
		"four parts":           {signed + ".x", false},
		"two parts":            {signed[:strings.LastIndexByte(signed, '.')], false},
		"flat claims":          {hs256(t, key, std, claims("")), true},
		"spaces":               {hs256(t, key, std, " {\n \"role\" : \"mitra\" , \"sid\":\"s\",\"typ\":\"access\",\"iss\":\"mitra-availability\",\"sub\":\"u\",\"exp\": 1800000060 } "), true},
		"float exp":            {hs256(t, key, std, claims(`,"exp":1800000000.9`)), true},
		"float exp just after": {hs256(t, key, std, claims(`,"exp":1800000001.2`)), true},
		"exponent exp":         {hs256(t, key, std, claims(`,"exp":1.80000006e9`)), true},
		"expired":              {hs256(t, key, std, claims(`,"exp":1799999999`)), true},
		"no exp":               {hs256(t, key, std, `{"role":"mitra","sid":"s","typ":"access","iss":"mitra-availability","sub":"u"}`), true},
		"empty object":         {hs256(t, key, std, `{}`), true},
		"nbf in the future":    {hs256(t, key, std, claims(`,"nbf":1800000030`)), true},
		"nbf in the past":      {hs256(t, key, std, claims(`,"nbf":1799999000`)), true},
		"nbf this very second": {hs256(t, key, std, claims(`,"nbf":1800000000.9`)), true},
		"iat in the future":    {hs256(t, key, std, claims(`,"iat":1900000000`)), true},
		"exp this very second": {hs256(t, key, std, claims(`,"exp":1800000000`)), true},
		"negative exp":         {hs256(t, key, std, claims(`,"exp":-5.5`)), true},
		"wrong issuer":         {hs256(t, key, std, claims(`,"iss":"someone"`)), true},
		"wrong typ":            {hs256(t, key, std, claims(`,"typ":"refresh"`)), true},
		"unknown role":         {hs256(t, key, std, claims(`,"role":"root"`)), true},
		"duplicate sub, last":  {hs256(t, key, std, claims(`,"sub":"u-2"`)), true},
		"empty sub":            {hs256(t, key, std, claims(`,"sub":""`)), true},
		"unknown claims":       {hs256(t, key, std, claims(`,"x":1,"y":true,"z":null,"w":"v","aud":"app"`)), true},
		"escaped string":       {hs256(t, key, std, claims(`,"sub":"u\u002d1"`)), false},
		"non-ASCII":            {hs256(t, key, std, claims(`,"sid":"sé"`)), false},
		"nested value":         {hs256(t, key, std, claims(`,"aud":["a","b"]`)), false},
		"key in other case":    {hs256(t, key, std, claims(`,"SUB":"other"`)), false},
		"null exp":             {hs256(t, key, std, claims(`,"exp":null`)), false},
		"string exp":           {hs256(t, key, std, claims(`,"exp":"1800000060"`)), false},
		"number sub":           {hs256(t, key, std, claims(`,"sub":7`)), false},
		"trailing garbage":     {hs256(t, key, std, claims("")+"x"), false},
		"not an object":        {hs256(t, key, std, `[1]`), false},
		"bad number":           {hs256(t, key, std, claims(`,"exp":01`)), false},
		"huge number":          {hs256(t, key, std, claims(`,"exp":1e999`)), false},
		"other header order":   {hs256(t, key, `{"typ":"JWT","alg":"HS256"}`, claims("")), false},
		"header without typ":   {hs256(t, key, `{"alg":"HS256"}`, claims("")), false},
		"alg none":             {hs256(t, key, `{"alg":"none"}`, claims("")), false},
		"other key":            {hs256(t, []byte("another-key-another-key-another!"), std, claims("")), true},
		"payload not base64":   {hs256Header + ".!!!." + signed[strings.LastIndexByte(signed, '.')+1:], true},
		"empty":                {"", false},
		"refresh token":        {"rt_" + strings.Repeat("A", 43), false},
	}
	for name, c := range cases {
		got, gotErr := s.Verify(c.tok, now)
		want, wantErr := s.verifyGeneral(c.tok, now)
		if (gotErr == nil) != (wantErr == nil) || got != want {
			t.Errorf("%s: Verify = %+v, %v; the library: %+v, %v", name, got, gotErr, want, wantErr)
		}
		if gotErr != nil && !errors.Is(gotErr, ports.ErrInvalidToken) {
			t.Errorf("%s: error %v is not ErrInvalidToken", name, gotErr)
		}
		if _, fast, _ := s.verifyFast(c.tok, now); fast != c.fast {
			t.Errorf("%s: decided by the fast path: %v, want %v", name, fast, c.fast)
		}
	}
	// The token issued by Sign is valid, with its claims.
	if c, err := s.Verify(signed, now); err != nil || c.UserID != "u-1" || c.SessionID != "s-1" || c.Role != ports.RoleMitra ||
		!c.ExpiresAt.Equal(time.Unix(now.Unix()+60, 0)) || !c.IssuedAt.Equal(time.Unix(now.Unix(), 0)) {
		t.Fatalf("Verify(signed) = %+v, %v", c, err)
	}
}

func BenchmarkVerify(b *testing.B) {
	s, _ := NewSigner([]byte("0123456789abcdef0123456789abcdef"))
	now := time.Now()
	tok, _ := s.Sign(ports.AccessClaims{UserID: "0b7f5d1e-8a41-4b9e-9d1c-3f2a6b7c8d9e", Role: ports.RoleMitra,
		SessionID: "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f", IssuedAt: now, ExpiresAt: now.Add(time.Hour)})
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Verify(tok, now); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("library", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.verifyGeneral(tok, now); err != nil {
				b.Fatal(err)
			}
		}
	})
}
