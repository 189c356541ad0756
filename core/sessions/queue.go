package sessions

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/halobestie/mitra-availability/core"
	"github.com/halobestie/mitra-availability/core/worker"
	"github.com/halobestie/mitra-availability/ports"
)

// The waiting queue (docs/contract.md §10).
//
// A session requested with queue: true gets a queue entry whose key
// (priority, queued_at, a store sequence) orders the queue. It waits while
// no offer stands; a dispatch pass offers it when a slot is free; a mitra's
// accept matches it (the entry becomes history). Every pass runs under the
// store's queue lock, shared by all instances, and counts the free slots
// from the store's truth in the same transaction, so passes racing on
// several instances never offer two queued sessions to one free slot, and
// each offers the oldest waiting sessions first.
const (
	// DefaultQueueTimeout is QUEUE_TIMEOUT_SECONDS's default.
	DefaultQueueTimeout = 900 * time.Second
	// dispatchEvery is the period of the dispatcher's pass, which repairs a
	// capacity arrival whose trigger was lost (an instance killed after its
	// commit, a pass that failed).
	dispatchEvery = time.Second
	// dispatchBatch bounds the waiting sessions one pass reads.
	dispatchBatch = 200
	// matchWindow is how far back the estimated wait looks at the rate at
	// which queued sessions were matched; rateTTL how long one instance
	// reuses that rate.
	matchWindow = 15 * time.Minute
	rateTTL     = 5 * time.Second
	// noticeEvery is the least time between two queue_update events of one
	// session; noticeLimit bounds the sessions one notice pass looks at
	// (from the head of the queue).
	noticeEvery = time.Second
	noticeLimit = 1000
)

// SetKick installs the dispatcher's wake-up.
func (s *Service) SetKick(f func()) { s.kick = f }

// Kick asks for a dispatch pass soon: capacity may have appeared. The
// mitra rules call it when a mitra goes online or its capacity is raised.
func (s *Service) Kick() { s.kick() }

// RequestQueue starts a search that waits in the queue when no mitra can
// take it now (POST /api/sessions with queue: true and no mitra_id).
//
// The new session joins the end of the queue in a pass (pass.go): the
// sessions that waited before it are offered first, and the new one only
// when a slot remains for it. So a request never overtakes the queue, even
// when a slot is free at that instant. A waiting session's answer carries
// its position.
func (s *Service) RequestQueue(ctx context.Context, customerID string, durationMinutes int) (View, error) {
	if durationMinutes < MinDurationMinutes || durationMinutes > MaxDurationMinutes {
		return View{}, core.Invalid("duration_minutes", "must be an integer from 1 to 240")
	}
	j := &passJob{kind: jobQueue, customerID: customerID, duration: durationMinutes}
	b := s.runJob(ctx, j)
	if b.err != nil {
		return View{}, fmt.Errorf("queuing session: %w", b.err)
	}
	if j.refuse != nil {
		return View{}, j.refuse
	}
	v := ViewOf(j.sess, b.now)
	if j.sess.Waiting() {
		v.QueuePosition = j.sess.Queue.NotifiedPosition
		v.EstimatedWaitSeconds = b.wait(*v.QueuePosition)
	}
	return v, nil
}

// requestBehindQueue is a request without queue while sessions wait: the
// queue is served first (in the same pass), and the request is offered
// only when a slot remains beyond what the queue took; otherwise
// core.ErrNoMitraAvailable.
func (s *Service) requestBehindQueue(ctx context.Context, customerID string, durationMinutes int) (View, error) {
	j := &passJob{kind: jobBehind, customerID: customerID, duration: durationMinutes}
	b := s.runJob(ctx, j)
	if b.err != nil {
		return View{}, fmt.Errorf("creating session: %w", b.err)
	}
	if j.refuse != nil {
		return View{}, j.refuse
	}
	return ViewOf(j.sess, b.now), nil
}

// Dispatch runs one pass of the queue (with the requests of this instance
// that arrive meanwhile): while free slots remain, the oldest waiting
// session is offered (through the Router, among the available mitras it
// does not exclude), its pairing deadline starting now, and its
// session_offer events are logged in the pass's transaction. A waiting
// session that no available mitra may be offered keeps its place, and the
// pass goes on to the next. The queue_update notices that are due are
// sent. It returns how many sessions the pass offered.
func (s *Service) Dispatch(ctx context.Context) (int, error) {
	b := s.runJob(ctx, &passJob{kind: jobDispatch})
	if b.err != nil {
		return 0, b.err
	}
	return b.offered, nil
}

