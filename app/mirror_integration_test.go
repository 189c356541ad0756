package app_test

// Integration tests of the availability mirror through the real fx graph:
// seeding at start, write-through, the capacity lifecycle, the heartbeat
// write-back, reseed healing and the shared beacon snapshot. They run on the
// shared Valkey server under a prefix of their own, except the beacon test,
// which counts commands on a private server.

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/halobestie/mitra-availability/app/config"
	"github.com/halobestie/mitra-availability/client"
)

// TestSeedAtStart: mitras online and deactivated in Postgres before the
// instance starts are in Valkey once it has started, with their heartbeat
// (at 100 ms precision) and load, and nothing else is.
func TestSeedAtStart(t *testing.T) {
	t.Parallel()
	s := newSetup(t, false)
	// An instance without a cache builds the state, so nothing reaches Valkey before the seed.
	pre := s.start(opts{env: map[string]string{"CACHE_BACKEND": config.CacheNone}})

	free := pre.createMitra(intp(2))
	busy := pre.createMitra(intp(1))
	off := pre.createMitra(nil)
	deact := pre.createMitra(nil)
	wasOnline := pre.createMitra(nil)
	pre.online(free)
	pre.online(busy)
	pre.online(wasOnline)
	cust := pre.createCustomer()
	sess := pre.requestSession(cust, busy.ID)
	pre.accept(busy, sess.ID)
	pre.patch(deact.ID, map[string]any{"is_active": false})
	pre.patch(wasOnline.ID, map[string]any{"is_active": false})
	// A heartbeat that is not on a 100 ms step, to check the flooring.
	hb := time.Now().Add(-10 * time.Second).Truncate(time.Microsecond).Add(37 * time.Millisecond).UTC()
	s.sql(`UPDATE mitras SET last_heartbeat_at = ? WHERE id = ?`, hb, free.ID)

	if n := len(s.mirror().Free) + len(s.mirror().Full) + len(s.mirror().Deactivated); n != 0 {
		t.Fatalf("the mirror holds %d entries before any valkey instance started", n)
	}

	in := s.start(opts{})
	st := s.mirror()
	if !st.Seeded {
		t.Fatal("no seeded marker after start")
	}
	e, ok := st.Free[free.ID]
	if !ok {
		t.Fatalf("online mitra with room not in free: %+v", st)
	}
	if want := (mentry{HB: floorHB(hb), Open: 0, Cap: 2}); !e.HB.Equal(want.HB) || e.Open != want.Open || e.Cap != want.Cap {
		t.Errorf("free entry = %+v, want %+v", e, want)
	}
	e, ok = st.Full[busy.ID]
	if !ok {
		t.Fatalf("online mitra at capacity not in full: %+v", st)
	}
	busyRow := s.row(busy.ID)
	if want := (mentry{HB: floorHB(*busyRow.LastHeartbeatAt), Open: 1, Cap: 1}); !e.HB.Equal(want.HB) || e.Open != want.Open || e.Cap != want.Cap {
		t.Errorf("full entry = %+v, want %+v", e, want)
	}
	for _, m := range []account{off, deact, wasOnline} {
		if _, ok := st.online(m.ID); ok {
			t.Errorf("mitra %s is online in the mirror but offline in the store", m.ID)
		}
	}
	if !st.Deactivated[deact.ID] || !st.Deactivated[wasOnline.ID] || len(st.Deactivated) != 2 {
		t.Errorf("deactivated set = %v, want %s and %s", st.Deactivated, deact.ID, wasOnline.ID)
	}
	if diff := s.truthDiff(st); diff != "" {
		t.Errorf("mirror differs from the store: %s", diff)
	}
	if n := in.metric("mirror_seeds_total", map[string]string{"reason": "start"}); n != 1 {
		t.Errorf("mirror_seeds_total{reason=start} = %v, want 1", n)
	}
	// The seeded mirror answers the reads.
	if a := in.availability(free.ID); !a.Reachable || !a.Available {
		t.Errorf("availability of the free mitra = %+v", a)
	}
	if a := in.availability(busy.ID); !a.Reachable || a.Available {
		t.Errorf("availability of the busy mitra = %+v", a)
	}
}

