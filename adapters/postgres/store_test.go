package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/halobestie/mitra-availability/adapters/postgres"
	"github.com/halobestie/mitra-availability/adapters/postgres/pgtest"
	"github.com/halobestie/mitra-availability/ports"
	"github.com/halobestie/mitra-availability/ports/porttest"
)

func newStore(t *testing.T, db *bun.DB) *postgres.Store {
	t.Helper()
	s, err := postgres.NewStore(db)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newStores(t *testing.T) porttest.Stores {
	db := pgtest.NewDB(t)
	s := newStore(t, db)
	return porttest.Stores{
		Users:        s,
		Mitras:       s,
		MitraQueries: s,
		Auth:         s,
		SessionStats: s,
		Truth:        s,
		Sessions:     s,
		Devices:      s,
		Events:       s,
		QueueTruth:   s,
	}
}

func TestStore(t *testing.T) {
	porttest.RunStoreSuite(t, newStores)
}

func TestOpen(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDSN(t)
	db, err := postgres.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	s := newStore(t, db)
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	// The pool works end to end, timestamps included.
	u, err := s.CreateUser(t.Context(), ports.NewUser{Role: ports.RoleAdmin, Phone: "+6200", DisplayName: "A", PasswordHash: "h"})
	if err != nil {
		t.Fatal(err)
	}
	if u.CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt in %v, want UTC", u.CreatedAt.Location())
	}
	if _, err := postgres.Open(t.Context(), "postgres://%zz"); err == nil || errors.Is(err, ports.ErrStoreUnavailable) {
		t.Errorf("Open(malformed DSN) = %v, want a plain error", err)
	}
}

// unreachableDSN points at a port nothing listens on.
const unreachableDSN = "postgres://root@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=2"

