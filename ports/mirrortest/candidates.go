package mirrortest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/ports"
)

// idle returns mitra(id, hb, open, capacity) idle since idleSince.
func idle(id string, hb time.Time, open, capacity int, idleSince time.Time) ports.MirrorMitra {
	mm := mitra(id, hb, open, capacity)
	mm.IdleSince = idleSince
	return mm
}

func candidates(t *testing.T, m ports.AvailabilityMirror, q ports.CandidateQuery) []ports.Candidate {
	t.Helper()
	got, err := m.Candidates(ctxT(t), q)
	if err != nil {
		t.Fatalf("Candidates(%v, limit %d): %v", q.Order, q.Limit, err)
	}
	return got
}

func candidateIDs(cs []ports.Candidate) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}

// checkOrder asserts the ids Candidates answers for order, limit and exclude.
func checkOrder(t *testing.T, m ports.AvailabilityMirror, freshSince time.Time, o ports.CandidateOrder, limit int, exclude []string, want ...string) []ports.Candidate {
	t.Helper()
	got := candidates(t, m, ports.CandidateQuery{FreshSince: freshSince, Order: o, Limit: limit, Exclude: exclude})
	if ids := candidateIDs(got); !slices.Equal(ids, want) && !(len(ids) == 0 && len(want) == 0) {
		t.Errorf("Candidates(%v, limit %d, excluding %d) = %v, want %v", o, limit, len(exclude), ids, want)
	}
	return got
}

