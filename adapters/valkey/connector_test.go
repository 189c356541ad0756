package valkey_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valkey-io/valkey-go"

	"github.com/halobestie/mitra-availability/adapters/eventbus"
	vk "github.com/halobestie/mitra-availability/adapters/valkey"
	"github.com/halobestie/mitra-availability/internal/redisproc"
	"github.com/halobestie/mitra-availability/ports"
)

// lazyBound is how fast every call must fail while Valkey is not there.
const lazyBound = 500 * time.Millisecond

// notStarted returns a server of the test on a free port, not running yet.
func notStarted(t *testing.T) *redisproc.Server {
	t.Helper()
	return redisproc.NewForTest(t, redisproc.Options{})
}

// newConnector builds a connector of url that counts the dial hook's calls.
func newConnector(t *testing.T, url string, dials *atomic.Int64) *vk.Connector {
	t.Helper()
	c, err := vk.NewConnector(vk.Config{URL: url, OnDial: func() { dials.Add(1) }}, nil)
	if err != nil {
		t.Fatalf("NewConnector: %v", err)
	}
	return c
}

// startConnector starts c, asserts that Start returned within bound, and
// stops c in t.Cleanup.
func startConnector(t *testing.T, c *vk.Connector, bound time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	began := time.Now()
	if err := c.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if d := time.Since(began); d > bound {
		t.Fatalf("Start took %v, want under %v", d, bound)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
}

// clientGoroutines returns the stacks of the goroutines of valkey-go, of
// this package and of the event bus, the calling one excepted. (The test's
// redis-server adds goroutines of os/exec, which are not counted.)
func clientGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for i, g := range strings.Split(string(buf), "\n\n") {
		if i == 0 { // the caller
			continue
		}
		if strings.Contains(g, "valkey-io/valkey-go") ||
			strings.Contains(g, "mitra-availability/adapters/valkey.") ||
			strings.Contains(g, "mitra-availability/adapters/eventbus.") {
			out = append(out, g)
		}
	}
	return out
}