// dispatchLocked is one pass under the queue lock. It returns the slots
// left after it, and the sessions it offered by id.
func (s *Service) dispatchLocked(ctx context.Context, tx ports.QueueTx, in passInput, now time.Time, out *outbox) (int, map[string]ports.Session, error) {
	offered := map[string]ports.Session{}
	slots, err := tx.FreeSlots(ctx, in.available)
	if err != nil || slots <= 0 {
		return slots, offered, err
	}
	waiting, err := tx.Waiting(ctx, dispatchBatch)
	if err != nil {
		return slots, offered, err
	}
	for _, x := range waiting {
		if slots <= 0 {
			break
		}
		// The Router's choice among the available mitras the session does
		// not exclude, as for a request.
		to, batched := s.chooseFrom(in.pool, x.ExcludedMitraIDs, in.used)
		if len(to) == 0 {
			continue // every available mitra declined it: it keeps its place
		}
		deadline := now.Add(s.cfg.PairingTimeout)
		x.OfferedMitraIDs, x.BatchStart = to, 0
		x.OfferExpiresAt = &deadline
		if batched {
			s.startBatches(&x, now)
		}
		if err := tx.Save(ctx, x); err != nil {
			return slots, offered, err
		}
		if err := out.offer(tx, &x, now); err != nil {
			return slots, offered, err
		}
		offered[x.ID] = x
		slots--
	}
	return slots, offered, nil
}

// poolFactor widens the candidates a pass reads for an ordered strategy
// (its batch size times this), so that the sessions of one pass can be
// offered different batches.
const poolFactor = 16

// passInput is what a pass reads before it takes the queue lock (no I/O of
// the availability rules runs under it): the available mitras, whose free
// places it counts, and the candidates its offers are chosen from.
type passInput struct {
	available []string
	pool      []ports.Candidate
	used      map[string]bool // mitras offered a session by this pass
}

// prepare reads a pass's input: every available mitra, and the candidates
// the Router reads (all of them for a blast, the top of its order, wider,
// for a batched strategy).
func (s *Service) prepare(ctx context.Context) (passInput, error) {
	available, err := s.avail.AvailableMitras(ctx)
	if err != nil {
		return passInput{}, fmt.Errorf("finding available mitras: %w", err)
	}
	in := passInput{available: available, used: map[string]bool{}}
	order, limit := s.cfg.Router.Read()
	if limit <= 0 || len(available) == 0 {
		in.pool = make([]ports.Candidate, len(available))
		for i, id := range available {
			in.pool[i] = ports.Candidate{ID: id}
		}
		return in, nil
	}
	if in.pool, err = s.avail.Candidates(ctx, order, min(limit*poolFactor, max(limit, dispatchBatch)), nil); err != nil {
		return passInput{}, fmt.Errorf("finding available mitras (%s): %w", order, err)
	}
	return in, nil
}

// chooseFrom is an offer round without I/O: the Router's choice among the
// pool's mitras that exclude does not hold, preferring those no session of
// this pass was offered yet (so that one pass spreads its sessions over the
// free mitras), truncated to the first batch. It marks the chosen mitras used.
func (s *Service) chooseFrom(pool []ports.Candidate, exclude []string, used map[string]bool) ([]string, bool) {
	var cands, fresh []ports.Candidate
	for _, c := range pool {
		if slices.Contains(exclude, c.ID) {
			continue
		}
		cands = append(cands, c)
		if !used[c.ID] {
			fresh = append(fresh, c)
		}
	}
	if len(fresh) > 0 {
		cands = fresh
	}
	if len(cands) == 0 {
		return nil, false
	}
	ordered, batch := s.cfg.Router.Choose(cands)
	if batch > 0 && len(ordered) > batch {
		ordered = ordered[:batch]
	}
	for _, id := range ordered {
		used[id] = true
	}
	return ordered, batch > 0
}

// queueFigures sets the view's queue_position and estimated_wait_seconds
// for a waiting session (both stay null otherwise).
func (s *Service) queueFigures(ctx context.Context, v *View, x ports.Session) error {
	if !x.Waiting() {
		return nil
	}
	now := s.now()
	if f, ok := s.mirrorFigures(ctx, &x, now); ok {
		s.rate.set(now, f.MatchedSince)
		pos := f.Ahead + 1
		v.QueuePosition = &pos
		v.EstimatedWaitSeconds = estimate(f.MatchedSince, true)(pos)
		return nil
	}
	ahead, err := s.store.QueueAhead(ctx, *x.Queue)
	if err != nil {
		return fmt.Errorf("queue position: %w", err)
	}
	pos := ahead + 1
	v.QueuePosition = &pos
	v.EstimatedWaitSeconds = s.estimateWait(ctx, pos)
	return nil
}

// estimateWait is pos divided by the rate at which queued sessions were
// matched over the last matchWindow; nil when none was (unknown).
func (s *Service) estimateWait(ctx context.Context, pos int) *int {
	return s.estimator(ctx, s.now())(pos)
}

// estimator reads the match rate (before a pass takes the queue lock) and
// returns the estimate of a position.
func (s *Service) estimator(ctx context.Context, now time.Time) func(pos int) *int {
	return estimate(s.rate.get(ctx, s, now))
}

// estimate returns the estimate of a position when matched queued sessions
// were matched over the last matchWindow (ok false: unknown).
func estimate(matched int, ok bool) func(pos int) *int {
	return func(pos int) *int {
		if !ok || matched <= 0 {
			return nil
		}
		secs := (int64(pos)*int64(matchWindow/time.Second) + int64(matched) - 1) / int64(matched)
		w := int(secs)
		return &w
	}
}

