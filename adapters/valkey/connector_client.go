package valkey

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/valkey-io/valkey-go"
)

// ErrNotConnected is the error of the lazy client's calls before the
// Connector reached Valkey.
var ErrNotConnected = errors.New("valkey: not connected yet")

// errBuiltBeforeConnect is the error of a command built while not connected
// and sent to a cluster client that appeared meanwhile: its key slot was not
// computed the cluster's way.
var errBuiltBeforeConnect = errors.New("valkey: command built before the connection; retry it")

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
