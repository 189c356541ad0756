// Package mirrortest is the contract suite of ports.AvailabilityMirror. Every
// mirror adapter's tests run it (memory, Valkey over miniredis, a real Valkey
// or Redis server, a Valkey Cluster), so what core sees from one mirror it
// sees from any other.
//
// The suite passes explicit heartbeat times that carry nanoseconds and a
// non-UTC zone, and expects them back in UTC, floored to the mirror's
// heartbeat precision of 100 ms. Freshness compares at that precision too: a
// heartbeat is fresh for freshSince when both fall in the same 100 ms step or
// the heartbeat is later. Only the snapshot and lock tests wait for real
// time (a few hundred milliseconds, or the subject's Wait), so the suite runs
// against a real server as well.
package mirrortest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/ports"
)

// Precision is the heartbeat precision every mirror keeps.
const Precision = 100 * time.Millisecond

// Subject is what a factory hands the suite: one fresh, empty, unseeded
// mirror and the means to act on its backing store.
type Subject struct {
	Mirror ports.AvailabilityMirror
	// Flush simulates the loss of all the mirror's data (a flushed server, or
	// one restarted empty): every key of this mirror, the seeded marker
	// included, is gone. Required.
	Flush func(t *testing.T)
	// Wait lets d pass for the mirror's expiring keys (snapshot, locks).
	// Optional: nil sleeps. A fake server moves its clock instead.
	Wait func(t *testing.T, d time.Duration)
}

// Factory returns a fresh subject for one test and registers its cleanup with t.
type Factory func(t *testing.T) Subject

// Run runs every test of the contract as a parallel subtest, each with its
// own subject.
func Run(t *testing.T, f Factory) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s Subject)
	}{
		{"Unseeded", testUnseeded},
		{"FlushLosesMarker", testFlush},
		{"PutOnlineAndOffline", testPutOnlineOffline},
		{"PutOnlineKeepsLaterHeartbeat", testPutOnlineKeepsLaterHeartbeat},
		{"HeartbeatOutcomes", testHeartbeatOutcomes},
		{"HeartbeatNeverMovesBackwards", testHeartbeatNeverBackwards},
		{"HeartbeatKeepsLoad", testHeartbeatKeepsLoad},
		{"HeartbeatPrecision", testPrecision},
		{"FarHeartbeats", testFarHeartbeats},
		{"Deactivate", testDeactivate},
		{"DeactivateIsAtomic", testDeactivateAtomic},
		{"Reactivate", testReactivate},
		{"SetLoad", testSetLoad},
		{"CapacityZeroNeverAvailable", testCapacityZero},
		{"AvailableAndCounts", testAvailableAndCounts},
		{"Snapshot", testSnapshot},
		{"Lock", testLock},
		{"LockReleaseOnlyIfOwner", testLockReleaseOnlyIfOwner},
		{"RemoveStale", testRemoveStale},
		{"Heartbeats", testHeartbeats},
		{"Reseed", testReseed},
		{"ReseedEmptyMirror", testReseedEmpty},
		{"ReseedKeepsConcurrentHeartbeats", testReseedConcurrentHeartbeats},
		{"ConcurrentHeartbeatsAndLoad", testConcurrentHeartbeatsAndLoad},
		{"ConcurrentHeartbeatOutcomes", testConcurrentHeartbeatOutcomes},
		{"CanceledContext", testCanceledContext},
		{"Away", testAway},
		{"AwayEndsOffline", testAwayEndsOffline},
		{"ReseedAway", testReseedAway},
		{"Candidates", testCandidates},
		{"CandidatesRandom", testCandidatesRandom},
		{"CandidatesLarge", testCandidatesLarge},
		{"ReseedRanks", testReseedRanks},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, f(t))
		})
	}
}

// t0 is the suite's reference time: not UTC, with nanoseconds below the precision.
var t0 = time.Date(2031, time.March, 4, 12, 6, 7, 123456789, time.FixedZone("WIB", 7*60*60))

// at returns t0 moved by d.
func at(d time.Duration) time.Time { return t0.Add(d) }

// stored is how a mirror gives back a heartbeat at t.
func stored(t time.Time) time.Time { return t.UTC().Truncate(Precision) }

