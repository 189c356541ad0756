package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/halobestie/mitra-availability/ports"
)

// Store implements the user, mitra, auth and session-statistics ports on Postgres.
// It is safe for concurrent use.
type Store struct {
	db *bun.DB
	ob outbox // the event log's outbox and its sequencing (event_outbox.go)
	// sessionTurns queues this process's transactions on one session row
	// (row_turns.go).
	sessionTurns rowTurns
}

var (
	_ ports.UserStore         = (*Store)(nil)
	_ ports.MitraStore        = (*Store)(nil)
	_ ports.MitraQueries      = (*Store)(nil)
	_ ports.AuthStore         = (*Store)(nil)
	_ ports.SessionStats      = (*Store)(nil)
	_ ports.AvailabilityTruth = (*Store)(nil)
)

// NewStore returns a Store over db, which must have the migrations applied.
func NewStore(db *bun.DB) (*Store, error) {
	if db == nil {
		return nil, errNilDB
	}
	return &Store{db: db}, nil
}

// Ping reports whether Postgres answers, for readiness checks; failure wraps
// ports.ErrStoreUnavailable.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("postgres: ping: %w: %w", ports.ErrStoreUnavailable, err)
	}
	return nil
}

// parseID returns the canonical form of a UUID string; ok is false when id is
// not a UUID, which no row can have.
func parseID(id string) (string, bool) {
	u, err := uuid.Parse(id)
	if err != nil {
		return "", false
	}
	return u.String(), true
}

// ts truncates t to Postgres's microsecond precision (the same truncation the
// wire encoding would do) and puts it in UTC.
func ts(t time.Time) time.Time {
	return t.UTC().Truncate(time.Microsecond)
}

// utc returns t in UTC; pgx hands timestamptz values back in the local zone.
func utc(t time.Time) time.Time {
	return t.UTC()
}

// utcPtr returns a copy of *t in UTC, or nil.
func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
