// Package token signs and verifies access tokens as HS256 JWTs.
package token

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
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
type Signer struct {
	key []byte
}

var _ ports.TokenSigner = (*Signer)(nil)

// NewSigner returns a signer keyed with secret (at least 16 bytes).
func NewSigner(secret []byte) (*Signer, error) {
	if len(secret) < 16 {
		return nil, errors.New("token: the signing key must be at least 16 bytes")
	}
	return &Signer{key: append([]byte(nil), secret...)}, nil
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
