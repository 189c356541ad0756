package valkey

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/valkey-io/valkey-go"
)

// Timings of a Connector.
const (
	// minRetryDelay and maxRetryDelay bound the backoff between connection
	// attempts while Valkey does not answer.
	minRetryDelay = 100 * time.Millisecond
	maxRetryDelay = 5 * time.Second
	// PendingWait is how long a call of the lazy client waits (within its
	// context) for the connection before it fails with ErrNotConnected. It
	// keeps callers that retry on error (the mirror's watcher) from spinning,
	// as valkey-go's own retries do while a connected server is down.
	PendingWait = 100 * time.Millisecond
)

// ErrNotConnected is the error of the lazy client's calls before the
// Connector reached Valkey.
var ErrNotConnected = errors.New("valkey: not connected yet")

// errBuiltBeforeConnect is the error of a command built while not connected
// and sent to a cluster client that appeared meanwhile: its key slot was not
// computed the cluster's way.
var errBuiltBeforeConnect = errors.New("valkey: command built before the connection; retry it")

// Connector connects to Valkey in the background, so that a service starts
// and serves while Valkey is unreachable ("a cache outage degrades, never
// breaks").
//
// Start tries Open at once; when Valkey does not answer, a goroutine that
// Stop ends tries again with a backoff (100 ms doubling to 5 s) until it
// does. Lazy returns a valkey.Client usable from the beginning: until the
// connection exists each of its calls fails with ErrNotConnected within
// PendingWait (or its context); afterwards it is the connected client, whose
// own reconnections valkey-go handles.
//
// Config.OnDial is called after the client became available and after each
// later dial of a connection, never for dials of an attempt that failed: the
// mirror's health hears "reconnected" exactly when a reseed can work.
//
// The Connector owns the client: Stop closes it. A stopped Connector does not
// start again.
type Connector struct {
	opt    valkey.ClientOption
	onDial func()
	ping   time.Duration // bounds the PING of one attempt
	log    *slog.Logger
	lazy   *lazyClient

	// life ends at Stop; it aborts the dials of a running attempt.
	life context.Context
	end  context.CancelFunc

	ready  chan struct{} // closed once client is set
	client valkey.Client // written once, under mu, before ready is closed

	mu      sync.Mutex
	started bool
	stopped bool
	done    chan struct{} // closed when the connecting goroutine returns
}

// NewConnector checks cfg (a malformed URL is an error here) and returns a
// Connector that has not tried to connect yet. log receives the connection
// failures and the connection; nil discards.
func NewConnector(cfg Config, log *slog.Logger) (*Connector, error) {
	c := &Connector{onDial: cfg.OnDial, ready: make(chan struct{})}
	cfg.OnDial = c.dialed
	opt, err := Options(cfg)
	if err != nil {
		return nil, err
	}
	b, err := placeholderBuilder()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c.log = log.With(slog.String("component", "valkey"))
	c.ping = opt.Dialer.Timeout
	c.life, c.end = context.WithCancel(context.Background())
	dial := opt.DialCtxFn
	opt.DialCtxFn = func(ctx context.Context, addr string, d *net.Dialer, tc *tls.Config) (net.Conn, error) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(c.life, cancel)()
		return dial(ctx, addr, d, tc)
	}
	c.opt = opt
	ping := b.Ping().Build()
	c.lazy = &lazyClient{conn: c, b: b, noSlot: ping.Slot(), addr: opt.InitAddress[0]}
	return c, nil
}

// placeholderBuilder returns the command builder of a standalone client,
// which the lazy client hands out before the connection: valkey-go offers no
// builder without a client, and a client forced to standalone mode is the
// only one it builds without reaching a server.
func placeholderBuilder() (valkey.Builder, error) {
	errNoDial := errors.New("no dial")
	client, err := valkey.NewClient(valkey.ClientOption{
		InitAddress:       []string{"placeholder.invalid:6379"},
		ForceSingleClient: true,
		DisableCache:      true,
		DialCtxFn: func(context.Context, string, *net.Dialer, *tls.Config) (net.Conn, error) {
			return nil, errNoDial
		},
	})
	if client == nil {
		return valkey.Builder{}, fmt.Errorf("valkey: building the placeholder client: %w", err)
	}
	defer client.Close()
	return client.B(), nil
}

