package mitras_test

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/core"
	"github.com/halobestie/mitra-availability/core/mirror"
	"github.com/halobestie/mitra-availability/core/mitras"
	"github.com/halobestie/mitra-availability/ports"
)

// countingStore counts the store reads of one mitra.
type countingStore struct {
	ports.MitraStore
	reads atomic.Int64
}

func (c *countingStore) Mitra(ctx context.Context, id string) (ports.Mitra, error) {
	c.reads.Add(1)
	return c.MitraStore.Mitra(ctx, id)
}

// TestStatusFromMirror: GET /api/mitra/status of an online mitra is answered
// by the mirror once its profile is known (no store read), and says exactly
// what the store path says, in every state: idle, away, at a raised capacity,
// with a stale heartbeat, offline and deactivated (both from the store).
func TestStatusFromMirror(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	counted := &countingStore{MitraStore: f.store}
	log := slog.New(slog.DiscardHandler)
	svc, err := mitras.NewService(mitras.Deps{Store: counted, Queries: f.store, AuthDB: f.store, Stats: f.store,
		Mirror: f.mirror, Health: f.health, Metrics: f.metrics, Hasher: nopHasher{}, Clock: f.clock, Log: log},
		mitras.Config{DefaultCapacity: 1, HeartbeatStale: 90 * time.Second, SnapshotTTL: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// The same service with no cache: what the store says.
	storeOnly, err := mitras.NewService(mitras.Deps{Store: f.store, Queries: f.store, AuthDB: f.store, Stats: f.store,
		Mirror: f.mirror, Health: mirror.NewHealth("none", false), Metrics: f.metrics, Hasher: nopHasher{}, Clock: f.clock, Log: log},
		mitras.Config{DefaultCapacity: 1, HeartbeatStale: 90 * time.Second, SnapshotTTL: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	m := f.newMitra(t, nil)
	same := func(when string, wantReads int64) {
		t.Helper()
		before := counted.reads.Load()
		got, err := svc.Status(ctx, m.ID)
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		if reads := counted.reads.Load() - before; reads != wantReads {
			t.Errorf("%s: %d store reads, want %d", when, reads, wantReads)
		}
		want, err := storeOnly.Status(ctx, m.ID)
		if err != nil {
			t.Fatal(err)
		}
		// The store learns heartbeats from the batched write-back; the
		// store path takes the mirror's when it is later, as the mirror path does.
		if st, err := f.mirror.Status(ctx, m.ID); err == nil && st.Online &&
			(want.LastHeartbeatAt == nil || st.Mitra.LastHeartbeat.After(*want.LastHeartbeatAt)) {
			hb := st.Mitra.LastHeartbeat
			want.LastHeartbeatAt = &hb
		}
		if got.Presence != want.Presence || got.Reachable != want.Reachable || got.Available != want.Available ||
			got.ID != want.ID || got.Phone != want.Phone || got.DisplayName != want.DisplayName ||
			got.IsActive != want.IsActive || got.IsOnline != want.IsOnline || got.IsAway != want.IsAway ||
			got.Capacity != want.Capacity || got.ActiveSessions != want.ActiveSessions ||
			!got.CreatedAt.Equal(want.CreatedAt) || !equalTime(got.LastHeartbeatAt, want.LastHeartbeatAt) {
			t.Errorf("%s: mirror view\n %+v\nstore view\n %+v", when, got, want)
		}
	}
	same("offline, first read", 1)
	same("offline again: the store answers an offline mitra", 1)
	if _, err := f.svc.GoOnline(ctx, m.ID); err != nil {
		t.Fatal(err)
	}
	same("online", 0)
	f.clock.Advance(30 * time.Second)
	if err := f.svc.Heartbeat(ctx, m.ID); err != nil {
		t.Fatal(err)
	}
	same("after a heartbeat", 0)
	if _, err := f.svc.GoAway(ctx, m.ID); err != nil {
		t.Fatal(err)
	}
	same("away", 0)
	three := 3
	if _, err := f.svc.Patch(ctx, m.ID, ports.MitraPatch{Capacity: &three}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.GoOnline(ctx, m.ID); err != nil {
		t.Fatal(err)
	}
	same("online at capacity 3", 0)
	f.clock.Advance(100 * time.Second)
	same("stale heartbeat", 0)
	f.health.ReportError(errors.New("connection reset"))
	same("mirror dirty: the store answers", 1)
	if _, err := f.seeder.Seed(ctx, mirror.ReasonReconnect); err != nil {
		t.Fatal(err)
	}
	no := false
	if _, err := f.svc.Patch(ctx, m.ID, ports.MitraPatch{IsActive: &no}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Status(ctx, m.ID); !errors.Is(err, core.ErrAccountDeactivated) {
		t.Fatalf("deactivated: %v, want account_deactivated", err)
	}
}

func equalTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

type nopHasher struct{}

func (nopHasher) Hash(p string) (string, error) { return p, nil }
func (nopHasher) Compare(h, p string) error     { return nil }
