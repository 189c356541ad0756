package postgres

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/halobestie/mitra-availability/ports"
)

// The event log is written in two steps (docs/contract.md §13, migrations
// 00009 and 00012):
//
//  1. A session transition writes each event once, with all its recipients,
//     to event_outbox in its own transaction (writeOutbox): the event is
//     recorded if and only if the state change commits, and the transition
//     locks nothing but its own rows. (Giving each recipient its id inside
//     the transition locked every recipient's head until the commit, so
//     every blast and every accept, each naming about every mitra, waited
//     for the one before it, and the connection pool filled with waiters.)
//  2. Right after the commit, before the transition returns, the outbox is
//     sequenced (sequenceCommitted, sequenceBatch): one transaction at a
//     time, across instances (an advisory lock), moves the oldest events
//     into events with the next ids of each recipient's stream (logEvents)
//     and deletes them from the outbox. Ids thus commit in order per
//     recipient, and one sequencing transaction serves every transition
//     that committed meanwhile. In a process, one call sequences at a time;
//     the others wait for its batches without holding a connection.
//
// The transition's caller gets its events' ids (Event.Seqs) when this
// process sequenced them, and publishes them as before. Events sequenced
// with no caller waiting for them in this process (another instance's, or
// left by a sequencing that failed or a process that died after its commit)
// are handed to the publisher (SetPublisher) by whoever sequences them; the
// app's worker sequences what is left every 250 ms (SequencePending).

// outboxLockKey is the advisory lock that serialises the sequencing
// transactions of every instance.
const outboxLockKey = 0x6d69747261_01 // "mitra" 1

// outboxBatchRecipients bounds the recipients of the events one sequencing
// transaction moves (at least one event is moved).
const outboxBatchRecipients = 5000

// outboxBatchEvents bounds the events one sequencing transaction reads.
const outboxBatchEvents = 64

// sequenceTimeout bounds the sequencing a transition runs after its commit
// (when no other call of this process is sequencing).
const sequenceTimeout = 5 * time.Second

// sequenceWait bounds how long a transition waits for its events to be
// sequenced, by another call of this process or by itself (then it ends
// with the batch that runs past it). Past it the transition returns
// without its events' ids, and whoever sequences them publishes them: the
// answer does not wait for a backlog of other transitions' events (a burst
// of blasts, each a thousand recipients).
const sequenceWait = time.Second

// outboxRow is a row of event_outbox.
type outboxRow struct {
	bun.BaseModel `bun:"table:event_outbox"`

	ID      int64     `bun:"id,pk,autoincrement"`
	Type    string    `bun:"type"`
	At      time.Time `bun:"at"`
	Payload string    `bun:"payload"`
	UserIDs []string  `bun:"user_ids,array"`
}

// outboxSize is an outbox event's id and number of recipients.
type outboxSize struct {
	ID int64 `bun:"id"`
	N  int   `bun:"n"`
}

// outboxWaiter is a transition's event waiting for its ids in this process.
type outboxWaiter struct {
	seqs []int64
	done bool
}

// outbox is the Store's state of the two steps.
type outbox struct {
	mu      sync.Mutex
	running bool                    // a sequencing runs in this process (one connection waits on the lock)
	batched chan struct{}           // closed after each batch and when a sequencing ends, then replaced
	waiting map[int64]*outboxWaiter // by outbox id
	publish func(context.Context, ports.Event) error

	// gen counts the batches this process started. horizon is what the
	// latest finished batch (number horizonGen) learnt: every event
	// committed before it started and with an id below horizon has left
	// the outbox (sequenced by this process or by another instance).
	gen, horizon, horizonGen int64
}

// batchedLocked returns the channel closed at the next batch. s.ob.mu must be held.
func (s *Store) batchedLocked() chan struct{} {
	if s.ob.batched == nil {
		s.ob.batched = make(chan struct{})
	}
	return s.ob.batched
}

// signalLocked wakes whoever waits for a batch. s.ob.mu must be held.
func (s *Store) signalLocked() {
	if s.ob.batched != nil {
		close(s.ob.batched)
		s.ob.batched = nil
	}
}

// SetPublisher implements ports.EventSequencer: publish receives every event
// this store sequences that no transition of this process waits for.
func (s *Store) SetPublisher(publish func(context.Context, ports.Event) error) {
	s.ob.mu.Lock()
	defer s.ob.mu.Unlock()
	s.ob.publish = publish
}

