package loadgen

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/halobestie/mitra-availability/adapters/postgres"
	"github.com/halobestie/mitra-availability/adapters/postgres/pgtest"
	valkeyadapter "github.com/halobestie/mitra-availability/adapters/valkey"
	"github.com/halobestie/mitra-availability/ports"
)

// newMirror returns the service's own mirror adapter over a fresh miniredis,
// its URL, and the prefix it writes under.
func newMirror(t *testing.T) (*valkeyadapter.Mirror, string, string) {
	t.Helper()
	mr := miniredis.RunT(t)
	url := "redis://" + mr.Addr()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, err := valkeyadapter.Open(ctx, valkeyadapter.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	const prefix = "lg-test:"
	return valkeyadapter.NewMirror(client, prefix, time.Second), url, prefix
}

func openValkey(t *testing.T, url, prefix string) *ValkeyReader {
	t.Helper()
	vk, err := OpenValkey(context.Background(), url, prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(vk.Close)
	return vk
}

// The reader decodes exactly what the service's mirror adapter writes.
func TestValkeyReaderReadsTheAdaptersKeys(t *testing.T) {
	ctx := context.Background()
	mirror, url, prefix := newMirror(t)
	hb := time.Date(2026, 2, 3, 4, 5, 6, 789_000_000, time.UTC)
	_, err := mirror.Reseed(ctx, []ports.MirrorMitra{
		{ID: "a", LastHeartbeat: hb, OpenSessions: 1, Capacity: 2},
		{ID: "b", LastHeartbeat: hb, OpenSessions: 1, Capacity: 1},
	}, []string{"d"})
	if err != nil {
		t.Fatal(err)
	}

	vk := openValkey(t, url, prefix)
	st, err := vk.MirrorState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Seeded {
		t.Fatal("not seeded")
	}
	wantHB := hb.Truncate(100 * time.Millisecond)
	if e, ok := st.Free["a"]; !ok || e.Open != 1 || e.Capacity != 2 || !e.Heartbeat.Equal(wantHB) {
		t.Fatalf("free = %+v, want a{1, 2, %v}", st.Free, wantHB)
	}
	if e, ok := st.Full["b"]; !ok || e.Open != 1 || e.Capacity != 1 || len(st.Free) != 1 || len(st.Full) != 1 {
		t.Fatalf("full = %+v, free = %+v", st.Full, st.Free)
	}
	if !st.Deactivated["d"] || len(st.Deactivated) != 1 {
		t.Fatalf("deactivated = %v", st.Deactivated)
	}
	if len(st.Away) != 0 {
		t.Fatalf("away = %v, want none", st.Away)
	}
	// An away mitra is in the full set and the away set.
	if err := mirror.PutOnline(ctx, ports.MirrorMitra{ID: "w", LastHeartbeat: hb, Capacity: 1, Away: true}); err != nil {
		t.Fatal(err)
	}
	if st, err = vk.MirrorState(ctx); err != nil {
		t.Fatal(err)
	}
	if _, full := st.Full["w"]; !full || !st.Away["w"] || len(st.Away) != 1 {
		t.Fatalf("away mitra: full %v, away %v", st.Full, st.Away)
	}
	if err := mirror.PutOffline(ctx, "w"); err != nil {
		t.Fatal(err)
	}

	// A load change moves a mitra between the sets.
	if err := mirror.SetLoad(ctx, "a", 2, 2, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if st, err = vk.MirrorState(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := st.Full["a"]; !ok || len(st.Free) != 0 {
		t.Fatalf("after SetLoad: free %v full %v", st.Free, st.Full)
	}

	// The prefix is respected: another one sees an unseeded, empty mirror.
	other, err := openValkey(t, url, "someone-else:").MirrorState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if other.Seeded || len(other.Free)+len(other.Full)+len(other.Deactivated) != 0 {
		t.Fatalf("other prefix = %+v", other)
	}
}

// PostgresReader reads the schema of migrations/, and a mirror seeded by the
// service's own adapters from that database shows no drift.
func TestPostgresReaderAgainstTheAdapters(t *testing.T) {
	dsn := pgtest.NewDSN(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	const (
		m1, m2, m3     = "00000000-0000-0000-0000-0000000000a1", "00000000-0000-0000-0000-0000000000a2", "00000000-0000-0000-0000-0000000000a3"
		c1, c2, c3, c4 = "00000000-0000-0000-0000-0000000000c1", "00000000-0000-0000-0000-0000000000c2", "00000000-0000-0000-0000-0000000000c3", "00000000-0000-0000-0000-0000000000c4"
		sActive        = "00000000-0000-0000-0000-0000000000f1"
		sPending       = "00000000-0000-0000-0000-0000000000f2"
		sSearching     = "00000000-0000-0000-0000-0000000000f3"
		sOld           = "00000000-0000-0000-0000-0000000000f4"
	)
	now := time.Now().UTC().Truncate(time.Millisecond)
	stmts := []struct {
		q    string
		args []any
	}{
		{`INSERT INTO users (id, role, phone, password_hash, display_name) VALUES
			($1, 'mitra', '+62811', 'x', 'm1'), ($2, 'mitra', '+62812', 'x', 'm2'), ($3, 'mitra', '+62813', 'x', 'm3'),
			($4, 'customer', '+62821', 'x', 'c1'), ($5, 'customer', '+62822', 'x', 'c2'),
			($6, 'customer', '+62823', 'x', 'c3'), ($7, 'customer', '+62824', 'x', 'c4')`,
			[]any{m1, m2, m3, c1, c2, c3, c4}},
		{`INSERT INTO mitras (id, is_active, is_online, capacity, last_heartbeat_at) VALUES
			($1, true, true, 2, $4), ($2, true, true, 1, $4), ($3, false, false, 1, NULL)`,
			[]any{m1, m2, m3, now}},
		{`INSERT INTO chat_sessions (id, customer_id, mitra_id, status, duration_minutes, searching_since,
			created_at, expires_at, offered_mitra_ids) VALUES
			($1, $2, $3, 'active', 2, $4, $4, $5, ARRAY[$3]::uuid[])`,
			[]any{sActive, c1, m1, now, now.Add(2 * time.Minute)}},
		{`INSERT INTO chat_sessions (id, customer_id, mitra_id, status, duration_minutes, searching_since, created_at)
			VALUES ($1, $2, $3, 'pending_payment', 1, $4, $4)`,
			[]any{sPending, c2, m1, now}},
		{`INSERT INTO chat_sessions (id, customer_id, status, duration_minutes, searching_since, created_at, offered_mitra_ids)
			VALUES ($1, $2, 'searching', 3, $3, $3, ARRAY[$4, $5]::uuid[])`,
			[]any{sSearching, c3, now, m1, m2}},
		{`INSERT INTO chat_sessions (id, customer_id, mitra_id, status, end_reason, duration_minutes, searching_since,
			created_at, expires_at, ended_at) VALUES ($1, $2, $3, 'ended', 'expired', 1, $4, $4, $5, $5)`,
			[]any{sOld, c4, m2, now.Add(-time.Hour), now.Add(-58 * time.Minute)}},
	}
	pg, err := OpenPostgres(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	for _, s := range stmts {
		if _, err := pg.db.ExecContext(ctx, s.q, s.args...); err != nil {
			t.Fatalf("%s: %v", s.q, err)
		}
	}

	mitras, err := pg.Mitras(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]MitraRecord{}
	for _, m := range mitras {
		byID[m.ID] = m
	}
	if len(byID) != 3 ||
		byID[m1] != (MitraRecord{ID: m1, IsActive: true, IsOnline: true, Capacity: 2, Open: 2}) ||
		byID[m2] != (MitraRecord{ID: m2, IsActive: true, IsOnline: true, Capacity: 1, Open: 0}) ||
		byID[m3] != (MitraRecord{ID: m3, IsActive: false, IsOnline: false, Capacity: 1, Open: 0}) {
		t.Fatalf("mitras = %+v", mitras)
	}

	open, err := pg.OpenSessions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(open) != 3 {
		t.Fatalf("open sessions = %+v", open)
	}
	for _, r := range open {
		switch r.ID {
		case sSearching:
			if r.MitraID != "" || r.Status != StatusSearching || !slices.Equal(r.OfferedMitraIDs, []string{m1, m2}) ||
				!r.SearchingSince.Equal(now) || r.ExpiresAt != nil {
				t.Fatalf("searching = %+v", r)
			}
		case sActive:
			if r.MitraID != m1 || r.CustomerID != c1 || r.ExpiresAt == nil || !r.ExpiresAt.Equal(now.Add(2*time.Minute)) || r.EndedAt != nil {
				t.Fatalf("active = %+v", r)
			}
		}
	}

	all, err := pg.Sessions(ctx, now.Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 || slices.ContainsFunc(all, func(r SessionRecord) bool { return r.ID == sOld }) {
		t.Fatalf("sessions since a minute ago = %+v", all)
	}
	old, err := pg.Sessions(ctx, now.Add(-2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(old, func(r SessionRecord) bool { return r.ID == sOld })
	if len(old) != 4 || i < 0 || old[i].EndReason != EndReasonExpired || old[i].EndedAt == nil {
		t.Fatalf("sessions since two hours ago = %+v", old)
	}

	ids, err := pg.MitraIDsByPhone(ctx, []string{"+62811", "+62813", "+62821", "+62899"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 2 || ids["+62811"] != m1 || ids["+62813"] != m3 {
		t.Fatalf("ids by phone = %v", ids)
	}

	// Seed a mirror with the service's own adapters from this database: no drift.
	store, err := postgres.NewStore(db)
	if err != nil {
		t.Fatal(err)
	}
	online, deactivated, err := store.MirrorTruth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mirror, url, prefix := newMirror(t)
	if _, err := mirror.Reseed(ctx, online, deactivated); err != nil {
		t.Fatal(err)
	}
	vk := openValkey(t, url, prefix)
	st, err := vk.MirrorState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := CompareMirror(mitras, st); len(d) != 0 {
		t.Fatalf("drift after a reseed: %+v", d)
	}
	// A mitra that went offline in the store alone is drift.
	if _, err := pg.db.ExecContext(ctx, `UPDATE mitras SET is_online = false WHERE id = $1`, m2); err != nil {
		t.Fatal(err)
	}
	if mitras, err = pg.Mitras(ctx); err != nil {
		t.Fatal(err)
	}
	d := CompareMirror(mitras, st)
	if len(d) != 1 || d[0].Kind != DriftExtraOnline || d[0].MitraID != m2 {
		t.Fatalf("drift = %+v", d)
	}
}
