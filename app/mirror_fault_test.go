package app_test

// Fault tests: each starts a private redis-server and kills, freezes
// (SIGSTOP), restarts or flushes it while the real app serves, and checks that
// the service degrades to Postgres with the same answers and heals the mirror.

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/halobestie/mitra-availability/app/config"
	"github.com/halobestie/mitra-availability/client"
)

// TestWriteFailureHealedByReseed: while Valkey is frozen or dead every write
// still answers 2xx (the store committed), and the reseed that follows makes
// the mirror equal to the store again.
func TestWriteFailureHealedByReseed(t *testing.T) {
	t.Parallel()
	s := newSetup(t, true)
	in := s.start(opts{})
	a, b, c, d, e := in.createMitra(nil), in.createMitra(nil), in.createMitra(nil), in.createMitra(nil), in.createMitra(nil)
	in.online(a)
	in.online(b)
	in.online(c)
	in.patch(d.ID, map[string]any{"is_active": false})
	in.waitClean(5 * time.Second)
	seeds0 := in.metric("mirror_seeds_total", nil)

	writes := func(phase string, ws ...func() (string, reply, error)) {
		t.Helper()
		for _, w := range ws {
			what, r, err := w()
			if err != nil {
				t.Fatalf("%s: %s: %v", phase, what, err)
			}
			if r.Status/100 != 2 {
				t.Fatalf("%s: %s answered %s; a cache failure must not fail a write", phase, what, r)
			}
			if r.Took > time.Second {
				t.Errorf("%s: %s took %v", phase, what, r.Took)
			}
		}
	}
	call := func(what, method, path, token string, body any) func() (string, reply, error) {
		return func() (string, reply, error) {
			r, err := in.api.call(method, path, token, body)
			return what, r, err
		}
	}

	// Frozen: the writes time out in Valkey, the stale entries stay there.
	s.redis.signal(syscall.SIGSTOP)
	writes("frozen",
		call("offline", http.MethodPost, "/api/mitra/status/offline", a.Access, nil),
		call("capacity 0", http.MethodPatch, "/api/admin/mitras/"+b.ID, in.admin(), map[string]any{"capacity": 0}),
		call("deactivate", http.MethodPatch, "/api/admin/mitras/"+c.ID, in.admin(), map[string]any{"is_active": false}),
		call("reactivate", http.MethodPatch, "/api/admin/mitras/"+d.ID, in.admin(), map[string]any{"is_active": true}),
		call("online", http.MethodPost, "/api/mitra/status/online", e.Access, nil),
	)
	s.redis.signal(syscall.SIGCONT)
	in.waitClean(5 * time.Second)
	if n := in.metric("cache_write_failures_total", nil); n < 1 {
		t.Errorf("cache_write_failures_total = %v after writes to a frozen Valkey", n)
	}
	seeds1 := in.metric("mirror_seeds_total", nil)
	if seeds1 <= seeds0 {
		t.Errorf("no reseed after the freeze: mirror_seeds_total %v then %v", seeds0, seeds1)
	}

	// Dead: the writes fail at once; the server comes back empty.
	s.redis.kill()
	writes("dead",
		call("online", http.MethodPost, "/api/mitra/status/online", a.Access, nil),
		call("capacity 2", http.MethodPatch, "/api/admin/mitras/"+b.ID, in.admin(), map[string]any{"capacity": 2}),
		call("offline", http.MethodPost, "/api/mitra/status/offline", e.Access, nil),
	)
	s.redis.restart()
	in.waitClean(5 * time.Second)
	if n := in.metric("mirror_seeds_total", nil); n <= seeds1 {
		t.Errorf("no reseed after the restart: mirror_seeds_total %v then %v", seeds1, n)
	}
	st := s.mirror()
	if e, ok := st.Free[b.ID]; !ok || e.Cap != 2 {
		t.Errorf("b after the restart: %+v (present %v), want free with capacity 2", e, ok)
	}
	// Nothing is left for the periodic reseed to heal.
	healed := in.metric("mirror_drift_healed_total", nil)
	in.Sweeps.Reseed(context.Background())
	if got := in.metric("mirror_drift_healed_total", nil) - healed; got != 0 {
		t.Errorf("the periodic reseed still found %v corrections", got)
	}
}

