package migrations_test

import (
	"context"
	"database/sql"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/halobestie/mitra-availability/adapters/postgres/pgtest"
	"github.com/halobestie/mitra-availability/migrations"
)

// migrationTables lists, per migration in order, the tables its Up creates
// (none for a migration that only adds indexes).
var migrationTables = [][]string{
	{"users"}, {"mitras"}, {"auth_sessions"}, {"refresh_tokens"}, {"chat_sessions"},
	{}, // 00006: auth_sessions_revoked_at_idx
	{}, // 00007: mitras.is_away
	{"devices"},
	{"event_heads", "events"},
	{}, // 00010: waiting queue (chat_sessions columns)
	{}, // 00011: chat_sessions.next_batch_at, batch_start and their indexes
	{"event_outbox"},
	{}, // 00013: chat_sessions.queue_notified_position, queue_notified_at (queue_update)
}

// allTables are the tables of every migration.
var allTables = tablesUpTo(len(migrationTables))

// tablesUpTo returns the tables the first n migrations create.
func tablesUpTo(n int) []string {
	out := []string{}
	for _, ts := range migrationTables[:n] {
		out = append(out, ts...)
	}
	return out
}

func openDB(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	db := stdlib.OpenDB(*cfg)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// tables lists the tables of the public schema, except goose's version table.
func tables(t *testing.T, db *sql.DB) []string {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), `
		SELECT table_name FROM information_schema.tables
		WHERE table_schema = 'public' AND table_name <> 'goose_db_version'
		ORDER BY table_name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		out = append(out, name)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func indexCount(t *testing.T, db *sql.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(t.Context(),
		`SELECT count(*) FROM pg_indexes WHERE schemaname = 'public' AND tablename <> 'goose_db_version'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func assertTables(t *testing.T, db *sql.DB, want []string) {
	t.Helper()
	want = slices.Sorted(slices.Values(want))
	if got := tables(t, db); !slices.Equal(got, want) {
		t.Fatalf("tables = %v, want %v", got, want)
	}
}

func assertAllApplied(t *testing.T, db *sql.DB, applied bool) {
	t.Helper()
	st, err := migrations.Status(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != len(migrationTables) {
		t.Fatalf("status lists %d migrations, want %d", len(st), len(migrationTables))
	}
	for i, s := range st {
		// Versions increase; a gap is allowed (migrations land in parallel,
		// and goose applies one that arrives out of order).
		if (i == 0 && s.Version != 1) || (i > 0 && s.Version <= st[i-1].Version) {
			t.Errorf("migration %d has version %d", i, s.Version)
		}
		if s.Applied != applied {
			t.Errorf("migration %d (%s) applied = %v, want %v", s.Version, s.Path, s.Applied, applied)
		}
	}
}

func TestUpDownUp(t *testing.T) {
	t.Parallel()
	db := openDB(t, pgtest.NewEmptyDSN(t))
	ctx := t.Context()

	assertTables(t, db, nil)
	assertAllApplied(t, db, false)

	if err := migrations.Up(ctx, db); err != nil {
		t.Fatalf("up: %v", err)
	}
	assertTables(t, db, allTables)
	assertAllApplied(t, db, true)
	indexes := indexCount(t, db)

	// Up again is a no-op.
	if err := migrations.Up(ctx, db); err != nil {
		t.Fatalf("second up: %v", err)
	}

	// Down one at a time: each Down removes exactly the tables its Up made.
	for i := len(migrationTables) - 1; i >= 0; i-- {
		if err := migrations.Down(ctx, db); err != nil {
			t.Fatalf("down from version %d: %v", i+1, err)
		}
		assertTables(t, db, tablesUpTo(i))
	}
	assertAllApplied(t, db, false)
	if err := migrations.Down(ctx, db); err == nil {
		t.Fatal("down with nothing applied: want an error")
	}

	if err := migrations.Up(ctx, db); err != nil {
		t.Fatalf("up after down: %v", err)
	}
	assertTables(t, db, allTables)
	assertAllApplied(t, db, true)
	if got := indexCount(t, db); got != indexes {
		t.Fatalf("indexes after up/down/up = %d, want %d", got, indexes)
	}

	if err := migrations.DownTo(ctx, db, 0); err != nil {
		t.Fatalf("down to 0: %v", err)
	}
	assertTables(t, db, nil)
	assertAllApplied(t, db, false)
	if got := indexCount(t, db); got != 0 {
		t.Fatalf("indexes after down to 0 = %d, want 0", got)
	}

	if err := migrations.Up(ctx, db); err != nil {
		t.Fatalf("final up: %v", err)
	}
	assertTables(t, db, allTables)
}

// Several instances starting at once must not race: the session advisory lock
// makes them take turns, and each ends with every migration applied.
func TestConcurrentUp(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewEmptyDSN(t)
	const instances = 4
	var wg sync.WaitGroup
	errs := make([]error, instances)
	for i := range instances {
		db := openDB(t, dsn)
		wg.Go(func() { errs[i] = migrations.Up(context.Background(), db) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("instance %d: %v", i, err)
		}
	}
	db := openDB(t, dsn)
	assertTables(t, db, allTables)
	assertAllApplied(t, db, true)
}

func TestSchemaRules(t *testing.T) {
	t.Parallel()
	db := openDB(t, pgtest.NewDSN(t))
	ctx := t.Context()
	exec := func(q string, args ...any) error {
		_, err := db.ExecContext(ctx, q, args...)
		return err
	}
	mustExec := func(q string, args ...any) {
		t.Helper()
		if err := exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	var customer, mitra string
	if err := db.QueryRowContext(ctx, `INSERT INTO users (role, phone, password_hash, display_name)
		VALUES ('customer', '+620001', 'h', 'C') RETURNING id`).Scan(&customer); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRowContext(ctx, `INSERT INTO users (role, phone, password_hash, display_name)
		VALUES ('mitra', '+620002', 'h', 'M') RETURNING id`).Scan(&mitra); err != nil {
		t.Fatal(err)
	}
	mustExec(`INSERT INTO mitras (id, capacity) VALUES ($1, 1)`, mitra)

	bad := map[string]func() error{
		"unknown role": func() error {
			return exec(`INSERT INTO users (role, phone, password_hash, display_name) VALUES ('root', '+620003', 'h', 'X')`)
		},
		"duplicate phone": func() error {
			return exec(`INSERT INTO users (role, phone, password_hash, display_name) VALUES ('customer', '+620001', 'h', 'X')`)
		},
		"negative capacity": func() error { return exec(`UPDATE mitras SET capacity = -1`) },
		"duration 0": func() error {
			return exec(`INSERT INTO chat_sessions (customer_id, status, duration_minutes, searching_since) VALUES ($1, 'searching', 0, now())`, customer)
		},
		"duration 241": func() error {
			return exec(`INSERT INTO chat_sessions (customer_id, status, duration_minutes, searching_since) VALUES ($1, 'searching', 241, now())`, customer)
		},
		"unknown status": func() error {
			return exec(`INSERT INTO chat_sessions (customer_id, status, duration_minutes, searching_since) VALUES ($1, 'paused', 10, now())`, customer)
		},
		"unknown end reason": func() error {
			return exec(`INSERT INTO chat_sessions (customer_id, status, end_reason, duration_minutes, searching_since) VALUES ($1, 'ended', 'bored', 10, now())`, customer)
		},
		"mitra that is not a mitra": func() error {
			return exec(`INSERT INTO chat_sessions (customer_id, mitra_id, status, duration_minutes, searching_since) VALUES ($1, $1, 'ended', 10, now())`, customer)
		},
		"unknown device platform": func() error {
			return exec(`INSERT INTO devices (user_id, platform, token) VALUES ($1, 'apns', 't')`, customer)
		},
		"empty device token": func() error {
			return exec(`INSERT INTO devices (user_id, platform, token) VALUES ($1, 'fcm', '')`, customer)
		},
		"device token of 4097 characters": func() error {
			return exec(`INSERT INTO devices (user_id, platform, token) VALUES ($1, 'fcm', $2)`, customer, strings.Repeat("é", 4097))
		},
	}
	for name, f := range bad {
		if err := f(); err == nil {
			t.Errorf("%s: accepted, want a constraint violation", name)
		}
	}

	// One open session per customer; closed ones do not count.
	mustExec(`INSERT INTO chat_sessions (customer_id, status, end_reason, duration_minutes, searching_since) VALUES ($1, 'unmatched', 'unmatched', 10, now())`, customer)
	mustExec(`INSERT INTO chat_sessions (customer_id, mitra_id, status, duration_minutes, searching_since) VALUES ($1, $2, 'active', 240, now())`, customer, mitra)
	if err := exec(`INSERT INTO chat_sessions (customer_id, status, duration_minutes, searching_since) VALUES ($1, 'searching', 10, now())`, customer); err == nil {
		t.Error("second open session for a customer: accepted")
	}

	// A device token belongs to one user at most, however long it is.
	long := strings.Repeat("é", 4096)
	mustExec(`INSERT INTO devices (user_id, platform, token) VALUES ($1, 'fcm', $2)`, customer, long)
	if err := exec(`INSERT INTO devices (user_id, platform, token) VALUES ($1, 'fcm', $2)`, mitra, long); err == nil {
		t.Error("one device token for two users: accepted")
	}

	// Deleting a user cascades to its mitra row, auth sessions and device.
	var sess string
	if err := db.QueryRowContext(ctx, `INSERT INTO auth_sessions (user_id, expires_at) VALUES ($1, now() + interval '1 day') RETURNING id`, customer).Scan(&sess); err != nil {
		t.Fatal(err)
	}
	mustExec(`INSERT INTO refresh_tokens (token_hash, auth_session_id, expires_at) VALUES ('\x01', $1, now())`, sess)
	mustExec(`DELETE FROM chat_sessions`)
	mustExec(`DELETE FROM users WHERE id = $1`, customer)
	var n int
	if err := db.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM auth_sessions) + (SELECT count(*) FROM refresh_tokens) + (SELECT count(*) FROM devices)`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("auth and device rows left after deleting their user: %d", n)
	}
	mustExec(`DELETE FROM users WHERE id = $1`, mitra)
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM mitras`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("mitra rows left after deleting their user: %d", n)
	}
}
