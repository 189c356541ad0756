package valkey

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/valkey-io/valkey-go"

	"github.com/halobestie/mitra-availability/ports"
)

// TestHeartbeatsQueuedGoTogether: heartbeats that queue while every sender
// is busy leave in one script call when a sender comes back, and each gets
// its own outcome.
func TestHeartbeatsQueuedGoTogether(t *testing.T) {
	mr := miniredis.RunT(t)
	c, err := Open(context.Background(), Config{URL: "redis://" + mr.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cc := &countingClient{Client: c}
	m := NewMirror(cc, "batch:", time.Second)
	ctx := context.Background()
	if _, err := m.Reseed(ctx, nil, nil); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	if err := m.PutOnline(ctx, ports.MirrorMitra{ID: "on", LastHeartbeat: now, Capacity: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Heartbeat(ctx, "off", now); err != nil { // loads the script
		t.Fatal(err)
	}

	m.hb.mu.Lock()
	m.hb.senders = heartbeatSenders // every sender busy
	m.hb.mu.Unlock()
	const n = 50
	type answer struct {
		i   int
		out ports.HeartbeatOutcome
		err error
	}
	answers := make(chan answer, n)
	for i := range n {
		go func() {
			id := "off"
			if i%2 == 0 {
				id = "on"
			}
			out, err := m.Heartbeat(ctx, id, now.Add(time.Duration(i)*time.Second))
			answers <- answer{i, out, err}
		}()
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		m.hb.mu.Lock()
		queued := len(m.hb.calls)
		m.hb.mu.Unlock()
		if queued == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d heartbeats queued, want %d", queued, n)
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case a := <-answers:
		t.Fatalf("heartbeat %d answered while every sender was busy: %v, %v", a.i, a.out, a.err)
	default:
	}

	// One busy sender is back and sends the queue (it is still counted).
	before := cc.calls.Load()
	m.sendHeartbeats()
	if got := cc.calls.Load() - before; got != 1 {
		t.Errorf("%d commands for %d queued heartbeats, want 1", got, n)
	}
	for range n {
		a := <-answers
		want := ports.HeartbeatNotOnline
		if a.i%2 == 0 {
			want = ports.HeartbeatRecorded
		}
		if a.err != nil || a.out != want {
			t.Errorf("heartbeat %d = %v, %v; want %v", a.i, a.out, a.err, want)
		}
	}
	st, err := m.Status(ctx, "on")
	if err != nil {
		t.Fatal(err)
	}
	if want := now.Add((n - 2) * time.Second); !st.Mitra.LastHeartbeat.Equal(want) {
		t.Errorf("last heartbeat %v, want %v", st.Mitra.LastHeartbeat, want)
	}
	m.hb.mu.Lock()
	defer m.hb.mu.Unlock()
	if m.hb.senders != heartbeatSenders-1 || len(m.hb.calls) != 0 {
		t.Errorf("after the batch: %d senders, %d queued; want %d, 0", m.hb.senders, len(m.hb.calls), heartbeatSenders-1)
	}
}

// countingClient counts the commands sent with Do.
type countingClient struct {
	valkey.Client
	calls atomic.Int64
}

func (c *countingClient) Do(ctx context.Context, cmd valkey.Completed) valkey.ValkeyResult {
	c.calls.Add(1)
	return c.Client.Do(ctx, cmd)
}
