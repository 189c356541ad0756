// Package eventbus holds the implementations of ports.EventBus: Memory, an
// in-process fan-out for a single instance, and Valkey, which carries events
// between instances over a Valkey (or Redis) pub/sub channel.
//
// Both call their subscribers synchronously, on the goroutine that delivers
// the event (the publisher's for local events, the subscription loop's for
// events of other instances). A handler must therefore be quick and must
// never block: the WebSocket hub's handler only puts the payload into each
// connection's buffered queue without waiting.
package eventbus

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/halobestie/mitra-availability/ports"
)

// Memory is a ports.EventBus for one process: Publish calls every current
// subscriber before it returns. It is safe for concurrent use; the zero value
// is not usable, call NewMemory.
//
// Publishing does not hold any lock while handlers run, so a handler may
// subscribe, unsubscribe (itself included) or publish without deadlocking.
type Memory struct {
	mu   sync.Mutex                      // serializes changes to subs
	subs atomic.Pointer[[]*subscription] // copy-on-write list read by Publish
}

var _ ports.EventBus = (*Memory)(nil)

// subscription is one Subscribe call.
type subscription struct {
	handler func(ports.Event)
	active  atomic.Bool
}

// NewMemory returns an empty in-process bus.
func NewMemory() *Memory {
	m := &Memory{}
	m.subs.Store(&[]*subscription{})
	return m
}

// Publish validates e and calls every subscriber with it, in subscription
// order, before returning. ctx is not consulted: delivery is in-process and
// immediate, and an event for a state change that already happened must not
// be lost because the caller's request was cancelled.
//
// The only error is a Payload that is not valid JSON, in which case nobody
// gets the event. Handlers share e and must not modify it.
func (m *Memory) Publish(_ context.Context, e ports.Event) error {
	if err := validate(e); err != nil {
		return err
	}
	m.deliver(e)
	return nil
}

// deliver calls the handlers subscribed now. A handler unsubscribed while
// deliver runs is skipped if deliver has not reached it yet.
func (m *Memory) deliver(e ports.Event) {
	for _, s := range *m.subs.Load() {
		if s.active.Load() {
			s.handler(e)
		}
	}
}

// Subscribe registers handler for every event published from now on, until
// the returned function is called. The function may be called more than once
// and from inside a handler. Once it returns, no Publish that starts later
// calls handler; a Publish already running on another goroutine may still be
// calling it, so handlers must tolerate one late call.
// handler must not block (see the package documentation).
func (m *Memory) Subscribe(handler func(ports.Event)) (unsubscribe func()) {
	s := &subscription{handler: handler}
	s.active.Store(true)

	m.mu.Lock()
	old := *m.subs.Load()
	next := make([]*subscription, 0, len(old)+1)
	next = append(next, old...)
	next = append(next, s)
	m.subs.Store(&next)
	m.mu.Unlock()

	var once sync.Once
	return func() {
		once.Do(func() { m.remove(s) })
	}
}

// remove deactivates s and drops it from the list.
func (m *Memory) remove(s *subscription) {
	s.active.Store(false)
	m.mu.Lock()
	defer m.mu.Unlock()
	old := *m.subs.Load()
	next := make([]*subscription, 0, len(old))
	for _, o := range old {
		if o != s {
			next = append(next, o)
		}
	}
	m.subs.Store(&next)
}

// validate rejects an event whose payload is not valid JSON: every WebSocket
// client would otherwise get a frame it cannot parse.
func validate(e ports.Event) error {
	if !json.Valid(e.Payload) {
		return fmt.Errorf("eventbus: event %q: payload is not valid JSON", e.Type)
	}
	return nil
}