// writeOutbox writes events to the outbox inside tx (the session
// transaction that emitted them), with their recipients deduped in order and
// canonical, and returns their outbox ids.
func writeOutbox(ctx context.Context, tx bun.Tx, events []*ports.Event) ([]int64, error) {
	if len(events) == 0 {
		return nil, nil
	}
	rows := make([]outboxRow, len(events))
	for i, e := range events {
		users, err := eventUsers(e.UserIDs)
		if err != nil {
			return nil, err
		}
		e.UserIDs = users
		e.At = ts(e.At)
		rows[i] = outboxRow{Type: e.Type, At: e.At, Payload: string(e.Payload), UserIDs: users}
	}
	if _, err := tx.NewInsert().Model(&rows).Column("type", "at", "payload", "user_ids").Returning("id").Exec(ctx); err != nil {
		return nil, fmt.Errorf("writing the event outbox: %w", translate(err))
	}
	ids := make([]int64, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	return ids, nil
}

// emitted writes the events of a transition to the outbox inside tx, as
// its last statement, and registers their ids as awaited (await).
func (s *Store) emitted(ctx context.Context, tx bun.Tx, events []*ports.Event) ([]int64, error) {
	ids, err := writeOutbox(ctx, tx, events)
	if err != nil {
		return nil, err
	}
	s.await(ids)
	return ids, nil
}

// await registers the outbox ids of a transition about to commit, so that
// the sequencing of this process hands their ids to it (and publishes them
// not) even when another call sequences them first.
func (s *Store) await(ids []int64) {
	s.ob.mu.Lock()
	defer s.ob.mu.Unlock()
	if s.ob.waiting == nil {
		s.ob.waiting = make(map[int64]*outboxWaiter)
	}
	for _, id := range ids {
		s.ob.waiting[id] = &outboxWaiter{}
	}
}

// collect ends the wait of ids: the events sequenced meanwhile get their
// Seqs; the others keep none (whoever sequences them publishes them).
func (s *Store) collect(ids []int64, events []*ports.Event) {
	s.ob.mu.Lock()
	defer s.ob.mu.Unlock()
	for i, id := range ids {
		if w := s.ob.waiting[id]; w != nil && w.done && events != nil {
			events[i].Seqs = w.seqs
		}
		delete(s.ob.waiting, id)
	}
}

// sequenceCommitted sequences the outbox after a transition committed ids,
// then hands their ids to events. One call of this process sequences at a
// time; the others wait for its batches and return as soon as theirs are
// done (or take over when it ends first), or after sequenceWait, leaving
// their events to the sequencing call to publish. A failure leaves the events in
// the outbox for the next sequencing (the app's worker); the transition
// stands.
func (s *Store) sequenceCommitted(ctx context.Context, ids []int64, events []*ports.Event) {
	if len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sequenceTimeout)
	defer cancel()
	// A transition that sequences stops after the batch that settles its
	// own events, or the first batch that ends past sequenceWait: the
	// backlog ahead of its events is left to the next caller or the
	// worker, as a waiting transition leaves it (a batch runs on ctx, so it
	// is never cut).
	waitCtx, cancelWait := context.WithTimeout(ctx, sequenceWait)
	defer cancelWait()
	s.ob.mu.Lock()
	since := s.ob.gen // the batches after this one see the committed events
	s.ob.mu.Unlock()
	settled := func() bool {
		s.ob.mu.Lock()
		defer s.ob.mu.Unlock()
		return s.settledLocked(ids, since) || waitCtx.Err() != nil
	}
wait:
	for {
		s.ob.mu.Lock()
		if s.settledLocked(ids, since) || waitCtx.Err() != nil {
			s.ob.mu.Unlock()
			break
		}
		if !s.ob.running {
			s.ob.running = true
			s.ob.mu.Unlock()
			_ = s.runSequencing(ctx, settled) // retried by the worker
			break
		}
		ch := s.batchedLocked()
		s.ob.mu.Unlock()
		select {
		case <-ch:
		case <-waitCtx.Done():
			break wait
		}
	}
	s.collect(ids, events)
}

// settledLocked reports whether every one of ids, committed before batch
// number since+1 started, has left the outbox: sequenced by this process
// (done), or found gone by a later batch (another instance sequenced it and
// published it). s.ob.mu must be held.
func (s *Store) settledLocked(ids []int64, since int64) bool {
	for _, id := range ids {
		if w := s.ob.waiting[id]; w != nil && w.done {
			continue
		}
		if s.ob.horizonGen > since && id < s.ob.horizon {
			continue
		}
		return false
	}
	return true
}

// maxWorkerBatches bounds the batches of one SequencePending.
const maxWorkerBatches = 50

