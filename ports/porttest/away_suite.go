package porttest

import (
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/ports"
)

// RunAwaySuite checks the away presence (docs/contract.md §12) across the mitra
// store, the queries and the mirror truth: an away mitra is online and
// reachable, never available, and only going online or offline, a
// deactivation or the stale sweep end it.
func RunAwaySuite(t *testing.T, f Factory) {
	parallel(t, "SetAway", f, func(t *testing.T, st Stores) {
		m := onlineMitra(t, st, 2, at(time.Second))
		got, err := st.Mitras.SetAway(t.Context(), m.ID, at(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if !got.IsOnline || !got.IsAway || !got.IsActive {
			t.Fatalf("after SetAway: %+v, want online and away", got)
		}
		assertTimePtr(t, "heartbeat after SetAway", got.LastHeartbeatAt, at(2*time.Second))
		read, err := st.Mitras.Mitra(t.Context(), m.ID)
		if err != nil {
			t.Fatal(err)
		}
		sameMitra(t, "Mitra after SetAway", read, got)

		// A heartbeat keeps it away.
		hb, err := st.Mitras.TouchHeartbeat(t.Context(), m.ID, at(3*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if !hb.IsAway || !hb.IsOnline {
			t.Errorf("after a heartbeat: %+v, want still away", hb)
		}
		// Going online ends it.
		on, err := st.Mitras.SetOnline(t.Context(), m.ID, true, at(4*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if on.IsAway || !on.IsOnline {
			t.Errorf("after SetOnline(true): %+v, want online, not away", on)
		}
		// Away again, then offline ends it too.
		if _, err := st.Mitras.SetAway(t.Context(), m.ID, at(5*time.Second)); err != nil {
			t.Fatal(err)
		}
		off, err := st.Mitras.SetOnline(t.Context(), m.ID, false, at(6*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if off.IsAway || off.IsOnline {
			t.Errorf("after SetOnline(false): %+v, want offline, not away", off)
		}
	})

	parallel(t, "AwayFromOffline", f, func(t *testing.T, st Stores) {
		m := newMitra(t, st, 1)
		got, err := st.Mitras.SetAway(t.Context(), m.ID, at(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if !got.IsOnline || !got.IsAway {
			t.Errorf("SetAway of an offline mitra: %+v, want online and away", got)
		}
		assertTimePtr(t, "heartbeat", got.LastHeartbeatAt, at(time.Second))
	})

	parallel(t, "DeactivatedCannotBeAway", f, func(t *testing.T, st Stores) {
		m := onlineMitra(t, st, 1, at(time.Second))
		if _, err := st.Mitras.SetAway(t.Context(), m.ID, at(2*time.Second)); err != nil {
			t.Fatal(err)
		}
		d, err := st.Mitras.PatchMitra(t.Context(), m.ID, ports.MitraPatch{IsActive: ptr(false)})
		if err != nil {
			t.Fatal(err)
		}
		if d.IsAway || d.IsOnline {
			t.Errorf("deactivated: %+v, want offline, not away", d)
		}
		got, err := st.Mitras.SetAway(t.Context(), m.ID, at(3*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if got.IsAway || got.IsOnline || got.IsActive {
			t.Errorf("SetAway of a deactivated mitra: %+v, want unchanged", got)
		}
		// Reactivated, it is offline and not away.
		r, err := st.Mitras.PatchMitra(t.Context(), m.ID, ports.MitraPatch{IsActive: ptr(true)})
		if err != nil {
			t.Fatal(err)
		}
		if r.IsAway || r.IsOnline {
			t.Errorf("reactivated: %+v, want offline, not away", r)
		}
	})

	parallel(t, "AwayIsNotAvailable", f, func(t *testing.T, st Stores) {
		now := at(10 * time.Minute)
		freshSince := now.Add(-stale)
		on := onlineMitra(t, st, 2, now)
		away := onlineMitra(t, st, 2, now)
		if _, err := st.Mitras.SetAway(t.Context(), away.ID, now); err != nil {
			t.Fatal(err)
		}
		checkAvailable(t, st, freshSince, []string{on.ID})
		checkCounts(t, st, freshSince, ports.MitraCounts{Online: 2, Available: 1})
		checkMirrorTruth(t, st, []ports.MirrorMitra{
			{ID: on.ID, LastHeartbeat: now, Capacity: 2},
			{ID: away.ID, LastHeartbeat: now, Capacity: 2, Away: true},
		}, nil)
		// A capacity change (a session's end recomputes the same) keeps it away.
		if _, err := st.Mitras.PatchMitra(t.Context(), away.ID, ports.MitraPatch{Capacity: ptr(5)}); err != nil {
			t.Fatal(err)
		}
		checkAvailable(t, st, freshSince, []string{on.ID})
	})

	parallel(t, "StaleSweepEndsAway", f, func(t *testing.T, st Stores) {
		m := onlineMitra(t, st, 1, at(time.Second))
		if _, err := st.Mitras.SetAway(t.Context(), m.ID, at(time.Second)); err != nil {
			t.Fatal(err)
		}
		done, err := st.Truth.SetOfflineIfStale(t.Context(), []string{m.ID}, at(time.Hour))
		if err != nil || len(done) != 1 {
			t.Fatalf("SetOfflineIfStale = %v, %v", done, err)
		}
		got, err := st.Mitras.Mitra(t.Context(), m.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.IsAway || got.IsOnline {
			t.Errorf("after the stale sweep: %+v, want offline, not away", got)
		}
	})
}