// TestWriteThrough: every availability write reaches Valkey right after the
// request returns.
func TestWriteThrough(t *testing.T) {
	t.Parallel()
	s := newSetup(t, false)
	in := s.start(opts{})
	m := in.createMitra(intp(1))
	other := in.createMitra(nil)
	in.online(other)

	check := func(step string, want func(mstate) string) {
		t.Helper()
		st := s.mirror()
		if msg := want(st); msg != "" {
			t.Fatalf("after %s: %s (mirror %+v)", step, msg, st)
		}
		if diff := s.truthDiff(st); diff != "" {
			t.Fatalf("after %s: mirror differs from the store: %s", step, diff)
		}
	}
	inFree := func(open, capacity int) func(mstate) string {
		return func(st mstate) string {
			e, ok := st.Free[m.ID]
			switch {
			case !ok:
				return "not in free"
			case e.Open != open || e.Cap != capacity:
				return "load " + strconv.Itoa(e.Open) + "/" + strconv.Itoa(e.Cap)
			case st.Deactivated[m.ID]:
				return "in the deactivated set"
			}
			return ""
		}
	}
	absent := func(deactivated bool) func(mstate) string {
		return func(st mstate) string {
			if _, ok := st.online(m.ID); ok {
				return "still online in the mirror"
			}
			if st.Deactivated[m.ID] != deactivated {
				return "deactivated set membership is " + strconv.FormatBool(st.Deactivated[m.ID])
			}
			return ""
		}
	}

	v := in.online(m)
	check("online", inFree(0, 1))
	if e := s.mirror().Free[m.ID]; !e.HB.Equal(floorHB(*v.LastHeartbeatAt)) {
		t.Errorf("mirror heartbeat %v, want the store's %v floored", e.HB, *v.LastHeartbeatAt)
	}
	before := s.mirror().Free[m.ID].HB
	time.Sleep(150 * time.Millisecond) // more than one 100 ms step
	in.heartbeat(m)
	if after := s.mirror().Free[m.ID].HB; !after.After(before) {
		t.Errorf("heartbeat did not move the mirror's heartbeat: %v then %v", before, after)
	}

	in.offline(m)
	check("offline", absent(false))
	in.online(m)
	check("online again", inFree(0, 1))

	in.patch(m.ID, map[string]any{"capacity": 0})
	check("capacity 0", func(st mstate) string {
		if e, ok := st.Full[m.ID]; !ok || e.Cap != 0 {
			return "not in full with capacity 0"
		}
		return ""
	})
	in.patch(m.ID, map[string]any{"capacity": 3})
	check("capacity 3", inFree(0, 3))

	in.patch(m.ID, map[string]any{"is_active": false})
	check("deactivate", absent(true))
	if r := s.row(m.ID); r.IsOnline || r.IsActive {
		t.Errorf("store after deactivation: %+v", r)
	}
	in.patch(m.ID, map[string]any{"is_active": true})
	check("reactivate", absent(false))
	if r := s.row(m.ID); r.IsOnline || !r.IsActive {
		t.Errorf("store after reactivation: %+v", r)
	}
	if a := in.availability(m.ID); a.Reachable || a.Available {
		t.Errorf("a reactivated mitra is offline, got %+v", a)
	}
	tk := in.login(m.Phone, userPassword)
	m.Access = tk.AccessToken
	in.online(m)
	check("online after reactivation", inFree(0, 3))
	if _, ok := s.mirror().Free[other.ID]; !ok {
		t.Error("the other mitra left the mirror")
	}
}