// answers is what every read says about a set of mitras.
type answers struct {
	Availability []client.MitraAvailability
	Status       []string // per mitra: its own view (derived fields) or the error
	Admin        []string // per mitra: the admin's view (derived fields)
	Beacon       int
	Dashboard    [6]int // online, available, deactivated, searching, pending_payment, active
	Available    []string
}

// collect asks in every read about ms.
func (in *instance) collect(ms []account) answers {
	in.t.Helper()
	var a answers
	summary := func(v client.Mitra) string {
		return fmt.Sprintf("active=%v online=%v capacity=%d sessions=%d reachable=%v available=%v",
			v.IsActive, v.IsOnline, v.Capacity, v.ActiveSessions, v.Reachable, v.Available)
	}
	for _, m := range ms {
		a.Availability = append(a.Availability, in.availability(m.ID))
		var av client.Mitra
		in.api.do(http.MethodGet, "/api/admin/mitras/"+m.ID, in.admin(), nil, http.StatusOK, &av)
		a.Admin = append(a.Admin, summary(av))
		r, err := in.api.call(http.MethodGet, "/api/mitra/status", m.Access, nil)
		if err != nil {
			in.t.Fatal(err)
		}
		if r.Status != http.StatusOK {
			a.Status = append(a.Status, fmt.Sprintf("%d %s", r.Status, r.code()))
			continue
		}
		var v client.Mitra
		if err := jsonDecode(r.Body, &v); err != nil {
			in.t.Fatal(err)
		}
		a.Status = append(a.Status, summary(v))
	}
	a.Beacon = in.beacon().AvailableMitras
	d := in.dashboard()
	a.Dashboard = [6]int{d.OnlineMitras, d.AvailableMitras, d.DeactivatedMitras, d.Sessions.Searching, d.Sessions.PendingPayment, d.Sessions.Active}
	a.Available = in.availableMitras()
	return a
}

func diffAnswers(want, got answers) string {
	if reflect.DeepEqual(want, got) {
		return ""
	}
	return fmt.Sprintf("\nwant %+v\n got %+v", want, got)
}

