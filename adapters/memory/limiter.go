package memory

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/halobestie/mitra-availability/ports"
)

// Limiter is the per-instance ports.Limiter: the attempts of each key in a
// slice of times, pruned on every call. It serves CACHE_BACKEND=memory and
// none, and stands in for the Valkey limiter while Valkey is unreachable.
type Limiter struct {
	mu    sync.Mutex
	keys  map[string]*attempts
	calls int
}

type attempts struct {
	times  []time.Time // ascending
	window time.Duration
}

var _ ports.Limiter = (*Limiter)(nil)

// limiterSweepEvery is how many calls pass between sweeps of the keys whose
// attempts all left their window, so that the map does not grow without bound.
const limiterSweepEvery = 1024

// NewLimiter returns an empty limiter.
func NewLimiter() *Limiter { return &Limiter{keys: map[string]*attempts{}} }

// Take implements ports.Limiter.
func (l *Limiter) Take(_ context.Context, key string, now time.Time, limit int, window time.Duration) (time.Duration, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls++
	if l.calls%limiterSweepEvery == 0 {
		l.sweep(now)
	}
	a := l.keys[key]
	if a == nil {
		a = &attempts{}
		l.keys[key] = a
	}
	a.window = window
	a.prune(now)
	if n := len(a.times); n >= limit {
		return a.times[n-limit].Add(window).Sub(now), nil
	}
	i, _ := slices.BinarySearchFunc(a.times, now, func(t, now time.Time) int { return t.Compare(now) })
	for i < len(a.times) && !a.times[i].After(now) {
		i++
	}
	a.times = slices.Insert(a.times, i, now)
	return 0, nil
}

// Reset implements ports.Limiter.
func (l *Limiter) Reset(_ context.Context, key string) error {
	l.mu.Lock()
	delete(l.keys, key)
	l.mu.Unlock()
	return nil
}

// prune drops the attempts that left the window ending at now.
func (a *attempts) prune(now time.Time) {
	edge := now.Add(-a.window)
	i := 0
	for i < len(a.times) && !a.times[i].After(edge) {
		i++
	}
	a.times = a.times[i:]
}

func (l *Limiter) sweep(now time.Time) {
	for k, a := range l.keys {
		if a.prune(now); len(a.times) == 0 {
			delete(l.keys, k)
		}
	}
}
