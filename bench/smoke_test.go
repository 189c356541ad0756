package bench

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/valkey-io/valkey-go"

	"github.com/halobestie/mitra-availability/ports"
)

// TestDesignsAgree is what a plain `go test ./bench/` runs (the benchmarks
// need -bench): at 1k online mitras, the three designs the benchmarks compare
// give the same answers, so that the benchmarks compare equal work, and the
// memory probe measures something. It takes a few seconds.
func TestDesignsAgree(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: needs Postgres and Valkey")
	}
	fx := newFixture(t, 1000)
	ctx := t.Context()

	if fx.available != 850 || len(fx.fresh) != 950 {
		t.Fatalf("data set: %d available, %d fresh; want 850, 950", fx.available, len(fx.fresh))
	}

	t.Run("count", func(t *testing.T) {
		pg, err := fx.store.CountMitras(ctx, fx.freshSince)
		if err != nil {
			t.Fatal(err)
		}
		mir, err := fx.mirror.CountMitras(ctx, fx.freshSince)
		if err != nil {
			t.Fatal(err)
		}
		orig, err := fx.orig.countAvailable(ctx, fx.freshSince)
		if err != nil {
			t.Fatal(err)
		}
		want := ports.MitraCounts{Online: 1000, Available: 850, Deactivated: 10}
		if pg != want || mir != want || orig != want.Available {
			t.Errorf("counts: Postgres %+v, mirror %+v, original %d available; want %+v", pg, mir, orig, want)
		}
	})

	t.Run("lookup", func(t *testing.T) {
		pg, err := fx.store.AvailableMitras(ctx, fx.freshSince)
		if err != nil {
			t.Fatal(err)
		}
		pgIDs := make([]string, len(pg))
		for i, m := range pg {
			pgIDs[i] = m.ID
		}
		mirIDs, err := fx.mirror.AvailableMitraIDs(ctx, fx.freshSince)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(mirIDs)
		orig, err := fx.orig.availableMitras(ctx, fx.freshSince)
		if err != nil {
			t.Fatal(err)
		}
		if len(pgIDs) != 850 || !slices.Equal(pgIDs, mirIDs) || !slices.Equal(pgIDs, orig) {
			t.Errorf("lookup: Postgres %d ids, mirror %d, original %d, equal %v %v; want 850 equal",
				len(pgIDs), len(mirIDs), len(orig), slices.Equal(pgIDs, mirIDs), slices.Equal(pgIDs, orig))
		}
	})

	t.Run("heartbeat", func(t *testing.T) {
		id, at := fx.fresh[0], time.Now()
		m, err := fx.store.Mitra(ctx, id)
		if err != nil || !m.IsActive || !m.IsOnline {
			t.Fatalf("Postgres Mitra(%s) = active %v online %v, %v", id, m.IsActive, m.IsOnline, err)
		}
		if m, err = fx.store.TouchHeartbeat(ctx, id, at); err != nil || m.LastHeartbeatAt == nil || m.LastHeartbeatAt.Before(at.Add(-time.Millisecond)) {
			t.Errorf("Postgres TouchHeartbeat = %v, %v", m.LastHeartbeatAt, err)
		}
		for name, hb := range map[string]func(context.Context, string, time.Time) (ports.HeartbeatOutcome, error){
			designMirror: fx.mirror.Heartbeat, designOriginal: fx.orig.heartbeat,
		} {
			if out, err := hb(ctx, id, at); err != nil || out != ports.HeartbeatRecorded {
				t.Errorf("%s heartbeat of an online mitra = %v, %v", name, out, err)
			}
			if out, err := hb(ctx, fx.deactivated[0], at); err != nil || out != ports.HeartbeatDeactivated {
				t.Errorf("%s heartbeat of a deactivated mitra = %v, %v", name, out, err)
			}
		}
		st, err := fx.mirror.Status(ctx, id)
		if err != nil || !st.Online || st.Mitra.LastHeartbeat.Before(at.Add(-100*time.Millisecond)) {
			t.Errorf("mirror Status after the heartbeat = %+v, %v", st, err)
		}
		raw, err := fx.client.Do(ctx, fx.client.B().Get().Key(fx.orig.heartbeatKey(id)).Build()).ToString()
		if err != nil || raw != at.UTC().Format(isoLayout) {
			t.Errorf("original heartbeat key = %q, %v; want %q", raw, err, at.UTC().Format(isoLayout))
		}
	})

	t.Run("sweep", func(t *testing.T) {
		stale := fx.staleMitras(10)
		want := make([]string, len(stale))
		for i, m := range stale {
			want[i] = m.ID
		}
		slices.Sort(want)
		if err := fx.injectMirror(ctx, stale); err != nil {
			t.Fatal(err)
		}
		if err := fx.injectOriginal(ctx, stale); err != nil {
			t.Fatal(err)
		}
		for range 2 { // the second pass finds nothing
			removed, err := fx.mirror.RemoveStale(ctx, fx.sweepBefore, sweepLimit)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]string, len(removed))
			for i, m := range removed {
				got[i] = m.ID
			}
			slices.Sort(got)
			orig, err := fx.orig.sweep(ctx, fx.sweepBefore)
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(orig)
			if !slices.Equal(got, want) || !slices.Equal(orig, want) {
				t.Errorf("sweep: mirror removed %d, original %d; want the %d injected", len(got), len(orig), len(want))
			}
			want = nil
		}
		c, err := fx.mirror.CountMitras(ctx, fx.freshSince)
		if err != nil || c.Online != 1000 {
			t.Errorf("after the sweeps the mirror counts %+v, %v; want the 1000 seeded online", c, err)
		}
	})

	t.Run("memory", func(t *testing.T) {
		probe := newMemProbe(t)
		probe.measure(t, func(ctx context.Context, c valkey.Client) error { return reseedMirror(ctx, c, fx.online[:1]) }, nil, nil)
		mir := float64(probe.measure(t, func(ctx context.Context, c valkey.Client) error {
			return reseedMirror(ctx, c, fx.online)
		}, nil, nil)) / 1000
		orig := float64(probe.measure(t, func(ctx context.Context, c valkey.Client) error {
			return newOriginal(c, "", seedCapacity).seed(ctx, fx.online, nil)
		}, nil, nil)) / 1000
		t.Logf("Valkey memory per online mitra at 1k: mirror %.1f B, original %.1f B", mir, orig)
		if mir <= 0 || orig <= 0 || mir >= orig {
			t.Errorf("memory per online mitra: mirror %.1f B, original %.1f B; want 0 < mirror < original", mir, orig)
		}
	})
}
