package ports

import (
	"errors"
	"time"
)

// ErrInvalidToken: a token is malformed, badly signed, of the wrong kind or expired.
var ErrInvalidToken = errors.New("invalid token")

// PasswordHasher hashes and checks passwords (bcrypt in production).
type PasswordHasher interface {
	Hash(password string) (string, error)
	// Compare returns nil when password matches hash.
	Compare(hash, password string) error
}

// AccessClaims is what an access token asserts.
type AccessClaims struct {
	UserID    string
	Role      Role
	SessionID string // the auth session the token was issued for
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// TokenSigner issues and verifies access tokens.
type TokenSigner interface {
	Sign(c AccessClaims) (string, error)
	// Verify returns ErrInvalidToken (wrapped) for any token it does not accept.
	Verify(token string, now time.Time) (AccessClaims, error)
}