// Lazy returns the client to hand to the mirror and the bus: usable before
// the connection, the connected client afterwards. Its Close does nothing
// (Stop closes the connection).
func (c *Connector) Lazy() valkey.Client { return c.lazy }

// Client returns the connected client, or false before the connection.
func (c *Connector) Client() (valkey.Client, bool) {
	select {
	case <-c.ready:
		return c.client, true
	default:
		return nil, false
	}
}

// Ready is closed once the client is connected.
func (c *Connector) Ready() <-chan struct{} { return c.ready }

// Start makes a first connection attempt and waits for it (at most twice the
// dial timeout, and not beyond ctx); when it fails, it keeps trying in the
// background until Stop. An unreachable Valkey is not an error: Start fails
// only when the Connector was started or stopped before.
func (c *Connector) Start(ctx context.Context) error {
	c.mu.Lock()
	switch {
	case c.stopped:
		c.mu.Unlock()
		return errors.New("valkey: connector stopped")
	case c.started:
		c.mu.Unlock()
		return errors.New("valkey: connector already started")
	}
	c.started = true
	c.done = make(chan struct{})
	first := make(chan struct{})
	go c.run(c.done, first)
	c.mu.Unlock()

	t := time.NewTimer(2 * c.ping)
	defer t.Stop()
	select {
	case <-first:
	case <-t.C:
	case <-ctx.Done():
	}
	return nil
}

// Stop ends the connection attempts and closes the client. It waits for a
// running attempt to return, or for ctx to end (then it returns ctx's error,
// and the attempt, whose dials Stop aborted, closes what it opened).
// Stopping twice, or a Connector never started, is a no-op.
func (c *Connector) Stop(ctx context.Context) error {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return nil
	}
	c.stopped = true
	done, client := c.done, c.client
	c.mu.Unlock()
	c.end()
	if client != nil {
		client.Close()
	}
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("valkey: stopping the connector: %w", ctx.Err())
	}
}

// run tries to connect until it succeeds or Stop. first is closed after the
// first attempt.
func (c *Connector) run(done, first chan struct{}) {
	defer close(done)
	var firstOnce sync.Once
	firstDone := func() { firstOnce.Do(func() { close(first) }) }
	defer firstDone()

	delay := minRetryDelay
	for attempt := 1; ; attempt++ {
		client, err := c.attempt()
		if err == nil {
			if c.publish(client) {
				c.log.Info("valkey connected", slog.Int("attempts", attempt))
				if c.onDial != nil {
					c.onDial()
				}
			}
			return
		}
		if c.life.Err() != nil {
			return
		}
		if attempt == 1 {
			c.log.Warn("valkey unreachable: serving without the cache, connecting in the background",
				slog.Any("error", err))
			firstDone()
		} else {
			c.log.Debug("valkey still unreachable", slog.Int("attempt", attempt),
				slog.Duration("retry_in", delay), slog.Any("error", err))
		}
		t := time.NewTimer(delay)
		select {
		case <-c.life.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(2*delay, maxRetryDelay)
	}
}

// attempt opens a client and pings it once.
func (c *Connector) attempt() (valkey.Client, error) {
	ctx, cancel := context.WithTimeout(c.life, c.ping)
	defer cancel()
	return open(ctx, c.opt)
}

// publish makes client the connected one, unless Stop came first: then it
// closes client and reports false.
func (c *Connector) publish(client valkey.Client) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		client.Close()
		return false
	}
	c.client = client
	close(c.ready)
	return true
}

// dialed is the client's dial hook: it passes the dials of the published
// client on to Config.OnDial (the connection attempt's own dial is announced
// by run once the client is published).
func (c *Connector) dialed() {
	if _, ok := c.Client(); ok && c.onDial != nil {
		c.onDial()
	}
}

