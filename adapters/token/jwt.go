// Package token signs and verifies access tokens as HS256 JWTs.
package token

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/halobestie/mitra-availability/ports"
)

const (
	issuer    = "mitra-availability"
	typAccess = "access"
)

// Signer implements ports.TokenSigner with HS256. Any other algorithm,
// "none" included, is refused.
//
// Verify runs on every authenticated request. It checks the tokens this
// signer issues (the fixed HS256 header, flat claims) with a parser of their
// fixed claims type and pooled HMAC state, about two allocations per token;
// any token outside that shape goes through the general JWT library
// (verifyGeneral), which decides exactly as before.
type Signer struct {
	key  []byte
	macs sync.Pool // of *mac
}

var _ ports.TokenSigner = (*Signer)(nil)

// NewSigner returns a signer keyed with secret (at least 16 bytes).
func NewSigner(secret []byte) (*Signer, error) {
	if len(secret) < 16 {
		return nil, errors.New("token: the signing key must be at least 16 bytes")
	}
	s := &Signer{key: append([]byte(nil), secret...)}
	s.macs.New = func() any { return &mac{h: hmac.New(sha256.New, s.key)} }
	return s, nil
}

type claims struct {
	Role string `json:"role"`
	SID  string `json:"sid"`
	Typ  string `json:"typ"`
	jwt.RegisteredClaims
}

// Sign issues an access token for c. Each token carries a random jti, so two
// tokens issued in the same second differ.
func (s *Signer) Sign(c ports.AccessClaims) (string, error) {
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", fmt.Errorf("token: generating jti: %w", err)
	}
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, claims{
		Role: string(c.Role),
		SID:  c.SessionID,
		Typ:  typAccess,
		RegisteredClaims: jwt.RegisteredClaims{
			ID:        hex.EncodeToString(jti),
			Issuer:    issuer,
			Subject:   c.UserID,
			IssuedAt:  jwt.NewNumericDate(c.IssuedAt),
			ExpiresAt: jwt.NewNumericDate(c.ExpiresAt),
		},
	})
	out, err := t.SignedString(s.key)
	if err != nil {
		return "", fmt.Errorf("token: signing: %w", err)
	}
	return out, nil
}

// Verify checks signature, algorithm, issuer, kind and expiry at now.
func (s *Signer) Verify(raw string, now time.Time) (ports.AccessClaims, error) {
	if out, ok, err := s.verifyFast(raw, now); ok {
		return out, err
	}
	return s.verifyGeneral(raw, now)
}

// verifyGeneral verifies raw with the general JWT library: every header,
// every claims encoding it accepts.
func (s *Signer) verifyGeneral(raw string, now time.Time) (ports.AccessClaims, error) {
	var c claims
	_, err := jwt.ParseWithClaims(raw, &c, func(*jwt.Token) (any, error) { return s.key, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(issuer),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	if err != nil {
		return ports.AccessClaims{}, fmt.Errorf("%w: %w", ports.ErrInvalidToken, err)
	}
	role := ports.Role(c.Role)
	if c.Typ != typAccess || c.Subject == "" || c.SID == "" || !role.Valid() {
		return ports.AccessClaims{}, fmt.Errorf("%w: not an access token", ports.ErrInvalidToken)
	}
	out := ports.AccessClaims{UserID: c.Subject, Role: role, SessionID: c.SID, ExpiresAt: c.ExpiresAt.Time}
	if c.IssuedAt != nil {
		out.IssuedAt = c.IssuedAt.Time
	}
	return out, nil
}