// TestFallbackAnswersEqual: every read answers the same with Valkey up, with
// Valkey dead, and on an instance without a cache; a deactivated mitra's
// heartbeat is refused while Valkey is dead, and a heartbeat is then recorded
// in Postgres so the fallback readers see the mitra fresh.
func TestFallbackAnswersEqual(t *testing.T) {
	t.Parallel()
	s := newSetup(t, true)
	in := s.start(opts{})
	none := s.start(opts{env: map[string]string{"CACHE_BACKEND": config.CacheNone}})

	free := in.createMitra(nil)
	busy := in.createMitra(intp(1))
	over := in.createMitra(intp(2))
	offline := in.createMitra(nil)
	deact := in.createMitra(nil)
	zero := in.createMitra(intp(0))
	beating := in.createMitra(intp(2))
	stale := in.createMitra(nil)
	for _, m := range []account{free, busy, over, deact, zero, beating} {
		in.online(m)
	}
	in.accept(busy, in.requestSession(in.createCustomer(), busy.ID).ID)
	in.accept(over, in.requestSession(in.createCustomer(), over.ID).ID)
	in.accept(over, in.requestSession(in.createCustomer(), over.ID).ID)
	in.patch(over.ID, map[string]any{"capacity": 1}) // two open sessions, capacity 1
	in.patch(deact.ID, map[string]any{"is_active": false})
	time.Sleep(150 * time.Millisecond)
	in.heartbeat(beating) // a heartbeat only Valkey knows of
	// Online with a heartbeat an hour old, in the store and (after a reseed) in Valkey.
	s.sql(`UPDATE mitras SET is_online = true, online_since = now() - interval '1 hour',
		last_heartbeat_at = now() - interval '1 hour' WHERE id = ?`, stale.ID)
	if _, err := in.Seeder.Seed(context.Background(), "periodic"); err != nil {
		t.Fatalf("seed: %v", err)
	}
	if _, ok := s.mirror().Free[stale.ID]; !ok {
		t.Fatal("the stale mitra is not in the mirror")
	}

	// The truth, mitra by mitra.
	type truth struct {
		m                    account
		active, online       bool
		capacity, sessions   int
		reachable, available bool
	}
	rows := []truth{
		{free, true, true, 1, 0, true, true},
		{busy, true, true, 1, 1, true, false},
		{over, true, true, 1, 2, true, false},
		{offline, true, false, 1, 0, false, false},
		{deact, false, false, 1, 0, false, false},
		{zero, true, true, 0, 0, true, false},
		{beating, true, true, 2, 0, true, true},
		{stale, true, true, 1, 0, false, false},
	}
	var all []account
	expected := func() answers {
		var a answers
		for _, r := range rows {
			a.Availability = append(a.Availability, client.MitraAvailability{MitraID: r.m.ID, Reachable: r.reachable, Available: r.available})
			v := fmt.Sprintf("active=%v online=%v capacity=%d sessions=%d reachable=%v available=%v",
				r.active, r.online, r.capacity, r.sessions, r.reachable, r.available)
			a.Admin = append(a.Admin, v)
			if !r.active {
				v = "403 account_deactivated"
			}
			a.Status = append(a.Status, v)
			if r.available {
				a.Beacon++
				a.Available = append(a.Available, r.m.ID)
			}
			if r.active && r.online {
				a.Dashboard[0]++
			}
			if !r.active {
				a.Dashboard[2]++
			}
		}
		a.Dashboard[1] = a.Beacon
		a.Dashboard[4] = 3 // pending_payment
		slices.Sort(a.Available)
		return a
	}
	for _, r := range rows {
		all = append(all, r.m)
	}
	want := expected()

	up := in.collect(all)
	if d := diffAnswers(want, up); d != "" {
		t.Fatalf("answers with Valkey up differ from the truth:%s", d)
	}
	if d := diffAnswers(want, none.collect(all)); d != "" {
		t.Fatalf("answers without a cache differ:%s", d)
	}
	if got := in.metric("cache_fallbacks_total", nil); got != 0 {
		t.Errorf("cache_fallbacks_total = %v with a healthy Valkey, want 0", got)
	}

	s.redis.kill()
	if d := diffAnswers(want, in.collect(all)); d != "" {
		t.Fatalf("answers with Valkey down differ:%s", d)
	}
	if got := in.metric("cache_fallbacks_total", nil); got < 1 {
		t.Errorf("cache_fallbacks_total = %v with Valkey down", got)
	}
	if d := in.dashboard(); d.Cache.Backend != config.CacheValkey || d.Cache.Healthy {
		t.Errorf("dashboard cache with Valkey down = %+v, want valkey unhealthy", d.Cache)
	}
	if c := in.readyCache(); c != "degraded" {
		t.Errorf("readyz cache with Valkey down = %q, want degraded", c)
	}

	// Heartbeats while Valkey is down.
	in.api.wantError(http.MethodPost, "/api/mitra/status/heartbeat", deact.Access, nil, http.StatusForbidden, "account_deactivated")
	in.api.wantError(http.MethodPost, "/api/mitra/status/heartbeat", offline.Access, nil, http.StatusConflict, "not_online")
	before := *s.row(stale.ID).LastHeartbeatAt
	r, err := in.api.call(http.MethodPost, "/api/mitra/status/heartbeat", stale.Access, nil)
	if err != nil || r.Status != http.StatusNoContent {
		t.Fatalf("heartbeat with Valkey down: %v %v", r, err)
	}
	after := *s.row(stale.ID).LastHeartbeatAt
	if !after.After(before) || time.Since(after) > 5*time.Second {
		t.Fatalf("the heartbeat did not reach Postgres: last_heartbeat_at %v then %v", before, after)
	}
	for name, x := range map[string]*instance{"valkey instance (down)": in, "cacheless instance": none} {
		if a := x.availability(stale.ID); !a.Reachable || !a.Available {
			t.Errorf("%s: after a heartbeat recorded in the store, availability = %+v, want reachable and available", name, a)
		}
		if v := x.status(stale); !v.Reachable || v.LastHeartbeatAt == nil || !v.LastHeartbeatAt.Equal(after) {
			t.Errorf("%s: status after the heartbeat = %+v", name, v)
		}
	}

	// Back up (empty): the reseed carries the store's heartbeat, so the answers stay the same.
	s.redis.restart()
	in.waitClean(5 * time.Second)
	rows[7].reachable, rows[7].available = true, true
	want = expected()
	got := in.collect(all)
	got.Beacon = 0 // the beacon may lag by the snapshot TTL
	want.Beacon = 0
	if d := diffAnswers(want, got); d != "" {
		t.Fatalf("answers after Valkey came back differ:%s", d)
	}
}

