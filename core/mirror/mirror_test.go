package mirror_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/adapters/clock"
	"github.com/halobestie/mitra-availability/adapters/memory"
	"github.com/halobestie/mitra-availability/core/mirror"
	"github.com/halobestie/mitra-availability/ports"
)

// failing wraps a mirror and fails every call while down is set.
type failing struct {
	ports.AvailabilityMirror
	down bool
}

var errDown = errors.New("connection refused")

func (f *failing) RemoveStale(ctx context.Context, before time.Time, limit int) ([]ports.MirrorMitra, error) {
	if f.down {
		return nil, errDown
	}
	return f.AvailabilityMirror.RemoveStale(ctx, before, limit)
}

func (f *failing) Seeded(ctx context.Context) (bool, error) {
	if f.down {
		return false, errDown
	}
	return f.AvailabilityMirror.Seeded(ctx)
}

type fixture struct {
	store   *memory.Store
	mirror  *failing
	inner   *memory.Mirror
	health  *mirror.Health
	metrics *memory.Metrics
	seeder  *mirror.Seeder
	sweeps  *mirror.Sweeps
	watcher *mirror.Watcher
	clock   *clock.Manual
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	st := memory.NewStore()
	inner := memory.NewMirror()
	mr := &failing{AvailabilityMirror: inner}
	h := mirror.NewHealth("memory", true)
	m := memory.NewMetrics()
	log := slog.New(slog.DiscardHandler)
	clk := clock.NewManual(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	seeder := mirror.NewSeeder(mr, st, h, m, log)
	return &fixture{store: st, mirror: mr, inner: inner, health: h, metrics: m, seeder: seeder,
		sweeps: mirror.NewSweeps(seeder, clk, 90*time.Second), watcher: mirror.NewWatcher(seeder, log), clock: clk}
}

func (f *fixture) onlineMitra(t *testing.T, phone string, at time.Time) ports.Mitra {
	t.Helper()
	ctx := context.Background()
	m, err := f.store.CreateMitra(ctx, ports.NewUser{Role: ports.RoleMitra, Phone: phone, DisplayName: "M", PasswordHash: "x"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	m, err = f.store.SetOnline(ctx, m.ID, true, at)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSeedThenAutoOfflineTakesOnlyStaleMitras(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	now := f.clock.Now()
	stale := f.onlineMitra(t, "+628100000001", now.Add(-2*time.Minute))
	fresh := f.onlineMitra(t, "+628100000002", now.Add(-10*time.Second))
	if !f.health.Dirty() {
		t.Fatal("a new health must be dirty until seeded")
	}
	if got := f.sweeps.AutoOffline(ctx); len(got) != 0 || f.metrics.Sweeps(mirror.SweepAutoOffline, mirror.OutcomeAborted) != 1 {
		t.Fatalf("the sweep must abort on an unseeded mirror: %v", got)
	}
	rep, err := f.seeder.Seed(ctx, mirror.ReasonStart)
	if err != nil || rep.Added != 2 || f.health.Dirty() {
		t.Fatalf("seed: %+v %v dirty=%v", rep, err, f.health.Dirty())
	}
	got := f.sweeps.AutoOffline(ctx)
	if len(got) != 1 || got[0] != stale.ID {
		t.Fatalf("auto-offline took %v, want only %s", got, stale.ID)
	}
	if m, _ := f.store.Mitra(ctx, stale.ID); m.IsOnline {
		t.Fatal("the stale mitra is still online in the store")
	}
	if m, _ := f.store.Mitra(ctx, fresh.ID); !m.IsOnline {
		t.Fatal("the fresh mitra went offline")
	}
	if st, _ := f.inner.Status(ctx, stale.ID); st.Online {
		t.Fatal("the stale mitra is still online in the mirror")
	}
}

func TestAutoOfflineAbortsOnMirrorErrorAndWatcherReseeds(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	stale := f.onlineMitra(t, "+628100000003", f.clock.Now().Add(-time.Hour))
	if _, err := f.seeder.Seed(ctx, mirror.ReasonStart); err != nil {
		t.Fatal(err)
	}
	f.mirror.down = true
	if got := f.sweeps.AutoOffline(ctx); len(got) != 0 {
		t.Fatalf("sweep during an outage took %v", got)
	}
	if m, _ := f.store.Mitra(ctx, stale.ID); !m.IsOnline {
		t.Fatal("the sweep must never offline mitras from the store while the mirror is down")
	}
	if f.health.Healthy(ctx) || !f.health.Dirty() {
		t.Fatal("a mirror error must make it unhealthy and dirty")
	}
	f.watcher.Tick(ctx) // still down: nothing
	if f.metrics.Seeds(mirror.ReasonReconnect) != 0 {
		t.Fatal("reseeded while down")
	}
	f.mirror.down = false
	f.watcher.Tick(ctx)
	if f.metrics.Seeds(mirror.ReasonReconnect) != 1 || f.health.Dirty() || !f.health.Healthy(ctx) {
		t.Fatalf("the watcher must reseed once the mirror answers (seeds=%d dirty=%v)", f.metrics.Seeds(mirror.ReasonReconnect), f.health.Dirty())
	}
	f.inner.Flush()
	f.watcher.Tick(ctx)
	if f.metrics.Seeds(mirror.ReasonLostData) != 1 {
		t.Fatal("a flushed mirror must be reseeded as lost data")
	}
	if st, _ := f.inner.Status(ctx, stale.ID); !st.Online {
		t.Fatal("the reseed did not restore the mitra")
	}
}

func TestWriteBackNeverMovesBackwardsAndReseedKeepsFresherMirrorHeartbeat(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	t0 := f.clock.Now().Add(-time.Minute)
	m := f.onlineMitra(t, "+628100000004", t0)
	if _, err := f.seeder.Seed(ctx, mirror.ReasonStart); err != nil {
		t.Fatal(err)
	}
	later := f.clock.Now()
	if out, err := f.inner.Heartbeat(ctx, m.ID, later); err != nil || out != ports.HeartbeatRecorded {
		t.Fatalf("heartbeat: %v %v", out, err)
	}
	// A periodic reseed must keep the mirror's fresher heartbeat.
	if _, err := f.seeder.Seed(ctx, mirror.ReasonPeriodic); err != nil {
		t.Fatal(err)
	}
	st, _ := f.inner.Status(ctx, m.ID)
	if st.Mitra.LastHeartbeat.Before(later.Truncate(100 * time.Millisecond)) {
		t.Fatalf("reseed moved the heartbeat back to %v", st.Mitra.LastHeartbeat)
	}
	if n := f.sweeps.WriteBack(ctx); n != 1 {
		t.Fatalf("write-back moved %d rows, want 1", n)
	}
	got, _ := f.store.Mitra(ctx, m.ID)
	if got.LastHeartbeatAt == nil || got.LastHeartbeatAt.Before(later.Truncate(100*time.Millisecond)) {
		t.Fatalf("store heartbeat after write-back: %v", got.LastHeartbeatAt)
	}
	// A second write-back changes nothing: idempotent, never backwards.
	if n := f.sweeps.WriteBack(ctx); n != 0 {
		t.Fatalf("second write-back moved %d rows", n)
	}
}

func TestReseedCountsDrift(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a := f.onlineMitra(t, "+628100000005", f.clock.Now())
	if _, err := f.seeder.Seed(ctx, mirror.ReasonStart); err != nil {
		t.Fatal(err)
	}
	if err := f.inner.PutOffline(ctx, a.ID); err != nil { // drift: missing from the mirror
		t.Fatal(err)
	}
	if err := f.inner.Deactivate(ctx, "00000000-0000-4000-8000-000000000001"); err != nil { // drift: bogus deactivation
		t.Fatal(err)
	}
	f.sweeps.Reseed(ctx)
	if f.metrics.Drift() != 2 {
		t.Fatalf("drift healed = %d, want 2", f.metrics.Drift())
	}
	if st, _ := f.inner.Status(ctx, a.ID); !st.Online {
		t.Fatal("reseed did not restore the mitra")
	}
}
