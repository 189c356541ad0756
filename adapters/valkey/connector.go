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
