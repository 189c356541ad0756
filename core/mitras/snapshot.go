package mitras

import (
	"context"
	"sync"
	"time"
)

// snapshotCache holds one value for a TTL and lets concurrent misses share a
// single computation (a small singleflight).
type snapshotCache[T any] struct {
	mu      sync.Mutex
	val     T
	at      time.Time
	pending *call[T]
}

type call[T any] struct {
	done chan struct{}
	val  T
	err  error
}

func newSnapshotCache[T any]() *snapshotCache[T] { return &snapshotCache[T]{} }

// get returns the cached value while younger than ttl, otherwise computes it once.
func (c *snapshotCache[T]) get(ctx context.Context, now time.Time, ttl time.Duration, compute func(context.Context) (T, error)) (T, error) {
	if v, ok := c.peek(now, ttl); ok {
		return v, nil
	}
	return c.do(ctx, func(ctx context.Context) (T, error) {
		v, err := compute(ctx)
		if err == nil {
			c.mu.Lock()
			c.val, c.at = v, now
			c.mu.Unlock()
		}
		return v, err
	})
}

// peek returns the held value while younger than ttl.
func (c *snapshotCache[T]) peek(now time.Time, ttl time.Duration) (T, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.at.IsZero() && now.Sub(c.at) < ttl && !now.Before(c.at) {
		return c.val, true
	}
	var zero T
	return zero, false
}

// keep holds v, stamped at, unless a value stamped later is held already.
func (c *snapshotCache[T]) keep(v T, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if at.After(c.at) {
		c.val, c.at = v, at
	}
}

// do runs compute once for all concurrent callers.
func (c *snapshotCache[T]) do(ctx context.Context, compute func(context.Context) (T, error)) (T, error) {
	c.mu.Lock()
	if p := c.pending; p != nil {
		c.mu.Unlock()
		select {
		case <-p.done:
			return p.val, p.err
		case <-ctx.Done():
			var zero T
			return zero, ctx.Err()
		}
	}
	p := &call[T]{done: make(chan struct{})}
	c.pending = p
	c.mu.Unlock()

	p.val, p.err = compute(context.WithoutCancel(ctx))
	c.mu.Lock()
	c.pending = nil
	c.mu.Unlock()
	close(p.done)
	return p.val, p.err
}