// TestCapacityLifecycle: a capacity change moves the mitra between free and
// full, and every session transition recomputes its load from the store.
func TestCapacityLifecycle(t *testing.T) {
	t.Parallel()
	s := newSetup(t, false)
	in := s.start(opts{})
	m := in.createMitra(intp(1))
	in.online(m)

	where := func() (string, mentry) {
		t.Helper()
		st := s.mirror()
		if e, ok := st.Free[m.ID]; ok {
			if _, both := st.Full[m.ID]; both {
				t.Fatal("in both free and full")
			}
			return "free", e
		}
		if e, ok := st.Full[m.ID]; ok {
			return "full", e
		}
		return "none", mentry{}
	}
	expect := func(step, set string, open, capacity int, available bool) {
		t.Helper()
		got, e := where()
		if got != set || e.Open != open || e.Cap != capacity {
			t.Fatalf("after %s: in %s with %d/%d, want %s with %d/%d", step, got, e.Open, e.Cap, set, open, capacity)
		}
		if a := in.availability(m.ID); !a.Reachable || a.Available != available {
			t.Fatalf("after %s: availability %+v, want available %v", step, a, available)
		}
		if diff := s.truthDiff(s.mirror()); diff != "" {
			t.Fatalf("after %s: %s", step, diff)
		}
	}
	expect("online", "free", 0, 1, true)
	in.patch(m.ID, map[string]any{"capacity": 0})
	expect("capacity 0", "full", 0, 0, false)
	in.patch(m.ID, map[string]any{"capacity": 2})
	expect("capacity 2", "free", 0, 2, true)

	c1, c2 := in.createCustomer(), in.createCustomer()
	s1 := in.requestSession(c1, "")
	expect("a search (no load yet)", "free", 0, 2, true)
	in.accept(m, s1.ID)
	expect("accept", "free", 1, 2, true)
	s2 := in.requestSession(c2, m.ID)
	in.accept(m, s2.ID)
	expect("second accept", "full", 2, 2, false)
	if ids, err := in.Mitras.AvailableMitras(context.Background()); err != nil || len(ids) != 0 {
		t.Fatalf("AvailableMitras with the only mitra full = %v, %v", ids, err)
	}
	c3 := in.createCustomer()
	in.api.wantError(http.MethodPost, "/api/sessions", c3.Access, map[string]any{"duration_minutes": 30}, http.StatusConflict, "no_mitra_available")

	in.patch(m.ID, map[string]any{"capacity": 3})
	expect("capacity 3 with two open", "free", 2, 3, true)
	in.patch(m.ID, map[string]any{"capacity": 1})
	expect("capacity 1 with two open", "full", 2, 1, false)

	in.end(c1, s1.ID)
	expect("customer ends one", "full", 1, 1, false)
	in.end(m, s2.ID)
	expect("mitra ends the other", "free", 0, 1, true)
	if ids, err := in.Mitras.AvailableMitras(context.Background()); err != nil || len(ids) != 1 || ids[0] != m.ID {
		t.Fatalf("AvailableMitras = %v, %v; want [%s]", ids, err, m.ID)
	}
}

// TestHeartbeatWriteBack: the heartbeats recorded in Valkey reach Postgres in
// one statement, and a later timestamp in Postgres is never moved backwards.
func TestHeartbeatWriteBack(t *testing.T) {
	t.Parallel()
	s := newSetup(t, false)
	in := s.start(opts{statements: true})
	a, b, c := in.createMitra(nil), in.createMitra(nil), in.createMitra(nil)
	in.online(a)
	in.online(b)
	in.online(c)
	onlineA := *s.row(a.ID).LastHeartbeatAt
	time.Sleep(150 * time.Millisecond)
	in.heartbeat(a)
	in.heartbeat(b)
	later := time.Now().Add(10 * time.Minute).UTC().Truncate(time.Microsecond)
	s.sql(`UPDATE mitras SET last_heartbeat_at = ? WHERE id = ?`, later, b.ID)
	st := s.mirror()
	if s.row(a.ID).LastHeartbeatAt.After(onlineA) {
		t.Fatal("the heartbeat reached Postgres before the write-back: it should cost no statement")
	}

	mark := in.Stmts.mark()
	n := in.Sweeps.WriteBack(context.Background())
	ran := in.Stmts.since(mark, func(s stmt) bool { return s.from("(*Sweeps).WriteBack") })
	if len(ran) != 1 {
		t.Errorf("write-back ran %d statements, want 1:%s", len(ran), describe(ran))
	}
	if n != 1 {
		t.Errorf("write-back moved %d rows, want 1 (only a's heartbeat is later than the store's)", n)
	}
	if got := s.row(a.ID).LastHeartbeatAt; got == nil || !got.Equal(st.Free[a.ID].HB) {
		t.Errorf("a's heartbeat in the store = %v, want the mirror's %v", got, st.Free[a.ID].HB)
	}
	if got := s.row(b.ID).LastHeartbeatAt; got == nil || !got.Equal(later) {
		t.Errorf("b's later heartbeat in the store moved backwards: %v, want %v", got, later)
	}
	if got, want := s.row(c.ID).LastHeartbeatAt, st.Free[c.ID].HB; got == nil || got.Before(want) {
		t.Errorf("c's heartbeat in the store = %v, before the mirror's %v", got, want)
	}
	if n := in.metric("sweep_runs_total", map[string]string{"sweep": "heartbeat_writeback", "outcome": "ok"}); n != 1 {
		t.Errorf("sweep_runs_total{heartbeat_writeback,ok} = %v, want 1", n)
	}
	// Running it again changes nothing.
	if n := in.Sweeps.WriteBack(context.Background()); n != 0 {
		t.Errorf("second write-back moved %d rows, want 0", n)
	}
}

