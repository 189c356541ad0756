package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valkey-io/valkey-go"
)

// memProbe measures the server memory a layout costs, on a private server:
// FLUSHALL, read used_memory, seed through a client of its own, close that
// client (so that its query and reply buffers are freed), read used_memory
// again. meter, the probe's own connection, only sends small commands.
type memProbe struct {
	srv   *privateServer
	meter valkey.Client
}

func newMemProbe(tb testing.TB) *memProbe {
	tb.Helper()
	srv := startPrivateServer(tb)
	meter := srv.connect(tb)
	tb.Cleanup(meter.Close)
	return &memProbe{srv: srv, meter: meter}
}

// reset empties the private server and returns its used_memory.
func (p *memProbe) reset(ctx context.Context) (int64, error) {
	if err := p.meter.Do(ctx, p.meter.B().Flushall().Build()).Error(); err != nil {
		return 0, fmt.Errorf("flushall: %w", err)
	}
	return p.settle(ctx)
}

// settle waits until the probe's connection is the only client left and the
// server's background rehashing of the keyspace table is done (its cron
// finishes within a few hundred milliseconds what the writes left half
// done), then returns used_memory. A sorted set's own hash table has no
// background rehashing: one left half rehashed by the writes stays so until
// later writes to it finish the job, and is measured as it is.
func (p *memProbe) settle(ctx context.Context) (int64, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := p.info(ctx, "clients", "connected_clients")
		if err != nil {
			return 0, err
		}
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%d clients still connected", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	for {
		// DEBUG is enabled on the private server; should a server refuse
		// it, give its cron the time it needs instead.
		stats, err := p.meter.Do(ctx, p.meter.B().Arbitrary("DEBUG", "HTSTATS", "0").Build()).ToString()
		if err != nil {
			time.Sleep(500 * time.Millisecond)
			break
		}
		if !strings.Contains(stats, "rehashing") {
			break
		}
		if time.Now().After(deadline) {
			return 0, errors.New("the keyspace is still rehashing")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return p.info(ctx, "memory", "used_memory")
}

// info returns the integer field of an INFO section.
func (p *memProbe) info(ctx context.Context, section, field string) (int64, error) {
	raw, err := p.meter.Do(ctx, p.meter.B().Info().Section(section).Build()).ToString()
	if err != nil {
		return 0, fmt.Errorf("info %s: %w", section, err)
	}
	for line := range strings.Lines(raw) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("info %s: no %s", section, field)
}

// measure runs seed on an empty server through a new client and returns the
// growth of used_memory. started and stopped, when set, are called around
// seed alone (a benchmark's StartTimer and StopTimer).
func (p *memProbe) measure(tb testing.TB, seed func(ctx context.Context, c valkey.Client) error, started, stopped func()) int64 {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	base, err := p.reset(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	c := p.srv.connect(tb)
	if started != nil {
		started()
	}
	err = seed(ctx, c)
	if stopped != nil {
		stopped()
	}
	c.Close()
	if err != nil {
		tb.Fatalf("seed: %v", err)
	}
	used, err := p.settle(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	return used - base
}
