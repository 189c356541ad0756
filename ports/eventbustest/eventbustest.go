// Package eventbustest is the contract test suite of ports.EventBus: what
// holds for any single bus, whatever carries the events. Each implementation's
// tests call Run (the memory bus, the Valkey bus over miniredis and over a
// real server, and a Valkey pair where one instance publishes and the other
// subscribes).
//
// Delivery may be asynchronous, so the suite waits for events (up to
// Timeout) and, to prove that nothing more arrives, watches for Quiet.
package eventbustest

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/ports"
)

// Timings of the suite.
const (
	// Timeout is how long the suite waits for an expected delivery.
	Timeout = 5 * time.Second
	// Quiet is how long the suite watches for deliveries that must not happen.
	Quiet = 200 * time.Millisecond
)

// Run runs the suite. newBus returns a fresh bus, ready to deliver (started
// and subscribed, for buses that need it); it registers any cleanup with t.
func Run(t *testing.T, newBus func(t *testing.T) ports.EventBus) {
	t.Run("DeliversOnce", func(t *testing.T) { testDeliversOnce(t, newBus(t)) })
	t.Run("PreservesEvent", func(t *testing.T) { testPreservesEvent(t, newBus(t)) })
	t.Run("SeveralSubscribers", func(t *testing.T) { testSeveralSubscribers(t, newBus(t)) })
	t.Run("OrderPerPublisher", func(t *testing.T) { testOrderPerPublisher(t, newBus(t)) })
	t.Run("Unsubscribe", func(t *testing.T) { testUnsubscribe(t, newBus(t)) })
	t.Run("SubscribeWhilePublishing", func(t *testing.T) { testSubscribeWhilePublishing(t, newBus(t)) })
}

// Recorder collects the events a handler gets. Its Handle never blocks.
type Recorder struct {
	mu     sync.Mutex
	events []ports.Event
	notify chan struct{}
}

// NewRecorder returns an empty recorder.
func NewRecorder() *Recorder {
	return &Recorder{notify: make(chan struct{}, 1)}
}

// Handle records e; pass it to Subscribe.
func (r *Recorder) Handle(e ports.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

// Events returns a copy of what was recorded so far.
func (r *Recorder) Events() []ports.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// WaitFor waits up to timeout until at least n events are recorded and
// returns them all; it fails t when they do not come.
func (r *Recorder) WaitFor(t testing.TB, n int, timeout time.Duration) []ports.Event {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		if got := r.Events(); len(got) >= n {
			return got
		}
		select {
		case <-r.notify:
		case <-deadline.C:
			got := r.Events()
			t.Fatalf("got %d events within %v, want %d: %s", len(got), timeout, n, describe(got))
			return nil
		}
	}
}

// StaysAt waits for d and fails t if more than n events are recorded by then.
func (r *Recorder) StaysAt(t testing.TB, n int, d time.Duration) {
	t.Helper()
	time.Sleep(d)
	if got := r.Events(); len(got) != n {
		t.Fatalf("got %d events, want exactly %d: %s", len(got), n, describe(got))
	}
}

// NewEvent returns an event of type typ for userIDs whose payload carries
// typ, a marker and seq, so that tests can tell events apart. typ and marker
// must be printable ASCII without quotes or backslashes.
func NewEvent(typ, marker string, seq int, userIDs ...string) ports.Event {
	p := fmt.Sprintf(`{"type":%q,"marker":%q,"seq":%d}`, typ, marker, seq)
	return ports.Event{Type: typ, UserIDs: userIDs, Payload: json.RawMessage(p)}
}

// SameEvent reports whether got carries want: the same type and users, and a
// payload that is the same JSON value (a bus may re-encode it).
func SameEvent(got, want ports.Event) bool {
	if got.Type != want.Type || !slices.Equal(got.UserIDs, want.UserIDs) {
		return false
	}
	var g, w any
	if json.Unmarshal(got.Payload, &g) != nil || json.Unmarshal(want.Payload, &w) != nil {
		return false
	}
	return reflect.DeepEqual(g, w)
}