// checkNoLeak waits for the client goroutines to fall back to before (a
// count of clientGoroutines), and fails with their stacks when they do not
// within a few seconds.
func checkNoLeak(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		gs := clientGoroutines()
		if len(gs) <= before {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d client goroutines, %d before:\n%s", len(gs), before, strings.Join(gs, "\n\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lazyCalls are mirror calls of every kind (scripts, a script batch over
// Nodes, transactions, plain commands), and raw client calls.
func lazyCalls(m *vk.Mirror, c valkey.Client, id string) map[string]func(ctx context.Context) error {
	calls := faultCalls(m, id)
	now := time.Now()
	calls["Reseed"] = func(ctx context.Context) error {
		_, err := m.Reseed(ctx, []ports.MirrorMitra{{ID: id, LastHeartbeat: now, Capacity: 1}}, nil)
		return err
	}
	calls["RemoveStale"] = func(ctx context.Context) error { _, err := m.RemoveStale(ctx, now, 10); return err }
	calls["raw Do without deadline"] = func(context.Context) error {
		return c.Do(context.Background(), c.B().Ping().Build()).Error()
	}
	calls["raw DoMulti"] = func(ctx context.Context) error {
		for _, r := range c.DoMulti(ctx, c.B().Ping().Build(), c.B().Ping().Build()) {
			if err := r.Error(); err != nil {
				return err
			}
		}
		return nil
	}
	calls["raw Dedicated"] = func(context.Context) error {
		return c.Dedicated(func(d valkey.DedicatedClient) error {
			return d.Do(context.Background(), d.B().Ping().Build()).Error()
		})
	}
	calls["raw Dedicate"] = func(ctx context.Context) error {
		d, release := c.Dedicate()
		defer release()
		return d.Do(ctx, d.B().Ping().Build()).Error()
	}
	calls["raw Receive"] = func(ctx context.Context) error {
		// Once connected, the deadline ends the subscription.
		ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		return c.Receive(ctx, c.B().Subscribe().Channel("lazy-test").Build(), func(valkey.PubSubMessage) {})
	}
	return calls
}

// checkNotConnected asserts that every call fails with ErrNotConnected within
// lazyBound.
func checkNotConnected(t *testing.T, m *vk.Mirror, c valkey.Client) {
	t.Helper()
	for name, call := range lazyCalls(m, c, "m1") {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		began := time.Now()
		err := call(ctx)
		d := time.Since(began)
		cancel()
		if !errors.Is(err, vk.ErrNotConnected) {
			t.Errorf("%s before the server: err = %v, want ErrNotConnected", name, err)
		}
		if d > lazyBound {
			t.Errorf("%s before the server took %v, want under %v", name, d, lazyBound)
		}
	}
}

// TestConnectorServerAppearsLater starts a connector before its server
// exists: calls fail fast, then succeed once the server started, and the dial
// hook fired; Stop leaves no goroutine behind.
func TestConnectorServerAppearsLater(t *testing.T) {
	s := notStarted(t)
	before := len(clientGoroutines())
	var dials atomic.Int64
	c := newConnector(t, "redis://"+s.Addr(), &dials)
	startConnector(t, c, time.Second)

	if _, ok := c.Client(); ok {
		t.Fatal("Client reports a connection before the server exists")
	}
	prefix := randomPrefix(t)
	m := vk.NewMirror(c.Lazy(), prefix, 200*time.Millisecond)
	checkNotConnected(t, m, c.Lazy())
	if n := dials.Load(); n != 0 {
		t.Fatalf("dial hook fired %d times before the server exists", n)
	}

	restart(t, s)
	waitFor(t, 5*time.Second, "a call succeeds after the server started", func() bool {
		_, err := m.Seeded(context.Background())
		return err == nil
	})
	// The hook fires once the client is published, so a call through the
	// lazy client may succeed a moment before it.
	waitFor(t, 5*time.Second, "the dial hook fires on the connection", func() bool { return dials.Load() > 0 })
	select {
	case <-c.Ready():
	default:
		t.Fatal("Ready is not closed after a call succeeded")
	}
	if _, ok := c.Client(); !ok {
		t.Fatal("Client reports no connection after a call succeeded")
	}
	if _, err := m.Reseed(context.Background(), nil, nil); err != nil {
		t.Fatalf("Reseed: %v", err)
	}
	for name, call := range lazyCalls(m, c.Lazy(), "m1") {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := call(ctx)
		cancel()
		if name == "raw Receive" {
			// The context ends the subscription: Receive returns its error.
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%s once connected: %v, want the context's deadline", name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s once connected: %v", name, err)
		}
	}
	ctx := context.Background()
	if err := m.PutOnline(ctx, ports.MirrorMitra{ID: "m2", LastHeartbeat: time.Now(), Capacity: 1}); err != nil {
		t.Fatal(err)
	}
	if st, err := m.Status(ctx, "m2"); err != nil || !st.Online {
		t.Fatalf("Status = %+v, %v; want online", st, err)
	}

	stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	if err := m.Ping(ctx); err == nil {
		t.Error("the client still answers after Stop")
	}
	checkNoLeak(t, before)
}

// TestConnectorStopWithoutServer stops a connector whose server never
// appears: Stop returns promptly and leaves no goroutine behind.
func TestConnectorStopWithoutServer(t *testing.T) {
	s := notStarted(t)
	before := len(clientGoroutines())
	var dials atomic.Int64
	c := newConnector(t, "redis://"+s.Addr(), &dials)
	ctx := context.Background()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err == nil {
		t.Error("a second Start must fail")
	}
	time.Sleep(400 * time.Millisecond) // a few retries
	stopCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	began := time.Now()
	if err := c.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(began); d > lazyBound {
		t.Errorf("Stop took %v, want under %v", d, lazyBound)
	}
	if err := c.Stop(stopCtx); err != nil {
		t.Errorf("a second Stop: %v", err)
	}
	if err := c.Start(ctx); err == nil {
		t.Error("Start after Stop must fail")
	}
	checkNoLeak(t, before)

	// The server appearing after Stop is not picked up.
	restart(t, s)
	time.Sleep(300 * time.Millisecond)
	if _, ok := c.Client(); ok || dials.Load() != 0 {
		t.Errorf("a stopped connector connected (dials %d)", dials.Load())
	}
	if err := c.Lazy().Do(ctx, c.Lazy().B().Ping().Build()).Error(); !errors.Is(err, vk.ErrNotConnected) {
		t.Errorf("Do after Stop: %v, want ErrNotConnected", err)
	}
	checkNoLeak(t, before)
}

// TestConnectorStopNeverStarted: Stop of a connector never started is a no-op.
func TestConnectorStopNeverStarted(t *testing.T) {
	var dials atomic.Int64
	c := newConnector(t, "redis://127.0.0.1:1", &dials)
	if err := c.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestConnectorReachableAtStart: with the server up, Start returns connected,
// the dial hook fired, and later reconnections reach the hook too.
func TestConnectorReachableAtStart(t *testing.T) {
	s := redisproc.StartForTest(t)
	var dials atomic.Int64
	c := newConnector(t, "redis://"+s.Addr(), &dials)
	startConnector(t, c, 5*time.Second)
	if _, ok := c.Client(); !ok {
		t.Fatal("not connected after Start with the server up")
	}
	if dials.Load() == 0 {
		t.Fatal("dial hook did not fire")
	}
	m := vk.NewMirror(c.Lazy(), randomPrefix(t), 200*time.Millisecond)
	ctx := context.Background()
	if err := m.Ping(ctx); err != nil {
		t.Fatal(err)
	}

	// A server restart: the client dials again, and the hook hears it.
	n := dials.Load()
	s.Kill()
	restart(t, s)
	waitFor(t, 5*time.Second, "a call succeeds after the restart", func() bool { return m.Ping(ctx) == nil })
	if dials.Load() <= n {
		t.Fatal("dial hook did not fire on the reconnection")
	}
}

// TestConnectorMalformedURL: a malformed URL is an error of NewConnector,
// which leaves no goroutine behind.
func TestConnectorMalformedURL(t *testing.T) {
	before := len(clientGoroutines())
	for _, url := range []string{"", "http://cache:6379", "redis://u:secret@[::1"} {
		_, err := vk.NewConnector(vk.Config{URL: url}, nil)
		if err == nil {
			t.Errorf("NewConnector(%q) succeeded", url)
			continue
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("the error leaks the password: %v", err)
		}
	}
	checkNoLeak(t, before)
}

// TestConnectorBusSubscribesWhenConnected: a bus over the lazy client starts
// at once while the server is missing, delivers locally, and subscribes once
// the server appears.
func TestConnectorBusSubscribesWhenConnected(t *testing.T) {
	s := notStarted(t)
	before := len(clientGoroutines())
	var dials atomic.Int64
	c := newConnector(t, "redis://"+s.Addr(), &dials)
	startConnector(t, c, time.Second)

	channel := randomPrefix(t) + "events"
	bus, err := eventbus.NewValkey(c.Lazy(), channel, nil)
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if err := bus.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(began); d > lazyBound {
		t.Errorf("bus Start took %v without a server, want under %v", d, lazyBound)
	}
	got := make(chan ports.Event, 10)
	defer bus.Subscribe(func(e ports.Event) { got <- e })()
	if err := bus.Publish(context.Background(), ports.Event{Type: "local", Payload: []byte(`{}`)}); err != nil {
		t.Errorf("Publish without a server = %v, want nil (dropped for the event log to deliver)", err)
	}
	if bus.Dropped() != 1 {
		t.Errorf("Dropped() = %d without a server, want 1", bus.Dropped())
	}
	select {
	case e := <-got:
		if e.Type != "local" {
			t.Fatalf("got %q, want local", e.Type)
		}
	case <-time.After(time.Second):
		t.Fatal("no local delivery without a server")
	}

	restart(t, s)
	waitFor(t, 8*time.Second, "bus subscribed", bus.Subscribed)
	other, err := vk.Open(context.Background(), vk.Config{URL: "redis://" + s.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	msg := `{"origin":"other","id":1,"event":{"type":"remote","user_ids":null,"payload":{}}}`
	if err := other.Do(context.Background(), other.B().Publish().Channel(channel).Message(msg).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-got:
		if e.Type != "remote" {
			t.Fatalf("got %q, want remote", e.Type)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the event of another instance was not delivered")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := bus.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	other.Close()
	checkNoLeak(t, before)
}

// TestConnectorBusStopsWhileWaiting: a bus waiting for the connection stops
// promptly.
func TestConnectorBusStopsWhileWaiting(t *testing.T) {
	s := notStarted(t)
	before := len(clientGoroutines())
	var dials atomic.Int64
	c := newConnector(t, "redis://"+s.Addr(), &dials)
	startConnector(t, c, time.Second)
	bus, err := eventbus.NewValkey(c.Lazy(), "lazy-test-events", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := bus.Start(ctx); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if err := bus.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(began); d > lazyBound {
		t.Errorf("Stop took %v, want under %v", d, lazyBound)
	}
	checkNoLeak(t, before)
}

// TestConnectorCommandBuiltBeforeClusterConnection: a command built before
// the connection and sent to the cluster client that appeared meanwhile is
// an error, never a panic; fresh commands work.
func TestConnectorCommandBuiltBeforeClusterConnection(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	nodes := startCluster(t)
	var dials atomic.Int64
	c := newConnector(t, "redis://"+nodes[0].Addr(), &dials)
	lazy := c.Lazy()
	stale := lazy.B().Get().Key("lazy-test:{x}").Build()
	startConnector(t, c, 10*time.Second)
	cl, ok := c.Client()
	if !ok || cl.Mode() != valkey.ClientModeCluster {
		t.Fatalf("not connected as a cluster: %v", ok)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := lazy.Do(ctx, stale).Error(); err == nil {
		t.Fatal("a command built before the cluster connection succeeded")
	}
	if err := lazy.Do(ctx, lazy.B().Get().Key("lazy-test:{x}").Build()).Error(); err != nil && !valkey.IsValkeyNil(err) {
		t.Fatalf("fresh command: %v", err)
	}
	m := vk.NewMirror(lazy, randomPrefix(t), time.Second)
	if _, err := m.Reseed(ctx, nil, nil); err != nil {
		t.Fatalf("Reseed: %v", err)
	}
	if err := m.PutOnline(ctx, ports.MirrorMitra{ID: "m1", LastHeartbeat: time.Now(), Capacity: 1}); err != nil {
		t.Fatal(err)
	}
	if st, err := m.Status(ctx, "m1"); err != nil || !st.Online {
		t.Fatalf("Status = %+v, %v; want online", st, err)
	}
}