func TestOpenUnreachable(t *testing.T) {
	t.Parallel()
	_, err := postgres.Open(t.Context(), unreachableDSN)
	if !errors.Is(err, ports.ErrStoreUnavailable) {
		t.Fatalf("Open(unreachable) = %v, want ErrStoreUnavailable", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	if _, err := postgres.Open(ctx, pgtest.AdminDSN(t)); !errors.Is(err, ports.ErrStoreUnavailable) {
		t.Fatalf("Open(expired ctx) = %v, want ErrStoreUnavailable", err)
	}
}

// Every method of a Store whose server is gone answers ErrStoreUnavailable.
func TestStoreUnavailable(t *testing.T) {
	t.Parallel()
	cfg, err := pgx.ParseConfig(unreachableDSN)
	if err != nil {
		t.Fatal(err)
	}
	db := bun.NewDB(stdlib.OpenDB(*cfg), pgdialect.New())
	t.Cleanup(func() { _ = db.Close() })
	s := newStore(t, db)
	ctx := t.Context()
	id := uuid.NewString()
	now := time.Now()
	calls := map[string]func() error{
		"Ping": func() error { return s.Ping(ctx) },
		"CreateUser": func() error {
			_, err := s.CreateUser(ctx, ports.NewUser{Role: ports.RoleCustomer, Phone: "+62"})
			return err
		},
		"UserByID": func() error { _, err := s.UserByID(ctx, id); return err },
		"UserByPhone": func() error {
			_, err := s.UserByPhone(ctx, "+62")
			return err
		},
		"CreateMitra":     func() error { _, err := s.CreateMitra(ctx, ports.NewUser{Phone: "+62"}, 1); return err },
		"Mitra":           func() error { _, err := s.Mitra(ctx, id); return err },
		"PatchMitra":      func() error { _, err := s.PatchMitra(ctx, id, ports.MitraPatch{}); return err },
		"SetOnline":       func() error { _, err := s.SetOnline(ctx, id, true, now); return err },
		"TouchHeartbeat":  func() error { _, err := s.TouchHeartbeat(ctx, id, now); return err },
		"AvailableMitras": func() error { _, err := s.AvailableMitras(ctx, now); return err },
		"CountMitras":     func() error { _, err := s.CountMitras(ctx, now); return err },
		"CreateAuthSession": func() error {
			_, err := s.CreateAuthSession(ctx, id, []byte{1}, now, now)
			return err
		},
		"RotateRefreshToken": func() error {
			_, err := s.RotateRefreshToken(ctx, []byte{1}, []byte{2}, now, now)
			return err
		},
		"RevokeAuthSession": func() error { return s.RevokeAuthSession(ctx, id, now) },
		"RevokeUserAuthSessions": func() error {
			_, err := s.RevokeUserAuthSessions(ctx, id, now)
			return err
		},
		"AuthSession":       func() error { _, err := s.AuthSession(ctx, id); return err },
		"CountOpenSessions": func() error { _, err := s.CountOpenSessions(ctx); return err },
		"MirrorTruth":       func() error { _, _, err := s.MirrorTruth(ctx); return err },
		"SetOfflineIfStale": func() error { _, err := s.SetOfflineIfStale(ctx, []string{id}, now); return err },
		"WriteBackHeartbeats": func() error {
			_, err := s.WriteBackHeartbeats(ctx, []ports.MirrorMitra{{ID: id, LastHeartbeat: now}})
			return err
		},
		"CreateSession": func() error {
			_, err := s.CreateSession(ctx, ports.Session{CustomerID: id, Status: ports.StatusSearching, DurationMinutes: 1}, nil)
			return err
		},
		"Session":    func() error { _, err := s.Session(ctx, id); return err },
		"SessionsOf": func() error { _, err := s.SessionsOf(ctx, id, 10); return err },
		"UpdateSession": func() error {
			_, err := s.UpdateSession(ctx, id, func(context.Context, ports.SessionTx, *ports.Session) error { return nil })
			return err
		},
		"DueTimers": func() error { _, err := s.DueTimers(ctx, now, 10); return err },
		"NextTimer": func() error { _, _, err := s.NextTimer(ctx); return err },
		"PutDevice": func() error {
			_, err := s.PutDevice(ctx, ports.Device{UserID: id, Platform: ports.PlatformFCM, Token: "t"})
			return err
		},
		"DeleteDevice":    func() error { return s.DeleteDevice(ctx, id) },
		"Devices":         func() error { _, err := s.Devices(ctx, []string{id}); return err },
		"DropDeviceToken": func() error { _, err := s.DropDeviceToken(ctx, id, "t"); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, ports.ErrStoreUnavailable) {
			t.Errorf("%s = %v, want ErrStoreUnavailable", name, err)
		}
	}
	// After Close too.
	_ = db.Close()
	if _, err := s.Mitra(ctx, id); !errors.Is(err, ports.ErrStoreUnavailable) {
		t.Errorf("Mitra on a closed pool = %v, want ErrStoreUnavailable", err)
	}
}

func TestNewStoreNil(t *testing.T) {
	if _, err := postgres.NewStore(nil); err == nil {
		t.Fatal("NewStore(nil) succeeded")
	}
}

func TestQueryCounter(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDB(t)
	qc := postgres.NewQueryCounter()
	db.AddQueryHook(qc)
	s := newStore(t, db)
	if qc.Count() != 0 {
		t.Fatalf("Count = %d before any query", qc.Count())
	}
	m, err := s.CreateMitra(t.Context(), ports.NewUser{Phone: "+6201", DisplayName: "M", PasswordHash: "h"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if qc.Count() != 1 {
		t.Errorf("CreateMitra ran %d statements, want 1", qc.Count())
	}
	qc.Reset()
	if _, err := s.TouchHeartbeat(t.Context(), m.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Mitra(t.Context(), m.ID); err != nil {
		t.Fatal(err)
	}
	if qc.Count() != 2 {
		t.Errorf("TouchHeartbeat + Mitra ran %d statements, want 2", qc.Count())
	}
	// A malformed ID costs no statement.
	qc.Reset()
	if _, err := s.Mitra(t.Context(), "nope"); !errors.Is(err, ports.ErrNotFound) {
		t.Fatal(err)
	}
	if qc.Count() != 0 {
		t.Errorf("Mitra(malformed) ran %d statements, want 0", qc.Count())
	}

	// The availability truth: one statement per call, none for nothing to do.
	statements := func(what string, want int64, call func() error) {
		t.Helper()
		qc.Reset()
		if err := call(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if qc.Count() != want {
			t.Errorf("%s ran %d statements, want %d", what, qc.Count(), want)
		}
	}
	now := time.Now()
	statements("MirrorTruth", 1, func() error { _, _, err := s.MirrorTruth(t.Context()); return err })
	statements("SetOfflineIfStale", 1, func() error { _, err := s.SetOfflineIfStale(t.Context(), []string{m.ID}, now); return err })
	statements("SetOfflineIfStale(none)", 0, func() error { _, err := s.SetOfflineIfStale(t.Context(), []string{"nope"}, now); return err })
	beats := make([]ports.MirrorMitra, 500)
	for i := range beats {
		beats[i] = ports.MirrorMitra{ID: uuid.NewString(), LastHeartbeat: now}
	}
	beats[0].ID = m.ID
	statements("WriteBackHeartbeats(500)", 1, func() error { _, err := s.WriteBackHeartbeats(t.Context(), beats); return err })
	statements("WriteBackHeartbeats(none)", 0, func() error { _, err := s.WriteBackHeartbeats(t.Context(), nil); return err })

	// A session update is BEGIN, SELECT … FOR UPDATE, UPDATE, COMMIT; locking a
	// mitra's load adds two statements.
	c, err := s.CreateUser(t.Context(), ports.NewUser{Role: ports.RoleCustomer, Phone: "+6202", DisplayName: "C", PasswordHash: "h"})
	if err != nil {
		t.Fatal(err)
	}
	var sess ports.Session
	statements("CreateSession", 1, func() (err error) {
		sess, err = s.CreateSession(t.Context(), ports.Session{CustomerID: c.ID, Status: ports.StatusSearching, DurationMinutes: 30, SearchingSince: now}, nil)
		return err
	})
	statements("UpdateSession", 6, func() error {
		_, err := s.UpdateSession(t.Context(), sess.ID, func(ctx context.Context, tx ports.SessionTx, _ *ports.Session) error {
			_, err := tx.LockMitraLoad(ctx, m.ID)
			return err
		})
		return err
	})
	statements("DueTimers", 1, func() error { _, err := s.DueTimers(t.Context(), now, 100); return err })
	statements("NextTimer", 1, func() error { _, _, err := s.NextTimer(t.Context()); return err })
}

// An online mitra with no heartbeat (possible in the schema, not through the
// ports) is in the mirror truth with a zero LastHeartbeat, and stale.
func TestMirrorTruthNullHeartbeat(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDB(t)
	s := newStore(t, db)
	m, err := s.CreateMitra(t.Context(), ports.NewUser{Phone: "+6203", DisplayName: "M", PasswordHash: "h"}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.NewRaw(`UPDATE mitras SET is_online = true WHERE id = ?`, m.ID).Exec(t.Context()); err != nil {
		t.Fatal(err)
	}
	online, _, err := s.MirrorTruth(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(online) != 1 || online[0] != (ports.MirrorMitra{ID: m.ID, Capacity: 2}) {
		t.Errorf("MirrorTruth online = %+v, want [{ID: %s Capacity: 2}]", online, m.ID)
	}
	got, err := s.SetOfflineIfStale(t.Context(), []string{m.ID}, time.Now())
	if err != nil || len(got) != 1 || got[0] != m.ID {
		t.Errorf("SetOfflineIfStale = %v, %v; want [%s]", got, err, m.ID)
	}
}
