package ports

import (
	"context"
	"time"
)

// Revocation is one revoked auth session: the access tokens issued for it
// stop working at once, on every instance (docs/contract.md §13).
type Revocation struct {
	SessionID string
	UserID    string
	RevokedAt time.Time
}

// RevocationCache shares revocations between instances through the cache
// (Valkey), so that no instance needs a store statement to learn of them
// while the cache is up. Postgres stays the truth: AuthStore.RevokedSince
// answers the same question while the cache is down.
type RevocationCache interface {
	// AddRevocations records revs. Entries older than the cache's retention
	// (the access-token lifetime) may be dropped.
	AddRevocations(ctx context.Context, revs []Revocation) error
	// RevocationsSince returns the revocations whose RevokedAt is not before since.
	RevocationsSince(ctx context.Context, since time.Time) ([]Revocation, error)
}