// lazyClient is the valkey.Client of a Connector: before the connection its
// calls wait at most PendingWait for it and fail with ErrNotConnected; after,
// it forwards everything to the connected client.
type lazyClient struct {
	conn   *Connector
	b      valkey.Builder // a standalone client's, handed out before the connection
	noSlot uint16         // the slot bit of the commands b builds
	addr   string         // the first configured address, for Nodes
}

var _ valkey.Client = (*lazyClient)(nil)

// Ready is closed once the client is connected. The event bus waits for it
// before subscribing.
func (l *lazyClient) Ready() <-chan struct{} { return l.conn.ready }

// await returns the connected client, waiting for it within ctx and
// PendingWait.
func (l *lazyClient) await(ctx context.Context) (valkey.Client, error) {
	if cl, ok := l.conn.Client(); ok {
		return cl, nil
	}
	t := time.NewTimer(PendingWait)
	defer t.Stop()
	select {
	case <-l.conn.ready:
		return l.conn.client, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrNotConnected, ctx.Err())
	case <-t.C:
		return nil, ErrNotConnected
	}
}

// stale reports whether a command of slot s was built by b (before the
// connection) while cl is a cluster client, which cannot route it.
func (l *lazyClient) stale(cl valkey.Client, slot uint16) bool {
	return slot&l.noSlot == l.noSlot && cl.Mode() == valkey.ClientModeCluster
}

// B returns the connected client's builder, or a standalone builder before
// the connection.
func (l *lazyClient) B() valkey.Builder {
	if cl, ok := l.conn.Client(); ok {
		return cl.B()
	}
	return l.b
}

// Do runs cmd on the connected client.
func (l *lazyClient) Do(ctx context.Context, cmd valkey.Completed) valkey.ValkeyResult {
	cl, err := l.await(ctx)
	if err != nil {
		return valkey.NewErrorResult(err)
	}
	if l.stale(cl, cmd.Slot()) {
		return valkey.NewErrorResult(errBuiltBeforeConnect)
	}
	return cl.Do(ctx, cmd)
}

// DoMulti runs multi on the connected client.
func (l *lazyClient) DoMulti(ctx context.Context, multi ...valkey.Completed) []valkey.ValkeyResult {
	cl, err := l.await(ctx)
	if err == nil {
		for _, cmd := range multi {
			if l.stale(cl, cmd.Slot()) {
				err = errBuiltBeforeConnect
				break
			}
		}
	}
	if err != nil {
		out := make([]valkey.ValkeyResult, len(multi))
		for i := range out {
			out[i] = valkey.NewErrorResult(err)
		}
		return out
	}
	return cl.DoMulti(ctx, multi...)
}

// DoCache runs cmd on the connected client.
func (l *lazyClient) DoCache(ctx context.Context, cmd valkey.Cacheable, ttl time.Duration) valkey.ValkeyResult {
	cl, err := l.await(ctx)
	if err != nil {
		return valkey.NewErrorResult(err)
	}
	if l.stale(cl, cmd.Slot()) {
		return valkey.NewErrorResult(errBuiltBeforeConnect)
	}
	return cl.DoCache(ctx, cmd, ttl)
}

// DoMultiCache runs multi on the connected client.
func (l *lazyClient) DoMultiCache(ctx context.Context, multi ...valkey.CacheableTTL) []valkey.ValkeyResult {
	cl, err := l.await(ctx)
	if err == nil {
		for _, ct := range multi {
			if l.stale(cl, ct.Cmd.Slot()) {
				err = errBuiltBeforeConnect
				break
			}
		}
	}
	if err != nil {
		out := make([]valkey.ValkeyResult, len(multi))
		for i := range out {
			out[i] = valkey.NewErrorResult(err)
		}
		return out
	}
	return cl.DoMultiCache(ctx, multi...)
}

