package porttest

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/ports"
)

// sortedMirror returns ms ordered by ID.
func sortedMirror(ms []ports.MirrorMitra) []ports.MirrorMitra {
	out := slices.Clone(ms)
	slices.SortFunc(out, func(a, b ports.MirrorMitra) int { return strings.Compare(a.ID, b.ID) })
	return out
}

func checkMirrorTruth(t *testing.T, st Stores, wantOnline []ports.MirrorMitra, wantDeactivated []string) {
	t.Helper()
	online, deactivated, err := st.Truth.MirrorTruth(t.Context())
	if err != nil {
		t.Fatalf("MirrorTruth: %v", err)
	}
	online, wantOnline = sortedMirror(online), sortedMirror(wantOnline)
	if len(online) != len(wantOnline) {
		t.Errorf("MirrorTruth online = %+v, want %+v", online, wantOnline)
	} else {
		for i := range online {
			g, w := online[i], wantOnline[i]
			if g.ID != w.ID || g.OpenSessions != w.OpenSessions || g.Capacity != w.Capacity || g.Away != w.Away ||
				!g.LastHeartbeat.Equal(pgTime(w.LastHeartbeat)) || g.LastHeartbeat.Location() != time.UTC {
				t.Errorf("MirrorTruth online[%d] = %+v, want %+v", i, g, w)
			}
		}
	}
	if got, want := slices.Sorted(slices.Values(deactivated)), slices.Sorted(slices.Values(wantDeactivated)); !slices.Equal(got, want) {
		t.Errorf("MirrorTruth deactivated = %v, want %v", got, want)
	}
}

