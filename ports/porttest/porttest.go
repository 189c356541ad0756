// Package porttest holds contract test suites for the store ports. Every
// adapter's tests run the same suites (memory, Postgres), so the adapters are
// interchangeable: what core sees from one it sees from the other.
//
// The suites pass explicit times (no sleeps) that carry nanoseconds and
// non-UTC zones, and expect them back in UTC truncated to microseconds, as
// Postgres stores them.
package porttest

import (
	"context"
	"crypto/rand"
	"fmt"
	"regexp"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/ports"
)

// Stores is what a factory hands a suite: one fresh, empty store seen through
// each port it implements.
type Stores struct {
	Users        ports.UserStore
	Mitras       ports.MitraStore
	MitraQueries ports.MitraQueries
	Auth         ports.AuthStore
	SessionStats ports.SessionStats
	Truth        ports.AvailabilityTruth
	Sessions     ports.SessionStore
	Devices      ports.DeviceStore
	Events       ports.EventLog
	QueueTruth   ports.QueueTruthSource
}

// Factory returns a fresh, empty store for one test; it registers any cleanup with t.
type Factory func(t *testing.T) Stores

// RunStoreSuite runs every suite of this package.
func RunStoreSuite(t *testing.T, f Factory) {
	t.Run("UserStore", func(t *testing.T) { RunUserStoreSuite(t, f) })
	t.Run("MitraStore", func(t *testing.T) { RunMitraStoreSuite(t, f) })
	t.Run("MitraQueries", func(t *testing.T) { RunMitraQueriesSuite(t, f) })
	t.Run("Candidates", func(t *testing.T) { RunCandidatesSuite(t, f) })
	t.Run("AuthStore", func(t *testing.T) { RunAuthStoreSuite(t, f) })
	t.Run("SessionStats", func(t *testing.T) { RunSessionStatsSuite(t, f) })
	t.Run("AvailabilityTruth", func(t *testing.T) { RunAvailabilityTruthSuite(t, f) })
	t.Run("Away", func(t *testing.T) { RunAwaySuite(t, f) })
	t.Run("SessionStore", func(t *testing.T) { RunSessionStoreSuite(t, f) })
	t.Run("Queue", func(t *testing.T) { RunQueueSuite(t, f) })
	t.Run("QueueTruth", func(t *testing.T) { RunQueueTruthSuite(t, f) })
	t.Run("DeviceStore", func(t *testing.T) { RunDeviceStoreSuite(t, f) })
	t.Run("EventLog", func(t *testing.T) { RunEventLogSuite(t, f) })
}

// t0 is the suites' reference time: not UTC, and with nanoseconds that a
// store must drop.
var t0 = time.Date(2031, time.March, 4, 12, 6, 7, 123456789, time.FixedZone("WIB", 7*60*60))

// at returns t0 moved by d.
func at(d time.Duration) time.Time { return t0.Add(d) }

// parallel runs fn as a parallel subtest with its own fresh store.
func parallel(t *testing.T, name string, f Factory, fn func(t *testing.T, st Stores)) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		t.Parallel()
		fn(t, f(t))
	})
}

var phoneSeq atomic.Int64

// newPhone returns a phone number no other test of this process uses.
func newPhone() string {
	return fmt.Sprintf("+6281%09d", phoneSeq.Add(1))
}

func newCustomer(t *testing.T, st Stores) ports.User {
	t.Helper()
	u, err := st.Users.CreateUser(t.Context(), ports.NewUser{
		Role: ports.RoleCustomer, Phone: newPhone(), DisplayName: "Customer", PasswordHash: "hash",
	})
	if err != nil {
		t.Fatalf("create customer: %v", err)
	}
	return u
}

