package bench

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
	"github.com/valkey-io/valkey-go"

	"github.com/halobestie/mitra-availability/adapters/postgres"
	"github.com/halobestie/mitra-availability/adapters/postgres/pgtest"
	vk "github.com/halobestie/mitra-availability/adapters/valkey"
	"github.com/halobestie/mitra-availability/ports"
)

// The data set every size shares. With n online mitras:
//
//   - every mitra has capacity 2;
//   - one in ten online mitras has two open sessions (full), one in ten has
//     one; the others none;
//   - one in twenty online mitras last beat 100–199 s ago (not fresh for the
//     90 s staleness of HEARTBEAT_STALE_SECONDS), the others 0–59.9 s ago;
//   - besides the online ones, n/10 offline mitras and n/100 deactivated ones
//     sit in the store (and the deactivated ones in both Valkey layouts).
//
// So 85 % of the online mitras are available. Times are relative to t0, the
// time of the seed, and every query uses the fixed cut-offs below, so the
// answers do not drift while the benchmarks run.
const (
	seedCapacity   = 2
	heartbeatStale = 90 * time.Second // HEARTBEAT_STALE_SECONDS
	// sweepCutoff is the sweep's staleness in the sweep benchmarks: only the
	// mitras they inject (heartbeat an hour old) are older.
	sweepCutoff = 10 * time.Minute
	sweepAge    = time.Hour
	// sweepLimit is the batch of one RemoveStale call (core/mirror's removeBatch).
	sweepLimit = 1000
	// mirrorTimeout bounds each mirror call; generous, so that a slow run
	// measures instead of failing.
	mirrorTimeout = 5 * time.Second
	setupTimeout  = 5 * time.Minute
)

// fixture is one size's data in Postgres, in the mirror and in the original
// design's keys, all on the same servers.
type fixture struct {
	n           int
	t0          time.Time
	freshSince  time.Time // t0 - heartbeatStale
	sweepBefore time.Time // t0 - sweepCutoff

	db     *bun.DB
	store  *postgres.Store
	client valkey.Client
	mirror *vk.Mirror
	orig   *original

	online      []ports.MirrorMitra // the store's truth, as the reseed got it
	deactivated []string
	fresh       []string // ids of the fresh online mitras, sorted
	available   int      // fresh online mitras with room
}

// newFixture seeds n online mitras into a fresh Postgres database (bulk
// INSERT … SELECT generate_series), reseeds the mirror from the store's truth
// (MirrorTruth + Reseed, the service's own path) and writes the original
// design's keys from the same truth, pipelined. The Valkey keys live under a
// random prefix with a hash tag of their own; the database is dropped and the
// keys deleted when tb ends.
func newFixture(tb testing.TB, n int) *fixture {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()

	fx := &fixture{n: n, t0: time.Now().UTC().Truncate(time.Millisecond)}
	fx.freshSince = fx.t0.Add(-heartbeatStale)
	fx.sweepBefore = fx.t0.Add(-sweepCutoff)

	fx.client = sharedValkey(tb)
	fx.db = pgtest.NewDB(tb)
	store, err := postgres.NewStore(fx.db)
	if err != nil {
		tb.Fatal(err)
	}
	fx.store = store

	start := time.Now()
	if err := seedPostgres(ctx, fx.db, n, fx.t0); err != nil {
		tb.Fatalf("seed Postgres with %d mitras: %v", n, err)
	}
	tb.Logf("Postgres: %d online mitras seeded in %v", n, time.Since(start).Round(time.Millisecond))

	fx.online, fx.deactivated, err = fx.store.MirrorTruth(ctx)
	if err != nil {
		tb.Fatalf("MirrorTruth: %v", err)
	}
	if len(fx.online) != n || len(fx.deactivated) != n/100 {
		tb.Fatalf("MirrorTruth: %d online, %d deactivated; want %d, %d", len(fx.online), len(fx.deactivated), n, n/100)
	}
	for _, m := range fx.online {
		if m.LastHeartbeat.Before(fx.freshSince) {
			continue
		}
		fx.fresh = append(fx.fresh, m.ID)
		if m.HasRoom() {
			fx.available++
		}
	}
	slices.Sort(fx.fresh)

	prefix := "bench:{" + randomHex(tb, 6) + "}:"
	tb.Cleanup(func() { deletePrefix(tb, fx.client, prefix) })
	fx.mirror = vk.NewMirror(fx.client, prefix, mirrorTimeout)
	start = time.Now()
	rep, err := fx.mirror.Reseed(ctx, fx.online, fx.deactivated)
	if err != nil {
		tb.Fatalf("Reseed: %v", err)
	}
	if rep.Added != n {
		tb.Fatalf("Reseed added %d, want %d", rep.Added, n)
	}
	tb.Logf("mirror: reseeded in %v", time.Since(start).Round(time.Millisecond))

	fx.orig = newOriginal(fx.client, prefix, seedCapacity)
	start = time.Now()
	if err := fx.orig.seed(ctx, fx.online, fx.deactivated); err != nil {
		tb.Fatal(err)
	}
	tb.Logf("original keys: seeded in %v", time.Since(start).Round(time.Millisecond))
	return fx
}

