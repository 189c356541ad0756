// Package memory implements the store ports in process memory: the backend of
// a server started with no configuration, and the fake that core's tests use.
//
// One mutex guards every map, so each method is atomic like a Postgres
// transaction. Values are copied in and out; no caller ever holds a pointer
// into the store. Times are kept in UTC truncated to microseconds, as Postgres
// keeps them, so both adapters answer the contract tests identically.
package memory

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/halobestie/mitra-availability/ports"
)

// Store implements the user, mitra, auth, session and availability-truth ports in memory.
// The zero value is not usable; call NewStore.
type Store struct {
	mu sync.Mutex

	users        map[string]ports.User // by ID
	userByPhone  map[string]string     // phone → user ID
	mitras       map[string]mitraRow   // by user ID
	authSessions map[string]authSessionRow
	tokens       map[string]refreshTokenRow     // by string(token hash)
	chatSessions map[string]ports.Session       // by ID; values hold no pointer a caller has
	devices      map[string]ports.Device        // by user ID
	events       map[string][]ports.LoggedEvent // each user's stream, oldest first
	heads        map[string]int64               // each user's newest event id, kept when pruned
	queueSeq     int64                          // the last Queue.Seq assigned

	now func() time.Time
}

var (
	_ ports.UserStore         = (*Store)(nil)
	_ ports.MitraStore        = (*Store)(nil)
	_ ports.MitraQueries      = (*Store)(nil)
	_ ports.AuthStore         = (*Store)(nil)
	_ ports.SessionStats      = (*Store)(nil)
	_ ports.AvailabilityTruth = (*Store)(nil)
	_ ports.SessionStore      = (*Store)(nil)
	_ ports.DeviceStore       = (*Store)(nil)
)

// mitraRow is a mitra's own state; phone and name live in its user.
type mitraRow struct {
	isActive        bool
	isOnline        bool
	isAway          bool
	capacity        int
	lastHeartbeatAt *time.Time
	onlineSince     *time.Time
	createdAt       time.Time
	updatedAt       time.Time
}

type authSessionRow struct {
	id        string
	userID    string
	createdAt time.Time
	expiresAt time.Time
	revokedAt *time.Time
}

type refreshTokenRow struct {
	sessionID string
	createdAt time.Time
	expiresAt time.Time
	rotatedAt *time.Time
}

// NewStore returns an empty store. Creation and update times (created_at,
// updated_at) come from the wall clock, as Postgres's now() does.
func NewStore() *Store {
	return &Store{
		users:        make(map[string]ports.User),
		userByPhone:  make(map[string]string),
		mitras:       make(map[string]mitraRow),
		authSessions: make(map[string]authSessionRow),
		tokens:       make(map[string]refreshTokenRow),
		chatSessions: make(map[string]ports.Session),
		devices:      make(map[string]ports.Device),
		events:       make(map[string][]ports.LoggedEvent),
		heads:        make(map[string]int64),
		now:          time.Now,
	}
}

// Ping implements the same readiness check as the Postgres store; memory is always ready.
func (s *Store) Ping(context.Context) error { return nil }

// errCheckViolation stands for what Postgres reports as a check or unique
// constraint violation that has no ports sentinel.
var errCheckViolation = errors.New("memory: constraint violation")

func (s *Store) wallClock() time.Time { return ts(s.now()) }

// ts is t in UTC truncated to microseconds, as Postgres stores it.
func ts(t time.Time) time.Time {
	return t.UTC().Truncate(time.Microsecond)
}

// tsPtr returns a pointer to ts(t).
func tsPtr(t time.Time) *time.Time {
	v := ts(t)
	return &v
}

// copyTime returns a fresh copy of *t, or nil.
func copyTime(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := *t
	return &v
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

func notFound(what, id string) error {
	return fmt.Errorf("memory: %s %q: %w", what, id, ports.ErrNotFound)
}
