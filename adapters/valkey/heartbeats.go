package valkey

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/valkey-io/valkey-go"

	"github.com/halobestie/mitra-availability/ports"
)

// Heartbeats are the hot path of the mirror (every online mitra sends one
// every 30 s, on any instance). Concurrent calls of one Mirror are sent
// together, as one scriptHeartbeat call of up to heartbeatBatch heartbeats
// (group commit): a call finding fewer than heartbeatSenders batches in
// flight sends at once, with whatever else is queued; the others wait for
// the next batch, which leaves as soon as one in flight comes back. A lone
// heartbeat therefore leaves at once, and under load one round trip (one
// command, one socket write and read on each side, one deadline) serves
// many: that round trip, not the script, was most of a heartbeat's cost.
//
// Each heartbeat still answers only after the script recorded it (or
// refused it), with the same outcome as alone: the script handles the
// batch's heartbeats one after another, atomically, exactly as it would
// handle them as separate calls in that order.
const (
	heartbeatBatch   = 128 // heartbeats per script call at most
	heartbeatSenders = 2   // batches in flight at most
)

// heartbeatCall is one queued heartbeat; its answer arrives on done.
type heartbeatCall struct {
	id   string
	ds   int64
	done chan heartbeatAnswer // buffered: the sender never waits for its caller
}

type heartbeatAnswer struct {
	code int64
	err  error
}

// heartbeatQueue is the queue of one Mirror.
type heartbeatQueue struct {
	mu      sync.Mutex
	calls   []*heartbeatCall
	senders int            // batches being sent
	spawned sync.WaitGroup // the senders on goroutines of their own (Stop waits for them)
}

var heartbeatCalls = sync.Pool{New: func() any { return &heartbeatCall{done: make(chan heartbeatAnswer, 1)} }}

// Heartbeat checks the marker, the deactivated set and the online sets and
// records at (never moving the heartbeat backwards), in one round trip,
// shared with the heartbeats of other calls in flight at the same time. A
// context that has ended fails it at once; one that ends while it waits does
// not cut the wait, which the mirror's deadline bounds per batch.
func (m *Mirror) Heartbeat(ctx context.Context, id string, at time.Time) (ports.HeartbeatOutcome, error) {
	if err := ctx.Err(); err != nil {
		return 0, wrap("heartbeat", err)
	}
	call := heartbeatCalls.Get().(*heartbeatCall)
	call.id, call.ds = id, toDS(at)
	q := &m.hb
	q.mu.Lock()
	q.calls = append(q.calls, call)
	send := q.senders < heartbeatSenders
	if send {
		q.senders++
	}
	q.mu.Unlock()
	if send {
		m.sendHeartbeats()
	}
	// The caller waits for its answer even when its context ends meanwhile:
	// every batch ahead of it and its own are bounded by the mirror's
	// deadline (usually this is the batch in flight and its own), so a
	// client gone mid-heartbeat costs only that wait, and no heartbeat
	// selects on its context's Done channel, which a request's context
	// makes, and closes, only when asked: an allocation and a select saved
	// on every heartbeat.
	a := <-call.done
	call.id = ""
	heartbeatCalls.Put(call) // answered: nothing else holds it
	if a.err != nil {
		return 0, wrap("heartbeat", a.err)
	}
	switch a.code {
	case 0:
		return 0, wrap("heartbeat", ports.ErrMirrorNotSeeded)
	case 1:
		return ports.HeartbeatRecorded, nil
	case 2:
		return ports.HeartbeatNotOnline, nil
	case 3:
		return ports.HeartbeatDeactivated, nil
	}
	return 0, wrap("heartbeat", fmt.Errorf("unexpected script answer %d", a.code))
}

// sendHeartbeats sends the queued heartbeats, a batch at a time, until the
// queue is empty; the caller counted itself in q.senders. It runs on the
// goroutine of a heartbeat call (the batch carries the call's own heartbeat,
// or another sender took it) and returns after its first batch, handing what
// was queued meanwhile to a goroutine of its own, so that no caller waits for
// more than the batch its heartbeat is in.
func (m *Mirror) sendHeartbeats() {
	q := &m.hb
	q.mu.Lock()
	n := min(len(q.calls), heartbeatBatch)
	if n == 0 {
		q.senders--
		q.mu.Unlock()
		return
	}
	batch := q.calls[:n:n]
	if n == len(q.calls) {
		q.calls = nil
	} else {
		q.calls = q.calls[n:]
	}
	q.mu.Unlock()

	m.runHeartbeats(batch)

	q.mu.Lock()
	if len(q.calls) == 0 {
		q.senders--
		q.mu.Unlock()
		return
	}
	q.mu.Unlock()
	q.spawned.Go(m.sendHeartbeats) // still counted in q.senders
}

// Stop waits, until ctx ends, for the heartbeat batches sent on goroutines
// of their own (each bounded by the mirror's deadline, and ended once the
// queue is empty): the app calls it on shutdown, after the HTTP server
// stopped and before the Valkey client closes.
func (m *Mirror) Stop(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		m.hb.spawned.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("valkey mirror: heartbeat batches still in flight: %w", ctx.Err())
	}
}

// runHeartbeats runs one batch under the mirror's deadline and answers each
// call. The batch serves several callers, so no caller's context bounds it:
// only the deadline does (a caller that gives up stops waiting, as it would
// for a command already sent).
func (m *Mirror) runHeartbeats(batch []*heartbeatCall) {
	args := make([]string, 0, 2*len(batch))
	for _, c := range batch {
		args = append(args, c.id, strconv.FormatInt(c.ds, 10))
	}
	ctx, cancel := m.deadline(context.Background())
	res := scriptHeartbeat.Exec(ctx, m.c, m.k.heartbeat, args)
	cancel()
	codes, seeded, err := heartbeatCodes(res.ToMessage())
	if err == nil && seeded && len(codes) != len(batch) {
		err = fmt.Errorf("%d answers for %d heartbeats", len(codes), len(batch))
	}
	for i, c := range batch {
		a := heartbeatAnswer{err: err}
		if err == nil && seeded {
			a.code, a.err = codes[i].AsInt64()
		} // not seeded: code 0 for every call
		c.done <- a
	}
}

// heartbeatCodes reads scriptHeartbeat's reply: 0 is not seeded, else the
// reply's own array of codes, one per heartbeat.
func heartbeatCodes(msg valkey.ValkeyMessage, err error) (codes []valkey.ValkeyMessage, seeded bool, _ error) {
	if err != nil {
		return nil, false, err
	}
	if msg.IsInt64() {
		n, err := msg.AsInt64()
		if err != nil {
			return nil, false, err
		}
		if n != 0 {
			return nil, false, fmt.Errorf("unexpected script answer %d", n)
		}
		return nil, false, nil
	}
	codes, err = msg.ToArray()
	return codes, err == nil, err
}
