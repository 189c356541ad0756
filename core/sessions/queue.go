package sessions

import (
	"context"
	"errors"
	"fmt"
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
)

// SetKick installs the dispatcher's wake-up.
func (s *Service) SetKick(f func()) { s.kick = f }

// Kick asks for a dispatch pass soon: capacity may have appeared. The
// mitra rules call it when a mitra goes online or its capacity is raised.
func (s *Service) Kick() { s.kick() }

// RequestQueue starts a search that waits in the queue when no mitra can
// take it now (POST /api/sessions with queue: true and no mitra_id).
//
// The new session joins the end of the queue, then a pass runs in the same
// transaction: the sessions that waited before it are offered first, and
// the new one only when a slot remains for it. So a request never overtakes
// the queue, even when a slot is free at that instant.
func (s *Service) RequestQueue(ctx context.Context, customerID string, durationMinutes int) (View, error) {
	if durationMinutes < MinDurationMinutes || durationMinutes > MaxDurationMinutes {
		return View{}, core.Invalid("duration_minutes", "must be an integer from 1 to 240")
	}
	available, err := s.avail.AvailableMitras(ctx)
	if err != nil {
		return View{}, fmt.Errorf("finding available mitras: %w", err)
	}
	now := s.now()
	var (
		out  outbox
		sess ports.Session
	)
	err = s.store.QueuePass(ctx, func(ctx context.Context, tx ports.QueueTx) error {
		out = outbox{}
		c, err := tx.Create(ctx, ports.Session{
			CustomerID:       customerID,
			Status:           ports.StatusSearching,
			DurationMinutes:  durationMinutes,
			SearchingSince:   now,
			OfferedMitraIDs:  []string{},
			ExcludedMitraIDs: []string{},
			Queue:            &ports.QueueEntry{QueuedAt: now, ExpiresAt: now.Add(s.cfg.QueueTimeout)},
		})
		if err != nil {
			return err
		}
		sess = c
		_, offered, err := s.dispatchLocked(ctx, tx, available, now, &out)
		if x, ok := offered[c.ID]; ok {
			sess = x
		}
		return err
	})
	if errors.Is(err, ports.ErrOpenSessionExists) {
		return View{}, core.ErrOpenSessionExists
	}
	if err != nil {
		return View{}, fmt.Errorf("queuing session: %w", err)
	}
	s.wake()
	s.deliver(ctx, &out)
	v := ViewOf(sess, now)
	if err := s.queueFigures(ctx, &v, sess); err != nil {
		return View{}, err
	}
	return v, nil
}

// requestBehindQueue is a request without queue while sessions wait: the
// queue is served first (a pass in the same transaction), and the request
// is offered only when a slot remains beyond what the queue took;
// otherwise core.ErrNoMitraAvailable.
func (s *Service) requestBehindQueue(ctx context.Context, customerID string, durationMinutes int) (View, error) {
	available, err := s.avail.AvailableMitras(ctx)
	if err != nil {
		return View{}, fmt.Errorf("finding available mitras: %w", err)
	}
	now := s.now()
	var (
		out        outbox
		sess       ports.Session
		refused    bool
		openExists bool
	)
	err = s.store.QueuePass(ctx, func(ctx context.Context, tx ports.QueueTx) error {
		out, refused, openExists = outbox{}, false, false
		slots, _, err := s.dispatchLocked(ctx, tx, available, now, &out)
		if err != nil {
			return err
		}
		if slots <= 0 {
			refused = true // the queue's offers still commit
			return nil
		}
		offered, batched, err := s.round(ctx, nil)
		if err != nil {
			return err
		}
		if len(offered) == 0 {
			refused = true
			return nil
		}
		deadline := now.Add(s.cfg.PairingTimeout)
		in := ports.Session{
			CustomerID:       customerID,
			Status:           ports.StatusSearching,
			DurationMinutes:  durationMinutes,
			SearchingSince:   now,
			OfferExpiresAt:   &deadline,
			OfferedMitraIDs:  offered,
			ExcludedMitraIDs: []string{},
		}
		if batched {
			s.startBatches(&in, now)
		}
		c, err := tx.Create(ctx, in)
		if errors.Is(err, ports.ErrOpenSessionExists) {
			openExists = true // the queue's offers still commit
			return nil
		}
		if err != nil {
			return err
		}
		sess = c
		return out.offer(tx, &c, now)
	})
	if err != nil {
		s.kick()
		return View{}, fmt.Errorf("creating session: %w", err)
	}
	s.wake()
	s.deliver(ctx, &out)
	if openExists {
		return View{}, core.ErrOpenSessionExists
	}
	if refused {
		return View{}, fmt.Errorf("%w: every free mitra is taken by the waiting queue", core.ErrNoMitraAvailable)
	}
	return ViewOf(sess, now), nil
}

// Dispatch runs one pass of the queue: while free slots remain, the oldest
// waiting session is offered (through the Router, among the available
// mitras it does not exclude), its pairing deadline starting now, and its
// session_offer events are logged in the pass's transaction. A waiting
// session that no available mitra may be offered keeps its place, and the
// pass goes on to the next. It returns how many sessions it offered.
func (s *Service) Dispatch(ctx context.Context) (int, error) {
	waiting, err := s.store.HasWaiting(ctx)
	if err != nil || !waiting {
		return 0, err
	}
	available, err := s.avail.AvailableMitras(ctx)
	if err != nil {
		return 0, fmt.Errorf("finding available mitras: %w", err)
	}
	if len(available) == 0 {
		return 0, nil
	}
	now := s.now()
	var (
		out     outbox
		offered map[string]ports.Session
	)
	err = s.store.QueuePass(ctx, func(ctx context.Context, tx ports.QueueTx) error {
		out = outbox{}
		var err error
		_, offered, err = s.dispatchLocked(ctx, tx, available, now, &out)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("queue pass: %w", err)
	}
	if len(offered) > 0 {
		s.wake()
		s.log.InfoContext(ctx, "queued sessions offered", "count", len(offered))
	}
	s.deliver(ctx, &out)
	return len(offered), nil
}

// dispatchLocked is one pass under the queue lock. It returns the slots
// left after it, and the sessions it offered by id.
func (s *Service) dispatchLocked(ctx context.Context, tx ports.QueueTx, available []string, now time.Time, out *outbox) (int, map[string]ports.Session, error) {
	offered := map[string]ports.Session{}
	slots, err := tx.FreeSlots(ctx, available)
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
		// The same round as a request's: the Router's choice among the
		// available mitras the session does not exclude.
		to, batched, err := s.round(ctx, x.ExcludedMitraIDs)
		if err != nil {
			return slots, offered, err
		}
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

// queueFigures sets the view's queue_position and estimated_wait_seconds
// for a waiting session (both stay null otherwise).
func (s *Service) queueFigures(ctx context.Context, v *View, x ports.Session) error {
	if !x.Waiting() {
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
	matched, ok := s.rate.get(ctx, s, s.now())
	if !ok || matched <= 0 {
		return nil
	}
	secs := (int64(pos)*int64(matchWindow/time.Second) + int64(matched) - 1) / int64(matched)
	w := int(secs)
	return &w
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