// noticesLocked sends queue_update to the customers whose position changed
// since they were last told (docs/contract.md §10), at most once every
// noticeEvery per session: a change within it waits for a later pass. A
// waiting session is told its position; a dispatched one that was last told
// a position is told it left the queue (queue_position null). Each notice is
// saved with the session, under the queue lock, so passes on several
// instances send each change once.
func (s *Service) noticesLocked(ctx context.Context, tx ports.QueueTx, now time.Time, est func(int) *int, out *outbox) error {
	due := func(q *ports.QueueEntry) bool {
		return q.NotifiedAt == nil || now.Sub(*q.NotifiedAt) >= noticeEvery
	}
	waiting, err := tx.Waiting(ctx, noticeLimit)
	if err != nil {
		return err
	}
	offered, err := tx.Offered(ctx, noticeLimit)
	if err != nil {
		return err
	}
	for i, x := range append(waiting, offered...) {
		pos := 0 // left the queue
		if i < len(waiting) {
			pos = i + 1
		}
		q := x.Queue
		if (q.NotifiedPosition != nil && *q.NotifiedPosition == pos) || !due(q) {
			continue
		}
		q.NotifiedPosition, q.NotifiedAt = &pos, &now
		if err := tx.Save(ctx, x); err != nil {
			return err
		}
		var position, wait *int
		if pos > 0 {
			position, wait = &pos, est(pos)
		}
		if err := out.emit(tx, ports.EventQueueUpdate, []string{x.CustomerID}, now, map[string]any{
			"type": ports.EventQueueUpdate, "session_id": x.ID,
			"queue_position": position, "estimated_wait_seconds": wait,
		}); err != nil {
			return err
		}
	}
	return nil
}

// matchRate caches, per instance, the number of queued sessions matched in
// the last matchWindow for rateTTL.
type matchRate struct {
	mu      sync.Mutex
	at      time.Time
	matched int
	ok      bool
}

// forget drops the cached rate.
func (r *matchRate) forget() {
	r.mu.Lock()
	r.ok = false
	r.mu.Unlock()
}

func (r *matchRate) get(ctx context.Context, s *Service, now time.Time) (int, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ok && now.Sub(r.at) < rateTTL && !now.Before(r.at) {
		return r.matched, true
	}
	if f, ok := s.mirrorFigures(ctx, nil, now); ok {
		r.at, r.matched, r.ok = now, f.MatchedSince, true
		return r.matched, true
	}
	st, err := s.store.QueueStats(ctx, now.Add(-matchWindow))
	if err != nil {
		s.log.WarnContext(ctx, "reading the queue's match rate failed; the estimated wait is unknown", "err", err)
		return 0, false
	}
	r.at, r.matched, r.ok = now, st.MatchedSince, true
	return r.matched, true
}

// QueueSummary is the dashboard's queue figures.
type QueueSummary struct {
	Length             int
	LongestWaitSeconds int
}

// QueueSummary answers the queue's length and its longest wait now.
func (s *Service) QueueSummary(ctx context.Context) (QueueSummary, error) {
	now := s.now()
	if f, ok := s.mirrorFigures(ctx, nil, now); ok {
		q := QueueSummary{Length: f.Waiting}
		if f.OldestQueuedAt != nil {
			q.LongestWaitSeconds = max(0, int(now.Sub(*f.OldestQueuedAt)/time.Second))
		}
		return q, nil
	}
	st, err := s.store.QueueStats(ctx, now.Add(-matchWindow))
	if err != nil {
		return QueueSummary{}, fmt.Errorf("queue figures: %w", err)
	}
	q := QueueSummary{Length: st.Waiting}
	if st.OldestQueuedAt != nil {
		q.LongestWaitSeconds = max(0, int(now.Sub(*st.OldestQueuedAt)/time.Second))
	}
	return q, nil
}

// Dispatcher runs the queue's passes on every instance: at once when this
// instance saw capacity appear (Kick), and every dispatchEvery whatever
// happened, so that capacity freed on an instance that died before its pass
// is still served.
type Dispatcher struct {
	svc  *Service
	loop *worker.Loop
}

// NewDispatcher returns a stopped dispatcher and connects svc's kick to it.
func NewDispatcher(svc *Service) *Dispatcher {
	d := &Dispatcher{svc: svc}
	d.loop = worker.NewPaced("queue-dispatcher", d.tick)
	svc.SetKick(d.loop.Wake)
	return d
}

// Start starts the loop; its first pass runs at once.
func (d *Dispatcher) Start(ctx context.Context) error { return d.loop.Start(ctx) }

// Stop ends the loop and waits for it, or for ctx.
func (d *Dispatcher) Stop(ctx context.Context) error { return d.loop.Stop(ctx) }

func (d *Dispatcher) tick(ctx context.Context) time.Duration {
	if _, err := d.svc.Dispatch(ctx); err != nil && ctx.Err() == nil {
		d.svc.log.WarnContext(ctx, "queue pass failed; retried on the next tick", "err", err)
	}
	return dispatchEvery
}