// testCandidates: the ordered reads of the routing strategies
// (docs/contract.md §11) answer the available mitras only, longest idle or
// least loaded first, with their idle time and load.
func testCandidates(t *testing.T, s Subject) {
	m := s.Mirror
	ctx := ctxT(t)
	if _, err := m.Candidates(ctx, ports.CandidateQuery{Order: ports.OrderLongestIdle, Limit: 3}); !errors.Is(err, ports.ErrMirrorNotSeeded) {
		t.Errorf("Candidates before the seed: %v, want ErrMirrorNotSeeded", err)
	}
	seed(t, m)
	ids := newIDs(t, 9)
	a, b, c, d, full, away, stale, gone, deact := ids[0], ids[1], ids[2], ids[3], ids[4], ids[5], ids[6], ids[7], ids[8]
	hb := at(time.Minute)
	put(t, m, idle(a, hb, 1, 2, at(-4*time.Hour))) // idle longest, one open session
	put(t, m, idle(b, hb, 0, 2, at(-3*time.Hour)))
	put(t, m, idle(c, hb, 0, 1, at(-2*time.Hour)))
	put(t, m, idle(d, hb, 0, 1, at(-time.Hour)))
	put(t, m, idle(full, hb, 1, 1, at(-9*time.Hour)))
	aw := idle(away, hb, 0, 1, at(-9*time.Hour))
	aw.Away = true
	put(t, m, aw)
	put(t, m, idle(stale, at(-time.Hour), 0, 1, at(-9*time.Hour)))
	put(t, m, idle(gone, hb, 0, 1, at(-9*time.Hour)))
	mustDo(t, "PutOffline", m.PutOffline(ctx, gone))
	put(t, m, idle(deact, hb, 0, 1, at(-9*time.Hour)))
	mustDo(t, "Deactivate", m.Deactivate(ctx, deact))
	fresh := t0

	got := checkOrder(t, m, fresh, ports.OrderLongestIdle, 10, nil, a, b, c, d)
	for _, cd := range got {
		if cd.ID == a && (!cd.IdleSince.Equal(stored(at(-4*time.Hour))) || cd.IdleSince.Location() != time.UTC || cd.OpenSessions != 1) {
			t.Errorf("candidate a = %+v, want idle since %v (UTC), 1 open session", cd, stored(at(-4*time.Hour)))
		}
	}
	checkOrder(t, m, fresh, ports.OrderLeastLoaded, 10, nil, b, c, d, a)
	checkOrder(t, m, fresh, ports.OrderLongestIdle, 2, nil, a, b)
	checkOrder(t, m, fresh, ports.OrderLongestIdle, 2, []string{a, c, newID(t)}, b, d)
	checkOrder(t, m, fresh, ports.OrderLeastLoaded, 1, []string{b}, c)
	checkOrder(t, m, fresh, ports.OrderLongestIdle, 0, nil)
	checkOrder(t, m, at(-2*time.Hour), ports.OrderLongestIdle, 10, nil, stale, a, b, c, d) // the stale one is fresh enough here

	// Writes move the ranks: a load change with a new idle time, a full
	// mitra freed, going away, offline, stale removal.
	mustDo(t, "SetLoad", m.SetLoad(ctx, a, 0, 2, at(-30*time.Minute))) // a's session ended: idle since then
	checkOrder(t, m, fresh, ports.OrderLongestIdle, 10, nil, b, c, d, a)
	mustDo(t, "SetLoad", m.SetLoad(ctx, full, 0, 1, time.Time{})) // freed, idle time kept
	checkOrder(t, m, fresh, ports.OrderLongestIdle, 10, nil, full, b, c, d, a)
	checkOrder(t, m, fresh, ports.OrderLeastLoaded, 10, nil, full, b, c, d, a)
	mustDo(t, "SetLoad", m.SetLoad(ctx, b, 2, 2, time.Time{})) // b full
	checkOrder(t, m, fresh, ports.OrderLongestIdle, 10, nil, full, c, d, a)
	mustDo(t, "SetLoad", m.SetLoad(ctx, b, 1, 2, time.Time{})) // b has room again, one open
	checkOrder(t, m, fresh, ports.OrderLeastLoaded, 10, nil, full, c, d, a, b)
	cAway := idle(c, hb, 0, 1, time.Time{})
	cAway.Away = true
	put(t, m, cAway) // away: out; back online keeps its idle time
	checkOrder(t, m, fresh, ports.OrderLongestIdle, 10, nil, full, b, d, a)
	put(t, m, idle(c, hb, 0, 1, time.Time{}))
	checkOrder(t, m, fresh, ports.OrderLongestIdle, 10, nil, full, b, c, d, a)
	mustDo(t, "PutOffline", m.PutOffline(ctx, d))
	put(t, m, idle(gone, hb, 0, 1, time.Time{})) // new to the mirror, no idle time: its heartbeat
	checkOrder(t, m, fresh, ports.OrderLongestIdle, 10, nil, full, b, c, a, gone)
	removed, err := m.RemoveStale(ctx, t0, 10)
	mustDo(t, "RemoveStale", err)
	if len(removed) != 1 || removed[0].ID != stale {
		t.Errorf("RemoveStale = %v, want the stale one", fmtMitras(removed))
	}
	checkOrder(t, m, at(-2*time.Hour), ports.OrderLongestIdle, 10, nil, full, b, c, a, gone)

	if _, err := m.Candidates(ctx, ports.CandidateQuery{Order: ports.CandidateOrder(42), Limit: 1}); err == nil {
		t.Error("Candidates with an unknown order: want an error")
	}
}

// testCandidatesRandom: the random read samples the available mitras
// uniformly, never an excluded, stale or full one.
func testCandidatesRandom(t *testing.T, s Subject) {
	m := s.Mirror
	seed(t, m)
	ctx := ctxT(t)
	ids := newIDs(t, 8)
	for _, id := range ids[:6] {
		put(t, m, mitra(id, t0, 0, 1))
	}
	put(t, m, mitra(ids[6], t0, 1, 1))             // full
	put(t, m, mitra(ids[7], at(-time.Hour), 0, 1)) // stale
	seen := map[string]int{}
	for range 120 {
		got := candidates(t, m, ports.CandidateQuery{FreshSince: at(-time.Minute), Order: ports.OrderRandom, Limit: 2, Exclude: []string{ids[5]}})
		if len(got) != 2 || got[0].ID == got[1].ID {
			t.Fatalf("random 2 = %v, want two distinct", candidateIDs(got))
		}
		for _, c := range got {
			seen[c.ID]++
		}
	}
	for _, id := range ids[:5] { // 48 expected each
		if seen[id] < 20 {
			t.Errorf("mitra %s sampled %d times in 120 draws of 2 of 5, want about 48", id, seen[id])
		}
	}
	for _, id := range ids[5:] {
		if seen[id] != 0 {
			t.Errorf("an excluded, full or stale mitra was sampled %d times", seen[id])
		}
	}
	got := candidates(t, m, ports.CandidateQuery{FreshSince: at(-time.Minute), Order: ports.OrderRandom, Limit: 100})
	slices.Sort(got2(got))
	if ids2 := got2(got); !slices.Equal(ids2, ids[:6]) {
		t.Errorf("random 100 of 6 = %v, want all six", ids2)
	}
	mustDo(t, "PutOffline", m.PutOffline(ctx, ids[0]))
	if got := candidates(t, m, ports.CandidateQuery{FreshSince: at(-time.Minute), Order: ports.OrderRandom, Limit: 100}); len(got) != 5 {
		t.Errorf("after one went offline: %v, want five", candidateIDs(got))
	}
}