func describe(events []ports.Event) string {
	const maxShown = 10
	s := ""
	for i, e := range events {
		if i == maxShown {
			s += fmt.Sprintf(" … (%d more)", len(events)-maxShown)
			break
		}
		s += fmt.Sprintf(" %s%v%s", e.Type, e.UserIDs, e.Payload)
	}
	return "[" + s + " ]"
}

func publish(t testing.TB, bus ports.EventBus, e ports.Event) {
	t.Helper()
	if err := bus.Publish(context.Background(), e); err != nil {
		t.Fatalf("Publish: %v", err)
	}
}

func testDeliversOnce(t *testing.T, bus ports.EventBus) {
	r := NewRecorder()
	unsubscribe := bus.Subscribe(r.Handle)
	defer unsubscribe()

	e := NewEvent(ports.EventSessionTaken, "once", 1, "u1")
	publish(t, bus, e)
	got := r.WaitFor(t, 1, Timeout)
	if !SameEvent(got[0], e) {
		t.Fatalf("got %s, want %s", describe(got[:1]), describe([]ports.Event{e}))
	}
	// A second event proves the first did not arrive twice before it, and the
	// quiet period that nothing comes after.
	e2 := NewEvent(ports.EventSessionTaken, "once", 2, "u1")
	publish(t, bus, e2)
	got = r.WaitFor(t, 2, Timeout)
	if !SameEvent(got[1], e2) {
		t.Fatalf("second delivery is %s, want %s", describe(got[1:2]), describe([]ports.Event{e2}))
	}
	r.StaysAt(t, 2, Quiet)
}

func testPreservesEvent(t *testing.T, bus ports.EventBus) {
	r := NewRecorder()
	defer bus.Subscribe(r.Handle)()

	view := map[string]any{
		"type":    ports.EventSessionUpdate,
		"session": map[string]any{"id": "7f1c", "status": "active", "mitra_id": nil, "remaining_seconds": 1799.5},
		"note":    "<b>Rp 50.000</b> & ✓ \u00e9\u4e2d",
		"list":    []any{1.0, "two", false, nil, map[string]any{}},
	}
	payload, err := json.Marshal(view)
	if err != nil {
		t.Fatal(err)
	}
	e := ports.Event{Type: ports.EventSessionUpdate, UserIDs: []string{"cust", "mitra", "admin-3"}, Payload: payload}
	publish(t, bus, e)
	got := r.WaitFor(t, 1, Timeout)
	if !SameEvent(got[0], e) {
		t.Fatalf("got %s, want %s", describe(got[:1]), describe([]ports.Event{e}))
	}

	// An event for nobody is still an event (the hub routes it to nobody).
	empty := NewEvent(ports.EventSessionTaken, "nobody", 1)
	publish(t, bus, empty)
	got = r.WaitFor(t, 2, Timeout)
	if len(got[1].UserIDs) != 0 || !SameEvent(ports.Event{Type: got[1].Type, Payload: got[1].Payload}, empty) {
		t.Fatalf("got %s, want %s", describe(got[1:2]), describe([]ports.Event{empty}))
	}
}

func testSeveralSubscribers(t *testing.T, bus ports.EventBus) {
	const n = 3
	recs := make([]*Recorder, n)
	for i := range recs {
		recs[i] = NewRecorder()
		defer bus.Subscribe(recs[i].Handle)()
	}
	e := NewEvent(ports.EventSessionOffer, "several", 1, "m1", "m2")
	publish(t, bus, e)
	for i, r := range recs {
		got := r.WaitFor(t, 1, Timeout)
		if !SameEvent(got[0], e) {
			t.Fatalf("subscriber %d got %s", i, describe(got))
		}
	}
	for _, r := range recs {
		r.StaysAt(t, 1, Quiet/n)
	}
}