func newMitra(t *testing.T, st Stores, capacity int) ports.Mitra {
	t.Helper()
	m, err := st.Mitras.CreateMitra(t.Context(), ports.NewUser{
		Role: ports.RoleMitra, Phone: newPhone(), DisplayName: "Mitra", PasswordHash: "hash",
	}, capacity)
	if err != nil {
		t.Fatalf("create mitra: %v", err)
	}
	return m
}

// onlineMitra creates a mitra and takes it online with a heartbeat at hb.
func onlineMitra(t *testing.T, st Stores, capacity int, hb time.Time) ports.Mitra {
	t.Helper()
	m := newMitra(t, st, capacity)
	m, err := st.Mitras.SetOnline(t.Context(), m.ID, true, hb)
	if err != nil {
		t.Fatalf("set online: %v", err)
	}
	return m
}

// seedSession creates a searching session of a new customer through the
// SessionStore and, unless status is searching, moves it to status with
// mitraID ("" for none) through UpdateSession.
func seedSession(t *testing.T, st Stores, mitraID string, status ports.SessionStatus) ports.Session {
	t.Helper()
	s := createSession(t, st, newCustomer(t, st).ID, nil)
	if status == ports.StatusSearching && mitraID == "" {
		return s
	}
	return updateSession(t, st, s.ID, func(s *ports.Session) {
		s.Status = status
		if mitraID != "" {
			s.MitraID = &mitraID
		}
	})
}

// createSession creates a searching session of customerID, for 30 minutes,
// after applying edit (when not nil) to it.
func createSession(t *testing.T, st Stores, customerID string, edit func(*ports.Session)) ports.Session {
	t.Helper()
	in := ports.Session{
		CustomerID:      customerID,
		Status:          ports.StatusSearching,
		DurationMinutes: 30,
		SearchingSince:  t0,
		OfferExpiresAt:  ptr(at(time.Minute)),
	}
	if edit != nil {
		edit(&in)
	}
	s, err := st.Sessions.CreateSession(t.Context(), in, nil)
	if err != nil {
		t.Fatalf("create session: %v", err)
	}
	return s
}

// updateSession applies edit to session id through UpdateSession.
func updateSession(t *testing.T, st Stores, id string, edit func(*ports.Session)) ports.Session {
	t.Helper()
	s, err := st.Sessions.UpdateSession(t.Context(), id, func(_ context.Context, _ ports.SessionTx, s *ports.Session) error {
		edit(s)
		return nil
	})
	if err != nil {
		t.Fatalf("update session %s: %v", id, err)
	}
	return s
}

// newHash returns a random 32-byte token hash (zero bytes included, sometimes).
func newHash(t *testing.T) []byte {
	t.Helper()
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	b[0] = 0
	return b
}

var uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// isUUID reports whether id is a UUID in canonical (lower-case) form.
func isUUID(id string) bool { return uuidPattern.MatchString(id) }

// randomUUID returns a random version-4 UUID that no store holds.
func randomUUID(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// pgTime is t as Postgres stores and returns it.
func pgTime(t time.Time) time.Time {
	return t.UTC().Truncate(time.Microsecond)
}

func assertTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !got.Equal(pgTime(want)) || got.Location() != time.UTC {
		t.Errorf("%s = %v, want %v (UTC, microseconds)", what, got, pgTime(want))
	}
}

func assertTimePtr(t *testing.T, what string, got *time.Time, want time.Time) {
	t.Helper()
	if got == nil {
		t.Errorf("%s = nil, want %v", what, pgTime(want))
		return
	}
	assertTime(t, what, *got, want)
}

// assertStoreTime checks a time the store stamped itself (created_at, updated_at).
func assertStoreTime(t *testing.T, what string, got time.Time) {
	t.Helper()
	if got.Location() != time.UTC || !got.Equal(got.Truncate(time.Microsecond)) {
		t.Errorf("%s = %v: want UTC with microsecond precision", what, got)
	}
	if d := time.Since(got); d < -time.Minute || d > time.Minute {
		t.Errorf("%s = %v: not within a minute of now", what, got)
	}
}
