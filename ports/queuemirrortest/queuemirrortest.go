// Package queuemirrortest is the contract suite of ports.QueueMirror. Every
// adapter's tests run it (memory, Valkey over miniredis, a real Valkey or
// Redis server), so what core sees from one queue mirror it sees from any
// other.
//
// Times carry nanoseconds and a non-UTC zone; a mirror gives queued_at back
// in UTC at microsecond precision (the store's), and compares match times at
// millisecond precision.
package queuemirrortest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/ports"
)

// Subject is one fresh, empty, unseeded queue mirror and the means to lose
// its data.
type Subject struct {
	Mirror ports.QueueMirror
	// Flush loses every key of this mirror, the seeded marker included. Required.
	Flush func(t *testing.T)
}

// Factory returns a fresh subject for one test and registers its cleanup with t.
type Factory func(t *testing.T) Subject

// Run runs every test of the contract as a parallel subtest.
func Run(t *testing.T, f Factory) {
	tests := []struct {
		name string
		fn   func(t *testing.T, m ports.QueueMirror, s Subject)
	}{
		{"Unseeded", testUnseeded},
		{"OrderAndRank", testOrderAndRank},
		{"Leave", testLeave},
		{"LateWritesIgnored", testLateWrites},
		{"Matches", testMatches},
		{"Reseed", testReseed},
		{"ReseedRespectsLaterWrites", testReseedLaterWrites},
		{"Flush", testFlush},
		{"ConcurrentJoins", testConcurrentJoins},
		{"CanceledContext", testCanceledContext},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := f(t)
			tc.fn(t, s.Mirror, s)
		})
	}
}

// t0 is the suite's reference time: not UTC, with nanoseconds.
var t0 = time.Date(2031, time.March, 4, 12, 6, 7, 123456789, time.FixedZone("WIB", 7*60*60))

func at(d time.Duration) time.Time { return t0.Add(d) }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

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