func testOrderPerPublisher(t *testing.T, bus ports.EventBus) {
	const publishers, perPublisher = 4, 50
	r := NewRecorder()
	defer bus.Subscribe(r.Handle)()

	var wg sync.WaitGroup
	errs := make(chan error, publishers)
	for p := range publishers {
		wg.Go(func() {
			for seq := range perPublisher {
				e := NewEvent(ports.EventSessionUpdate, fmt.Sprintf("pub%d", p), seq, "u")
				if err := bus.Publish(context.Background(), e); err != nil {
					errs <- fmt.Errorf("publisher %d, event %d: %w", p, seq, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	got := r.WaitFor(t, publishers*perPublisher, Timeout)
	next := map[string]int{}
	for _, e := range got {
		var p struct {
			Marker string `json:"marker"`
			Seq    int    `json:"seq"`
		}
		if err := json.Unmarshal(e.Payload, &p); err != nil {
			t.Fatalf("payload %s: %v", e.Payload, err)
		}
		if p.Seq != next[p.Marker] {
			t.Fatalf("%s: got seq %d, want %d (out of order or duplicated)", p.Marker, p.Seq, next[p.Marker])
		}
		next[p.Marker]++
	}
	for p := range publishers {
		if m := fmt.Sprintf("pub%d", p); next[m] != perPublisher {
			t.Fatalf("%s: got %d events, want %d", m, next[m], perPublisher)
		}
	}
	r.StaysAt(t, publishers*perPublisher, Quiet)
}

func testUnsubscribe(t *testing.T, bus ports.EventBus) {
	gone, stays := NewRecorder(), NewRecorder()
	unsubscribe := bus.Subscribe(gone.Handle)
	defer bus.Subscribe(stays.Handle)()

	e1 := NewEvent(ports.EventSessionEnded, "unsub", 1, "u")
	publish(t, bus, e1)
	gone.WaitFor(t, 1, Timeout)
	stays.WaitFor(t, 1, Timeout)

	unsubscribe()
	unsubscribe() // a second call is harmless

	e2 := NewEvent(ports.EventSessionEnded, "unsub", 2, "u")
	publish(t, bus, e2)
	got := stays.WaitFor(t, 2, Timeout)
	if !SameEvent(got[1], e2) {
		t.Fatalf("remaining subscriber got %s", describe(got))
	}
	gone.StaysAt(t, 1, Quiet)

	// Subscribing again after unsubscribing works.
	again := NewRecorder()
	defer bus.Subscribe(again.Handle)()
	e3 := NewEvent(ports.EventSessionEnded, "unsub", 3, "u")
	publish(t, bus, e3)
	if got := again.WaitFor(t, 1, Timeout); !SameEvent(got[0], e3) {
		t.Fatalf("new subscriber got %s", describe(got))
	}
	if len(gone.Events()) != 1 {
		t.Fatalf("unsubscribed handler got %s", describe(gone.Events()))
	}
}

// testSubscribeWhilePublishing changes subscriptions while events flow (for
// the race detector), then checks that the bus still delivers normally.
func testSubscribeWhilePublishing(t *testing.T, bus ports.EventBus) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	publishErr := make(chan error, 1)
	wg.Go(func() {
		for seq := 0; ctx.Err() == nil; seq++ {
			if err := bus.Publish(ctx, NewEvent(ports.EventSessionUpdate, "churn", seq, "u")); err != nil {
				publishErr <- err
				return
			}
		}
	})
	for range 4 {
		wg.Go(func() {
			for range 50 {
				r := NewRecorder()
				unsubscribe := bus.Subscribe(r.Handle)
				time.Sleep(100 * time.Microsecond)
				unsubscribe()
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	cancel()
	wg.Wait()
	select {
	case err := <-publishErr:
		t.Fatalf("Publish: %v", err)
	default:
	}

	r := NewRecorder()
	defer bus.Subscribe(r.Handle)()
	final := NewEvent(ports.EventSessionUpdate, "final", 1, "u")
	publish(t, bus, final)
	// Events of the churn still in flight (on a remote bus) may arrive first.
	deadline := time.Now().Add(Timeout)
	for {
		got := r.WaitFor(t, 1, time.Until(deadline))
		idx := slices.IndexFunc(got, func(e ports.Event) bool { return SameEvent(e, final) })
		if idx >= 0 {
			if idx != len(got)-1 {
				t.Fatalf("events after the final one: %s", describe(got[idx+1:]))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("final event never delivered; got %s", describe(got))
		}
		select {
		case <-r.notify:
		case <-time.After(time.Until(deadline)):
		}
	}
}
