package mitras_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/core/mirror"
	"github.com/halobestie/mitra-availability/core/mitras"
	"github.com/halobestie/mitra-availability/ports"
)

// TestAwayIsNeverOfferedAndSurvives: an away mitra stays online and
// reachable, heartbeats, is not available (not offered, not counted by the
// beacon or the dashboard), and stays away through a heartbeat, a load
// recompute (a session's end), a reseed of the mirror, a lost mirror and the
// store fallback, until it goes online itself.
func TestAwayIsNeverOfferedAndSurvives(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	two := 2
	m := f.newMitra(t, &two)
	other := f.newMitra(t, nil)
	if _, err := f.svc.GoOnline(ctx, other.ID); err != nil {
		t.Fatal(err)
	}
	v, err := f.svc.GoAway(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if v.Presence != mitras.PresenceAway || !v.IsOnline || !v.Reachable || v.Available {
		t.Fatalf("away view = presence %s online %v reachable %v available %v", v.Presence, v.IsOnline, v.Reachable, v.Available)
	}
	checkAwayEverywhere := func(when string) {
		t.Helper()
		ids, err := f.svc.AvailableMitras(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(ids, m.ID) || !slices.Contains(ids, other.ID) {
			t.Errorf("%s: available = %v, want %s and not the away %s", when, ids, other.ID, m.ID)
		}
		a, err := f.svc.AvailabilityOf(ctx, m.ID)
		if err != nil || !a.Reachable || a.Available {
			t.Errorf("%s: AvailabilityOf(away) = %+v, %v", when, a, err)
		}
		st, err := f.svc.Status(ctx, m.ID)
		if err != nil || st.Presence != mitras.PresenceAway || st.Available || !st.Reachable {
			t.Errorf("%s: Status = presence %s available %v, %v", when, st.Presence, st.Available, err)
		}
		d, err := f.svc.Dashboard(ctx)
		if err != nil || d.Mitras.Online != 2 || d.Mitras.Available != 1 {
			t.Errorf("%s: dashboard mitras = %+v, %v; want 2 online, 1 available", when, d.Mitras, err)
		}
	}
	checkAwayEverywhere("after away")

	f.clock.Advance(30 * time.Second)
	if err := f.svc.Heartbeat(ctx, m.ID); err != nil {
		t.Fatalf("heartbeat while away: %v", err)
	}
	checkAwayEverywhere("after a heartbeat")

	f.svc.RecomputeLoad(ctx, m.ID) // what a session's end does
	checkAwayEverywhere("after a load recompute")

	if _, err := f.seeder.Seed(ctx, mirror.ReasonPeriodic); err != nil {
		t.Fatal(err)
	}
	checkAwayEverywhere("after a reseed")

	f.mirror.Flush() // Valkey lost its data, then the reseed after it
	if _, err := f.seeder.Seed(ctx, mirror.ReasonLostData); err != nil {
		t.Fatal(err)
	}
	checkAwayEverywhere("after a lost mirror and its reseed")

	// The store path answers the same.
	f.health.ReportError(ports.ErrMirrorNotSeeded)
	ids, err := f.svc.AvailableMitras(ctx)
	if err != nil || slices.Contains(ids, m.ID) {
		t.Errorf("store fallback: available = %v, %v", ids, err)
	}
	if _, err := f.seeder.Seed(ctx, mirror.ReasonReconnect); err != nil {
		t.Fatal(err)
	}

	// Beacon, computed fresh: only the other mitra.
	f.clock.Advance(time.Minute)
	if err := f.svc.Heartbeat(ctx, m.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.GoOnline(ctx, other.ID); err != nil {
		t.Fatal(err)
	}
	if b, err := f.svc.Beacon(ctx); err != nil || b.AvailableMitras != 1 {
		t.Errorf("beacon = %+v, %v; want 1", b, err)
	}

	v, err = f.svc.GoOnline(ctx, m.ID)
	if err != nil || v.Presence != mitras.PresenceOnline || !v.Available {
		t.Fatalf("back online: presence %s available %v, %v", v.Presence, v.Available, err)
	}
	ids, err = f.svc.AvailableMitras(ctx)
	if err != nil || !slices.Contains(ids, m.ID) {
		t.Errorf("back online: available = %v, %v", ids, err)
	}
	v, err = f.svc.GoOffline(ctx, m.ID)
	if err != nil || v.Presence != mitras.PresenceOffline {
		t.Errorf("offline: presence %s, %v", v.Presence, err)
	}
}
