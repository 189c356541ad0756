package token

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/halobestie/mitra-availability/ports"
)

func TestSignVerifyRoundTrip(t *testing.T) {
	s, err := NewSigner([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tok, err := s.Sign(ports.AccessClaims{UserID: "u1", Role: ports.RoleMitra, SessionID: "s1", IssuedAt: now, ExpiresAt: now.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Verify(tok, now.Add(30*time.Second))
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if c.UserID != "u1" || c.Role != ports.RoleMitra || c.SessionID != "s1" || !c.ExpiresAt.Equal(now.Add(time.Minute)) {
		t.Fatalf("claims = %+v", c)
	}
	if _, err := s.Verify(tok, now.Add(2*time.Minute)); !errors.Is(err, ports.ErrInvalidToken) {
		t.Fatalf("expired token: err = %v, want ErrInvalidToken", err)
	}
}

func TestVerifyRefusesOtherAlgorithmsAndKeys(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	s, _ := NewSigner(key)
	now := time.Now()
	mk := func(m jwt.SigningMethod, k any, typ string) string {
		tok := jwt.NewWithClaims(m, claims{Role: "admin", SID: "s", Typ: typ, RegisteredClaims: jwt.RegisteredClaims{
			Issuer: issuer, Subject: "u", ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))}})
		out, err := tok.SignedString(k)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	other, _ := NewSigner([]byte("another-key-another-key-another!"))
	otherTok, _ := other.Sign(ports.AccessClaims{UserID: "u", Role: ports.RoleAdmin, SessionID: "s", IssuedAt: now, ExpiresAt: now.Add(time.Hour)})
	cases := map[string]string{
		"none":          mk(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "access"),
		"HS512":         mk(jwt.SigningMethodHS512, key, "access"),
		"wrong typ":     mk(jwt.SigningMethodHS256, key, "refresh"),
		"other key":     otherTok,
		"garbage":       "not.a.token",
		"empty":         "",
		"refresh token": "rt_" + strings.Repeat("A", 43),
	}
	for name, tok := range cases {
		if _, err := s.Verify(tok, now); !errors.Is(err, ports.ErrInvalidToken) {
			t.Errorf("%s: err = %v, want ErrInvalidToken", name, err)
		}
	}
}

func TestNewSignerRejectsShortKey(t *testing.T) {
	if _, err := NewSigner([]byte("short")); err == nil {
		t.Fatal("want error for a short key")
	}
}
