package eventbus_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/halobestie/mitra-availability/adapters/eventbus"
	"github.com/halobestie/mitra-availability/ports"
	"github.com/halobestie/mitra-availability/ports/eventbustest"
)

func TestMemoryContract(t *testing.T) {
	eventbustest.Run(t, func(t *testing.T) ports.EventBus { return eventbus.NewMemory() })
}

func TestMemoryPublishIsSynchronous(t *testing.T) {
	bus := eventbus.NewMemory()
	r := eventbustest.NewRecorder()
	defer bus.Subscribe(r.Handle)()
	for i := range 3 {
		if err := bus.Publish(context.Background(), eventbustest.NewEvent(ports.EventSessionTaken, "sync", i, "u")); err != nil {
			t.Fatal(err)
		}
		if got := len(r.Events()); got != i+1 {
			t.Fatalf("after Publish %d returned, %d events were delivered", i+1, got)
		}
	}
}

func TestMemoryRejectsInvalidPayload(t *testing.T) {
	bus := eventbus.NewMemory()
	r := eventbustest.NewRecorder()
	defer bus.Subscribe(r.Handle)()
	for _, p := range []json.RawMessage{nil, json.RawMessage(`{"type":`), json.RawMessage(`not json`)} {
		if err := bus.Publish(context.Background(), ports.Event{Type: "x", UserIDs: []string{"u"}, Payload: p}); err == nil {
			t.Fatalf("payload %q: Publish succeeded, want an error", p)
		}
	}
	if got := r.Events(); len(got) != 0 {
		t.Fatalf("invalid events were delivered: %v", got)
	}
}

// A handler may unsubscribe itself, subscribe others and publish, without
// deadlocking the bus.
func TestMemoryReentrantHandlers(t *testing.T) {
	bus := eventbus.NewMemory()
	late := eventbustest.NewRecorder()
	var unsubscribe func()
	calls := 0
	unsubscribe = bus.Subscribe(func(e ports.Event) {
		calls++
		unsubscribe()
		defer bus.Subscribe(late.Handle) // never unsubscribed: the bus is dropped with the test
		if err := bus.Publish(context.Background(), eventbustest.NewEvent(ports.EventSessionEnded, "nested", 1, "u")); err != nil {
			t.Errorf("nested Publish: %v", err)
		}
	})
	if err := bus.Publish(context.Background(), eventbustest.NewEvent(ports.EventSessionEnded, "outer", 1, "u")); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Fatalf("self-unsubscribing handler called %d times, want 1", calls)
	}
	if err := bus.Publish(context.Background(), eventbustest.NewEvent(ports.EventSessionEnded, "after", 1, "u")); err != nil {
		t.Fatal(err)
	}
	if got := late.Events(); len(got) != 1 {
		t.Fatalf("handler subscribed from a handler got %d events, want 1 (only the one published after)", len(got))
	}
}