// seedPostgres bulk-inserts the data set described above in one transaction,
// then vacuums and analyzes the tables, as autovacuum would soon after, so
// that no autovacuum worker competes with the benchmarks for the CPU.
func seedPostgres(ctx context.Context, db *bun.DB, n int, t0 time.Time) error {
	offline, deactivated := n/10, n/100
	err := db.RunInTx(ctx, &sql.TxOptions{}, func(ctx context.Context, tx bun.Tx) error {
		// Mitra i (1-based) has the phone +62800 followed by i in 8 digits:
		// 1..n online, then offline, then deactivated.
		// ?0 total, ?1 n, ?2 n + offline, ?3 t0.
		if _, err := tx.NewRaw(`
			WITH u AS (
				INSERT INTO users (role, phone, password_hash, display_name)
				SELECT 'mitra', '+62800' || lpad(g::text, 8, '0'), 'bench', 'Mitra ' || g
				FROM generate_series(1, ?0) g
				RETURNING id, phone
			), x AS (
				SELECT id, substr(phone, 7)::int AS i FROM u
			)
			INSERT INTO mitras (id, is_active, is_online, capacity, last_heartbeat_at, online_since)
			SELECT id, i <= ?2, i <= ?1, `+strconv.Itoa(seedCapacity)+`,
				CASE WHEN i > ?1 THEN ?3::timestamptz - interval '1 hour'
				     WHEN i % 20 = 0 THEN ?3::timestamptz - make_interval(secs => 100 + i % 100)
				     ELSE ?3::timestamptz - make_interval(secs => (i % 600) / 10.0) END,
				CASE WHEN i <= ?1 THEN ?3::timestamptz - interval '2 hours' END
			FROM x`,
			n+offline+deactivated, n, n+offline, t0,
		).Exec(ctx); err != nil {
			return err
		}
		// Open sessions: two for mitra i with i%10 = 1, one for i%10 = 2; one
		// customer (phone +62810…) per session.
		// ?0 n, ?1 t0.
		if _, err := tx.NewRaw(`
			INSERT INTO users (role, phone, password_hash, display_name)
			SELECT 'customer', '+62810' || lpad(g::text, 8, '0'), 'bench', 'Customer ' || g
			FROM generate_series(1, (SELECT count(*) FROM generate_series(1, ?0) i, generate_series(1, 2) j
				WHERE i % 10 = 1 OR (i % 10 = 2 AND j = 1))) g`,
			n,
		).Exec(ctx); err != nil {
			return err
		}
		_, err := tx.NewRaw(`
			WITH slots AS (
				SELECT i, row_number() OVER (ORDER BY i, j) AS k
				FROM generate_series(1, ?0) i, generate_series(1, 2) j
				WHERE i % 10 = 1 OR (i % 10 = 2 AND j = 1)
			)
			INSERT INTO chat_sessions (customer_id, mitra_id, status, duration_minutes, paid,
				searching_since, accepted_at, started_at, expires_at, warn_at)
			SELECT c.id, m.id, 'active', 30, true, ?1::timestamptz, ?1::timestamptz, ?1::timestamptz,
				?1::timestamptz + interval '30 minutes', ?1::timestamptz + interval '27 minutes'
			FROM slots s
			JOIN users m ON m.phone = '+62800' || lpad(s.i::text, 8, '0')
			JOIN users c ON c.phone = '+62810' || lpad(s.k::text, 8, '0')`,
			n, t0,
		).Exec(ctx)
		return err
	})
	if err != nil {
		return err
	}
	_, err = db.ExecContext(ctx, "VACUUM (ANALYZE) users, mitras, chat_sessions")
	return err
}

// staleMitras returns s new online mitras (random ids) whose heartbeat is
// sweepAge old, with room: what the sweep benchmarks inject before each sweep.
func (fx *fixture) staleMitras(s int) []ports.MirrorMitra {
	out := make([]ports.MirrorMitra, s)
	for i := range out {
		out[i] = ports.MirrorMitra{ID: uuid.NewString(), LastHeartbeat: fx.t0.Add(-sweepAge), Capacity: seedCapacity}
	}
	return out
}

// injectMirror puts the stale mitras online in the mirror through its public
// API: concurrent PutOnline calls, which the client pipelines.
func (fx *fixture) injectMirror(ctx context.Context, stale []ports.MirrorMitra) error {
	errs := make([]error, len(stale))
	var wg sync.WaitGroup
	for i, m := range stale {
		wg.Go(func() { errs[i] = fx.mirror.PutOnline(ctx, m) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// injectOriginal puts the stale mitras online in the original keys, pipelined.
func (fx *fixture) injectOriginal(ctx context.Context, stale []ports.MirrorMitra) error {
	return fx.orig.seed(ctx, stale, nil)
}
