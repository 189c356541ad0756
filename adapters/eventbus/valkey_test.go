package eventbus_test

import (
	"context"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/valkey-io/valkey-go"

	"github.com/halobestie/mitra-availability/adapters/eventbus"
	valkeyadapter "github.com/halobestie/mitra-availability/adapters/valkey"
	"github.com/halobestie/mitra-availability/internal/redisproc"
	"github.com/halobestie/mitra-availability/ports"
	"github.com/halobestie/mitra-availability/ports/eventbustest"
)

// uniqueChannel returns a channel name no other test uses.
func uniqueChannel(t *testing.T) string {
	return "test:eventbus:" + strings.NewReplacer("/", ":", " ", "_").Replace(t.Name()) + ":" + rand.Text()[:10] + ":events"
}

// openClient connects to url as the service does, closing the client at cleanup.
func openClient(t *testing.T, url string) valkey.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := valkeyadapter.Open(ctx, valkeyadapter.Config{URL: url})
	if err != nil {
		t.Fatalf("connecting to %s: %v", url, err)
	}
	t.Cleanup(c.Close)
	return c
}

// startBus returns a started, subscribed bus on channel, stopped at cleanup.
func startBus(t *testing.T, c valkey.Client, channel string) *eventbus.Valkey {
	t.Helper()
	bus, err := eventbus.NewValkey(c, channel, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := bus.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	waitSubscribed(t, true, 5*time.Second, bus)
	return bus
}

func waitSubscribed(t *testing.T, want bool, within time.Duration, buses ...*eventbus.Valkey) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		all := true
		for _, b := range buses {
			all = all && b.Subscribed() == want
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("buses not Subscribed()==%v within %v", want, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// pair is one bus seen through two instances: Publish on one, Subscribe on
// the other, so the contract suite runs over the channel itself.
type pair struct{ pub, sub ports.EventBus }

func (p pair) Publish(ctx context.Context, e ports.Event) error { return p.pub.Publish(ctx, e) }
func (p pair) Subscribe(h func(ports.Event)) func()             { return p.sub.Subscribe(h) }

func TestValkeyContract(t *testing.T) {
	for _, s := range redisproc.Targets() {
		t.Run(s.Name, func(t *testing.T) {
			eventbustest.Run(t, func(t *testing.T) ports.EventBus {
				return startBus(t, openClient(t, s.URL(t)), uniqueChannel(t))
			})
		})
		t.Run(s.Name+"-pair", func(t *testing.T) {
			eventbustest.Run(t, func(t *testing.T) ports.EventBus {
				url, ch := s.URL(t), uniqueChannel(t)
				return pair{pub: startBus(t, openClient(t, url), ch), sub: startBus(t, openClient(t, url), ch)}
			})
		})
	}
}

func TestNewValkeyValidates(t *testing.T) {
	if _, err := eventbus.NewValkey(nil, "events", nil); err == nil {
		t.Error("nil client accepted")
	}
	c := openClient(t, "redis://"+miniredis.RunT(t).Addr())
	if _, err := eventbus.NewValkey(c, "", nil); err == nil {
		t.Error("empty channel accepted")
	}
}

// Two instances on one server: an event published on either reaches the
// subscribers of both, each exactly once.
func TestValkeyTwoInstances(t *testing.T) {
	for _, s := range redisproc.Targets() {
		t.Run(s.Name, func(t *testing.T) {
			url, ch := s.URL(t), uniqueChannel(t)
			a, b := startBus(t, openClient(t, url), ch), startBus(t, openClient(t, url), ch)
			ra, rb := eventbustest.NewRecorder(), eventbustest.NewRecorder()
			defer a.Subscribe(ra.Handle)()
			defer b.Subscribe(rb.Handle)()

			fromA := eventbustest.NewEvent(ports.EventSessionOffer, "fromA", 1, "m1")
			if err := a.Publish(context.Background(), fromA); err != nil {
				t.Fatal(err)
			}
			fromB := eventbustest.NewEvent(ports.EventSessionTaken, "fromB", 1, "m2")
			if err := b.Publish(context.Background(), fromB); err != nil {
				t.Fatal(err)
			}
			for name, r := range map[string]*eventbustest.Recorder{"A": ra, "B": rb} {
				got := r.WaitFor(t, 2, eventbustest.Timeout)
				if !containsOnce(got, fromA) || !containsOnce(got, fromB) {
					t.Fatalf("%s's subscriber got %v, want each event once", name, got)
				}
			}
			ra.StaysAt(t, 2, eventbustest.Quiet)
			rb.StaysAt(t, 2, 0)
		})
	}
}

func containsOnce(events []ports.Event, e ports.Event) bool {
	n := 0
	for _, g := range events {
		if eventbustest.SameEvent(g, e) {
			n++
		}
	}
	return n == 1
}

// Messages on the channel that are not envelopes of another instance, or
// copies of one already received, are dropped and do not disturb the
// subscription.
func TestValkeyIgnoresForeignMessages(t *testing.T) {
	url, ch := "redis://"+miniredis.RunT(t).Addr(), uniqueChannel(t)
	c := openClient(t, url)
	bus := startBus(t, openClient(t, url), ch)
	r := eventbustest.NewRecorder()
	defer bus.Subscribe(r.Handle)()

	for _, msg := range []string{
		"not json",
		`{"origin":"","event":{"type":"x","user_ids":["u"],"payload":{}}}`,
		`{"origin":"other","event":{"type":"x","user_ids":["u"]}}`,
	} {
		if err := c.Do(context.Background(), c.B().Publish().Channel(ch).Message(msg).Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
	// The same envelope twice (a retried PUBLISH that reached the server) is delivered once.
	valid := `{"origin":"other","id":7,"event":{"type":"session_taken","user_ids":["u"],"payload":{"type":"session_taken","session_id":"s"}}}`
	for range 2 {
		if err := c.Do(context.Background(), c.B().Publish().Channel(ch).Message(valid).Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
	got := r.WaitFor(t, 1, eventbustest.Timeout)
	if got[0].Type != ports.EventSessionTaken || string(got[0].Payload) != `{"type":"session_taken","session_id":"s"}` {
		t.Fatalf("got %+v, want the valid envelope's event", got[0])
	}
	r.StaysAt(t, 1, eventbustest.Quiet)
	if !bus.Subscribed() {
		t.Fatal("foreign messages ended the subscription")
	}
}

// With the server gone, Publish still delivers locally and returns at once
// (it never waits on the server): the event is counted as dropped.
func TestValkeyPublishDuringOutage(t *testing.T) {
	mr := miniredis.RunT(t)
	bus := startBus(t, openClient(t, "redis://"+mr.Addr()), uniqueChannel(t))
	r := eventbustest.NewRecorder()
	defer bus.Subscribe(r.Handle)()
	mr.Close()
	waitSubscribed(t, false, 5*time.Second, bus)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if err := bus.Publish(ctx, eventbustest.NewEvent(ports.EventSessionEnded, "outage", 1, "u")); err != nil {
		t.Fatalf("Publish during an outage = %v, want nil (the log delivers what the bus drops)", err)
	}
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Fatalf("Publish took %v with the server down, want no wait", d)
	}
	if got := r.Events(); len(got) != 1 {
		t.Fatalf("local subscriber got %d events during the outage, want 1", len(got))
	}
	if bus.Dropped() != 1 {
		t.Fatalf("Dropped() = %d, want 1", bus.Dropped())
	}
}

// A hung server (it accepts connections but never answers) adds no latency
// to Publish.
func TestValkeyPublishToHungServer(t *testing.T) {
	srv := redisproc.StartForTest(t)
	bus := startBus(t, openClient(t, srv.URL()), uniqueChannel(t))
	if err := srv.Freeze(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Thaw() })
	var slowest time.Duration
	for i := range 50 {
		start := time.Now()
		if err := bus.Publish(context.Background(), eventbustest.NewEvent(ports.EventSessionUpdate, "hung", i, "u")); err != nil {
			t.Fatal(err)
		}
		slowest = max(slowest, time.Since(start))
	}
	if slowest > 50*time.Millisecond {
		t.Fatalf("the slowest Publish to a hung server took %v, want no wait", slowest)
	}
}

func TestValkeyStartStop(t *testing.T) {
	c := openClient(t, "redis://"+miniredis.RunT(t).Addr())
	bus, err := eventbus.NewValkey(c, uniqueChannel(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.Stop(context.Background()); err != nil {
		t.Fatalf("Stop before Start: %v", err)
	}
	for round := range 2 { // a stopped bus starts again
		if err := bus.Start(context.Background()); err != nil {
			t.Fatalf("round %d: Start: %v", round, err)
		}
		if !bus.Subscribed() {
			t.Fatalf("round %d: not subscribed when Start returned", round)
		}
		if err := bus.Start(context.Background()); err == nil {
			t.Fatalf("round %d: second Start succeeded", round)
		}
		start := time.Now()
		if err := bus.Stop(context.Background()); err != nil {
			t.Fatalf("round %d: Stop: %v", round, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("round %d: Stop took %v", round, d)
		}
		if bus.Subscribed() {
			t.Fatalf("round %d: still subscribed after Stop", round)
		}
	}
}

// The buses re-subscribe after the server is killed and restarted, and Stop
// returns promptly even while the server is down.
func TestValkeySurvivesRestart(t *testing.T) {
	srv := redisproc.StartForTest(t)
	ch := uniqueChannel(t)
	a, b := startBus(t, openClient(t, srv.URL()), ch), startBus(t, openClient(t, srv.URL()), ch)
	ra, rb := eventbustest.NewRecorder(), eventbustest.NewRecorder()
	defer a.Subscribe(ra.Handle)()
	defer b.Subscribe(rb.Handle)()

	publish := func(bus *eventbus.Valkey, marker string) (ports.Event, error) {
		e := eventbustest.NewEvent(ports.EventSessionUpdate, marker, 1, "u")
		return e, bus.Publish(context.Background(), e)
	}
	if _, err := publish(a, "before"); err != nil {
		t.Fatal(err)
	}
	rb.WaitFor(t, 1, eventbustest.Timeout)

	srv.Kill()
	waitSubscribed(t, false, 5*time.Second, a, b)
	if _, err := publish(a, "during"); err != nil {
		t.Fatalf("Publish with the server killed = %v, want nil (dropped, not waited for)", err)
	}
	ra.WaitFor(t, 2, 0) // local delivery did not need the server

	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	waitSubscribed(t, true, 5*time.Second, a, b)
	afterA, err := publish(a, "afterA")
	if err != nil {
		t.Fatal(err)
	}
	afterB, err := publish(b, "afterB")
	if err != nil {
		t.Fatal(err)
	}
	gotA := ra.WaitFor(t, 4, eventbustest.Timeout) // before, during, afterA, afterB
	gotB := rb.WaitFor(t, 3, eventbustest.Timeout) // before, afterA, afterB
	if !containsOnce(gotA, afterA) || !containsOnce(gotA, afterB) || !containsOnce(gotB, afterA) || !containsOnce(gotB, afterB) {
		t.Fatalf("after the restart: A got %v, B got %v", gotA, gotB)
	}
	ra.StaysAt(t, 4, eventbustest.Quiet)
	rb.StaysAt(t, 3, 0)

	// Stop is prompt with the server down again.
	srv.Kill()
	waitSubscribed(t, false, 5*time.Second, a, b)
	for name, bus := range map[string]*eventbus.Valkey{"A": a, "B": b} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		start := time.Now()
		err := bus.Stop(ctx)
		cancel()
		if err != nil {
			t.Fatalf("%s: Stop: %v", name, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("%s: Stop took %v with the server down", name, d)
		}
	}
}
