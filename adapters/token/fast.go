package token

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/halobestie/mitra-availability/ports"
)

// hs256Header is the encoded header Sign writes ({"alg":"HS256","typ":"JWT"}).
var hs256Header = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))

// mac is the pooled state of one signature check.
type mac struct {
	h   hash.Hash // HMAC-SHA256 keyed with the signer's key
	buf []byte    // the signed input, then the decoded payload
	sum [sha256.Size]byte
	sig [sha256.Size]byte
}

// verifyFast verifies a token of the shape Sign issues: the fixed HS256
// header and a payload of flat claims (strings without escapes, plain
// numbers). ok is false when raw has another shape: then the general
// library decides (a different header, escapes, nested values, a key in
// another case, which encoding/json would match case-insensitively). When
// ok is true, err is what the general library would decide too.
func (s *Signer) verifyFast(raw string, now time.Time) (out ports.AccessClaims, ok bool, err error) {
	h, rest, found := strings.Cut(raw, ".")
	if !found || h != hs256Header {
		return out, false, nil
	}
	payload, sig, found := strings.Cut(rest, ".")
	if !found || strings.IndexByte(sig, '.') >= 0 {
		return out, false, nil
	}
	m := s.macs.Get().(*mac)
	defer s.macs.Put(m)

	// The signature first: nothing of an unsigned payload is read.
	if base64.RawURLEncoding.DecodedLen(len(sig)) != sha256.Size {
		return out, true, fmt.Errorf("%w: bad signature", ports.ErrInvalidToken)
	}
	m.buf = append(m.buf[:0], sig...)
	n, err := base64.RawURLEncoding.Decode(m.sig[:], m.buf)
	if err != nil || n != sha256.Size {
		return out, true, fmt.Errorf("%w: bad signature", ports.ErrInvalidToken)
	}
	m.buf = append(m.buf[:0], raw[:len(h)+1+len(payload)]...)
	m.h.Reset()
	m.h.Write(m.buf)
	if !hmac.Equal(m.h.Sum(m.sum[:0]), m.sig[:n]) {
		return out, true, fmt.Errorf("%w: bad signature", ports.ErrInvalidToken)
	}

	// The payload, decoded behind its encoding in one buffer.
	enc := len(payload)
	m.buf = append(m.buf[:0], payload...)
	m.buf = append(m.buf, make([]byte, base64.RawURLEncoding.DecodedLen(enc))...)
	n, err = base64.RawURLEncoding.Decode(m.buf[enc:], m.buf[:enc])
	if err != nil {
		return out, true, fmt.Errorf("%w: malformed payload", ports.ErrInvalidToken)
	}
	var c flatClaims
	if !c.parse(string(m.buf[enc : enc+n])) {
		return out, false, nil
	}
	return c.check(now)
}

// flatClaims are the claims of an access token, read by parse.
type flatClaims struct {
	sub, iss, role, sid, typ string
	exp, nbf, iat            float64
	hasExp, hasNbf, hasIat   bool
}

// check applies the rules of verifyGeneral: exp required and in the future,
// nbf (when present) not in the future, the issuer, then the access-token
// fields. The times are whole seconds, as the library truncates them.
func (c *flatClaims) check(now time.Time) (ports.AccessClaims, bool, error) {
	invalid := func(why string) (ports.AccessClaims, bool, error) {
		return ports.AccessClaims{}, true, fmt.Errorf("%w: %s", ports.ErrInvalidToken, why)
	}
	if !c.hasExp {
		return invalid("token is missing required claim: exp claim is required")
	}
	exp := seconds(c.exp)
	if !now.Before(exp) {
		return invalid("token is expired")
	}
	if c.hasNbf && now.Before(seconds(c.nbf)) {
		return invalid("token is not valid yet")
	}
	if c.iss != issuer {
		return invalid("token has invalid issuer")
	}
	role := ports.Role(c.role)
	if c.typ != typAccess || c.sub == "" || c.sid == "" || !role.Valid() {
		return invalid("not an access token")
	}
	out := ports.AccessClaims{UserID: c.sub, Role: role, SessionID: c.sid, ExpiresAt: exp}
	if c.hasIat {
		out.IssuedAt = seconds(c.iat)
	}
	return out, true, nil
}

// seconds converts a NumericDate as the library does: whole seconds, the
// fraction dropped.
func seconds(f float64) time.Time {
	whole, _ := math.Modf(f)
	return time.Unix(int64(whole), 0)
}

// errShape: the payload is outside what parse reads; the general library decides.
var errShape = errors.New("token: payload outside the fast shape")