// TestReseedHealsDrift: a periodic reseed corrects each kind of drift, counts
// exactly what it corrected, and keeps a Valkey heartbeat fresher than the store's.
func TestReseedHealsDrift(t *testing.T) {
	t.Parallel()
	s := newSetup(t, false)
	in := s.start(opts{})
	removed, loaded, fresh, stale := in.createMitra(nil), in.createMitra(intp(3)), in.createMitra(nil), in.createMitra(nil)
	for _, m := range []account{removed, loaded, fresh, stale} {
		in.online(m)
	}
	deactivated := in.createMitra(nil)
	in.patch(deactivated.ID, map[string]any{"is_active": false})
	time.Sleep(150 * time.Millisecond)
	in.heartbeat(fresh) // later in Valkey than in Postgres
	freshHB := s.mirror().Free[fresh.ID].HB
	pgFresh := *s.row(fresh.ID).LastHeartbeatAt
	if !freshHB.After(pgFresh) {
		t.Fatalf("the heartbeat is not later in the mirror (%v) than in the store (%v)", freshHB, pgFresh)
	}
	if diff := s.truthDiff(s.mirror()); diff != "" {
		t.Fatalf("drift before the corruption: %s", diff)
	}
	healed0 := in.metric("mirror_drift_healed_total", nil)
	periodic0 := in.metric("mirror_seeds_total", map[string]string{"reason": "periodic"})

	// Four corruptions, each one correction.
	bogus := uuid.NewString()
	s.exec("ZREM", s.key("free"), removed.ID)
	s.exec("ZADD", s.key("free"), encodeScore(time.Now(), 0, 1), bogus)
	e := s.mirror().Free[loaded.ID]
	s.exec("ZADD", s.key("free"), encodeScore(e.HB, 2, 3), loaded.ID) // load 2/3 instead of 0/3
	s.exec("SADD", s.key("deactivated"), stale.ID)                    // an active mitra marked deactivated
	if diff := s.truthDiff(s.mirror()); diff == "" {
		t.Fatal("the corruption left the mirror equal to the store")
	}
	// The service trusts the mirror: the stale deactivation refuses the heartbeat.
	in.api.wantError(http.MethodPost, "/api/mitra/status/heartbeat", stale.Access, nil, http.StatusForbidden, "account_deactivated")

	in.Sweeps.Reseed(context.Background())

	st := s.mirror()
	if diff := s.truthDiff(st); diff != "" {
		t.Fatalf("drift after the reseed: %s", diff)
	}
	if _, ok := st.Free[bogus]; ok {
		t.Error("the bogus member survived")
	}
	if e := st.Free[loaded.ID]; e.Open != 0 || e.Cap != 3 {
		t.Errorf("load after reseed = %d/%d, want 0/3", e.Open, e.Cap)
	}
	if got := in.metric("mirror_drift_healed_total", nil) - healed0; got != 4 {
		t.Errorf("mirror_drift_healed_total grew by %v, want 4", got)
	}
	if got := in.metric("mirror_seeds_total", map[string]string{"reason": "periodic"}) - periodic0; got != 1 {
		t.Errorf("mirror_seeds_total{reason=periodic} grew by %v, want 1", got)
	}
	if n := in.metric("sweep_runs_total", map[string]string{"sweep": "reseed", "outcome": "ok"}); n != 1 {
		t.Errorf("sweep_runs_total{reseed,ok} = %v, want 1", n)
	}
	if got := st.Free[fresh.ID].HB; !got.Equal(freshHB) {
		t.Errorf("the reseed moved the mirror's fresher heartbeat back: %v, want %v", got, freshHB)
	}
	in.heartbeat(stale)

	// A reseed with no drift corrects nothing.
	healed1 := in.metric("mirror_drift_healed_total", nil)
	in.Sweeps.Reseed(context.Background())
	if got := in.metric("mirror_drift_healed_total", nil) - healed1; got != 0 {
		t.Errorf("a reseed without drift counted %v corrections", got)
	}
	if got := s.mirror().Free[fresh.ID].HB; !got.Equal(freshHB) {
		t.Errorf("the second reseed moved the fresher heartbeat back: %v, want %v", got, freshHB)
	}
}

