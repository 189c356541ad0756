package porttest

import (
	"slices"
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/ports"
)

const stale = 90 * time.Second

func ids(ms []ports.Mitra) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

func sortedIDs(ms ...ports.Mitra) []string {
	return slices.Sorted(slices.Values(ids(ms)))
}

func checkAvailable(t *testing.T, st Stores, freshSince time.Time, want []string) []ports.Mitra {
	t.Helper()
	got, err := st.MitraQueries.AvailableMitras(t.Context(), freshSince)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(got), want) {
		t.Errorf("AvailableMitras = %v, want %v", ids(got), want)
	}
	return got
}

func checkCounts(t *testing.T, st Stores, freshSince time.Time, want ports.MitraCounts) {
	t.Helper()
	got, err := st.MitraQueries.CountMitras(t.Context(), freshSince)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("CountMitras = %+v, want %+v", got, want)
	}
}

// RunMitraQueriesSuite checks a ports.MitraQueries.
func RunMitraQueriesSuite(t *testing.T, f Factory) {
	parallel(t, "Empty", f, func(t *testing.T, st Stores) {
		got, err := st.MitraQueries.AvailableMitras(t.Context(), t0)
		if err != nil || len(got) != 0 {
			t.Errorf("AvailableMitras on an empty store = %v, %v", got, err)
		}
		checkCounts(t, st, t0, ports.MitraCounts{})
	})

	parallel(t, "Reachability", f, func(t *testing.T, st Stores) {
		now := at(10 * time.Minute)
		freshSince := now.Add(-stale)

		fresh := onlineMitra(t, st, 1, now.Add(-time.Second))
		boundary := onlineMitra(t, st, 1, freshSince) // exactly HEARTBEAT_STALE old: still reachable
		staleM := onlineMitra(t, st, 1, freshSince.Add(-time.Microsecond))
		noCapacity := onlineMitra(t, st, 0, now) // capacity 0: never available
		offline := onlineMitra(t, st, 1, now)
		if _, err := st.Mitras.SetOnline(t.Context(), offline.ID, false, now); err != nil {
			t.Fatal(err)
		}
		deactivated := onlineMitra(t, st, 1, now)
		if _, err := st.Mitras.PatchMitra(t.Context(), deactivated.ID, ports.MitraPatch{IsActive: ptr(false)}); err != nil {
			t.Fatal(err)
		}
		newMitra(t, st, 1) // never online
		newCustomer(t, st) // not a mitra at all
		_ = staleM
		_ = noCapacity

		got := checkAvailable(t, st, freshSince, sortedIDs(fresh, boundary))
		for _, m := range got {
			if !m.IsActive || !m.IsOnline || m.ActiveSessions != 0 || m.Capacity != 1 || m.Phone == "" || m.DisplayName == "" {
				t.Errorf("available mitra view = %+v", m)
			}
		}
		checkCounts(t, st, freshSince, ports.MitraCounts{
			Online:      4, // fresh, boundary, stale, capacity 0
			Available:   2,
			Deactivated: 1,
		})

		// A heartbeat brings the stale one back; a later freshSince drops the others.
		if _, err := st.Mitras.TouchHeartbeat(t.Context(), staleM.ID, now); err != nil {
			t.Fatal(err)
		}
		checkAvailable(t, st, freshSince, sortedIDs(fresh, boundary, staleM))
		checkAvailable(t, st, now, []string{staleM.ID})
		checkCounts(t, st, now, ports.MitraCounts{Online: 4, Available: 1, Deactivated: 1})

		// Giving capacity makes the capacity-0 mitra available.
		if _, err := st.Mitras.PatchMitra(t.Context(), noCapacity.ID, ports.MitraPatch{Capacity: ptr(1)}); err != nil {
			t.Fatal(err)
		}
		checkAvailable(t, st, now, sortedIDs(staleM, noCapacity))

		// Reactivating does not make a mitra available until it goes online.
		if _, err := st.Mitras.PatchMitra(t.Context(), deactivated.ID, ports.MitraPatch{IsActive: ptr(true)}); err != nil {
			t.Fatal(err)
		}
		checkCounts(t, st, now, ports.MitraCounts{Online: 4, Available: 2, Deactivated: 0})
		if _, err := st.Mitras.SetOnline(t.Context(), deactivated.ID, true, now); err != nil {
			t.Fatal(err)
		}
		checkAvailable(t, st, now, sortedIDs(staleM, noCapacity, deactivated))
	})

	parallel(t, "OrderedByID", f, func(t *testing.T, st Stores) {
		var ms []ports.Mitra
		for range 8 {
			ms = append(ms, onlineMitra(t, st, 1, t0))
		}
		checkAvailable(t, st, t0, sortedIDs(ms...))
	})

	parallel(t, "Capacity", f, func(t *testing.T, st Stores) {
		full := onlineMitra(t, st, 1, t0)
		seedSession(t, st, full.ID, "active")
		fullPending := onlineMitra(t, st, 2, t0)
		seedSession(t, st, fullPending.ID, "pending_payment")
		seedSession(t, st, fullPending.ID, "active")
		room := onlineMitra(t, st, 2, t0)
		seedSession(t, st, room.ID, "active")
		seedSession(t, st, room.ID, "ended")
		seedSession(t, st, room.ID, "cancelled")
		seedSession(t, st, room.ID, "unmatched")
		idle := onlineMitra(t, st, 1, t0)
		seedSession(t, st, "", "searching")
		overfull := onlineMitra(t, st, 1, t0) // capacity lowered below its open sessions
		seedSession(t, st, overfull.ID, "active")
		seedSession(t, st, overfull.ID, "active")

		got := checkAvailable(t, st, t0, sortedIDs(room, idle))
		for _, m := range got {
			want := 0
			if m.ID == room.ID {
				want = 1
			}
			if m.ActiveSessions != want {
				t.Errorf("mitra %s ActiveSessions = %d, want %d", m.ID, m.ActiveSessions, want)
			}
		}
		checkCounts(t, st, t0, ports.MitraCounts{Online: 5, Available: 2})

		// Raising capacity frees a place.
		if _, err := st.Mitras.PatchMitra(t.Context(), full.ID, ports.MitraPatch{Capacity: ptr(2)}); err != nil {
			t.Fatal(err)
		}
		checkAvailable(t, st, t0, sortedIDs(room, idle, full))
		checkCounts(t, st, t0, ports.MitraCounts{Online: 5, Available: 3})
	})
}
