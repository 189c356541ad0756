package ports

import (
	"context"
	"errors"
	"time"
)

// ErrRefreshReused: a refresh token that was already rotated was presented again.
// The store has revoked its auth session by the time it returns this error.
var ErrRefreshReused = errors.New("refresh token reused")

// AuthStore persists auth sessions and their refresh tokens. Refresh tokens are
// stored only as hashes; the store never sees a token in the clear.
type AuthStore interface {
	// CreateAuthSession starts a session whose first refresh token has tokenHash.
	CreateAuthSession(ctx context.Context, userID string, tokenHash []byte, now, expiresAt time.Time) (AuthSession, error)
	// RotateRefreshToken atomically retires the token with oldHash and makes newHash the
	// session's current token, valid until expiresAt. It returns ErrNotFound for an unknown
	// token or a revoked or expired session, and ErrRefreshReused (after revoking the
	// session) for a token that was already rotated; with ErrRefreshReused it
	// also returns the session it revoked.
	RotateRefreshToken(ctx context.Context, oldHash, newHash []byte, now, expiresAt time.Time) (AuthSession, error)
	// RevokeAuthSession revokes one session; revoking twice is not an error.
	RevokeAuthSession(ctx context.Context, sessionID string, now time.Time) error
	// RevokeUserAuthSessions revokes every session of a user that is not
	// revoked yet and returns those it revoked.
	RevokeUserAuthSessions(ctx context.Context, userID string, now time.Time) ([]Revocation, error)
	// RevokedSince returns the sessions revoked at or after since, at most
	// limit, oldest first.
	RevokedSince(ctx context.Context, since time.Time, limit int) ([]Revocation, error)
	// AuthSession returns ErrNotFound when there is no such session.
	AuthSession(ctx context.Context, sessionID string) (AuthSession, error)
}