// newID returns a random UUID string (36 characters, like the store's ids).
func newID(t *testing.T) string {
	t.Helper()
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("random id: %v", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// newIDs returns n ids in ascending order.
func newIDs(t *testing.T, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = newID(t)
	}
	slices.Sort(ids)
	return ids
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mitra(id string, hb time.Time, open, capacity int) ports.MirrorMitra {
	return ports.MirrorMitra{ID: id, LastHeartbeat: hb, OpenSessions: open, Capacity: capacity}
}

// want is the mirror's view of mitra(id, hb, open, capacity).
func want(id string, hb time.Time, open, capacity int) ports.MirrorMitra {
	return mitra(id, stored(hb), open, capacity)
}

func fmtMitra(m ports.MirrorMitra) string {
	return fmt.Sprintf("{%s hb=%s open=%d cap=%d}", m.ID, m.LastHeartbeat.Format(time.RFC3339Nano), m.OpenSessions, m.Capacity)
}

func fmtMitras(ms []ports.MirrorMitra) string {
	s := "["
	for i, m := range ms {
		if i > 0 {
			s += " "
		}
		s += fmtMitra(m)
	}
	return s + "]"
}

func sameMitra(a, b ports.MirrorMitra) bool {
	return a.ID == b.ID && a.LastHeartbeat.Equal(b.LastHeartbeat) && a.LastHeartbeat.Location() == time.UTC &&
		a.OpenSessions == b.OpenSessions && a.Capacity == b.Capacity
}

func checkMitras(t *testing.T, what string, got, wantMs []ports.MirrorMitra) {
	t.Helper()
	ok := len(got) == len(wantMs)
	for i := 0; ok && i < len(got); i++ {
		ok = sameMitra(got[i], wantMs[i])
	}
	if !ok {
		t.Errorf("%s:\n got  %s\n want %s (heartbeats in UTC)", what, fmtMitras(got), fmtMitras(wantMs))
	}
}

// seed marks the fresh mirror seeded with nothing in it.
func seed(t *testing.T, m ports.AvailabilityMirror) {
	t.Helper()
	rep, err := m.Reseed(ctxT(t), nil, nil)
	if err != nil {
		t.Fatalf("seed: %v", err)
	}
	if rep.Total() != 0 {
		t.Fatalf("seed of a fresh mirror corrected %+v", rep)
	}
}

func put(t *testing.T, m ports.AvailabilityMirror, mm ports.MirrorMitra) {
	t.Helper()
	if err := m.PutOnline(ctxT(t), mm); err != nil {
		t.Fatalf("PutOnline(%s): %v", fmtMitra(mm), err)
	}
}

func status(t *testing.T, m ports.AvailabilityMirror, id string) ports.MirrorStatus {
	t.Helper()
	st, err := m.Status(ctxT(t), id)
	if err != nil {
		t.Fatalf("Status(%s): %v", id, err)
	}
	return st
}

// checkOnline asserts that id is online, not deactivated, as w.
func checkOnline(t *testing.T, m ports.AvailabilityMirror, w ports.MirrorMitra) {
	t.Helper()
	st := status(t, m, w.ID)
	if !st.Online || st.Deactivated || !sameMitra(st.Mitra, w) {
		t.Errorf("Status(%s) = online %v deactivated %v %s, want online %s", w.ID, st.Online, st.Deactivated, fmtMitra(st.Mitra), fmtMitra(w))
	}
}

// checkOffline asserts that id is offline with the given deactivated flag.
func checkOffline(t *testing.T, m ports.AvailabilityMirror, id string, deactivated bool) {
	t.Helper()
	st := status(t, m, id)
	if st.Online || st.Deactivated != deactivated || st.Mitra != (ports.MirrorMitra{}) {
		t.Errorf("Status(%s) = online %v deactivated %v %s, want offline, deactivated %v, zero mitra",
			id, st.Online, st.Deactivated, fmtMitra(st.Mitra), deactivated)
	}
}

// available returns the available mitras for freshSince with their entries,
// ordered by ID: the fresh mitras of Heartbeats that have room. It fails the
// test unless AvailableMitraIDs names exactly these mitras.
func available(t *testing.T, m ports.AvailabilityMirror, freshSince time.Time) []ports.MirrorMitra {
	t.Helper()
	fresh, err := m.Heartbeats(ctxT(t), freshSince)
	if err != nil {
		t.Fatalf("Heartbeats: %v", err)
	}
	var got []ports.MirrorMitra
	for _, x := range fresh {
		if x.Offerable() {
			got = append(got, x)
		}
	}
	slices.SortFunc(got, func(a, b ports.MirrorMitra) int { return strings.Compare(a.ID, b.ID) })
	ids, err := m.AvailableMitraIDs(ctxT(t), freshSince)
	if err != nil {
		t.Fatalf("AvailableMitraIDs: %v", err)
	}
	want := make([]string, len(got))
	for i, x := range got {
		want[i] = x.ID
	}
	slices.Sort(ids)
	if !slices.Equal(ids, want) {
		t.Fatalf("AvailableMitraIDs = %v, want the fresh mitras with room %v", ids, want)
	}
	return got
}

func counts(t *testing.T, m ports.AvailabilityMirror, freshSince time.Time) ports.MitraCounts {
	t.Helper()
	c, err := m.CountMitras(ctxT(t), freshSince)
	if err != nil {
		t.Fatalf("CountMitras: %v", err)
	}
	return c
}

func checkCounts(t *testing.T, m ports.AvailabilityMirror, freshSince time.Time, w ports.MitraCounts) {
	t.Helper()
	if got := counts(t, m, freshSince); got != w {
		t.Errorf("CountMitras = %+v, want %+v", got, w)
	}
}

func heartbeat(t *testing.T, m ports.AvailabilityMirror, id string, when time.Time, w ports.HeartbeatOutcome) {
	t.Helper()
	got, err := m.Heartbeat(ctxT(t), id, when)
	if err != nil {
		t.Fatalf("Heartbeat(%s): %v", id, err)
	}
	if got != w {
		t.Errorf("Heartbeat(%s) = %v, want %v", id, got, w)
	}
}

func mustDo(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func wait(t *testing.T, s Subject, d time.Duration) {
	t.Helper()
	if s.Wait != nil {
		s.Wait(t, d)
		return
	}
	time.Sleep(d)
}

// checkNotSeeded asserts that every read answers ErrMirrorNotSeeded.
func checkNotSeeded(t *testing.T, m ports.AvailabilityMirror, id string) {
	t.Helper()
	ctx := ctxT(t)
	seeded, err := m.Seeded(ctx)
	if err != nil || seeded {
		t.Errorf("Seeded = %v, %v; want false, nil", seeded, err)
	}
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, ports.ErrMirrorNotSeeded) {
			t.Errorf("%s: err = %v, want ErrMirrorNotSeeded", what, err)
		}
	}
	_, err = m.Status(ctx, id)
	check("Status", err)
	_, err = m.AvailableMitraIDs(ctx, at(-time.Hour))
	check("AvailableMitraIDs", err)
	_, err = m.CountMitras(ctx, at(-time.Hour))
	check("CountMitras", err)
	_, err = m.Heartbeat(ctx, id, at(time.Minute))
	check("Heartbeat", err)
	_, err = m.Heartbeats(ctx, at(-time.Hour))
	check("Heartbeats", err)
	_, err = m.RemoveStale(ctx, at(time.Hour), 10)
	check("RemoveStale", err)
}

func testUnseeded(t *testing.T, s Subject) {
	m := s.Mirror
	ids := newIDs(t, 2)
	checkNotSeeded(t, m, ids[0])

	// Writes are accepted before the seed (they are best-effort copies of the
	// store), but do not make the mirror seeded.
	put(t, m, mitra(ids[0], t0, 0, 1))
	mustDo(t, "Deactivate", m.Deactivate(ctxT(t), ids[1]))
	checkNotSeeded(t, m, ids[0])

	rep, err := m.Reseed(ctxT(t), []ports.MirrorMitra{mitra(ids[0], at(-time.Second), 0, 1)}, []string{ids[1]})
	mustDo(t, "Reseed", err)
	if rep.Total() != 0 || len(rep.IDs) != 0 {
		t.Errorf("Reseed of a mirror that already matches = %+v, want no correction", rep)
	}
	seeded, err := m.Seeded(ctxT(t))
	if err != nil || !seeded {
		t.Fatalf("Seeded after Reseed = %v, %v; want true", seeded, err)
	}
	checkOnline(t, m, want(ids[0], t0, 0, 1))
	checkOffline(t, m, ids[1], true)
	heartbeat(t, m, ids[0], at(time.Second), ports.HeartbeatRecorded)
}

func testFlush(t *testing.T, s Subject) {
	m := s.Mirror
	ids := newIDs(t, 3)
	seed(t, m)
	put(t, m, mitra(ids[0], t0, 0, 1))
	put(t, m, mitra(ids[1], t0, 1, 1))
	mustDo(t, "Deactivate", m.Deactivate(ctxT(t), ids[2]))
	mustDo(t, "SaveSnapshot", m.SaveSnapshot(ctxT(t), ports.Snapshot{AvailableMitras: 1, AsOf: t0}, time.Minute))

	s.Flush(t)
	checkNotSeeded(t, m, ids[0])
	if _, ok, err := m.LoadSnapshot(ctxT(t)); err != nil || ok {
		t.Errorf("LoadSnapshot after flush = ok %v, %v; want none", ok, err)
	}

	truth := []ports.MirrorMitra{mitra(ids[0], t0, 0, 1), mitra(ids[1], t0, 1, 1)}
	rep, err := m.Reseed(ctxT(t), truth, []string{ids[2]})
	mustDo(t, "Reseed", err)
	if rep.Added != 2 || rep.Removed != 0 || rep.Updated != 0 || rep.Deactivated != 1 || !slices.Equal(rep.IDs, ids) {
		t.Errorf("Reseed after flush = %+v, want Added 2, Deactivated 1, IDs %v", rep, ids)
	}
	checkOnline(t, m, want(ids[0], t0, 0, 1))
	checkOnline(t, m, want(ids[1], t0, 1, 1))
	checkOffline(t, m, ids[2], true)
	checkCounts(t, m, t0, ports.MitraCounts{Online: 2, Available: 1, Deactivated: 1})
}

func testPutOnlineOffline(t *testing.T, s Subject) {
	m := s.Mirror
	ids := newIDs(t, 2)
	seed(t, m)
	checkOffline(t, m, ids[0], false)

	put(t, m, mitra(ids[0], t0, 0, 2))
	checkOnline(t, m, want(ids[0], t0, 0, 2))
	checkOffline(t, m, ids[1], false)
	checkCounts(t, m, t0, ports.MitraCounts{Online: 1, Available: 1})

	// Full: online, not available.
	put(t, m, mitra(ids[1], t0, 2, 2))
	checkOnline(t, m, want(ids[1], t0, 2, 2))
	checkCounts(t, m, t0, ports.MitraCounts{Online: 2, Available: 1})

	mustDo(t, "PutOffline", m.PutOffline(ctxT(t), ids[0]))
	checkOffline(t, m, ids[0], false)
	mustDo(t, "PutOffline", m.PutOffline(ctxT(t), ids[1]))
	checkOffline(t, m, ids[1], false)
	checkCounts(t, m, t0, ports.MitraCounts{})
	// Offline again is not an error.
	mustDo(t, "PutOffline of an offline mitra", m.PutOffline(ctxT(t), ids[1]))
	heartbeat(t, m, ids[0], at(time.Second), ports.HeartbeatNotOnline)
}

func testPutOnlineKeepsLaterHeartbeat(t *testing.T, s Subject) {
	m := s.Mirror
	id := newID(t)
	seed(t, m)
	put(t, m, mitra(id, at(10*time.Second), 0, 1))
	put(t, m, mitra(id, at(5*time.Second), 1, 3))
	checkOnline(t, m, want(id, at(10*time.Second), 1, 3))
	put(t, m, mitra(id, at(20*time.Second), 3, 3))
	checkOnline(t, m, want(id, at(20*time.Second), 3, 3))
	checkCounts(t, m, t0, ports.MitraCounts{Online: 1})
}

func testHeartbeatOutcomes(t *testing.T, s Subject) {
	m := s.Mirror
	ids := newIDs(t, 2)
	seed(t, m)

	heartbeat(t, m, ids[0], t0, ports.HeartbeatNotOnline)
	checkOffline(t, m, ids[0], false) // a heartbeat never puts a mitra online

	put(t, m, mitra(ids[0], t0, 0, 1))
	heartbeat(t, m, ids[0], at(30*time.Second), ports.HeartbeatRecorded)
	checkOnline(t, m, want(ids[0], at(30*time.Second), 0, 1))

	mustDo(t, "Deactivate", m.Deactivate(ctxT(t), ids[0]))
	heartbeat(t, m, ids[0], at(40*time.Second), ports.HeartbeatDeactivated)
	checkOffline(t, m, ids[0], true)

	// Deactivated wins even over an online entry written after it.
	mustDo(t, "Deactivate", m.Deactivate(ctxT(t), ids[1]))
	put(t, m, mitra(ids[1], t0, 0, 1))
	heartbeat(t, m, ids[1], at(40*time.Second), ports.HeartbeatDeactivated)

	mustDo(t, "Reactivate", m.Reactivate(ctxT(t), ids[0]))
	heartbeat(t, m, ids[0], at(50*time.Second), ports.HeartbeatNotOnline)

	s.Flush(t)
	if _, err := m.Heartbeat(ctxT(t), ids[0], at(time.Minute)); !errors.Is(err, ports.ErrMirrorNotSeeded) {
		t.Errorf("Heartbeat after flush: err = %v, want ErrMirrorNotSeeded", err)
	}
}

func testHeartbeatNeverBackwards(t *testing.T, s Subject) {
	m := s.Mirror
	id := newID(t)
	seed(t, m)
	put(t, m, mitra(id, at(10*time.Second), 0, 1))
	heartbeat(t, m, id, at(5*time.Second), ports.HeartbeatRecorded)
	checkOnline(t, m, want(id, at(10*time.Second), 0, 1))
	heartbeat(t, m, id, at(12*time.Second), ports.HeartbeatRecorded)
	checkOnline(t, m, want(id, at(12*time.Second), 0, 1))
	heartbeat(t, m, id, at(11*time.Second), ports.HeartbeatRecorded)
	checkOnline(t, m, want(id, at(12*time.Second), 0, 1))
}

func testHeartbeatKeepsLoad(t *testing.T, s Subject) {
	m := s.Mirror
	ids := newIDs(t, 2)
	seed(t, m)
	put(t, m, mitra(ids[0], t0, 2, 2)) // full
	put(t, m, mitra(ids[1], t0, 1, 3)) // free
	heartbeat(t, m, ids[0], at(time.Minute), ports.HeartbeatRecorded)
	heartbeat(t, m, ids[1], at(time.Minute), ports.HeartbeatRecorded)
	checkOnline(t, m, want(ids[0], at(time.Minute), 2, 2))
	checkOnline(t, m, want(ids[1], at(time.Minute), 1, 3))
	checkMitras(t, "AvailableMitras", available(t, m, at(time.Minute)), []ports.MirrorMitra{want(ids[1], at(time.Minute), 1, 3)})
	checkCounts(t, m, at(time.Minute), ports.MitraCounts{Online: 2, Available: 1})
}

func testPrecision(t *testing.T, s Subject) {
	m := s.Mirror
	id := newID(t)
	seed(t, m)
	step := stored(t0) // 12:06:07.1 WIB in UTC
	if !step.Before(t0) || t0.Sub(step) >= Precision {
		t.Fatalf("bad reference time %v for %v", step, t0)
	}
	put(t, m, mitra(id, t0, 0, 1))
	checkOnline(t, m, want(id, t0, 0, 1))

	// Fresh for any freshSince in the same 100 ms step, stale from the next one.
	checkMitras(t, "AvailableMitras(same step)", available(t, m, step.Add(Precision-time.Nanosecond)), []ports.MirrorMitra{want(id, t0, 0, 1)})
	checkMitras(t, "AvailableMitras(next step)", available(t, m, step.Add(Precision)), nil)
	checkCounts(t, m, step.Add(Precision-time.Millisecond), ports.MitraCounts{Online: 1, Available: 1})
	checkCounts(t, m, step.Add(Precision), ports.MitraCounts{Online: 1})

	// A heartbeat within the same step changes nothing; one in the next step does.
	heartbeat(t, m, id, step.Add(50*time.Millisecond), ports.HeartbeatRecorded)
	checkOnline(t, m, want(id, step, 0, 1))
	heartbeat(t, m, id, step.Add(Precision+99*time.Millisecond), ports.HeartbeatRecorded)
	checkOnline(t, m, want(id, step.Add(Precision), 0, 1))

	// RemoveStale draws the same line as AvailableMitraIDs.
	got, err := m.RemoveStale(ctxT(t), step.Add(2*Precision-time.Nanosecond), 10)
	mustDo(t, "RemoveStale", err)
	checkMitras(t, "RemoveStale(same step)", got, nil)
	got, err = m.RemoveStale(ctxT(t), step.Add(2*Precision), 10)
	mustDo(t, "RemoveStale", err)
	checkMitras(t, "RemoveStale(next step)", got, []ports.MirrorMitra{want(id, step.Add(Precision), 0, 1)})
}

// testFarHeartbeats uses heartbeats centuries ahead and years back, with the
// largest load the API allows, so that a mirror that packs them into numbers
// must keep every digit.
func testFarHeartbeats(t *testing.T, s Subject) {
	m := s.Mirror
	ids := newIDs(t, 2)
	seed(t, m)
	far := time.Date(2700, time.December, 31, 23, 59, 58, 987654321, time.UTC)
	old := time.Date(2019, time.June, 1, 8, 0, 0, 55555555, time.FixedZone("X", -3*60*60))
	put(t, m, mitra(ids[0], far, 99, 100))
	put(t, m, mitra(ids[1], old, 100, 100))
	checkOnline(t, m, want(ids[0], far, 99, 100))
	checkOnline(t, m, want(ids[1], old, 100, 100))

	heartbeat(t, m, ids[0], far.Add(1100*time.Millisecond), ports.HeartbeatRecorded)
	checkOnline(t, m, want(ids[0], far.Add(1100*time.Millisecond), 99, 100))
	heartbeat(t, m, ids[1], old.Add(300*time.Millisecond), ports.HeartbeatRecorded)
	checkOnline(t, m, want(ids[1], old.Add(300*time.Millisecond), 100, 100))
	mustDo(t, "SetLoad", m.SetLoad(ctxT(t), ids[1], 7, 100, time.Time{}))
	checkOnline(t, m, want(ids[1], old.Add(300*time.Millisecond), 7, 100))

	checkMitras(t, "AvailableMitras(far)", available(t, m, far), []ports.MirrorMitra{want(ids[0], far.Add(1100*time.Millisecond), 99, 100)})
	checkCounts(t, m, old, ports.MitraCounts{Online: 2, Available: 2})
	got, err := m.RemoveStale(ctxT(t), old.Add(time.Second), 10)
	mustDo(t, "RemoveStale", err)
	checkMitras(t, "RemoveStale", got, []ports.MirrorMitra{want(ids[1], old.Add(300*time.Millisecond), 7, 100)})
}

func testDeactivate(t *testing.T, s Subject) {
	m := s.Mirror
	ids := newIDs(t, 3)
	seed(t, m)
	put(t, m, mitra(ids[0], t0, 0, 1)) // free
	put(t, m, mitra(ids[1], t0, 1, 1)) // full
	checkCounts(t, m, t0, ports.MitraCounts{Online: 2, Available: 1})

	mustDo(t, "Deactivate", m.Deactivate(ctxT(t), ids[0]))
	checkOffline(t, m, ids[0], true)
	checkCounts(t, m, t0, ports.MitraCounts{Online: 1, Deactivated: 1})
	checkMitras(t, "AvailableMitras", available(t, m, t0), nil)

	mustDo(t, "Deactivate", m.Deactivate(ctxT(t), ids[1]))
	checkOffline(t, m, ids[1], true)
	mustDo(t, "Deactivate offline", m.Deactivate(ctxT(t), ids[2]))
	mustDo(t, "Deactivate twice", m.Deactivate(ctxT(t), ids[2]))
	checkOffline(t, m, ids[2], true)
	checkCounts(t, m, t0, ports.MitraCounts{Deactivated: 3})
	hbs, err := m.Heartbeats(ctxT(t), at(-time.Hour))
	mustDo(t, "Heartbeats", err)
	checkMitras(t, "Heartbeats", hbs, nil)
}

// testDeactivateAtomic reads the status while Deactivate runs: no reader may
// see a mitra both online and deactivated, or neither before nor after.
func testDeactivateAtomic(t *testing.T, s Subject) {
	m := s.Mirror
	id := newID(t)
	seed(t, m)
	for round := range 20 {
		put(t, m, mitra(id, at(time.Duration(round)*time.Second), 0, 1))
		done := make(chan error, 1)
		go func() { done <- m.Deactivate(context.Background(), id) }()
		var finished bool
		for reads := 0; !finished || reads < 3; reads++ {
			select {
			case err := <-done:
				mustDo(t, "Deactivate", err)
				finished = true
			default:
			}
			st := status(t, m, id)
			if st.Online == st.Deactivated {
				t.Fatalf("round %d: Status during Deactivate = online %v, deactivated %v", round, st.Online, st.Deactivated)
			}
			if finished && (st.Online || !st.Deactivated) {
				t.Fatalf("round %d: Status after Deactivate = online %v, deactivated %v", round, st.Online, st.Deactivated)
			}
		}
		mustDo(t, "Reactivate", m.Reactivate(ctxT(t), id))
	}
}

func testReactivate(t *testing.T, s Subject) {
	m := s.Mirror
	ids := newIDs(t, 2)
	seed(t, m)
	put(t, m, mitra(ids[0], t0, 0, 1))
	mustDo(t, "Deactivate", m.Deactivate(ctxT(t), ids[0]))
	mustDo(t, "Deactivate", m.Deactivate(ctxT(t), ids[1]))
	checkCounts(t, m, t0, ports.MitraCounts{Deactivated: 2})

	mustDo(t, "Reactivate", m.Reactivate(ctxT(t), ids[0]))
	checkOffline(t, m, ids[0], false) // stays offline
	checkOffline(t, m, ids[1], true)
	checkCounts(t, m, t0, ports.MitraCounts{Deactivated: 1})
	heartbeat(t, m, ids[0], at(time.Second), ports.HeartbeatNotOnline)
	mustDo(t, "Reactivate an active mitra", m.Reactivate(ctxT(t), ids[0]))

	put(t, m, mitra(ids[0], at(2*time.Second), 0, 1))
	heartbeat(t, m, ids[0], at(3*time.Second), ports.HeartbeatRecorded)
	checkOnline(t, m, want(ids[0], at(3*time.Second), 0, 1))
}

func testSetLoad(t *testing.T, s Subject) {
	m := s.Mirror
	ids := newIDs(t, 2)
	seed(t, m)
	put(t, m, mitra(ids[0], t0, 0, 2))
	checkMitras(t, "AvailableMitras", available(t, m, t0), []ports.MirrorMitra{want(ids[0], t0, 0, 2)})

	mustDo(t, "SetLoad full", m.SetLoad(ctxT(t), ids[0], 2, 2, time.Time{}))
	checkOnline(t, m, want(ids[0], t0, 2, 2))
	checkMitras(t, "AvailableMitras when full", available(t, m, t0), nil)
	checkCounts(t, m, t0, ports.MitraCounts{Online: 1})

	mustDo(t, "SetLoad over capacity", m.SetLoad(ctxT(t), ids[0], 3, 2, time.Time{}))
	checkOnline(t, m, want(ids[0], t0, 3, 2))
	checkCounts(t, m, t0, ports.MitraCounts{Online: 1})

	mustDo(t, "SetLoad free", m.SetLoad(ctxT(t), ids[0], 1, 3, time.Time{}))
	checkOnline(t, m, want(ids[0], t0, 1, 3))
	checkMitras(t, "AvailableMitras when free", available(t, m, t0), []ports.MirrorMitra{want(ids[0], t0, 1, 3)})
	checkCounts(t, m, t0, ports.MitraCounts{Online: 1, Available: 1})

	// A mitra that is not online is left alone.
	mustDo(t, "SetLoad offline", m.SetLoad(ctxT(t), ids[1], 0, 5, time.Time{}))
	checkOffline(t, m, ids[1], false)
	mustDo(t, "Deactivate", m.Deactivate(ctxT(t), ids[1]))
	mustDo(t, "SetLoad deactivated", m.SetLoad(ctxT(t), ids[1], 0, 5, time.Time{}))
	checkOffline(t, m, ids[1], true)
	checkCounts(t, m, t0, ports.MitraCounts{Online: 1, Available: 1, Deactivated: 1})
	heartbeat(t, m, ids[0], at(time.Second), ports.HeartbeatRecorded)
	checkOnline(t, m, want(ids[0], at(time.Second), 1, 3))
}

func testCapacityZero(t *testing.T, s Subject) {
	m := s.Mirror
	ids := newIDs(t, 2)
	seed(t, m)
	put(t, m, mitra(ids[0], t0, 0, 0))
	put(t, m, mitra(ids[1], t0, 0, 1))
	checkOnline(t, m, want(ids[0], t0, 0, 0))
	checkMitras(t, "AvailableMitras", available(t, m, at(-time.Hour)), []ports.MirrorMitra{want(ids[1], t0, 0, 1)})
	mustDo(t, "SetLoad", m.SetLoad(ctxT(t), ids[1], 0, 0, time.Time{}))
	checkMitras(t, "AvailableMitras", available(t, m, at(-time.Hour)), nil)
	checkCounts(t, m, at(-time.Hour), ports.MitraCounts{Online: 2})

	// With no load at all, a heartbeat at the very start of staleBefore's
	// step is still not stale, and is in Heartbeats(since that step).
	hbs, err := m.Heartbeats(ctxT(t), stored(t0))
	mustDo(t, "Heartbeats", err)
	checkMitras(t, "Heartbeats", hbs, []ports.MirrorMitra{want(ids[0], t0, 0, 0), want(ids[1], t0, 0, 0)})
	got, err := m.RemoveStale(ctxT(t), stored(t0), 10)
	mustDo(t, "RemoveStale", err)
	checkMitras(t, "RemoveStale", got, nil)
	got, err = m.RemoveStale(ctxT(t), stored(t0).Add(Precision), 1)
	mustDo(t, "RemoveStale", err)
	if len(got) != 1 || got[0].Capacity != 0 || !got[0].LastHeartbeat.Equal(stored(t0)) {
		t.Errorf("RemoveStale(next step, 1) = %s, want one of the two", fmtMitras(got))
	}
}

func testAvailableAndCounts(t *testing.T, s Subject) {
	m := s.Mirror
	ids := newIDs(t, 7)
	seed(t, m)
	// Shuffled so that the order of the writes is not the order of the ids.
	fresh1, stale, full, fresh2, staleFull, deact, offline := ids[3], ids[0], ids[5], ids[1], ids[6], ids[2], ids[4]
	put(t, m, mitra(fresh1, t0, 0, 1))
	put(t, m, mitra(fresh2, at(time.Minute), 1, 3))
	put(t, m, mitra(stale, at(-time.Second), 0, 1))
	put(t, m, mitra(full, t0, 1, 1))
	put(t, m, mitra(staleFull, at(-time.Minute), 2, 2))
	put(t, m, mitra(deact, at(time.Minute), 0, 1))
	mustDo(t, "Deactivate", m.Deactivate(ctxT(t), deact))
	_ = offline

	checkMitras(t, "AvailableMitras(t0)", available(t, m, t0), []ports.MirrorMitra{
		want(fresh2, at(time.Minute), 1, 3), want(fresh1, t0, 0, 1),
	})
	checkCounts(t, m, t0, ports.MitraCounts{Online: 5, Available: 2, Deactivated: 1})
	checkMitras(t, "AvailableMitras(t0-1h)", available(t, m, at(-time.Hour)), []ports.MirrorMitra{
		want(stale, at(-time.Second), 0, 1), want(fresh2, at(time.Minute), 1, 3), want(fresh1, t0, 0, 1),
	})
	checkCounts(t, m, at(-time.Hour), ports.MitraCounts{Online: 5, Available: 3, Deactivated: 1})
	checkMitras(t, "AvailableMitras(t0+1h)", available(t, m, at(time.Hour)), nil)
	checkCounts(t, m, at(time.Hour), ports.MitraCounts{Online: 5, Deactivated: 1})
}

func testSnapshot(t *testing.T, s Subject) {
	m := s.Mirror
	if _, ok, err := m.LoadSnapshot(ctxT(t)); err != nil || ok {
		t.Fatalf("LoadSnapshot of a fresh mirror = ok %v, %v; want none", ok, err)
	}
	check := func(w ports.Snapshot) {
		t.Helper()
		got, ok, err := m.LoadSnapshot(ctxT(t))
		if err != nil || !ok {
			t.Fatalf("LoadSnapshot = ok %v, %v; want %+v", ok, err, w)
		}
		if got.AvailableMitras != w.AvailableMitras || !got.AsOf.Equal(w.AsOf) || got.AsOf.Location() != time.UTC {
			t.Errorf("LoadSnapshot = {%d %s}, want {%d %s} in UTC", got.AvailableMitras, got.AsOf.Format(time.RFC3339Nano),
				w.AvailableMitras, w.AsOf.UTC().Format(time.RFC3339Nano))
		}
	}
	// The snapshot keeps nanoseconds: it is not a heartbeat.
	mustDo(t, "SaveSnapshot", m.SaveSnapshot(ctxT(t), ports.Snapshot{AvailableMitras: 7, AsOf: t0}, time.Minute))
	check(ports.Snapshot{AvailableMitras: 7, AsOf: t0})
	mustDo(t, "SaveSnapshot", m.SaveSnapshot(ctxT(t), ports.Snapshot{AvailableMitras: 0, AsOf: at(time.Second)}, 300*time.Millisecond))
	check(ports.Snapshot{AvailableMitras: 0, AsOf: at(time.Second)})
	wait(t, s, 450*time.Millisecond)
	if got, ok, err := m.LoadSnapshot(ctxT(t)); err != nil || ok {
		t.Errorf("LoadSnapshot after its ttl = %+v ok %v, %v; want none", got, ok, err)
	}
}

func tryLock(t *testing.T, m ports.AvailabilityMirror, name string, ttl time.Duration, wantOK bool) func(context.Context) error {
	t.Helper()
	release, ok, err := m.TryLock(ctxT(t), name, ttl)
	if err != nil {
		t.Fatalf("TryLock(%s): %v", name, err)
	}
	if ok != wantOK {
		t.Fatalf("TryLock(%s) ok = %v, want %v", name, ok, wantOK)
	}
	if ok && release == nil {
		t.Fatalf("TryLock(%s) gave no release", name)
	}
	return release
}

func testLock(t *testing.T, s Subject) {
	m := s.Mirror
	rel := tryLock(t, m, "sweep", 10*time.Second, true)
	tryLock(t, m, "sweep", 10*time.Second, false)
	relOther := tryLock(t, m, "reseed", 10*time.Second, true)
	mustDo(t, "release", rel(ctxT(t)))
	rel2 := tryLock(t, m, "sweep", 10*time.Second, true)
	tryLock(t, m, "reseed", 10*time.Second, false) // untouched by the other release
	mustDo(t, "release twice", rel(ctxT(t)))       // not ours any more: a no-op
	tryLock(t, m, "sweep", 10*time.Second, false)
	mustDo(t, "release", rel2(ctxT(t)))
	mustDo(t, "release", relOther(ctxT(t)))
	tryLock(t, m, "reseed", 10*time.Second, true)
}

func testLockReleaseOnlyIfOwner(t *testing.T, s Subject) {
	m := s.Mirror
	relA := tryLock(t, m, "sweep", 300*time.Millisecond, true)
	wait(t, s, 450*time.Millisecond) // A's lock expired
	relB := tryLock(t, m, "sweep", 10*time.Second, true)
	mustDo(t, "stale release", relA(ctxT(t)))
	tryLock(t, m, "sweep", 10*time.Second, false) // B still holds it
	mustDo(t, "release", relB(ctxT(t)))
	tryLock(t, m, "sweep", 10*time.Second, true)
}

func testRemoveStale(t *testing.T, s Subject) {
	m := s.Mirror
	ids := newIDs(t, 5)
	seed(t, m)
	s1, s2, s3, f1, f2 := ids[4], ids[2], ids[0], ids[1], ids[3]
	put(t, m, mitra(s1, at(-30*time.Second), 0, 1)) // stale, free
	put(t, m, mitra(s2, at(-20*time.Second), 1, 1)) // stale, full
	put(t, m, mitra(s3, at(-10*time.Second), 0, 2)) // stale, free
	put(t, m, mitra(f1, t0, 0, 1))                  // fresh, free
	put(t, m, mitra(f2, at(time.Second), 2, 2))     // fresh, full

	got, err := m.RemoveStale(ctxT(t), t0, 0)
	mustDo(t, "RemoveStale(limit 0)", err)
	checkMitras(t, "RemoveStale(limit 0)", got, nil)
	checkCounts(t, m, t0, ports.MitraCounts{Online: 5, Available: 1})

	// Oldest first, across the free and the full set.
	got, err = m.RemoveStale(ctxT(t), t0, 2)
	mustDo(t, "RemoveStale", err)
	checkMitras(t, "RemoveStale(limit 2)", got, []ports.MirrorMitra{
		want(s1, at(-30*time.Second), 0, 1), want(s2, at(-20*time.Second), 1, 1),
	})
	checkOffline(t, m, s1, false)
	checkOffline(t, m, s2, false)
	checkOnline(t, m, want(s3, at(-10*time.Second), 0, 2))
	checkCounts(t, m, t0, ports.MitraCounts{Online: 3, Available: 1})

	got, err = m.RemoveStale(ctxT(t), t0, 10)
	mustDo(t, "RemoveStale", err)
	checkMitras(t, "RemoveStale(limit 10)", got, []ports.MirrorMitra{want(s3, at(-10*time.Second), 0, 2)})
	got, err = m.RemoveStale(ctxT(t), t0, 10)
	mustDo(t, "RemoveStale", err)
	checkMitras(t, "RemoveStale with none stale", got, nil)

	checkOnline(t, m, want(f1, t0, 0, 1))
	checkOnline(t, m, want(f2, at(time.Second), 2, 2))
	checkCounts(t, m, t0, ports.MitraCounts{Online: 2, Available: 1})
	heartbeat(t, m, s1, at(time.Minute), ports.HeartbeatNotOnline)
}

func testHeartbeats(t *testing.T, s Subject) {
	m := s.Mirror
	ids := newIDs(t, 4)
	seed(t, m)
	a, b, c, d := ids[2], ids[0], ids[3], ids[1]
	put(t, m, mitra(a, t0, 0, 1))              // free
	put(t, m, mitra(b, at(time.Second), 1, 1)) // full
	put(t, m, mitra(c, at(-time.Second), 0, 1))
	put(t, m, mitra(d, at(time.Minute), 0, 1))
	mustDo(t, "Deactivate", m.Deactivate(ctxT(t), d))

	got, err := m.Heartbeats(ctxT(t), t0)
	mustDo(t, "Heartbeats", err)
	checkMitras(t, "Heartbeats(t0)", got, []ports.MirrorMitra{want(b, at(time.Second), 1, 1), want(a, t0, 0, 1)})
	got, err = m.Heartbeats(ctxT(t), at(-time.Hour))
	mustDo(t, "Heartbeats", err)
	checkMitras(t, "Heartbeats(t0-1h)", got, []ports.MirrorMitra{
		want(b, at(time.Second), 1, 1), want(a, t0, 0, 1), want(c, at(-time.Second), 0, 1),
	})
	got, err = m.Heartbeats(ctxT(t), at(time.Hour))
	mustDo(t, "Heartbeats", err)
	checkMitras(t, "Heartbeats(t0+1h)", got, nil)
}

func testReseed(t *testing.T, s Subject) {
	m := s.Mirror
	ids := newIDs(t, 9)
	seed(t, m)
	keep, wrongLoad, gone, missing, nowDeact, wasDeact, fresher, older, stillDeact :=
		ids[0], ids[1], ids[2], ids[3], ids[4], ids[5], ids[6], ids[7], ids[8]
	ctx := ctxT(t)
	put(t, m, mitra(keep, t0, 0, 1))
	put(t, m, mitra(wrongLoad, t0, 0, 2))
	put(t, m, mitra(gone, t0, 0, 1))
	put(t, m, mitra(nowDeact, t0, 0, 1))
	mustDo(t, "Deactivate", m.Deactivate(ctx, wasDeact))
	mustDo(t, "Deactivate", m.Deactivate(ctx, stillDeact))
	put(t, m, mitra(fresher, at(30*time.Second), 1, 2))
	put(t, m, mitra(older, at(-30*time.Second), 1, 2))

	truth := []ports.MirrorMitra{
		mitra(keep, t0, 0, 1),
		mitra(wrongLoad, t0, 2, 2),
		mitra(missing, at(-time.Second), 0, 3),
		mitra(fresher, t0, 1, 2),
		mitra(older, t0, 1, 2),
	}
	truthDeact := []string{nowDeact, stillDeact}
	rep, err := m.Reseed(ctx, truth, truthDeact)
	mustDo(t, "Reseed", err)
	wantIDs := []string{wrongLoad, gone, missing, nowDeact, wasDeact, older}
	slices.Sort(wantIDs)
	if rep.Added != 1 || rep.Removed != 2 || rep.Updated != 2 || rep.Deactivated != 2 || rep.Total() != 7 || !slices.Equal(rep.IDs, wantIDs) {
		t.Errorf("Reseed = %+v\nwant Added 1, Removed 2, Updated 2, Deactivated 2, IDs %v", rep, wantIDs)
	}
	checkOnline(t, m, want(keep, t0, 0, 1))
	checkOnline(t, m, want(wrongLoad, t0, 2, 2))
	checkOffline(t, m, gone, false)
	checkOnline(t, m, want(missing, at(-time.Second), 0, 3))
	checkOffline(t, m, nowDeact, true)
	checkOffline(t, m, wasDeact, false)
	checkOffline(t, m, stillDeact, true)
	checkOnline(t, m, want(fresher, at(30*time.Second), 1, 2)) // the mirror's later heartbeat stays
	checkOnline(t, m, want(older, t0, 1, 2))                   // the store's later heartbeat wins
	checkCounts(t, m, at(-time.Second), ports.MitraCounts{Online: 5, Available: 4, Deactivated: 2})
	checkMitras(t, "AvailableMitras", available(t, m, t0), []ports.MirrorMitra{
		want(keep, t0, 0, 1), want(fresher, at(30*time.Second), 1, 2), want(older, t0, 1, 2),
	})

	// The same truth again: nothing to correct.
	rep, err = m.Reseed(ctx, truth, truthDeact)
	mustDo(t, "second Reseed", err)
	if rep.Total() != 0 || len(rep.IDs) != 0 {
		t.Errorf("second Reseed = %+v, want no correction", rep)
	}
	seeded, err := m.Seeded(ctx)
	if err != nil || !seeded {
		t.Errorf("Seeded = %v, %v; want true", seeded, err)
	}

	// An empty truth empties the mirror.
	rep, err = m.Reseed(ctx, nil, nil)
	mustDo(t, "Reseed(empty)", err)
	if rep.Added != 0 || rep.Removed != 5 || rep.Updated != 0 || rep.Deactivated != 2 || len(rep.IDs) != 7 {
		t.Errorf("Reseed(empty) = %+v, want Removed 5, Deactivated 2, 7 IDs", rep)
	}
	checkCounts(t, m, at(-time.Hour), ports.MitraCounts{})
}

func testReseedEmpty(t *testing.T, s Subject) {
	m := s.Mirror
	ids := newIDs(t, 4)
	truth := []ports.MirrorMitra{mitra(ids[0], t0, 0, 1), mitra(ids[1], t0, 1, 1), mitra(ids[2], at(-time.Hour), 0, 2)}
	rep, err := m.Reseed(ctxT(t), truth, []string{ids[3]})
	mustDo(t, "Reseed", err)
	if rep.Added != 3 || rep.Removed != 0 || rep.Updated != 0 || rep.Deactivated != 1 || !slices.Equal(rep.IDs, ids) {
		t.Errorf("Reseed = %+v, want Added 3, Deactivated 1, IDs %v", rep, ids)
	}
	checkCounts(t, m, t0, ports.MitraCounts{Online: 3, Available: 1, Deactivated: 1})
	checkOnline(t, m, want(ids[2], at(-time.Hour), 0, 2))
	checkOffline(t, m, ids[3], true)
}

// testReseedConcurrentHeartbeats records heartbeats while a reseed corrects
// the load of the same mitras: no heartbeat may be lost.
func testReseedConcurrentHeartbeats(t *testing.T, s Subject) {
	m := s.Mirror
	ids := newIDs(t, 300)
	var truth []ports.MirrorMitra
	for _, id := range ids {
		truth = append(truth, mitra(id, t0, 0, 2))
	}
	rep, err := m.Reseed(ctxT(t), truth, nil)
	mustDo(t, "Reseed", err)
	if rep.Added != len(ids) {
		t.Fatalf("Reseed = %+v, want Added %d", rep, len(ids))
	}
	for i := range truth {
		truth[i].OpenSessions = 2 // every mitra needs a correction
	}
	later := at(time.Minute)
	done := make(chan error, 1)
	go func() {
		_, err := m.Reseed(context.Background(), truth, nil)
		done <- err
	}()
	for _, id := range ids {
		heartbeat(t, m, id, later, ports.HeartbeatRecorded)
	}
	mustDo(t, "concurrent Reseed", <-done)
	hbs, err := m.Heartbeats(ctxT(t), at(-time.Hour))
	mustDo(t, "Heartbeats", err)
	var wantMs []ports.MirrorMitra
	for _, id := range ids {
		wantMs = append(wantMs, want(id, later, 2, 2))
	}
	checkMitras(t, "Heartbeats after a concurrent reseed", hbs, wantMs)
}

// testConcurrentHeartbeatsAndLoad races heartbeats with load changes of one
// mitra: the latest heartbeat and the final load survive.
func testConcurrentHeartbeatsAndLoad(t *testing.T, s Subject) {
	m := s.Mirror
	id := newID(t)
	seed(t, m)
	put(t, m, mitra(id, t0, 0, 2))
	const n = 40
	errs := make(chan error, 2*n)
	for i := range n {
		go func() {
			_, err := m.Heartbeat(context.Background(), id, at(time.Duration(i)*time.Second))
			errs <- err
		}()
		go func() {
			errs <- m.SetLoad(context.Background(), id, i%3, 2, time.Time{})
		}()
	}
	for range 2 * n {
		mustDo(t, "concurrent call", <-errs)
	}
	mustDo(t, "SetLoad", m.SetLoad(ctxT(t), id, 1, 2, time.Time{}))
	checkOnline(t, m, want(id, at((n-1)*time.Second), 1, 2))
	checkCounts(t, m, at((n-1)*time.Second), ports.MitraCounts{Online: 1, Available: 1})
}

// testConcurrentHeartbeatOutcomes sends many heartbeats at once, of a free,
// a full, an away, an offline and a deactivated mitra (an adapter may send
// concurrent heartbeats together): each gets its own outcome, and each online
// mitra keeps the latest heartbeat and its load.
func testConcurrentHeartbeatOutcomes(t *testing.T, s Subject) {
	m := s.Mirror
	ids := newIDs(t, 5)
	seed(t, m)
	put(t, m, mitra(ids[0], t0, 0, 2))
	put(t, m, mitra(ids[1], t0, 2, 2))
	away := mitra(ids[2], t0, 0, 2)
	away.Away = true
	put(t, m, away)
	mustDo(t, "Deactivate", m.Deactivate(ctxT(t), ids[4]))
	outcome := []ports.HeartbeatOutcome{ports.HeartbeatRecorded, ports.HeartbeatRecorded, ports.HeartbeatRecorded,
		ports.HeartbeatNotOnline, ports.HeartbeatDeactivated}
	const n = 300
	errs := make(chan error, n)
	for i := range n {
		go func() {
			id := ids[i%len(ids)]
			got, err := m.Heartbeat(context.Background(), id, at(time.Duration(i)*time.Second))
			if err == nil && got != outcome[i%len(ids)] {
				err = fmt.Errorf("heartbeat %d of mitra %d = %v, want %v", i, i%len(ids), got, outcome[i%len(ids)])
			}
			errs <- err
		}()
	}
	for range n {
		mustDo(t, "concurrent heartbeat", <-errs)
	}
	last := func(k int) time.Time { return at(time.Duration(n-len(ids)+k) * time.Second) }
	checkOnline(t, m, want(ids[0], last(0), 0, 2))
	checkOnline(t, m, want(ids[1], last(1), 2, 2))
	wantAway := want(ids[2], last(2), 0, 2)
	wantAway.Away = true
	checkOnline(t, m, wantAway)
	checkOffline(t, m, ids[3], false)
	checkOffline(t, m, ids[4], true)
}

func testCanceledContext(t *testing.T, s Subject) {
	m := s.Mirror
	id := newID(t)
	seed(t, m)
	put(t, m, mitra(id, t0, 0, 1))
	release := tryLock(t, m, "held", 10*time.Second, true)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls := map[string]func() error{
		"PutOnline":    func() error { return m.PutOnline(ctx, mitra(id, t0, 0, 1)) },
		"PutOffline":   func() error { return m.PutOffline(ctx, id) },
		"Deactivate":   func() error { return m.Deactivate(ctx, id) },
		"Reactivate":   func() error { return m.Reactivate(ctx, id) },
		"SetLoad":      func() error { return m.SetLoad(ctx, id, 0, 1, time.Time{}) },
		"Heartbeat":    func() error { _, err := m.Heartbeat(ctx, id, t0); return err },
		"Status":       func() error { _, err := m.Status(ctx, id); return err },
		"AvailableIDs": func() error { _, err := m.AvailableMitraIDs(ctx, t0); return err },
		"Count":        func() error { _, err := m.CountMitras(ctx, t0); return err },
		"Load":         func() error { _, _, err := m.LoadSnapshot(ctx); return err },
		"Save":         func() error { return m.SaveSnapshot(ctx, ports.Snapshot{AsOf: t0}, time.Minute) },
		"TryLock":      func() error { _, _, err := m.TryLock(ctx, "other", time.Minute); return err },
		"Release":      func() error { return release(ctx) },
		"RemoveStale":  func() error { _, err := m.RemoveStale(ctx, at(time.Hour), 10); return err },
		"Heartbeats":   func() error { _, err := m.Heartbeats(ctx, t0); return err },
		"Reseed":       func() error { _, err := m.Reseed(ctx, nil, nil); return err },
		"Seeded":       func() error { _, err := m.Seeded(ctx); return err },
		"Ping":         func() error { return m.Ping(ctx) },
	}
	for name, call := range calls {
		if err := call(); err == nil {
			t.Errorf("%s with a canceled context: no error", name)
		}
	}
	// Nothing was changed by the canceled calls.
	checkOnline(t, m, want(id, t0, 0, 1))
	tryLock(t, m, "held", time.Minute, false)
	if _, ok, err := m.LoadSnapshot(ctxT(t)); err != nil || ok {
		t.Errorf("LoadSnapshot = ok %v, %v; want none", ok, err)
	}
}

// checkAway asserts that id is online with the given away flag, in Status
// and in Heartbeats.
func checkAway(t *testing.T, m ports.AvailabilityMirror, id string, away bool) {
	t.Helper()
	st := status(t, m, id)
	if !st.Online || st.Mitra.Away != away {
		t.Errorf("Status(%s) = online %v away %v, want online, away %v", id, st.Online, st.Mitra.Away, away)
	}
	hbs, err := m.Heartbeats(ctxT(t), at(-24*time.Hour))
	mustDo(t, "Heartbeats", err)
	for _, x := range hbs {
		if x.ID == id && x.Away != away {
			t.Errorf("Heartbeats lists %s with away %v, want %v", id, x.Away, away)
		}
	}
}

// testAway: an away mitra is online, counted online, heartbeats, and is never
// available whatever its load, until it is put online again.
func testAway(t *testing.T, s Subject) {
	m := s.Mirror
	ids := newIDs(t, 2)
	seed(t, m)
	on, away := ids[0], ids[1]
	put(t, m, mitra(on, t0, 0, 2))
	awayM := mitra(away, t0, 0, 2)
	awayM.Away = true
	put(t, m, awayM)
	checkAway(t, m, away, true)
	checkAway(t, m, on, false)
	checkMitras(t, "AvailableMitras", available(t, m, at(-time.Hour)), []ports.MirrorMitra{want(on, t0, 0, 2)})
	checkCounts(t, m, at(-time.Hour), ports.MitraCounts{Online: 2, Available: 1})

	// A heartbeat and a load change keep it away.
	heartbeat(t, m, away, at(time.Second), ports.HeartbeatRecorded)
	mustDo(t, "SetLoad", m.SetLoad(ctxT(t), away, 0, 3, time.Time{}))
	checkAway(t, m, away, true)
	checkOnline(t, m, want(away, at(time.Second), 0, 3))
	checkMitras(t, "AvailableMitras after SetLoad", available(t, m, at(-time.Hour)), []ports.MirrorMitra{want(on, t0, 0, 2)})

	// Put online (not away), it is available again with its heartbeat.
	put(t, m, mitra(away, t0, 0, 3))
	checkAway(t, m, away, false)
	wantBoth := []ports.MirrorMitra{want(on, t0, 0, 2), want(away, at(time.Second), 0, 3)} // ids are ascending
	checkMitras(t, "AvailableMitras after online", available(t, m, at(-time.Hour)), wantBoth)
	checkCounts(t, m, at(-time.Hour), ports.MitraCounts{Online: 2, Available: 2})
}

// testAwayEndsOffline: going offline, a deactivation and the stale sweep
// forget away; a later PutOnline starts from not away.
func testAwayEndsOffline(t *testing.T, s Subject) {
	m := s.Mirror
	ids := newIDs(t, 3)
	seed(t, m)
	for _, id := range ids {
		mm := mitra(id, t0, 0, 1)
		mm.Away = true
		put(t, m, mm)
	}
	mustDo(t, "PutOffline", m.PutOffline(ctxT(t), ids[0]))
	mustDo(t, "Deactivate", m.Deactivate(ctxT(t), ids[1]))
	mustDo(t, "Reactivate", m.Reactivate(ctxT(t), ids[1]))
	removed, err := m.RemoveStale(ctxT(t), at(time.Hour), 10)
	mustDo(t, "RemoveStale", err)
	if len(removed) != 1 || removed[0].ID != ids[2] {
		t.Fatalf("RemoveStale = %s, want %s", fmtMitras(removed), ids[2])
	}
	for _, id := range ids {
		checkOffline(t, m, id, false)
		mustDo(t, "SetLoad of an offline mitra", m.SetLoad(ctxT(t), id, 0, 1, time.Time{}))
		put(t, m, mitra(id, at(time.Minute), 0, 1))
		checkAway(t, m, id, false)
	}
	if got := available(t, m, at(-time.Hour)); len(got) != 3 {
		t.Errorf("AvailableMitras = %s, want all three", fmtMitras(got))
	}
}

// testReseedAway: a reseed makes the away flags equal to the truth's, keeps
// an away mitra away, and reports what it corrected.
func testReseedAway(t *testing.T, s Subject) {
	m := s.Mirror
	ids := newIDs(t, 4)
	seed(t, m)
	stillAway, nowAway, noLongerAway, gone := ids[0], ids[1], ids[2], ids[3]
	for _, id := range []string{stillAway, noLongerAway, gone} {
		mm := mitra(id, t0, 0, 1)
		mm.Away = true
		put(t, m, mm)
	}
	put(t, m, mitra(nowAway, t0, 0, 1))

	truth := []ports.MirrorMitra{mitra(stillAway, t0, 0, 1), mitra(nowAway, t0, 0, 1), mitra(noLongerAway, t0, 0, 1)}
	truth[0].Away, truth[1].Away = true, true
	rep, err := m.Reseed(ctxT(t), truth, nil)
	mustDo(t, "Reseed", err)
	if rep.Updated != 2 || rep.Removed != 1 || rep.Added != 0 {
		t.Errorf("Reseed report = %+v, want 2 updated, 1 removed", rep)
	}
	checkAway(t, m, stillAway, true)
	checkAway(t, m, nowAway, true)
	checkAway(t, m, noLongerAway, false)
	checkOffline(t, m, gone, false)
	checkMitras(t, "AvailableMitras", available(t, m, at(-time.Hour)), []ports.MirrorMitra{want(noLongerAway, t0, 0, 1)})
	checkCounts(t, m, at(-time.Hour), ports.MitraCounts{Online: 3, Available: 1})
	// A load change after the reseed keeps them away.
	mustDo(t, "SetLoad", m.SetLoad(ctxT(t), nowAway, 0, 2, time.Time{}))
	checkAway(t, m, nowAway, true)

	// The same truth again corrects nothing.
	rep, err = m.Reseed(ctxT(t), truth, nil)
	mustDo(t, "Reseed", err)
	if rep.Updated != 1 || rep.Total() != 1 { // the load of nowAway, changed above
		t.Errorf("second Reseed report = %+v, want the one load correction", rep)
	}
	rep, err = m.Reseed(ctxT(t), truth, nil)
	mustDo(t, "Reseed", err)
	if rep.Total() != 0 {
		t.Errorf("third Reseed report = %+v, want nothing", rep)
	}
	checkAway(t, m, nowAway, true)
}