// TestAutoOfflineSweep: the sweep takes stale mitras offline in Postgres and
// Valkey and leaves fresh ones, and it aborts without touching anybody while
// Valkey is down or the mirror awaits a reseed.
func TestAutoOfflineSweep(t *testing.T) {
	t.Parallel()
	s := newSetup(t, true)
	in := s.start(opts{env: map[string]string{"HEARTBEAT_STALE_SECONDS": "1"}})
	stale, fresh := in.createMitra(nil), in.createMitra(nil)
	in.online(stale)
	in.online(fresh)
	time.Sleep(1200 * time.Millisecond)
	in.heartbeat(fresh)
	ctx := context.Background()
	aborted := func() float64 {
		return in.metric("sweep_runs_total", map[string]string{"sweep": "auto_offline", "outcome": "aborted"})
	}
	bothOnline := func(when string) {
		t.Helper()
		if !s.row(stale.ID).IsOnline || !s.row(fresh.ID).IsOnline {
			t.Fatalf("%s: a mitra went offline in the store", when)
		}
	}

	// Valkey down: nobody is set offline.
	s.redis.kill()
	if got := in.Sweeps.AutoOffline(ctx); len(got) != 0 {
		t.Fatalf("sweep with Valkey down set %v offline", got)
	}
	bothOnline("sweep with Valkey down")
	if n := aborted(); n != 1 {
		t.Errorf("sweep_runs_total{auto_offline,aborted} = %v, want 1", n)
	}

	// Back, but dirty: nobody is set offline either.
	s.redis.restart()
	in.waitClean(5 * time.Second)
	in.Health.Reconnected() // what the client reports after a new connection
	if got := in.Sweeps.AutoOffline(ctx); len(got) != 0 {
		t.Fatalf("sweep on a dirty mirror set %v offline", got)
	}
	bothOnline("sweep on a dirty mirror")
	if _, ok := s.mirror().online(stale.ID); !ok {
		t.Error("the sweep on a dirty mirror removed the stale mitra from Valkey")
	}
	if n := aborted(); n != 2 {
		t.Errorf("sweep_runs_total{auto_offline,aborted} = %v, want 2", n)
	}

	// Clean: the stale mitra goes offline, the fresh one stays.
	in.waitClean(5 * time.Second)
	in.heartbeat(fresh) // the restart lost its Valkey heartbeat
	got := in.Sweeps.AutoOffline(ctx)
	if len(got) != 1 || got[0] != stale.ID {
		t.Fatalf("sweep set %v offline, want [%s]", got, stale.ID)
	}
	if s.row(stale.ID).IsOnline {
		t.Error("the stale mitra is still online in the store")
	}
	if !s.row(fresh.ID).IsOnline {
		t.Error("the fresh mitra went offline in the store")
	}
	st := s.mirror()
	if _, ok := st.online(stale.ID); ok {
		t.Error("the stale mitra is still online in Valkey")
	}
	if _, ok := st.online(fresh.ID); !ok {
		t.Error("the fresh mitra left Valkey")
	}
	if n := in.metric("sweep_runs_total", map[string]string{"sweep": "auto_offline", "outcome": "ok"}); n != 1 {
		t.Errorf("sweep_runs_total{auto_offline,ok} = %v, want 1", n)
	}
	in.api.wantError(http.MethodPost, "/api/mitra/status/heartbeat", stale.Access, nil, http.StatusConflict, "not_online")
	if v := in.status(stale); v.IsOnline || v.Reachable {
		t.Errorf("status of the swept mitra = %+v", v)
	}
	if diff := s.truthDiff(s.mirror()); diff != "" {
		t.Errorf("mirror differs from the store after the sweep: %s", diff)
	}
}