// knownKeys are the claims encoding/json would fill in verifyGeneral.
var knownKeys = []string{"role", "sid", "typ", "iss", "sub", "aud", "exp", "nbf", "iat", "jti"}

// parse reads a JSON object whose values are strings without escapes,
// numbers, true, false or null, and nothing after it. It reports false for
// anything else, and for a value of the wrong type for its claim, which the
// general library then refuses or accepts by its own rules.
func (c *flatClaims) parse(p string) bool {
	i := skipSpace(p, 0)
	if i >= len(p) || p[i] != '{' {
		return false
	}
	i = skipSpace(p, i+1)
	if i < len(p) && p[i] == '}' {
		return skipSpace(p, i+1) == len(p)
	}
	for {
		key, j, ok := readString(p, i)
		if !ok {
			return false
		}
		j = skipSpace(p, j)
		if j >= len(p) || p[j] != ':' {
			return false
		}
		j = skipSpace(p, j+1)
		if j >= len(p) {
			return false
		}
		var err error
		switch p[j] {
		case '"':
			var v string
			if v, j, ok = readString(p, j); !ok {
				return false
			}
			err = c.setString(key, v)
		case 't', 'f', 'n':
			var lit string
			for _, l := range []string{"true", "false", "null"} {
				if strings.HasPrefix(p[j:], l) {
					lit = l
				}
			}
			if lit == "" {
				return false
			}
			j += len(lit)
			err = c.setOther(key)
		default:
			var num string
			if num, j, ok = readNumber(p, j); !ok {
				return false
			}
			err = c.setNumber(key, num)
		}
		if err != nil {
			return false
		}
		j = skipSpace(p, j)
		if j >= len(p) {
			return false
		}
		switch p[j] {
		case ',':
			i = skipSpace(p, j+1)
		case '}':
			return skipSpace(p, j+1) == len(p)
		default:
			return false
		}
	}
}

// setString sets a string claim; a string for a time claim is outside the shape.
func (c *flatClaims) setString(key, v string) error {
	switch key {
	case "sub":
		c.sub = v
	case "iss":
		c.iss = v
	case "role":
		c.role = v
	case "sid":
		c.sid = v
	case "typ":
		c.typ = v
	case "aud", "jti":
	case "exp", "nbf", "iat":
		return errShape
	default:
		return otherKey(key)
	}
	return nil
}

// setNumber sets a time claim; a number for a string claim is outside the shape.
func (c *flatClaims) setNumber(key, num string) error {
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return errShape
	}
	switch key {
	case "exp":
		c.exp, c.hasExp = f, true
	case "nbf":
		c.nbf, c.hasNbf = f, true
	case "iat":
		c.iat, c.hasIat = f, true
	default:
		return otherKey(key)
	}
	return nil
}

// setOther takes true, false or null: only an unknown claim may hold one here.
func (c *flatClaims) setOther(key string) error { return otherKey(key) }

// otherKey accepts a key that is no claim, in no letter case (encoding/json
// would match "Sub" to sub).
func otherKey(key string) error {
	for _, k := range knownKeys {
		if strings.EqualFold(key, k) {
			return errShape
		}
	}
	return nil
}

func skipSpace(p string, i int) int {
	for i < len(p) && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r') {
		i++
	}
	return i
}

// readString reads a JSON string at p[i] without escapes or control
// characters; it returns its content and the index after it.
func readString(p string, i int) (string, int, bool) {
	if i >= len(p) || p[i] != '"' {
		return "", i, false
	}
	for j := i + 1; j < len(p); j++ {
		switch ch := p[j]; {
		case ch == '"':
			return p[i+1 : j], j + 1, true
		case ch == '\\' || ch < 0x20 || ch >= 0x80:
			return "", i, false // escapes and non-ASCII (invalid UTF-8 is replaced by encoding/json): the general path
		}
	}
	return "", i, false
}

// readNumber reads a JSON number at p[i]: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func readNumber(p string, i int) (string, int, bool) {
	j := i
	digits := func() bool {
		start := j
		for j < len(p) && p[j] >= '0' && p[j] <= '9' {
			j++
		}
		return j > start
	}
	if j < len(p) && p[j] == '-' {
		j++
	}
	switch {
	case j < len(p) && p[j] == '0':
		j++
	case !digits():
		return "", i, false
	}
	if j < len(p) && p[j] == '.' {
		j++
		if !digits() {
			return "", i, false
		}
	}
	if j < len(p) && (p[j] == 'e' || p[j] == 'E') {
		j++
		if j < len(p) && (p[j] == '+' || p[j] == '-') {
			j++
		}
		if !digits() {
			return "", i, false
		}
	}
	return p[i:j], j, true
}