// member is a new session's member queued at at(d) with seq and priority 0.
func member(t *testing.T, d time.Duration, seq int64) ports.QueueMember {
	return ports.QueueMember{ID: newID(t), QueuedAt: at(d), Seq: seq}
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func seed(t *testing.T, m ports.QueueMirror) {
	t.Helper()
	n, err := m.QueueReseed(ctxT(t), ports.QueueTruth{MatchedSince: at(-time.Hour)})
	if err != nil || n != 0 {
		t.Fatalf("seeding an empty mirror: %d corrections, %v", n, err)
	}
}

func join(t *testing.T, m ports.QueueMirror, x ports.QueueMember) {
	t.Helper()
	must(t, "QueueJoin", m.QueueJoin(ctxT(t), x))
}

func leave(t *testing.T, m ports.QueueMirror, x ports.QueueMember) {
	t.Helper()
	must(t, "QueueLeave", m.QueueLeave(ctxT(t), x))
}

func figures(t *testing.T, m ports.QueueMirror, of *ports.QueueMember) ports.QueueFigures {
	t.Helper()
	f, err := m.QueueFigures(ctxT(t), of, at(-time.Hour))
	if err != nil {
		t.Fatalf("QueueFigures: %v", err)
	}
	return f
}

// checkRank asserts that x is found with ahead members before it.
func checkRank(t *testing.T, m ports.QueueMirror, x ports.QueueMember, ahead int) {
	t.Helper()
	f := figures(t, m, &x)
	if !f.Found || f.Ahead != ahead {
		t.Errorf("rank of %s (queued %v, seq %d, priority %d) = found %v ahead %d, want found, %d ahead",
			x.ID, x.QueuedAt, x.Seq, x.Priority, f.Found, f.Ahead, ahead)
	}
}

func checkAbsent(t *testing.T, m ports.QueueMirror, x ports.QueueMember) {
	t.Helper()
	if f := figures(t, m, &x); f.Found {
		t.Errorf("%s (version %d) is in the mirror, %d ahead; want absent", x.ID, x.Version, f.Ahead)
	}
}

// checkLength asserts the length and the oldest queued_at (zero: none).
func checkLength(t *testing.T, m ports.QueueMirror, n int, oldest time.Time) {
	t.Helper()
	f := figures(t, m, nil)
	if f.Found || f.Ahead != 0 {
		t.Errorf("figures without a member = found %v ahead %d, want neither", f.Found, f.Ahead)
	}
	if f.Waiting != n {
		t.Errorf("waiting = %d, want %d", f.Waiting, n)
	}
	want := oldest.UTC().Truncate(time.Microsecond)
	switch {
	case oldest.IsZero() && f.OldestQueuedAt != nil:
		t.Errorf("oldest = %v, want nil", *f.OldestQueuedAt)
	case !oldest.IsZero() && (f.OldestQueuedAt == nil || !f.OldestQueuedAt.Equal(want) || f.OldestQueuedAt.Location() != time.UTC):
		t.Errorf("oldest = %v, want %v (UTC, µs)", f.OldestQueuedAt, want)
	}
}

func testUnseeded(t *testing.T, m ports.QueueMirror, _ Subject) {
	x := member(t, 0, 1)
	if _, err := m.QueueFigures(ctxT(t), &x, t0); !errors.Is(err, ports.ErrMirrorNotSeeded) {
		t.Errorf("QueueFigures before the seed: %v, want ErrMirrorNotSeeded", err)
	}
	// Writes before the seed are taken (the reseed corrects them).
	join(t, m, x)
	if _, err := m.QueueFigures(ctxT(t), nil, t0); !errors.Is(err, ports.ErrMirrorNotSeeded) {
		t.Errorf("QueueFigures after a join but before the seed: %v, want ErrMirrorNotSeeded", err)
	}
	n, err := m.QueueReseed(ctxT(t), ports.QueueTruth{Waiting: []ports.QueueMember{x}, MatchedSince: t0})
	if err != nil || n != 0 {
		t.Fatalf("QueueReseed of what the mirror holds = %d, %v; want 0 corrections", n, err)
	}
	checkRank(t, m, x, 0)
}

// testOrderAndRank: the queue's order is the key (priority descending,
// queued_at, seq), whatever the order of the joins.
func testOrderAndRank(t *testing.T, m ports.QueueMirror, _ Subject) {
	seed(t, m)
	checkLength(t, m, 0, time.Time{})
	late := member(t, 2*time.Second, 5)
	first := member(t, time.Second, 3)
	sameInstant := member(t, time.Second, 4)         // after first by seq
	sub := member(t, time.Second+time.Nanosecond, 2) // same microsecond as first: seq decides
	urgent := member(t, 5*time.Second, 9)
	urgent.Priority = 1
	urgent2 := member(t, 6*time.Second, 1)
	urgent2.Priority = 1
	bigSeq := member(t, 3*time.Second, 1<<40)
	for _, x := range []ports.QueueMember{late, bigSeq, sameInstant, urgent2, first, sub, urgent} {
		join(t, m, x)
	}
	order := []ports.QueueMember{urgent, urgent2, sub, first, sameInstant, late, bigSeq}
	for i, x := range order {
		checkRank(t, m, x, i)
	}
	// The oldest is the least queued_at over every priority class, not the head.
	checkLength(t, m, len(order), at(time.Second))
	// A member never joined, or asked with another key, is not found.
	checkAbsent(t, m, member(t, 0, 1))
	other := first
	other.Seq++
	checkAbsent(t, m, other)
	// A repeated join (same version) changes nothing.
	join(t, m, first)
	checkLength(t, m, len(order), at(time.Second))
}

func testLeave(t *testing.T, m ports.QueueMirror, _ Subject) {
	seed(t, m)
	a, b, c := member(t, 0, 1), member(t, time.Second, 2), member(t, 2*time.Second, 3)
	join(t, m, a)
	join(t, m, b)
	join(t, m, c)
	leave(t, m, a) // dispatched, version 0
	checkAbsent(t, m, a)
	checkRank(t, m, b, 0)
	checkRank(t, m, c, 1)
	checkLength(t, m, 2, at(time.Second))
	cf := c
	cf.Version = ports.QueueVersionFinal // cancelled
	leave(t, m, cf)
	checkLength(t, m, 1, at(time.Second))
	leave(t, m, cf)              // a repeated leave changes nothing
	leave(t, m, member(t, 0, 7)) // a leave of a member never joined changes nothing
	checkLength(t, m, 1, at(time.Second))
}

// testLateWrites: a write that arrives after a newer one of the same session
// is ignored; a decline by all (a larger version) joins again.
func testLateWrites(t *testing.T, m ports.QueueMirror, _ Subject) {
	seed(t, m)
	head := member(t, -time.Second, 1)
	join(t, m, head)

	// The dispatch's leave arrives before the join's add.
	a := member(t, 0, 2)
	leave(t, m, a)
	join(t, m, a)
	checkAbsent(t, m, a)

	// Join, leave (dispatch), then the same join again (a late retry).
	b := member(t, time.Second, 3)
	join(t, m, b)
	leave(t, m, b)
	join(t, m, b)
	checkAbsent(t, m, b)

	// Every mitra declined it: it joins again at its key, version 1.
	b1 := b
	b1.Version = 1
	join(t, m, b1)
	checkRank(t, m, b1, 1)
	leave(t, m, b) // the first dispatch's leave, late: ignored
	checkRank(t, m, b1, 1)
	join(t, m, b) // the first join, late: already there, nothing changes
	checkLength(t, m, 2, at(-time.Second))

	// A final leave beats every later write.
	bf := b
	bf.Version = ports.QueueVersionFinal
	leave(t, m, bf)
	b9 := b
	b9.Version = 9
	join(t, m, b9)
	checkAbsent(t, m, b9)
	checkLength(t, m, 1, at(-time.Second))
}

func testMatches(t *testing.T, m ports.QueueMirror, _ Subject) {
	seed(t, m)
	count := func(since time.Time) int {
		t.Helper()
		f, err := m.QueueFigures(ctxT(t), nil, since)
		if err != nil {
			t.Fatalf("QueueFigures: %v", err)
		}
		return f.MatchedSince
	}
	a, b, c := newID(t), newID(t), newID(t)
	must(t, "QueueMatched", m.QueueMatched(ctxT(t), a, at(0), at(-time.Hour)))
	must(t, "QueueMatched", m.QueueMatched(ctxT(t), b, at(time.Minute), at(-time.Hour)))
	must(t, "QueueMatched", m.QueueMatched(ctxT(t), b, at(time.Minute), at(-time.Hour))) // repeated: counted once
	if n := count(at(-time.Second)); n != 2 {
		t.Errorf("matched since -1s = %d, want 2", n)
	}
	if n := count(at(0)); n != 2 {
		t.Errorf("matched since the first match = %d, want 2 (at or after)", n)
	}
	if n := count(at(time.Millisecond)); n != 1 {
		t.Errorf("matched since +1ms = %d, want 1", n)
	}
	if n := count(at(time.Hour)); n != 0 {
		t.Errorf("matched since +1h = %d, want 0", n)
	}
	// A later match forgets those before its forgetBefore.
	must(t, "QueueMatched", m.QueueMatched(ctxT(t), c, at(20*time.Minute), at(30*time.Second)))
	if n := count(at(-time.Hour)); n != 2 {
		t.Errorf("matched since -1h after forgetting before +30s = %d, want 2", n)
	}
}

func testReseed(t *testing.T, m ports.QueueMirror, _ Subject) {
	seed(t, m)
	a, b, c, ghost := member(t, 0, 1), member(t, time.Second, 2), member(t, 2*time.Second, 3), member(t, -time.Minute, 4)
	join(t, m, a)
	join(t, m, ghost)
	matched := newID(t)
	n, err := m.QueueReseed(ctxT(t), ports.QueueTruth{
		Waiting:      []ports.QueueMember{a, b, c},
		Matched:      []ports.QueueMatch{{ID: matched, At: at(-time.Minute)}, {ID: newID(t), At: at(-2 * time.Hour)}},
		MatchedSince: at(-time.Hour),
	})
	if err != nil || n != 3 {
		t.Fatalf("QueueReseed = %d, %v; want 3 corrections (b and c added, the ghost removed)", n, err)
	}
	checkAbsent(t, m, ghost)
	checkRank(t, m, a, 0)
	checkRank(t, m, b, 1)
	checkRank(t, m, c, 2)
	checkLength(t, m, 3, at(0))
	if f, _ := m.QueueFigures(ctxT(t), nil, at(-3*time.Hour)); f.MatchedSince != 1 {
		t.Errorf("matches after the reseed = %d, want 1 (the one before MatchedSince forgotten)", f.MatchedSince)
	}
	// The removed ghost may join again: the reseed forgot its version.
	join(t, m, ghost)
	checkRank(t, m, ghost, 0)
	// A reseed with nothing to correct changes nothing.
	n, err = m.QueueReseed(ctxT(t), ports.QueueTruth{Waiting: []ports.QueueMember{ghost, a, b, c}, MatchedSince: at(-time.Hour)})
	if err != nil || n != 0 {
		t.Errorf("a second reseed = %d, %v; want 0 corrections", n, err)
	}
}

// testReseedLaterWrites: a reseed computed from a truth read before a
// dispatch committed does not put the dispatched session back.
func testReseedLaterWrites(t *testing.T, m ports.QueueMirror, _ Subject) {
	seed(t, m)
	a, b := member(t, 0, 1), member(t, time.Second, 2)
	join(t, m, a)
	join(t, m, b)
	leave(t, m, a) // dispatched after the reseed read the truth
	b1 := b
	b1.Version = 2
	leave(t, m, b)
	join(t, m, b1) // declined by all twice after the truth was read
	n, err := m.QueueReseed(ctxT(t), ports.QueueTruth{Waiting: []ports.QueueMember{a, b}, MatchedSince: at(-time.Hour)})
	if err != nil || n != 0 {
		t.Errorf("QueueReseed from an older truth = %d, %v; want 0 corrections", n, err)
	}
	checkAbsent(t, m, a)
	checkRank(t, m, b1, 0)
	checkLength(t, m, 1, at(time.Second))
}

func testFlush(t *testing.T, m ports.QueueMirror, s Subject) {
	seed(t, m)
	a := member(t, 0, 1)
	join(t, m, a)
	must(t, "QueueMatched", m.QueueMatched(ctxT(t), newID(t), at(0), at(-time.Hour)))
	s.Flush(t)
	if _, err := m.QueueFigures(ctxT(t), &a, t0); !errors.Is(err, ports.ErrMirrorNotSeeded) {
		t.Errorf("QueueFigures after a flush: %v, want ErrMirrorNotSeeded", err)
	}
	n, err := m.QueueReseed(ctxT(t), ports.QueueTruth{Waiting: []ports.QueueMember{a}, MatchedSince: at(-time.Hour)})
	if err != nil || n != 1 {
		t.Fatalf("QueueReseed after a flush = %d, %v; want 1", n, err)
	}
	checkRank(t, m, a, 0)
	if f := figures(t, m, nil); f.MatchedSince != 0 {
		t.Errorf("matches after a flush and an empty reseed = %d, want 0", f.MatchedSince)
	}
}

// testConcurrentJoins: joins and leaves racing from many goroutines leave
// exactly the members that were not removed.
func testConcurrentJoins(t *testing.T, m ports.QueueMirror, _ Subject) {
	seed(t, m)
	const n = 40
	xs := make([]ports.QueueMember, n)
	for i := range xs {
		xs[i] = member(t, time.Duration(i)*time.Millisecond, int64(i+1))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	ctx := ctxT(t)
	for i := range xs {
		wg.Go(func() {
			if err := m.QueueJoin(ctx, xs[i]); err != nil {
				errs <- err
				return
			}
			if i%2 == 1 {
				errs <- m.QueueLeave(ctx, xs[i])
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n; i += 2 {
		checkRank(t, m, xs[i], i/2)
	}
	checkLength(t, m, n/2, at(0))
}

func testCanceledContext(t *testing.T, m ports.QueueMirror, _ Subject) {
	seed(t, m)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	x := member(t, 0, 1)
	calls := map[string]func() error{
		"QueueJoin":    func() error { return m.QueueJoin(ctx, x) },
		"QueueLeave":   func() error { return m.QueueLeave(ctx, x) },
		"QueueMatched": func() error { return m.QueueMatched(ctx, x.ID, t0, t0) },
		"QueueFigures": func() error { _, err := m.QueueFigures(ctx, &x, t0); return err },
		"QueueReseed":  func() error { _, err := m.QueueReseed(ctx, ports.QueueTruth{}); return err },
	}
	for name, call := range calls {
		if err := call(); err == nil {
			t.Errorf("%s with a canceled context: no error", name)
		}
	}
}