// TestDeactivation: a deactivated mitra is offline in Postgres, in the
// deactivated set of Valkey, its refresh token fails, and every mitra
// endpoint answers 403 account_deactivated, with Valkey up and down;
// reactivating clears the set and leaves it offline.
func TestDeactivation(t *testing.T) {
	t.Parallel()
	s := newSetup(t, true)
	in := s.start(opts{})
	m, other := in.createMitra(nil), in.createMitra(nil)
	in.online(m)
	in.online(other)
	cust := in.createCustomer()
	sess := in.requestSession(cust, other.ID)

	v := in.patch(m.ID, map[string]any{"is_active": false})
	if v.IsActive || v.IsOnline || v.Reachable {
		t.Fatalf("PATCH answered %+v", v)
	}
	if r := s.row(m.ID); r.IsActive || r.IsOnline {
		t.Fatalf("store after deactivation: %+v", r)
	}
	st := s.mirror()
	if !st.Deactivated[m.ID] {
		t.Fatal("not in the deactivated set")
	}
	if _, ok := st.online(m.ID); ok {
		t.Fatal("still online in Valkey")
	}
	in.api.wantError(http.MethodPost, "/api/auth/refresh", "", map[string]string{"refresh_token": m.Refresh}, http.StatusUnauthorized, "unauthenticated")
	in.api.wantError(http.MethodPost, "/api/auth/login", "", map[string]string{"phone": m.Phone, "password": userPassword}, http.StatusForbidden, "account_deactivated")

	endpoints := []struct{ method, path string }{
		{http.MethodPost, "/api/mitra/status/heartbeat"},
		{http.MethodGet, "/api/mitra/status"},
		{http.MethodPost, "/api/mitra/status/online"},
		{http.MethodPost, "/api/mitra/status/offline"},
		{http.MethodGet, "/api/sessions"},
		{http.MethodGet, "/api/sessions/" + sess.ID},
		{http.MethodPost, "/api/sessions/" + sess.ID + "/accept"},
		{http.MethodPost, "/api/sessions/" + uuid.NewString() + "/end"},
		{http.MethodGet, "/api/mitras/" + other.ID + "/availability"},
	}
	refused := func(when string) {
		t.Helper()
		for _, e := range endpoints {
			r, err := in.api.call(e.method, e.path, m.Access, nil)
			if err != nil {
				t.Fatalf("%s: %s %s: %v", when, e.method, e.path, err)
			}
			if r.Status != http.StatusForbidden || r.code() != "account_deactivated" {
				t.Errorf("%s: %s %s answered %s, want 403 account_deactivated", when, e.method, e.path, r)
			}
		}
		if r := s.row(m.ID); r.IsOnline || r.IsActive {
			t.Errorf("%s: the store has the deactivated mitra %+v", when, r)
		}
	}
	refused("Valkey up")
	if st := s.mirror(); st.Deactivated[m.ID] == false || len(st.Free)+len(st.Full) != 1 {
		t.Errorf("the refused calls changed the mirror: %+v", st)
	}

	s.redis.kill()
	refused("Valkey down")
	s.redis.restart()
	in.waitClean(5 * time.Second)
	refused("Valkey reseeded")

	v = in.patch(m.ID, map[string]any{"is_active": true})
	if !v.IsActive || v.IsOnline {
		t.Fatalf("PATCH reactivate answered %+v", v)
	}
	st = s.mirror()
	if st.Deactivated[m.ID] {
		t.Error("still in the deactivated set after reactivation")
	}
	if _, ok := st.online(m.ID); ok {
		t.Error("online in Valkey right after reactivation")
	}
	if r := s.row(m.ID); !r.IsActive || r.IsOnline {
		t.Errorf("store after reactivation: %+v", r)
	}
	// The deactivation revoked the old access token (docs/contract.md §13): after
	// the reactivation it is a plain 401. A new login works; the mitra is
	// offline until it goes online.
	in.api.wantError(http.MethodGet, "/api/mitra/status", m.Access, nil, http.StatusUnauthorized, "unauthenticated")
	m.Access = in.login(m.Phone, userPassword).AccessToken
	if v := in.status(m); !v.IsActive || v.IsOnline {
		t.Errorf("status after reactivation = %+v", v)
	}
	in.api.wantError(http.MethodPost, "/api/mitra/status/heartbeat", m.Access, nil, http.StatusConflict, "not_online")
	in.online(m)
	in.heartbeat(m)
	if diff := s.truthDiff(s.mirror()); diff != "" {
		t.Errorf("mirror differs from the store: %s", diff)
	}
}