// DoStream runs cmd on the connected client.
func (l *lazyClient) DoStream(ctx context.Context, cmd valkey.Completed) valkey.ValkeyResultStream {
	cl, err := l.await(ctx)
	if err != nil {
		return valkey.NewErrorResultStream(err)
	}
	if l.stale(cl, cmd.Slot()) {
		return valkey.NewErrorResultStream(errBuiltBeforeConnect)
	}
	return cl.DoStream(ctx, cmd)
}

// DoMultiStream runs multi on the connected client.
func (l *lazyClient) DoMultiStream(ctx context.Context, multi ...valkey.Completed) valkey.MultiValkeyResultStream {
	cl, err := l.await(ctx)
	if err != nil {
		return valkey.NewErrorResultStream(err)
	}
	for _, cmd := range multi {
		if l.stale(cl, cmd.Slot()) {
			return valkey.NewErrorResultStream(errBuiltBeforeConnect)
		}
	}
	return cl.DoMultiStream(ctx, multi...)
}

// Receive subscribes on the connected client.
func (l *lazyClient) Receive(ctx context.Context, subscribe valkey.Completed, fn func(msg valkey.PubSubMessage)) error {
	cl, err := l.await(ctx)
	if err != nil {
		return err
	}
	if l.stale(cl, subscribe.Slot()) {
		return errBuiltBeforeConnect
	}
	return cl.Receive(ctx, subscribe, fn)
}

// Dedicated runs fn on a dedicated connection of the connected client; before
// the connection it fails at once with ErrNotConnected.
func (l *lazyClient) Dedicated(fn func(valkey.DedicatedClient) error) error {
	cl, ok := l.conn.Client()
	if !ok {
		return ErrNotConnected
	}
	return cl.Dedicated(fn)
}

// Dedicate returns a dedicated connection of the connected client; before the
// connection, a dedicated client whose every call fails with ErrNotConnected.
func (l *lazyClient) Dedicate() (valkey.DedicatedClient, func()) {
	if cl, ok := l.conn.Client(); ok {
		return cl.Dedicate()
	}
	return notConnected{b: l.b}, func() {}
}

// Nodes returns the connected client's nodes; before the connection, the lazy
// client itself under the first configured address.
func (l *lazyClient) Nodes() map[string]valkey.Client {
	if cl, ok := l.conn.Client(); ok {
		return cl.Nodes()
	}
	return map[string]valkey.Client{l.addr: l}
}

// Mode returns the connected client's mode; before the connection,
// standalone, the mode of the commands B builds then.
func (l *lazyClient) Mode() valkey.ClientMode {
	if cl, ok := l.conn.Client(); ok {
		return cl.Mode()
	}
	return valkey.ClientModeStandalone
}

// Close does nothing: the Connector owns the connection and Stop closes it.
func (l *lazyClient) Close() {}

// notConnected is the dedicated client handed out before the connection.
type notConnected struct{ b valkey.Builder }

var _ valkey.DedicatedClient = notConnected{}

func (n notConnected) B() valkey.Builder { return n.b }

func (notConnected) Do(context.Context, valkey.Completed) valkey.ValkeyResult {
	return valkey.NewErrorResult(ErrNotConnected)
}

func (notConnected) DoMulti(_ context.Context, multi ...valkey.Completed) []valkey.ValkeyResult {
	out := make([]valkey.ValkeyResult, len(multi))
	for i := range out {
		out[i] = valkey.NewErrorResult(ErrNotConnected)
	}
	return out
}

func (notConnected) Receive(context.Context, valkey.Completed, func(valkey.PubSubMessage)) error {
	return ErrNotConnected
}

func (notConnected) SetPubSubHooks(h valkey.PubSubHooks) <-chan error {
	if h.OnMessage == nil && h.OnSubscription == nil {
		return nil
	}
	return closedWith(ErrNotConnected)
}

func (notConnected) SetOnInvalidations(fn func([]valkey.ValkeyMessage)) <-chan error {
	if fn == nil {
		return nil
	}
	return closedWith(ErrNotConnected)
}

func (notConnected) Close() {}

// closedWith returns a closed channel that holds err.
func closedWith(err error) <-chan error {
	ch := make(chan error, 1)
	ch <- err
	close(ch)
	return ch
}
