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

// candidateIDs returns the ids of cs.
func candidateIDs(cs []ports.Candidate) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}

func candidates(t *testing.T, st Stores, q ports.CandidateQuery) []ports.Candidate {
	t.Helper()
	got, err := st.MitraQueries.Candidates(t.Context(), q)
	if err != nil {
		t.Fatalf("Candidates(%+v): %v", q, err)
	}
	return got
}

// endSession ends a session of mitraID at end.
func endSession(t *testing.T, st Stores, mitraID string, end time.Time) {
	t.Helper()
	s := seedSession(t, st, mitraID, ports.StatusActive)
	updateSession(t, st, s.ID, func(s *ports.Session) {
		s.Status = ports.StatusEnded
		reason := ports.EndEndedByCustomer
		s.EndReason = &reason
		s.EndedAt = &end
	})
}

// RunCandidatesSuite checks MitraQueries.Candidates and the idle time it
// orders by (docs/contract.md §11): idle since going online or since the end
// of the last session, whichever is later.
func RunCandidatesSuite(t *testing.T, f Factory) {
	parallel(t, "IdleSince", f, func(t *testing.T, st Stores) {
		m := onlineMitra(t, st, 2, at(time.Second))
		assertTimePtr(t, "idle since going online", m.IdleSince, at(time.Second))
		endSession(t, st, m.ID, at(-time.Hour)) // ended before it went online: no effect
		endSession(t, st, m.ID, at(time.Minute))
		endSession(t, st, m.ID, at(30*time.Second))
		got, err := st.Mitras.Mitra(t.Context(), m.ID)
		if err != nil {
			t.Fatal(err)
		}
		assertTimePtr(t, "idle since the last session ended", got.IdleSince, at(time.Minute))
		// The mirror's truth carries the same idle time.
		online, _, err := st.Truth.MirrorTruth(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if len(online) != 1 || online[0].ID != m.ID {
			t.Fatalf("MirrorTruth online = %+v, want the one mitra", online)
		}
		assertTime(t, "MirrorTruth idle since", online[0].IdleSince, at(time.Minute))
		// Going online again while online keeps it; offline clears it.
		if got, err = st.Mitras.SetOnline(t.Context(), m.ID, true, at(2*time.Minute)); err != nil {
			t.Fatal(err)
		}
		assertTimePtr(t, "idle since, online again", got.IdleSince, at(time.Minute))
		if got, err = st.Mitras.SetOnline(t.Context(), m.ID, false, at(3*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if got.IdleSince != nil {
			t.Errorf("offline mitra idle since %v, want nil", got.IdleSince)
		}
		if got, err = st.Mitras.SetOnline(t.Context(), m.ID, true, at(4*time.Minute)); err != nil {
			t.Fatal(err)
		}
		assertTimePtr(t, "idle since going online again", got.IdleSince, at(4*time.Minute))
	})

	parallel(t, "Orders", f, func(t *testing.T, st Stores) {
		now := at(10 * time.Minute)
		// a: online first, one open session of two. b: online second, idle.
		// c: online third, idle. d: online first, its session ended last.
		a := onlineMitra(t, st, 2, at(time.Second))
		seedSession(t, st, a.ID, ports.StatusActive)
		b := onlineMitra(t, st, 2, at(2*time.Second))
		c := onlineMitra(t, st, 1, at(3*time.Second))
		d := onlineMitra(t, st, 1, at(time.Second))
		endSession(t, st, d.ID, at(5*time.Second))
		// Never candidates: full, away, stale, offline, deactivated.
		full := onlineMitra(t, st, 1, at(0))
		seedSession(t, st, full.ID, ports.StatusPendingPayment)
		away := onlineMitra(t, st, 1, at(0))
		if _, err := st.Mitras.SetAway(t.Context(), away.ID, at(0)); err != nil {
			t.Fatal(err)
		}
		onlineMitra(t, st, 1, now.Add(-stale-time.Second)) // stale
		gone := onlineMitra(t, st, 1, at(0))
		if _, err := st.Mitras.SetOnline(t.Context(), gone.ID, false, at(0)); err != nil {
			t.Fatal(err)
		}
		off := onlineMitra(t, st, 1, at(0))
		if _, err := st.Mitras.PatchMitra(t.Context(), off.ID, ports.MitraPatch{IsActive: ptr(false)}); err != nil {
			t.Fatal(err)
		}
		for _, m := range []ports.Mitra{a, b, c, d} { // fresh heartbeats
			if _, err := st.Mitras.TouchHeartbeat(t.Context(), m.ID, now); err != nil {
				t.Fatal(err)
			}
		}
		for _, m := range []ports.Mitra{full, away, gone} {
			_, _ = st.Mitras.TouchHeartbeat(t.Context(), m.ID, now)
		}
		fresh := now.Add(-stale)
		q := func(o ports.CandidateOrder, limit int, exclude ...string) []ports.Candidate {
			return candidates(t, st, ports.CandidateQuery{FreshSince: fresh, Order: o, Limit: limit, Exclude: exclude})
		}

		idle := q(ports.OrderLongestIdle, 10)
		if got, want := candidateIDs(idle), []string{a.ID, b.ID, c.ID, d.ID}; !slices.Equal(got, want) {
			t.Errorf("longest idle = %v, want %v", got, want)
		}
		for _, cd := range idle {
			switch cd.ID {
			case a.ID:
				assertTime(t, "a idle since", cd.IdleSince, at(time.Second))
				if cd.OpenSessions != 1 {
					t.Errorf("a open sessions %d, want 1", cd.OpenSessions)
				}
			case d.ID:
				assertTime(t, "d idle since", cd.IdleSince, at(5*time.Second))
			}
		}
		if got, want := candidateIDs(q(ports.OrderLeastLoaded, 10)), []string{b.ID, c.ID, d.ID, a.ID}; !slices.Equal(got, want) {
			t.Errorf("least loaded = %v, want %v", got, want)
		}
		if got, want := candidateIDs(q(ports.OrderLongestIdle, 2)), []string{a.ID, b.ID}; !slices.Equal(got, want) {
			t.Errorf("longest idle, limit 2 = %v, want %v", got, want)
		}
		if got, want := candidateIDs(q(ports.OrderLeastLoaded, 2, b.ID, randomUUID(t), "not-a-uuid")), []string{c.ID, d.ID}; !slices.Equal(got, want) {
			t.Errorf("least loaded, limit 2, b excluded = %v, want %v", got, want)
		}
		random := q(ports.OrderRandom, 3, c.ID)
		if len(random) != 3 {
			t.Fatalf("random 3 of a, b, d = %v", candidateIDs(random))
		}
		for _, cd := range random {
			if !slices.Contains([]string{a.ID, b.ID, d.ID}, cd.ID) {
				t.Errorf("random sample holds %s, not a candidate", cd.ID)
			}
		}
		if got := q(ports.OrderRandom, 0); len(got) != 0 {
			t.Errorf("limit 0 = %v, want none", candidateIDs(got))
		}
		if _, err := st.MitraQueries.Candidates(t.Context(), ports.CandidateQuery{Order: ports.CandidateOrder(99), Limit: 1}); err == nil {
			t.Error("an unknown order: want an error")
		}
	})

	parallel(t, "RandomIsUniform", f, func(t *testing.T, st Stores) {
		var ms []ports.Mitra
		for range 6 {
			ms = append(ms, onlineMitra(t, st, 1, t0))
		}
		seen := map[string]int{}
		for range 120 {
			for _, c := range candidates(t, st, ports.CandidateQuery{FreshSince: t0, Order: ports.OrderRandom, Limit: 2}) {
				seen[c.ID]++
			}
		}
		for _, m := range ms { // 40 expected each
			if seen[m.ID] < 15 {
				t.Errorf("mitra %s sampled %d times in 120 draws of 2 of 6, want about 40", m.ID, seen[m.ID])
			}
		}
	})
}