// TestWatcherReseeds: the watcher reseeds within seconds after the server
// restarted empty, after a FLUSHALL, and after a freeze, during which /readyz
// reports the cache degraded.
func TestWatcherReseeds(t *testing.T) {
	s := newSetup(t, true)
	in := s.start(opts{})
	a, b, d := in.createMitra(nil), in.createMitra(intp(0)), in.createMitra(nil)
	in.online(a)
	in.online(b)
	in.patch(d.ID, map[string]any{"is_active": false})
	in.waitClean(5 * time.Second)

	seeds := func(reason string) float64 {
		if reason == "" {
			return in.metric("mirror_seeds_total", nil) - in.metric("mirror_seeds_total", map[string]string{"reason": "start"})
		}
		return in.metric("mirror_seeds_total", map[string]string{"reason": reason})
	}
	restored := func(st mstate) string {
		_, okA := st.Free[a.ID]
		_, okB := st.Full[b.ID]
		if !st.Seeded || !okA || !okB || !st.Deactivated[d.ID] {
			return fmt.Sprintf("mirror not restored: %+v", st)
		}
		return in.s.truthDiff(st)
	}
	waitRestored := func(what string, since float64, reason string) {
		t.Helper()
		eventually(t, 3*time.Second, what, func() string {
			st, err := s.tryMirror()
			if err != nil {
				return err.Error()
			}
			if msg := restored(st); msg != "" {
				return msg
			}
			if n := seeds(reason); n <= since {
				return fmt.Sprintf("mirror_seeds_total{reason=%q} still %v", reason, n)
			}
			return ""
		})
	}

	// Restarted empty.
	before := seeds("")
	s.redis.kill()
	s.redis.restart()
	waitRestored("reseed after an empty restart", before, "")

	// FLUSHALL.
	before = seeds("lost_data")
	s.exec("FLUSHALL")
	waitRestored("reseed after FLUSHALL", before, "lost_data")

	// Frozen for two seconds.
	before = seeds("")
	s.redis.signal(syscall.SIGSTOP)
	frozenAt := time.Now()
	degraded := false
	for time.Since(frozenAt) < 2*time.Second {
		if in.readyCache() == "degraded" {
			degraded = true
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Until(frozenAt.Add(2 * time.Second)))
	s.redis.signal(syscall.SIGCONT)
	if !degraded {
		t.Error("/readyz never reported the cache degraded while Valkey was frozen for 2 s")
	}
	eventually(t, 3*time.Second, "readyz ok after the freeze", func() string {
		if c := in.readyCache(); c != "ok" {
			return "cache " + c
		}
		return ""
	})
	waitRestored("reseed after the freeze", before, "")
	if !slices.Contains(in.availableMitras(), a.ID) {
		t.Error("the available mitra is missing after the freeze")
	}
}

// TestFaultsUnderLoad: 20 clients hammer the heartbeat, the beacon, the
// availability and the dashboard while Valkey is killed and restarted empty,
// frozen for 2 s, and flushed: no 5xx, no unexpected error, no request slower
// than a second, and every answer equal to the truth throughout.
func TestFaultsUnderLoad(t *testing.T) {
	s := newSetup(t, true)
	in := s.start(opts{env: map[string]string{"AVAILABILITY_SNAPSHOT_TTL_SECONDS": "1"}})
	var avail []account
	for range 6 {
		m := in.createMitra(nil)
		in.online(m)
		avail = append(avail, m)
	}
	full := in.createMitra(intp(0))
	in.online(full)
	off := in.createMitra(nil)
	deact := in.createMitra(nil)
	in.online(deact)
	in.patch(deact.ID, map[string]any{"is_active": false})
	in.waitClean(5 * time.Second)

	truth := map[string]client.MitraAvailability{}
	for _, m := range avail {
		truth[m.ID] = client.MitraAvailability{MitraID: m.ID, Reachable: true, Available: true}
	}
	truth[full.ID] = client.MitraAvailability{MitraID: full.ID, Reachable: true}
	truth[off.ID] = client.MitraAvailability{MitraID: off.ID}
	truth[deact.ID] = client.MitraAvailability{MitraID: deact.ID}
	var ids []string
	for id := range truth {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	admin := in.admin()

	var (
		probs    problems
		requests atomic.Int64
		slowest  atomic.Int64
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	for g := range 20 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var (
					what string
					r    reply
					err  error
					want = http.StatusOK
				)
				switch (g + i) % 4 {
				case 0:
					m := avail[(g+i)%len(avail)]
					what = "heartbeat"
					want = http.StatusNoContent
					r, err = in.api.call(http.MethodPost, "/api/mitra/status/heartbeat", m.Access, nil)
				case 1:
					what = "beacon"
					r, err = in.api.call(http.MethodGet, "/api/availability", "", nil)
				case 2:
					id := ids[(g+i)%len(ids)]
					what = "availability " + id
					r, err = in.api.call(http.MethodGet, "/api/mitras/"+id+"/availability", admin, nil)
				default:
					what = "dashboard"
					r, err = in.api.call(http.MethodGet, "/api/admin/dashboard", admin, nil)
				}
				requests.Add(1)
				if err != nil {
					probs.add("%s: %v", what, err)
					continue
				}
				for {
					cur := slowest.Load()
					if int64(r.Took) <= cur || slowest.CompareAndSwap(cur, int64(r.Took)) {
						break
					}
				}
				if r.Took > time.Second {
					probs.add("%s took %v", what, r.Took)
				}
				if r.Status != want {
					probs.add("%s: %s", what, r)
					continue
				}
				switch (g + i) % 4 {
				case 1:
					var v client.Beacon
					if err := jsonDecode(r.Body, &v); err != nil || v.AvailableMitras != len(avail) {
						probs.add("beacon %s, want %d available", r, len(avail))
					}
				case 2:
					var v client.MitraAvailability
					if err := jsonDecode(r.Body, &v); err != nil || v != truth[v.MitraID] {
						probs.add("%s: %s, want %+v", what, r, truth[v.MitraID])
					}
				case 3:
					var v client.Dashboard
					if err := jsonDecode(r.Body, &v); err != nil || v.OnlineMitras != 7 || v.AvailableMitras != 6 || v.DeactivatedMitras != 1 {
						probs.add("dashboard %s, want 7 online, 6 available, 1 deactivated", r)
					}
				}
			}
		})
	}
	phase := func(name string, run func()) {
		n0 := requests.Load()
		run()
		if n := requests.Load() - n0; n < 20 {
			t.Errorf("%s: only %d requests ran", name, n)
		}
	}

	phase("steady", func() { time.Sleep(time.Second) })
	if n := in.metric("cache_fallbacks_total", nil); n != 0 {
		t.Errorf("cache_fallbacks_total = %v under load with a healthy Valkey, want 0", n)
	}
	phase("killed and restarted empty", func() {
		s.redis.kill()
		time.Sleep(time.Second)
		s.redis.restart()
		in.waitClean(5 * time.Second)
		time.Sleep(500 * time.Millisecond)
	})
	phase("frozen", func() {
		s.redis.signal(syscall.SIGSTOP)
		time.Sleep(2 * time.Second)
		s.redis.signal(syscall.SIGCONT)
		in.waitClean(5 * time.Second)
		time.Sleep(500 * time.Millisecond)
	})
	phase("flushed", func() {
		s.exec("FLUSHALL")
		in.waitClean(5 * time.Second)
		time.Sleep(500 * time.Millisecond)
	})
	close(stop)
	wg.Wait()

	t.Logf("%d requests, slowest %v", requests.Load(), time.Duration(slowest.Load()))
	if err := probs.err(); err != nil {
		t.Error(err)
	}
	if n := in.metric("cache_fallbacks_total", nil); n == 0 {
		t.Error("no cache fallback was counted: the faults were not felt")
	}
	for _, m := range avail {
		if r := s.row(m.ID); !r.IsOnline || !r.IsActive {
			t.Errorf("mitra %s changed in the store: %+v", m.ID, r)
		}
	}
}

// availableMitras asks the service for the available mitras, from the test
// goroutine, sorted: the service answers them in no particular order.
func (in *instance) availableMitras() []string {
	in.t.Helper()
	ids, err := in.Mitras.AvailableMitras(context.Background())
	if err != nil {
		in.t.Fatalf("AvailableMitras: %v", err)
	}
	slices.Sort(ids)
	return ids
}
