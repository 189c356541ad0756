package sessions

import (
	"context"
	"errors"
	"time"

	"github.com/halobestie/mitra-availability/core/worker"
	"github.com/halobestie/mitra-availability/ports"
)

// dueBatch bounds one DueTimers read.
const dueBatch = 200

// FireDue claims and fires every deadline due at the clock's now, and returns
// how many it fired. Each claim re-checks its deadline under the session's
// lock, so when several instances race for one deadline exactly one fires it.
func (s *Service) FireDue(ctx context.Context) (int, error) {
	fired := 0
	for {
		now := s.now()
		due, err := s.store.DueTimers(ctx, now, dueBatch)
		if err != nil {
			return fired, err
		}
		for _, d := range due {
			ok, err := s.fire(ctx, d, now)
			if err != nil {
				s.log.WarnContext(ctx, "firing session timer failed; retried on the next tick", "session_id", d.SessionID, "kind", d.Kind, "err", err)
				continue
			}
			if ok {
				fired++
			}
		}
		if len(due) < dueBatch {
			return fired, nil
		}
	}
}

// fire claims one deadline; false when another instance (or a transition) got there first.
func (s *Service) fire(ctx context.Context, d ports.DueTimer, now time.Time) (bool, error) {
	if d.Kind == ports.TimerBatch {
		ok, err := s.widen(ctx, d, now)
		if errors.Is(err, errNotApplicable) || errors.Is(err, ports.ErrNotFound) {
			return false, nil
		}
		return ok, err
	}
	var (
		released string
		out      outbox
	)
	sess, err := s.store.UpdateSession(ctx, d.SessionID, func(ctx context.Context, tx ports.SessionTx, x *ports.Session) error {
		switch d.Kind {
		case ports.TimerPairing:
			if x.Status != ports.StatusSearching || x.OfferExpiresAt == nil || x.OfferExpiresAt.After(now) {
				return errNotApplicable
			}
			end(x, ports.StatusUnmatched, ports.EndUnmatched, now)
		case ports.TimerPayment:
			if x.Status != ports.StatusPendingPayment || x.PaymentDueAt == nil || x.PaymentDueAt.After(now) {
				return errNotApplicable
			}
			released = *x.MitraID
			end(x, ports.StatusCancelled, ports.EndPaymentTimeout, now)
		case ports.TimerWarning:
			if x.Status != ports.StatusActive || x.WarningSentAt != nil || x.WarnAt == nil || x.WarnAt.After(now) {
				return errNotApplicable
			}
			if x.ExpiresAt != nil && !x.ExpiresAt.After(now) {
				return errNotApplicable // overdue past expiry (no instance ran): the expiry ends it instead
			}
			x.WarningSentAt = &now
			x.WarnAt = nil
			return out.warning(tx, x, now)
		case ports.TimerQueue:
			if !x.Waiting() || x.Queue.ExpiresAt.After(now) {
				return errNotApplicable
			}
			end(x, ports.StatusUnmatched, ports.EndUnmatched, now)
		case ports.TimerExpiry:
			if x.Status != ports.StatusActive || x.ExpiresAt == nil || x.ExpiresAt.After(now) {
				return errNotApplicable
			}
			released = *x.MitraID
			end(x, ports.StatusEnded, ports.EndExpired, now)
		default:
			return errNotApplicable
		}
		return out.ended(tx, x, now)
	})
	if errors.Is(err, errNotApplicable) || errors.Is(err, ports.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if released != "" {
		s.avail.RecomputeLoad(ctx, released)
	}
	if d.Kind == ports.TimerQueue || d.Kind == ports.TimerPairing {
		s.mirrorQueue(ctx, sess) // unmatched: out of the queue for good
	}
	if released != "" || d.Kind == ports.TimerPairing {
		s.kick() // a place was released, or an offer no longer holds a slot
	}
	s.deliver(ctx, &out)
	s.log.InfoContext(ctx, "session timer fired", "session_id", sess.ID, "kind", d.Kind)
	return true, nil
}

// maxSleep bounds the scheduler's sleep so deadlines of sessions created on
// other instances are noticed within it.
const maxSleep = time.Second

// Scheduler fires the session deadlines on time: a paced worker loop that
// fires what is due, then sleeps until the earliest deadline in the store (at
// most maxSleep) or until a local transition wakes it.
type Scheduler struct {
	svc  *Service
	loop *worker.Loop
}

// NewScheduler returns a stopped scheduler and connects svc's wake-up to it.
func NewScheduler(svc *Service) *Scheduler {
	sc := &Scheduler{svc: svc}
	sc.loop = worker.NewPaced("session-scheduler", sc.tick)
	svc.SetWake(sc.loop.Wake)
	return sc
}

// Start fires what is overdue (deadlines that passed while no instance ran),
// then starts the loop.
func (sc *Scheduler) Start(ctx context.Context) error {
	if _, err := sc.svc.FireDue(ctx); err != nil {
		sc.svc.log.WarnContext(ctx, "restoring session timers: firing overdue deadlines failed; the loop retries", "err", err)
	}
	return sc.loop.Start(ctx)
}

// Stop ends the loop and waits for it, or for ctx.
func (sc *Scheduler) Stop(ctx context.Context) error { return sc.loop.Stop(ctx) }

func (sc *Scheduler) tick(ctx context.Context) time.Duration {
	if _, err := sc.svc.FireDue(ctx); err != nil && ctx.Err() == nil {
		sc.svc.log.WarnContext(ctx, "firing session timers failed", "err", err)
	}
	return sc.nextSleep(ctx)
}

// nextSleep is the time until the earliest pending deadline, within (0, maxSleep].
func (sc *Scheduler) nextSleep(ctx context.Context) time.Duration {
	at, ok, err := sc.svc.store.NextTimer(ctx)
	if err != nil || !ok {
		return maxSleep
	}
	return min(max(at.Sub(sc.svc.clock.Now()), time.Millisecond), maxSleep)
}
