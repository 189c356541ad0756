package mitras_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/adapters/clock"
	"github.com/halobestie/mitra-availability/adapters/memory"
	"github.com/halobestie/mitra-availability/adapters/password"
	"github.com/halobestie/mitra-availability/core"
	"github.com/halobestie/mitra-availability/core/auth"
	"github.com/halobestie/mitra-availability/core/mirror"
	"github.com/halobestie/mitra-availability/core/mitras"
	"github.com/halobestie/mitra-availability/ports"
)

type staticCache struct{}

func (staticCache) Backend() string              { return "memory" }
func (staticCache) Healthy(context.Context) bool { return true }

type fixture struct {
	svc     *mitras.Service
	store   *memory.Store
	mirror  *memory.Mirror
	health  *mirror.Health
	metrics *memory.Metrics
	seeder  *mirror.Seeder
	clock   *clock.Manual
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	st := memory.NewStore()
	h, err := password.NewBcrypt(4)
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.NewManual(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	mr := memory.NewMirror()
	health := mirror.NewHealth("memory", true)
	metrics := memory.NewMetrics()
	log := slog.New(slog.DiscardHandler)
	seeder := mirror.NewSeeder(mr, st, health, metrics, log)
	svc, err := mitras.NewService(mitras.Deps{Store: st, Queries: st, AuthDB: st, Stats: st,
		Mirror: mr, Health: health, Metrics: metrics, Hasher: h, Clock: clk, Log: log},
		mitras.Config{DefaultCapacity: 1, HeartbeatStale: 90 * time.Second, SnapshotTTL: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := seeder.Seed(context.Background(), mirror.ReasonStart); err != nil {
		t.Fatal(err)
	}
	return fixture{svc: svc, store: st, mirror: mr, health: health, metrics: metrics, seeder: seeder, clock: clk}
}

var n int

func (f fixture) newMitra(t *testing.T, capacity *int) mitras.View {
	t.Helper()
	n++
	v, err := f.svc.Create(context.Background(), auth.NewAccount{Phone: fmt.Sprintf("+62812%07d", n), Password: "password1", DisplayName: "Mitra"}, capacity)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestCreateUsesDefaultCapacityAndValidates(t *testing.T) {
	f := newFixture(t)
	v := f.newMitra(t, nil)
	if v.Capacity != 1 || !v.IsActive || v.IsOnline || v.Reachable || v.Available || v.LastHeartbeatAt != nil {
		t.Fatalf("new mitra view = %+v", v)
	}
	three := 3
	if v := f.newMitra(t, &three); v.Capacity != 3 {
		t.Fatalf("capacity = %d", v.Capacity)
	}
	bad := 101
	var ve *core.ValidationError
	_, err := f.svc.Create(context.Background(), auth.NewAccount{Phone: "+628129999999", Password: "password1", DisplayName: "M"}, &bad)
	if !errors.As(err, &ve) || ve.Field != "capacity" {
		t.Fatalf("capacity 101: %v", err)
	}
}

func TestOnlineHeartbeatOfflineAndStaleness(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	m := f.newMitra(t, nil)
	if err := f.svc.Heartbeat(ctx, m.ID); !errors.Is(err, core.ErrNotOnline) {
		t.Fatalf("heartbeat while offline: %v", err)
	}
	v, err := f.svc.GoOnline(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !v.IsOnline || !v.Reachable || !v.Available || v.LastHeartbeatAt == nil || !v.LastHeartbeatAt.Equal(f.clock.Now()) {
		t.Fatalf("online view = %+v", v)
	}
	f.clock.Advance(80 * time.Second)
	if err := f.svc.Heartbeat(ctx, m.ID); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(80 * time.Second) // 80 s since the last heartbeat: still fresh
	if a, _ := f.svc.AvailabilityOf(ctx, m.ID); !a.Reachable || !a.Available {
		t.Fatalf("fresh mitra: %+v", a)
	}
	f.clock.Advance(11 * time.Second) // 91 s: stale
	if a, _ := f.svc.AvailabilityOf(ctx, m.ID); a.Reachable || a.Available {
		t.Fatalf("stale mitra: %+v", a)
	}
	v, err = f.svc.GoOffline(ctx, m.ID)
	if err != nil || v.IsOnline || v.Reachable {
		t.Fatalf("offline: %+v %v", v, err)
	}
	if err := f.svc.Heartbeat(ctx, m.ID); !errors.Is(err, core.ErrNotOnline) {
		t.Fatalf("heartbeat after offline: %v", err)
	}
}

func TestCapacityZeroIsNeverAvailable(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	m := f.newMitra(t, nil)
	if _, err := f.svc.GoOnline(ctx, m.ID); err != nil {
		t.Fatal(err)
	}
	zero := 0
	v, err := f.svc.Patch(ctx, m.ID, ports.MitraPatch{Capacity: &zero})
	if err != nil {
		t.Fatal(err)
	}
	if !v.Reachable || v.Available || v.Capacity != 0 {
		t.Fatalf("capacity 0 view = %+v", v)
	}
	list, err := f.svc.AvailableMitras(ctx)
	if err != nil || len(list) != 0 {
		t.Fatalf("available = %v %v", list, err)
	}
}

func TestDeactivationForcesOfflineRevokesAndRefuses(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	m := f.newMitra(t, nil)
	if _, err := f.svc.GoOnline(ctx, m.ID); err != nil {
		t.Fatal(err)
	}
	sess, err := f.store.CreateAuthSession(ctx, m.ID, []byte("hash-1"), f.clock.Now(), f.clock.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	off := false
	v, err := f.svc.Patch(ctx, m.ID, ports.MitraPatch{IsActive: &off})
	if err != nil {
		t.Fatal(err)
	}
	if v.IsActive || v.IsOnline || v.Reachable {
		t.Fatalf("deactivated view = %+v", v)
	}
	as, err := f.store.AuthSession(ctx, sess.ID)
	if err != nil || as.RevokedAt == nil {
		t.Fatalf("auth session not revoked: %+v %v", as, err)
	}
	for name, call := range map[string]func() error{
		"status":    func() error { _, err := f.svc.Status(ctx, m.ID); return err },
		"online":    func() error { _, err := f.svc.GoOnline(ctx, m.ID); return err },
		"offline":   func() error { _, err := f.svc.GoOffline(ctx, m.ID); return err },
		"heartbeat": func() error { return f.svc.Heartbeat(ctx, m.ID) },
	} {
		if err := call(); !errors.Is(err, core.ErrAccountDeactivated) {
			t.Errorf("%s: err = %v, want ErrAccountDeactivated", name, err)
		}
	}
	on := true
	v, err = f.svc.Patch(ctx, m.ID, ports.MitraPatch{IsActive: &on})
	if err != nil || !v.IsActive || v.IsOnline {
		t.Fatalf("reactivated: %+v %v (must stay offline)", v, err)
	}
}

func TestBeaconSnapshotTTLAndDashboard(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a := f.newMitra(t, nil)
	b := f.newMitra(t, nil)
	c := f.newMitra(t, nil)
	for _, m := range []mitras.View{a, b} {
		if _, err := f.svc.GoOnline(ctx, m.ID); err != nil {
			t.Fatal(err)
		}
	}
	off := false
	if _, err := f.svc.Patch(ctx, c.ID, ports.MitraPatch{IsActive: &off}); err != nil {
		t.Fatal(err)
	}
	bc, err := f.svc.Beacon(ctx)
	if err != nil || bc.AvailableMitras != 2 || !bc.AsOf.Equal(f.clock.Now()) {
		t.Fatalf("beacon = %+v %v", bc, err)
	}
	if _, err := f.svc.GoOffline(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(9 * time.Second)
	if bc2, _ := f.svc.Beacon(ctx); bc2 != bc {
		t.Fatalf("within TTL the snapshot is reused: %+v vs %+v", bc2, bc)
	}
	f.clock.Advance(2 * time.Second)
	if bc3, _ := f.svc.Beacon(ctx); bc3.AvailableMitras != 1 {
		t.Fatalf("after TTL: %+v", bc3)
	}
	d, err := f.svc.Dashboard(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d.Mitras.Online != 1 || d.Mitras.Available != 1 || d.Mitras.Deactivated != 1 || d.CacheBackend != "memory" || !d.CacheHealthy {
		t.Fatalf("dashboard = %+v", d)
	}
}

func TestUnknownMitra(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	id := "00000000-0000-4000-8000-000000000000"
	if _, err := f.svc.Get(ctx, id); !errors.Is(err, ports.ErrNotFound) {
		t.Fatalf("get: %v", err)
	}
	if _, err := f.svc.AvailabilityOf(ctx, id); !errors.Is(err, ports.ErrNotFound) {
		t.Fatalf("availability: %v", err)
	}
	if _, err := f.svc.Status(ctx, id); !errors.Is(err, core.ErrUnauthenticated) {
		t.Fatalf("status of a vanished mitra: %v", err)
	}
}

// While the cache is known to be unreachable, a write skips it (no deadline
// is waited out) and counts as a failed mirror write; the answers come from
// the store, and the reseed after the cache's return carries the write.
func TestMirrorWritesSkipAnUnreachableCache(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	m := f.newMitra(t, nil)
	f.health.ReportError(errors.New("i/o timeout"))
	if f.health.Healthy(ctx) {
		t.Fatal("the cache is still healthy after an error")
	}

	v, err := f.svc.GoOnline(ctx, m.ID)
	if err != nil || !v.IsOnline || !v.Available {
		t.Fatalf("online with the cache down: %+v %v", v, err)
	}
	if n := f.metrics.WriteFailures("put_online"); n != 1 {
		t.Fatalf("put_online write failures = %d, want 1 (the skipped write)", n)
	}
	if st, err := f.mirror.Status(ctx, m.ID); err != nil || st.Online {
		t.Fatalf("the mirror was written while the cache was down: %+v %v", st, err)
	}
	if ids, err := f.svc.AvailableMitras(ctx); err != nil || len(ids) != 1 || ids[0] != m.ID {
		t.Fatalf("available mitras from the store: %v %v", ids, err)
	}

	// The cache answers again: the watcher's reseed brings the write in.
	if _, err := f.seeder.Seed(ctx, mirror.ReasonReconnect); err != nil {
		t.Fatal(err)
	}
	if st, err := f.mirror.Status(ctx, m.ID); err != nil || !st.Online {
		t.Fatalf("the reseed did not carry the write: %+v %v", st, err)
	}
	if _, err := f.svc.GoOffline(ctx, m.ID); err != nil {
		t.Fatal(err)
	}
	if st, err := f.mirror.Status(ctx, m.ID); err != nil || st.Online || f.metrics.WriteFailures("put_offline") != 0 {
		t.Fatalf("a write with the cache healthy did not reach it: %+v %v", st, err)
	}
}

// A snapshot another instance shared is read from the mirror once, then
// answered from the process until it is SnapshotTTL old by its own as_of.
func TestBeaconKeepsTheSharedSnapshotUntilItsTTL(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	shared := ports.Snapshot{AvailableMitras: 7, AsOf: f.clock.Now().Add(-4 * time.Second)}
	if err := f.mirror.SaveSnapshot(ctx, shared, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if bc, err := f.svc.Beacon(ctx); err != nil || bc != mitras.Beacon(shared) {
		t.Fatalf("beacon = %+v %v, want the shared snapshot %+v", bc, err, shared)
	}
	// Another instance replaces the shared snapshot: this process keeps
	// answering the one it holds while that is younger than the TTL.
	newer := ports.Snapshot{AvailableMitras: 9, AsOf: f.clock.Now()}
	if err := f.mirror.SaveSnapshot(ctx, newer, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(5 * time.Second) // the held one is 9 s old
	if bc, _ := f.svc.Beacon(ctx); bc != mitras.Beacon(shared) {
		t.Fatalf("within its TTL: %+v, want the held %+v", bc, shared)
	}
	f.clock.Advance(time.Second) // 10 s: the held one expired, the newer is 6 s old
	if bc, _ := f.svc.Beacon(ctx); bc != mitras.Beacon(newer) {
		t.Fatalf("after its TTL: %+v, want the newer shared %+v", bc, newer)
	}
}