// got2 returns the sorted ids of cs.
func got2(cs []ports.Candidate) []string {
	ids := candidateIDs(cs)
	slices.Sort(ids)
	return ids
}

// testCandidatesLarge: a random sample and an ordered read of a mirror much
// larger than the limit (the server-side paths that do not read every
// available mitra).
func testCandidatesLarge(t *testing.T, s Subject) {
	m := s.Mirror
	seed(t, m)
	const n = 500
	truth := make([]ports.MirrorMitra, n)
	ids := newIDs(t, n)
	for i, id := range ids {
		truth[i] = idle(id, t0, i%3, 3, at(time.Duration(n-i)*time.Second)) // ids[n-1] idle longest
	}
	_, err := m.Reseed(ctxT(t), truth, nil)
	mustDo(t, "Reseed", err)
	exclude := []string{ids[n-1], ids[0]}
	got := candidates(t, m, ports.CandidateQuery{FreshSince: t0, Order: ports.OrderRandom, Limit: 50, Exclude: exclude})
	if len(got) != 50 {
		t.Fatalf("random 50 of %d: %d", n, len(got))
	}
	distinct := map[string]bool{}
	for _, c := range got {
		if distinct[c.ID] || slices.Contains(exclude, c.ID) {
			t.Fatalf("random sample repeats or holds an excluded mitra: %v", candidateIDs(got))
		}
		distinct[c.ID] = true
	}
	checkOrder(t, m, t0, ports.OrderLongestIdle, 3, exclude, ids[n-2], ids[n-3], ids[n-4])
	// Least loaded: open 0 are ids with i%3 == 0, longest idle first.
	checkOrder(t, m, t0, ports.OrderLeastLoaded, 2, exclude, ids[n-2-(n-2)%3], ids[n-5-(n-2)%3])
}

// testReseedRanks: a reseed sets the idle times of the truth, re-ranks the
// mitras it corrects and drops the ranks of the mitras it takes offline; a
// flushed mirror is ranked again by the reseed.
func testReseedRanks(t *testing.T, s Subject) {
	m := s.Mirror
	seed(t, m)
	ctx := ctxT(t)
	ids := newIDs(t, 3)
	a, b, c := ids[0], ids[1], ids[2]
	put(t, m, idle(a, t0, 0, 1, at(-time.Hour)))
	put(t, m, idle(b, t0, 0, 1, at(-2*time.Hour)))
	put(t, m, idle(c, t0, 0, 1, at(-3*time.Hour)))
	truth := []ports.MirrorMitra{idle(a, t0, 0, 1, at(-4*time.Hour)), idle(b, t0, 0, 1, at(-2*time.Hour))}
	rep, err := m.Reseed(ctx, truth, nil)
	mustDo(t, "Reseed", err)
	if rep.Removed != 1 || rep.Updated != 0 {
		t.Errorf("Reseed = %+v, want c removed and nothing else counted (idle times are not availability)", rep)
	}
	checkOrder(t, m, t0, ports.OrderLongestIdle, 10, nil, a, b)
	s.Flush(t)
	_, err = m.Reseed(ctx, truth, nil)
	mustDo(t, "Reseed after flush", err)
	got := checkOrder(t, m, t0, ports.OrderLongestIdle, 10, nil, a, b)
	if len(got) == 2 && !got[0].IdleSince.Equal(stored(at(-4*time.Hour))) {
		t.Errorf("after the flush and reseed a is idle since %v, want %v", got[0].IdleSince, stored(at(-4*time.Hour)))
	}
	checkOrder(t, m, t0, ports.OrderLeastLoaded, 10, nil, a, b)
}