// TestBeaconSnapshot: two instances on one database and prefix share the
// beacon snapshot, it is recomputed after its TTL, and concurrent misses on
// both instances compute it once.
func TestBeaconSnapshot(t *testing.T) {
	t.Parallel()
	s := newSetup(t, true) // private: counts commands with INFO commandstats
	env := map[string]string{"AVAILABILITY_SNAPSHOT_TTL_SECONDS": "2"}
	a := s.start(opts{env: env})
	b := s.start(opts{env: env})
	m1, m2 := a.createMitra(nil), a.createMitra(nil)
	a.online(m1)
	a.online(m2)

	first := a.beacon()
	if first.AvailableMitras != 2 {
		t.Fatalf("beacon = %+v, want 2 available", first)
	}
	a.offline(m2) // within the TTL the snapshot may lag: b must still answer a's snapshot
	if got := b.beacon(); !got.AsOf.Equal(first.AsOf) || got.AvailableMitras != 2 {
		t.Fatalf("second instance beacon = %+v, want the first's %+v", got, first)
	}
	if raw := s.exec("GET", s.key("snapshot")); raw.Error() != nil {
		t.Fatalf("no snapshot key: %v", raw.Error())
	}
	if pttl, _ := s.exec("PTTL", s.key("snapshot")).AsInt64(); pttl <= 0 || pttl > 2000 {
		t.Errorf("snapshot PTTL = %d ms, want within (0, 2000]", pttl)
	}
	time.Sleep(2100 * time.Millisecond)
	next := b.beacon()
	if !next.AsOf.After(first.AsOf) || next.AvailableMitras != 1 {
		t.Fatalf("beacon after the TTL = %+v, want a newer one than %v with 1 available", next, first.AsOf)
	}
	if got := a.beacon(); !got.AsOf.Equal(next.AsOf) {
		t.Errorf("first instance after the refresh = %+v, want %+v", got, next)
	}

	// Concurrent misses on both instances: one computation. Several rounds,
	// since a double computation depends on how the requests interleave.
	// Each instance answers from the snapshot it holds until that is a TTL
	// old, so each round waits for the last one to expire everywhere.
	last := next.AsOf
	for round := range 8 {
		time.Sleep(time.Until(last.Add(2*time.Second + 100*time.Millisecond)))
		s.exec("DEL", s.key("snapshot"))
		s.exec("CONFIG", "RESETSTAT")
		got := burstBeacons(t, a, b, 50)
		if len(got) != 1 {
			t.Errorf("round %d: 50 concurrent beacons on two instances answered %d distinct as_of values, want 1: %v", round, len(got), got)
		}
		for k := range got {
			if at, err := time.Parse(time.RFC3339Nano, k); err == nil && at.After(last) {
				last = at
			}
		}
		if calls := commandCalls(t, s, "zcount"); calls != 1 {
			t.Errorf("round %d: the available count was computed %d times (ZCOUNT calls), want 1", round, calls)
		}
		if t.Failed() {
			return
		}
	}
}

// burstBeacons sends n beacon requests at once, alternately to a and b, and
// counts the answers by as_of and instance.
func burstBeacons(t *testing.T, a, b *instance, n int) map[string]int {
	t.Helper()
	var wg sync.WaitGroup
	start := make(chan struct{})
	asOf := make([]time.Time, n)
	errs := make([]string, n)
	for i := range n {
		in := a
		if i%2 == 1 {
			in = b
		}
		wg.Go(func() {
			<-start
			r, err := in.api.call(http.MethodGet, "/api/availability", "", nil)
			switch {
			case err != nil:
				errs[i] = err.Error()
				return
			case r.Status != http.StatusOK:
				errs[i] = r.String()
				return
			}
			var v client.Beacon
			if err := json.Unmarshal(r.Body, &v); err != nil {
				errs[i] = err.Error()
				return
			}
			asOf[i] = v.AsOf
		})
	}
	close(start)
	wg.Wait()
	byAsOf := map[string]int{}
	for i := range n {
		if errs[i] != "" {
			t.Fatalf("request %d: %s", i, errs[i])
		}
		byAsOf[asOf[i].Format(time.RFC3339Nano)]++
	}
	return byAsOf
}

// commandCalls reads the number of calls of one command from INFO commandstats.
func commandCalls(t *testing.T, s *setup, cmd string) int {
	t.Helper()
	info, err := s.exec("INFO", "commandstats").ToString()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(info, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_"+cmd+":calls=")
		if !ok {
			continue
		}
		n, _, _ := strings.Cut(rest, ",")
		v, err := strconv.Atoi(n)
		if err != nil {
			t.Fatalf("commandstats line %q: %v", line, err)
		}
		return v
	}
	return 0
}