// SequencePending implements ports.EventSequencer: it sequences the events
// the outbox holds, unless a sequencing of this process is already at it.
func (s *Store) SequencePending(ctx context.Context) error {
	var pending bool
	if err := s.db.NewRaw(`SELECT EXISTS (SELECT 1 FROM event_outbox)`).Scan(ctx, &pending); err != nil {
		return fmt.Errorf("postgres: reading the event outbox: %w", translate(err))
	}
	if !pending {
		return nil
	}
	s.ob.mu.Lock()
	if s.ob.running {
		s.ob.mu.Unlock()
		return nil
	}
	s.ob.running = true
	s.ob.mu.Unlock()
	return s.runSequencing(ctx, nil)
}

// runSequencing sequences batches until stop says so, the outbox is empty,
// a batch fails, or (without stop) maxWorkerBatches ran; then it lets
// another call of this process sequence. s.ob.running must have been set
// by the caller.
func (s *Store) runSequencing(ctx context.Context, stop func() bool) error {
	defer func() {
		s.ob.mu.Lock()
		s.ob.running = false
		s.signalLocked()
		s.ob.mu.Unlock()
	}()
	for batches := 1; ; batches++ {
		n, more, err := s.sequenceBatch(ctx)
		if err != nil {
			return err
		}
		if n == 0 || !more || (stop != nil && stop()) || (stop == nil && batches >= maxWorkerBatches) {
			return nil
		}
	}
}

// sequenceBatch moves the oldest events of the outbox into the log in one
// transaction, then hands them to their waiters or the publisher. more
// reports whether the outbox may hold more.
func (s *Store) sequenceBatch(ctx context.Context) (n int, more bool, err error) {
	s.ob.mu.Lock()
	s.ob.gen++
	gen := s.ob.gen
	s.ob.mu.Unlock()
	var events []*ports.Event
	var ids []int64
	var horizon int64
	err = s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		events, ids, more, horizon = nil, nil, false, math.MaxInt64
		if _, err := tx.NewRaw(`SELECT pg_advisory_xact_lock(?)`, int64(outboxLockKey)).Exec(ctx); err != nil {
			return err
		}
		// The oldest events' sizes first, then only the rows the batch takes:
		// a blast's recipients are a thousand ids to decode.
		var sizes []outboxSize
		if err := tx.NewRaw(`SELECT id, cardinality(user_ids) AS n FROM event_outbox ORDER BY id LIMIT ?`,
			outboxBatchEvents).Scan(ctx, &sizes); err != nil {
			return err
		}
		recipients := 0
		for i, r := range sizes {
			if i > 0 && recipients+r.N > outboxBatchRecipients {
				more, horizon = true, r.ID
				break
			}
			recipients += r.N
			ids = append(ids, r.ID)
		}
		if !more && len(sizes) == outboxBatchEvents {
			more, horizon = true, sizes[len(sizes)-1].ID+1
		}
		if len(ids) == 0 {
			return nil
		}
		var rows []outboxRow
		if err := tx.NewSelect().Model(&rows).Where("id = ANY(?::bigint[])", pgdialect.Array(ids)).OrderExpr("id").Scan(ctx); err != nil {
			return err
		}
		if len(rows) != len(ids) {
			return fmt.Errorf("%d of %d outbox events read", len(rows), len(ids)) // only this lock holder deletes them
		}
		for _, r := range rows {
			events = append(events, &ports.Event{Type: r.Type, UserIDs: r.UserIDs, Payload: []byte(r.Payload), At: r.At})
		}
		if err := logEvents(ctx, tx, events); err != nil {
			return err
		}
		_, err := tx.NewRaw(`DELETE FROM event_outbox WHERE id = ANY(?::bigint[])`, pgdialect.Array(ids)).Exec(ctx)
		return err
	})
	if err != nil {
		return 0, false, fmt.Errorf("postgres: sequencing the event outbox: %w", translate(err))
	}
	var orphans []ports.Event
	s.ob.mu.Lock()
	if gen > s.ob.horizonGen {
		s.ob.horizon, s.ob.horizonGen = horizon, gen
	}
	publish := s.ob.publish
	for i, id := range ids {
		if w := s.ob.waiting[id]; w != nil {
			w.seqs, w.done = events[i].Seqs, true
		} else {
			orphans = append(orphans, *events[i])
		}
	}
	s.signalLocked()
	s.ob.mu.Unlock()
	if publish != nil {
		for _, e := range orphans {
			_ = publish(context.WithoutCancel(ctx), e) // the bus logs and counts its failures; the log has the event
		}
	}
	return len(ids), more, nil
}