func checkHeartbeat(t *testing.T, st Stores, id string, want time.Time) {
	t.Helper()
	m, err := st.Mitras.Mitra(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	assertTimePtr(t, "LastHeartbeatAt of "+id, m.LastHeartbeatAt, want)
}

// RunAvailabilityTruthSuite checks a ports.AvailabilityTruth.
func RunAvailabilityTruthSuite(t *testing.T, f Factory) {
	parallel(t, "MirrorTruthEmpty", f, func(t *testing.T, st Stores) {
		checkMirrorTruth(t, st, nil, nil)
	})

	parallel(t, "MirrorTruth", f, func(t *testing.T, st Stores) {
		busy := onlineMitra(t, st, 3, at(time.Second))
		seedSession(t, st, busy.ID, ports.StatusPendingPayment)
		seedSession(t, st, busy.ID, ports.StatusActive)
		seedSession(t, st, busy.ID, ports.StatusEnded)
		seedSession(t, st, busy.ID, ports.StatusCancelled)
		idle := onlineMitra(t, st, 1, at(2*time.Second))
		full := onlineMitra(t, st, 1, at(3*time.Second))
		seedSession(t, st, full.ID, ports.StatusActive)
		zeroCap := onlineMitra(t, st, 0, t0)
		offline := onlineMitra(t, st, 1, t0)
		if _, err := st.Mitras.SetOnline(t.Context(), offline.ID, false, t0); err != nil {
			t.Fatal(err)
		}
		seedSession(t, st, offline.ID, ports.StatusActive) // offline mitras are not listed, whatever their load
		newMitra(t, st, 1)                                 // never online
		wasOnline := onlineMitra(t, st, 1, t0)
		neverOnline := newMitra(t, st, 1)
		for _, id := range []string{wasOnline.ID, neverOnline.ID} {
			if _, err := st.Mitras.PatchMitra(t.Context(), id, ports.MitraPatch{IsActive: ptr(false)}); err != nil {
				t.Fatal(err)
			}
		}
		newCustomer(t, st)
		seedSession(t, st, "", ports.StatusSearching)

		checkMirrorTruth(t, st, []ports.MirrorMitra{
			{ID: busy.ID, LastHeartbeat: at(time.Second), OpenSessions: 2, Capacity: 3},
			{ID: idle.ID, LastHeartbeat: at(2 * time.Second), OpenSessions: 0, Capacity: 1},
			{ID: full.ID, LastHeartbeat: at(3 * time.Second), OpenSessions: 1, Capacity: 1},
			{ID: zeroCap.ID, LastHeartbeat: t0, OpenSessions: 0, Capacity: 0},
		}, []string{wasOnline.ID, neverOnline.ID})

		// Going offline, deactivation and reactivation show in the next answer.
		if _, err := st.Mitras.SetOnline(t.Context(), idle.ID, false, t0); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Mitras.PatchMitra(t.Context(), full.ID, ports.MitraPatch{IsActive: ptr(false)}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Mitras.PatchMitra(t.Context(), neverOnline.ID, ports.MitraPatch{IsActive: ptr(true)}); err != nil {
			t.Fatal(err)
		}
		checkMirrorTruth(t, st, []ports.MirrorMitra{
			{ID: busy.ID, LastHeartbeat: at(time.Second), OpenSessions: 2, Capacity: 3},
			{ID: zeroCap.ID, LastHeartbeat: t0, OpenSessions: 0, Capacity: 0},
		}, []string{wasOnline.ID, full.ID})
	})

	parallel(t, "SetOfflineIfStale", f, func(t *testing.T, st Stores) {
		staleBefore := at(time.Minute)
		fresh := onlineMitra(t, st, 1, at(2*time.Minute))
		boundary := onlineMitra(t, st, 1, staleBefore) // exactly at staleBefore: not stale
		staleM := onlineMitra(t, st, 1, staleBefore.Add(-time.Microsecond))
		staleOffline := onlineMitra(t, st, 1, t0)
		if _, err := st.Mitras.SetOnline(t.Context(), staleOffline.ID, false, t0); err != nil {
			t.Fatal(err)
		}
		notAsked := onlineMitra(t, st, 1, t0)

		if got, err := st.Truth.SetOfflineIfStale(t.Context(), nil, staleBefore); err != nil || len(got) != 0 {
			t.Errorf("SetOfflineIfStale(no ids) = %v, %v", got, err)
		}
		got, err := st.Truth.SetOfflineIfStale(t.Context(), []string{
			fresh.ID, boundary.ID, staleM.ID, staleM.ID, staleOffline.ID, randomUUID(t), "not-a-uuid",
			strings.ToUpper(staleM.ID),
		}, staleBefore)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, []string{staleM.ID}) {
			t.Errorf("SetOfflineIfStale = %v, want [%s]", got, staleM.ID)
		}
		for id, wantOnline := range map[string]bool{
			fresh.ID: true, boundary.ID: true, staleM.ID: false, staleOffline.ID: false, notAsked.ID: true,
		} {
			m, err := st.Mitras.Mitra(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			if m.IsOnline != wantOnline {
				t.Errorf("mitra %s IsOnline = %v, want %v", id, m.IsOnline, wantOnline)
			}
		}
		// The heartbeat is kept; the mitra just went offline.
		checkHeartbeat(t, st, staleM.ID, staleBefore.Add(-time.Microsecond))

		// Again: nothing left to do.
		if got, err := st.Truth.SetOfflineIfStale(t.Context(), []string{staleM.ID, fresh.ID}, staleBefore); err != nil || len(got) != 0 {
			t.Errorf("second SetOfflineIfStale = %v, %v; want none", got, err)
		}

		// A mitra that heartbeat since the mirror found it stale is left online.
		if _, err := st.Mitras.TouchHeartbeat(t.Context(), notAsked.ID, staleBefore); err != nil {
			t.Fatal(err)
		}
		if got, err := st.Truth.SetOfflineIfStale(t.Context(), []string{notAsked.ID}, staleBefore); err != nil || len(got) != 0 {
			t.Errorf("SetOfflineIfStale(refreshed) = %v, %v; want none", got, err)
		}
		// A later staleBefore catches it.
		if got, err := st.Truth.SetOfflineIfStale(t.Context(), []string{notAsked.ID}, staleBefore.Add(time.Microsecond)); err != nil ||
			!slices.Equal(got, []string{notAsked.ID}) {
			t.Errorf("SetOfflineIfStale(later) = %v, %v; want [%s]", got, err, notAsked.ID)
		}
		checkMirrorTruth(t, st, []ports.MirrorMitra{
			{ID: fresh.ID, LastHeartbeat: at(2 * time.Minute), Capacity: 1},
			{ID: boundary.ID, LastHeartbeat: staleBefore, Capacity: 1},
		}, nil)
	})

	parallel(t, "WriteBackHeartbeats", f, func(t *testing.T, st Stores) {
		behind := onlineMitra(t, st, 1, t0)
		ahead := onlineMitra(t, st, 1, at(time.Hour))
		twice := onlineMitra(t, st, 1, t0)
		untouched := onlineMitra(t, st, 1, t0)

		if n, err := st.Truth.WriteBackHeartbeats(t.Context(), nil); err != nil || n != 0 {
			t.Errorf("WriteBackHeartbeats(none) = %d, %v", n, err)
		}
		beats := []ports.MirrorMitra{
			{ID: behind.ID, LastHeartbeat: at(10 * time.Second)},
			{ID: ahead.ID, LastHeartbeat: at(time.Minute)}, // older than the store's: ignored
			{ID: twice.ID, LastHeartbeat: at(20 * time.Second)},
			{ID: twice.ID, LastHeartbeat: at(5 * time.Second)},
			{ID: randomUUID(t), LastHeartbeat: at(time.Second)},
			{ID: "not-a-uuid", LastHeartbeat: at(time.Second)},
			{ID: untouched.ID}, // zero heartbeat: ignored
		}
		n, err := st.Truth.WriteBackHeartbeats(t.Context(), beats)
		if err != nil {
			t.Fatal(err)
		}
		if n != 2 {
			t.Errorf("WriteBackHeartbeats = %d, want 2", n)
		}
		checkHeartbeat(t, st, behind.ID, at(10*time.Second))
		checkHeartbeat(t, st, ahead.ID, at(time.Hour))
		checkHeartbeat(t, st, twice.ID, at(20*time.Second))
		checkHeartbeat(t, st, untouched.ID, t0)

		// Idempotent.
		if n, err := st.Truth.WriteBackHeartbeats(t.Context(), beats); err != nil || n != 0 {
			t.Errorf("second WriteBackHeartbeats = %d, %v; want 0", n, err)
		}
		// Sub-microsecond differences do not count as a move.
		if n, err := st.Truth.WriteBackHeartbeats(t.Context(), []ports.MirrorMitra{
			{ID: behind.ID, LastHeartbeat: at(10 * time.Second).Add(100 * time.Nanosecond)},
		}); err != nil || n != 0 {
			t.Errorf("WriteBackHeartbeats(same microsecond) = %d, %v; want 0", n, err)
		}
		checkMirrorTruth(t, st, []ports.MirrorMitra{
			{ID: behind.ID, LastHeartbeat: at(10 * time.Second), Capacity: 1},
			{ID: ahead.ID, LastHeartbeat: at(time.Hour), Capacity: 1},
			{ID: twice.ID, LastHeartbeat: at(20 * time.Second), Capacity: 1},
			{ID: untouched.ID, LastHeartbeat: t0, Capacity: 1},
		}, nil)
	})
}
