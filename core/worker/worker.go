// Package worker runs a function periodically in a goroutine that its owner
// starts and stops (an fx lifecycle hook in the app).
//
// Start makes the loop's own cancellable context (the start context has a
// deadline and must not bound the loop's life). Stop cancels it and waits for
// the loop to return or for the stop context to end. After each run the timer
// is reset, so a long run still leaves a full interval before the next one.
// A wake-up (Wake) runs the function early, once, however often it is called.
package worker

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Loop calls its function repeatedly until stopped.
type Loop struct {
	name  string
	first time.Duration
	run   func(ctx context.Context) (next time.Duration)
	wake  chan struct{}

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// New returns a stopped loop that calls run every interval, the first time
// one interval after Start.
func New(name string, interval time.Duration, run func(ctx context.Context)) (*Loop, error) {
	if interval <= 0 {
		return nil, errors.New("worker " + name + ": interval must be positive")
	}
	return &Loop{name: name, first: interval, wake: make(chan struct{}, 1),
		run: func(ctx context.Context) time.Duration { run(ctx); return interval }}, nil
}

// NewPaced returns a stopped loop that calls run at once after Start and then
// again after the delay each run returns (at least a millisecond).
func NewPaced(name string, run func(ctx context.Context) (next time.Duration)) *Loop {
	return &Loop{name: name, first: 0, run: run, wake: make(chan struct{}, 1)}
}

// Name is the loop's name.
func (l *Loop) Name() string { return l.name }

// Start launches the loop.
func (l *Loop) Start(context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cancel != nil {
		return errors.New("worker " + l.name + ": already started")
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	l.done = make(chan struct{})
	go l.loop(ctx, l.done)
	return nil
}

// Wake asks for an early run; it never blocks.
func (l *Loop) Wake() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Stop cancels the loop and waits for it to return, or for ctx to end.
func (l *Loop) Stop(ctx context.Context) error {
	l.mu.Lock()
	cancel, done := l.cancel, l.done
	l.cancel, l.done = nil, nil
	l.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return errors.New("worker " + l.name + ": did not stop in time")
	}
}

func (l *Loop) loop(ctx context.Context, done chan struct{}) {
	defer close(done)
	t := time.NewTimer(l.first)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-l.wake:
			t.Stop() // Go ≥1.23 timers: no stale tick after Stop/Reset
		}
		next := l.run(ctx)
		if ctx.Err() != nil {
			return
		}
		t.Reset(max(next, time.Millisecond))
	}
}
