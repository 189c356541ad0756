// Package limitertest is the contract suite of ports.Limiter: every adapter
// (memory, Valkey on miniredis, Valkey on a real server) runs it.
package limitertest

import (
	"crypto/rand"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/ports"
)

// Factory returns a fresh limiter for one test; it registers any cleanup with t.
type Factory func(t *testing.T) ports.Limiter

// t0 carries milliseconds and nanoseconds: adapters may keep milliseconds only.
var t0 = time.Date(2031, time.March, 4, 12, 6, 7, 123456789, time.UTC)

func newKey() string { return "test:" + rand.Text() }

// Run runs the suite.
func Run(t *testing.T, f Factory) {
	t.Run("CountsUpToTheLimit", func(t *testing.T) {
		t.Parallel()
		l, key := f(t), newKey()
		window := 15 * time.Minute
		for i := range 5 {
			ra, err := l.Take(t.Context(), key, t0.Add(time.Duration(i)*time.Second), 5, window)
			if err != nil || ra != 0 {
				t.Fatalf("attempt %d: retryAfter %v, err %v; want counted", i+1, ra, err)
			}
		}
		// The 6th is refused until the first attempt (t0) leaves the window.
		now := t0.Add(10 * time.Second)
		ra, err := l.Take(t.Context(), key, now, 5, window)
		if err != nil {
			t.Fatal(err)
		}
		if want := t0.Add(window).Sub(now); !near(ra, want) {
			t.Fatalf("retryAfter = %v, want %v", ra, want)
		}
		// Refused attempts are not counted: the answer is the same later on.
		ra2, err := l.Take(t.Context(), key, now.Add(time.Minute), 5, window)
		if err != nil || !near(ra2, ra-time.Minute) {
			t.Fatalf("second refusal: retryAfter %v, err %v; want %v", ra2, err, ra-time.Minute)
		}
	})

	t.Run("SlidingWindow", func(t *testing.T) {
		t.Parallel()
		l, key := f(t), newKey()
		window := time.Minute
		for _, d := range []time.Duration{0, 10 * time.Second, 20 * time.Second} {
			if ra, err := l.Take(t.Context(), key, t0.Add(d), 3, window); err != nil || ra != 0 {
				t.Fatalf("attempt at +%v: %v, %v", d, ra, err)
			}
		}
		// Just before t0 leaves the window: refused, for the rest of that millisecond-rounded time.
		if ra, err := l.Take(t.Context(), key, t0.Add(window-time.Second), 3, window); err != nil || !near(ra, time.Second) {
			t.Fatalf("at window-1s: retryAfter %v, err %v; want 1s", ra, err)
		}
		// Once t0 left, one more is counted, and then the next refusal waits for +10s to leave.
		at := t0.Add(window)
		if ra, err := l.Take(t.Context(), key, at, 3, window); err != nil || ra != 0 {
			t.Fatalf("at window: retryAfter %v, err %v; want counted", ra, err)
		}
		if ra, err := l.Take(t.Context(), key, at, 3, window); err != nil || !near(ra, 10*time.Second) {
			t.Fatalf("after the slide: retryAfter %v, err %v; want 10s", ra, err)
		}
	})

	t.Run("ResetClears", func(t *testing.T) {
		t.Parallel()
		l, key := f(t), newKey()
		for range 2 {
			if _, err := l.Take(t.Context(), key, t0, 2, time.Hour); err != nil {
				t.Fatal(err)
			}
		}
		if ra, _ := l.Take(t.Context(), key, t0, 2, time.Hour); ra <= 0 {
			t.Fatalf("third attempt counted; want refused")
		}
		if err := l.Reset(t.Context(), key); err != nil {
			t.Fatal(err)
		}
		if ra, err := l.Take(t.Context(), key, t0, 2, time.Hour); err != nil || ra != 0 {
			t.Fatalf("after Reset: retryAfter %v, err %v; want counted", ra, err)
		}
		if err := l.Reset(t.Context(), newKey()); err != nil {
			t.Fatalf("Reset of an unknown key: %v", err)
		}
	})

	t.Run("KeysAreIndependent", func(t *testing.T) {
		t.Parallel()
		l := f(t)
		a, b := newKey(), newKey()
		if _, err := l.Take(t.Context(), a, t0, 1, time.Hour); err != nil {
			t.Fatal(err)
		}
		if ra, _ := l.Take(t.Context(), a, t0, 1, time.Hour); ra <= 0 {
			t.Fatal("second attempt of a counted; want refused")
		}
		if ra, err := l.Take(t.Context(), b, t0, 1, time.Hour); err != nil || ra != 0 {
			t.Fatalf("first attempt of b: %v, %v; want counted", ra, err)
		}
	})

	t.Run("SameInstantAttemptsAllCount", func(t *testing.T) {
		t.Parallel()
		l, key := f(t), newKey()
		for i := range 4 {
			if ra, err := l.Take(t.Context(), key, t0, 4, time.Hour); err != nil || ra != 0 {
				t.Fatalf("attempt %d at the same instant: %v, %v", i+1, ra, err)
			}
		}
		if ra, _ := l.Take(t.Context(), key, t0, 4, time.Hour); !near(ra, time.Hour) {
			t.Fatalf("5th at the same instant: retryAfter %v, want 1h", ra)
		}
	})

	// Exactly limit of any number of concurrent attempts are counted.
	t.Run("ConcurrentAttempts", func(t *testing.T) {
		t.Parallel()
		l, key := f(t), newKey()
		const limit, attempts = 5, 40
		var counted atomic.Int32
		var wg sync.WaitGroup
		errs := make(chan error, attempts)
		for i := range attempts {
			wg.Go(func() {
				ra, err := l.Take(t.Context(), key, t0.Add(time.Duration(i)*time.Millisecond), limit, time.Hour)
				if err != nil {
					errs <- fmt.Errorf("attempt %d: %w", i, err)
					return
				}
				if ra == 0 {
					counted.Add(1)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if n := counted.Load(); n != limit {
			t.Fatalf("%d of %d concurrent attempts counted, want exactly %d", n, attempts, limit)
		}
	})
}

// near compares durations to the millisecond, the precision of the Valkey adapter.
func near(got, want time.Duration) bool {
	d := got - want
	return d > -2*time.Millisecond && d < 2*time.Millisecond
}
