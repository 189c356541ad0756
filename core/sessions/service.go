package sessions

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/halobestie/mitra-availability/core"
	"github.com/halobestie/mitra-availability/core/auth"
	"github.com/halobestie/mitra-availability/core/mitras"
	"github.com/halobestie/mitra-availability/ports"
)

// Limits of the request fields.
const (
	MinDurationMinutes = 1
	MaxDurationMinutes = 240
	MinExtendMinutes   = 1
	MaxExtendMinutes   = 120
	listLimit          = 100
)

// Availability is what the lifecycle asks of the availability rules
// (implemented by *mitras.Service).
type Availability interface {
	AvailableMitras(ctx context.Context) ([]string, error)
	// Candidates returns up to limit available mitras, none of exclude, in order.
	Candidates(ctx context.Context, order ports.CandidateOrder, limit int, exclude []string) ([]ports.Candidate, error)
	AvailabilityOf(ctx context.Context, id string) (mitras.Availability, error)
	RecomputeLoad(ctx context.Context, id string)
}

// Config holds the timer parameters and the routing strategy.
type Config struct {
	PairingTimeout time.Duration
	PaymentTimeout time.Duration
	WarningLead    time.Duration
	// Router chooses who gets an offer among the available mitras; nil is
	// Blast{} (every available mitra).
	Router Router
	// BatchInterval is how often a search offered in batches widens
	// (OFFER_BATCH_SECONDS); zero is DefaultBatchInterval.
	BatchInterval time.Duration
	// QueueTimeout ends a session that waited that long in the queue as
	// unmatched; 0 is DefaultQueueTimeout.
	QueueTimeout time.Duration
}

// Service implements the session use cases.
type Service struct {
	store   ports.SessionStore
	avail   Availability
	bus     ports.EventBus
	clock   ports.Clock
	log     *slog.Logger
	cfg     Config
	wake    func() // wakes the scheduler after a transition moved a deadline
	kick    func() // wakes the queue's dispatcher: capacity may have appeared
	rate    matchRate
	passes  passes      // this instance's queue passes, batched (pass.go)
	accepts turns       // this instance's accepts, one per session at a time (turns.go)
	qm      QueueMirror // the queue mirror (queue_mirror.go); zero: none
}

// NewService builds the session service.
func NewService(store ports.SessionStore, avail Availability, bus ports.EventBus, clock ports.Clock, log *slog.Logger, cfg Config) (*Service, error) {
	if store == nil || avail == nil || bus == nil || clock == nil {
		return nil, errors.New("sessions: missing dependency")
	}
	if cfg.PairingTimeout <= 0 || cfg.PaymentTimeout <= 0 || cfg.WarningLead <= 0 {
		return nil, errors.New("sessions: timeouts must be positive")
	}
	if log == nil {
		log = slog.Default()
	}
	if cfg.Router == nil {
		cfg.Router = Blast{}
	}
	if cfg.BatchInterval < 0 {
		return nil, errors.New("sessions: BatchInterval must not be negative")
	}
	if cfg.BatchInterval == 0 {
		cfg.BatchInterval = DefaultBatchInterval
	}
	if cfg.QueueTimeout < 0 {
		return nil, errors.New("sessions: the queue timeout must be positive")
	}
	if cfg.QueueTimeout == 0 {
		cfg.QueueTimeout = DefaultQueueTimeout
	}
	return &Service{store: store, avail: avail, bus: bus, clock: clock, log: log, cfg: cfg, wake: func() {}, kick: func() {}}, nil
}

// SetWake installs the scheduler's wake-up.
func (s *Service) SetWake(f func()) { s.wake = f }

// errNotApplicable aborts a timer claim whose deadline is no longer due.
var errNotApplicable = errors.New("deadline no longer applies")

// Request starts a search for a customer (docs/contract.md §7 POST
// /api/sessions) that does not queue. A direct request (mitraID) goes to that
// mitra whatever the queue holds. Any other request, while sessions wait in
// the queue, is served after them: it gets an offer only when a slot remains
// beyond what the queue takes, core.ErrNoMitraAvailable otherwise.
func (s *Service) Request(ctx context.Context, customerID string, durationMinutes int, mitraID *string) (View, error) {
	if durationMinutes < MinDurationMinutes || durationMinutes > MaxDurationMinutes {
		return View{}, core.Invalid("duration_minutes", "must be an integer from 1 to 240")
	}
	if mitraID == nil {
		waiting, err := s.store.HasWaiting(ctx)
		if err != nil {
			return View{}, fmt.Errorf("reading the queue: %w", err)
		}
		if waiting {
			return s.requestBehindQueue(ctx, customerID, durationMinutes)
		}
	}
	var (
		offered []string
		batched bool
	)
	if mitraID != nil {
		a, err := s.avail.AvailabilityOf(ctx, *mitraID)
		if err != nil {
			return View{}, fmt.Errorf("checking mitra_id: %w", err)
		}
		if !a.Available {
			return View{}, fmt.Errorf("%w: the requested mitra is not available", core.ErrNoMitraAvailable)
		}
		offered = []string{*mitraID}
	} else {
		var err error
		if offered, batched, err = s.round(ctx, nil); err != nil {
			return View{}, err
		}
	}
	if len(offered) == 0 {
		return View{}, core.ErrNoMitraAvailable
	}
	now := s.now()
	var out outbox
	in := s.newSearch(customerID, durationMinutes, offered, batched, now)
	sess, err := s.store.CreateSession(ctx, in, func(_ context.Context, tx ports.SessionTx, x ports.Session) error {
		return out.offer(tx, &x, now)
	})
	if errors.Is(err, ports.ErrOpenSessionExists) {
		return View{}, core.ErrOpenSessionExists
	}
	if err != nil {
		return View{}, fmt.Errorf("creating session: %w", err)
	}
	s.wake()
	s.deliver(ctx, &out)
	return ViewOf(sess, now), nil
}

// newSearch is a new session searching now, offered to the mitras to (in
// batches when batched), with its pairing deadline.
func (s *Service) newSearch(customerID string, durationMinutes int, to []string, batched bool, now time.Time) ports.Session {
	deadline := now.Add(s.cfg.PairingTimeout)
	x := ports.Session{
		CustomerID:       customerID,
		Status:           ports.StatusSearching,
		DurationMinutes:  durationMinutes,
		SearchingSince:   now,
		OfferExpiresAt:   &deadline,
		OfferedMitraIDs:  to,
		ExcludedMitraIDs: []string{},
	}
	if batched {
		s.startBatches(&x, now)
	}
	return x
}

// Accept lets an offered mitra take a searching session.
//
// A blast offers a session to every available mitra and many of them accept
// within moments; all but one lose. The rules are checked first on a plain
// read, so that an accept bound to lose (the session is already taken)
// answers at once instead of queuing on the session's row lock behind the
// others. The accepts of one session that pass it then take their turns on
// this instance (turns.go), holding no connection while they wait, and one
// that waited reads the session again before it goes on; the transaction
// checks the rules once more under the row's lock, which accepts on other
// instances meet.
func (s *Service) Accept(ctx context.Context, mitraID, sessionID string) (View, error) {
	cur, err := s.store.Session(ctx, sessionID)
	if err != nil {
		return View{}, err
	}
	if err := mayAccept(&cur, mitraID); err != nil {
		return View{}, err
	}
	release, waited, err := s.accepts.take(ctx, sessionID)
	if err != nil {
		return View{}, err
	}
	if waited {
		// Another accept went first: most often it took the session, which
		// a plain read tells without a transaction.
		if cur, err = s.store.Session(ctx, sessionID); err != nil {
			release()
			return View{}, err
		}
		if err := mayAccept(&cur, mitraID); err != nil {
			release()
			return View{}, err
		}
	}
	var (
		out     outbox
		matched bool
	)
	now := s.now()
	sess, err := s.store.UpdateSession(ctx, sessionID, func(ctx context.Context, tx ports.SessionTx, x *ports.Session) error {
		matched = false
		if err := mayAccept(x, mitraID); err != nil {
			return err
		}
		load, err := tx.LockMitraLoad(ctx, mitraID)
		if err != nil {
			return err
		}
		if !load.IsActive {
			return core.ErrAccountDeactivated
		}
		if load.OpenSessions >= load.Capacity {
			return core.ErrAtCapacity
		}
		others := slices.DeleteFunc(slices.Clone(x.OfferedMitraIDs), func(id string) bool { return id == mitraID })
		if x.Queued() {
			x.Queue.MatchedAt = &now
			matched = true
		}
		x.MitraID = &mitraID
		x.AcceptedAt = &now
		x.OfferExpiresAt, x.NextBatchAt = nil, nil
		if x.Paid {
			// Rerouted after payment: active at once with the time that remained.
			remaining := x.DurationMinutes * 60
			if x.RemainingSeconds != nil {
				remaining = *x.RemainingSeconds
			}
			s.activate(x, now, time.Duration(remaining)*time.Second)
			x.RemainingSeconds = nil
		} else {
			x.Status = ports.StatusPendingPayment
			due := now.Add(s.cfg.PaymentTimeout)
			x.PaymentDueAt = &due
		}
		if err := out.emit(tx, ports.EventSessionTaken, others, now,
			map[string]any{"type": ports.EventSessionTaken, "session_id": x.ID}); err != nil {
			return err
		}
		return out.update(tx, x, now)
	})
	release()
	if err != nil {
		return View{}, err
	}
	if matched {
		s.mirrorQueue(ctx, sess)
		s.rate.forget() // this instance's estimates count the match at once
	}
	s.avail.RecomputeLoad(ctx, mitraID)
	s.wake()
	s.deliver(ctx, &out)
	return ViewOf(sess, now), nil
}

// mayAccept checks that mitraID may accept x as it stands: x was offered to
// it, it was not rerouted away from x, and x is still searching.
func mayAccept(x *ports.Session, mitraID string) error {
	if !slices.Contains(x.OfferedMitraIDs, mitraID) || slices.Contains(x.ExcludedMitraIDs, mitraID) {
		return fmt.Errorf("%w: this session was not offered to you", core.ErrForbidden)
	}
	switch x.Status {
	case ports.StatusSearching:
		return nil
	case ports.StatusPendingPayment, ports.StatusActive:
		return core.ErrSessionTaken
	default:
		return fmt.Errorf("%w: the session is %s", core.ErrInvalidState, x.Status)
	}
}

// Decline lets an offered mitra refuse a searching session (docs/contract.md §11):
// the mitra joins the session's excluded mitras, so it is never offered the
// session again and can no longer accept it; the other offers stand. A
// repeated decline changes nothing. core.ErrForbidden when the session was
// not offered to the mitra, core.ErrInvalidState once it is no longer
// searching. When the search is offered in batches and every mitra of its
// latest batch has declined, the next batch is due at once (the scheduler
// adds it, through the same claim as every timer).
//
// A queued session that every mitra it was offered to declined goes back
// to the queue at its own key (so at the head, or near it), its pairing
// deadline cleared, to be offered to other mitras as capacity allows.
//
// Like Accept, the rules are checked first on a plain read: the mitras that
// decline a blast's offer mostly do so after another mitra took it, and each
// of those answers 409 at once instead of queuing on the session's row lock
// behind the accept (a queue that filled the connection pool under load).
// The transaction checks them again under the lock.
func (s *Service) Decline(ctx context.Context, mitraID, sessionID string) error {
	cur, err := s.store.Session(ctx, sessionID)
	if err != nil {
		return err
	}
	now := s.now()
	widenNow, requeued := false, false
	err = mayDecline(&cur, mitraID)
	if err == nil {
		var sess ports.Session
		sess, err = s.store.UpdateSession(ctx, sessionID, func(_ context.Context, _ ports.SessionTx, x *ports.Session) error {
			requeued = false
			if err := mayDecline(x, mitraID); err != nil {
				return err
			}
			x.ExcludedMitraIDs = append(x.ExcludedMitraIDs, mitraID)
			switch {
			case x.Queued() && !offerStands(x):
				x.OfferExpiresAt, x.NextBatchAt = nil, nil
				x.OfferedMitraIDs, x.BatchStart = []string{}, 0
				requeued = true
			case x.NextBatchAt != nil && x.NextBatchAt.After(now) && latestBatchDeclined(x):
				x.NextBatchAt = &now
				widenNow = true
			}
			return nil
		})
		if err == nil && requeued {
			s.mirrorQueue(ctx, sess)
		}
	}
	if errors.Is(err, errNothingToDo) {
		return nil
	}
	if err != nil {
		return err
	}
	if widenNow {
		s.wake()
	}
	s.kick()
	s.log.InfoContext(ctx, "offer declined", "session_id", sessionID, "mitra_id", mitraID, "batch_declined", widenNow, "requeued", requeued)
	return nil
}

// offerStands reports whether x was offered to a mitra that has not
// declined it.
func offerStands(x *ports.Session) bool {
	for _, id := range x.OfferedMitraIDs {
		if !slices.Contains(x.ExcludedMitraIDs, id) {
			return true
		}
	}
	return false
}

// mayDecline checks that mitraID may decline x as it stands: x was offered
// to it and is still searching; errNothingToDo when it declined x already.
func mayDecline(x *ports.Session, mitraID string) error {
	if !slices.Contains(x.OfferedMitraIDs, mitraID) && !slices.Contains(x.ExcludedMitraIDs, mitraID) {
		return fmt.Errorf("%w: this session was not offered to you", core.ErrForbidden)
	}
	if x.Status != ports.StatusSearching {
		return fmt.Errorf("%w: the session is %s, no longer searching", core.ErrInvalidState, x.Status)
	}
	if slices.Contains(x.ExcludedMitraIDs, mitraID) {
		return errNothingToDo
	}
	return nil
}

// errNothingToDo aborts a transition that would change nothing.
var errNothingToDo = errors.New("nothing to change")

// activate starts (or resumes) the paid clock of a session for d.
func (s *Service) activate(x *ports.Session, now time.Time, d time.Duration) {
	x.Status = ports.StatusActive
	x.StartedAt = &now
	x.PaymentDueAt = nil
	exp := now.Add(d)
	x.ExpiresAt = &exp
	s.setWarnAt(x)
}

// setWarnAt schedules the warning WarningLead before expiry (never before the
// start), unless it was already sent in this session's life.
func (s *Service) setWarnAt(x *ports.Session) {
	if x.WarningSentAt != nil || x.ExpiresAt == nil {
		x.WarnAt = nil
		return
	}
	w := x.ExpiresAt.Add(-s.cfg.WarningLead)
	if x.StartedAt != nil && w.Before(*x.StartedAt) {
		w = *x.StartedAt
	}
	x.WarnAt = &w
}

// Pay confirms the payment of a pending session (the payment provider's callback).
func (s *Service) Pay(ctx context.Context, customerID, sessionID string) (View, error) {
	now := s.now()
	var out outbox
	sess, err := s.store.UpdateSession(ctx, sessionID, func(ctx context.Context, tx ports.SessionTx, x *ports.Session) error {
		if x.CustomerID != customerID {
			return ports.ErrNotFound
		}
		if x.Status != ports.StatusPendingPayment {
			return fmt.Errorf("%w: only a pending_payment session can be paid, this one is %s", core.ErrInvalidState, x.Status)
		}
		x.Paid = true
		s.activate(x, now, time.Duration(x.DurationMinutes)*time.Minute)
		return out.update(tx, x, now)
	})
	if err != nil {
		return View{}, err
	}
	s.wake()
	s.deliver(ctx, &out)
	return ViewOf(sess, now), nil
}

// Extend adds paid minutes to an active session.
func (s *Service) Extend(ctx context.Context, customerID, sessionID string, minutes int) (View, error) {
	if minutes < MinExtendMinutes || minutes > MaxExtendMinutes {
		return View{}, core.Invalid("minutes", "must be an integer from 1 to 120")
	}
	now := s.now()
	var out outbox
	sess, err := s.store.UpdateSession(ctx, sessionID, func(ctx context.Context, tx ports.SessionTx, x *ports.Session) error {
		if x.CustomerID != customerID {
			return ports.ErrNotFound
		}
		if x.Status != ports.StatusActive || x.ExpiresAt == nil {
			return fmt.Errorf("%w: only an active session can be extended, this one is %s", core.ErrInvalidState, x.Status)
		}
		exp := x.ExpiresAt.Add(time.Duration(minutes) * time.Minute)
		x.ExpiresAt = &exp
		x.DurationMinutes += minutes
		s.setWarnAt(x)
		return out.update(tx, x, now)
	})
	if err != nil {
		return View{}, err
	}
	s.wake()
	s.deliver(ctx, &out)
	return ViewOf(sess, now), nil
}

// End ends a session on behalf of its customer or its mitra.
func (s *Service) End(ctx context.Context, p auth.Principal, sessionID string) (View, error) {
	now := s.now()
	var (
		released string
		out      outbox
	)
	sess, err := s.store.UpdateSession(ctx, sessionID, func(ctx context.Context, tx ports.SessionTx, x *ports.Session) error {
		isCustomer := p.Role == ports.RoleCustomer && x.CustomerID == p.UserID
		isMitra := p.Role == ports.RoleMitra && x.MitraID != nil && *x.MitraID == p.UserID
		if !isCustomer && !isMitra {
			return ports.ErrNotFound
		}
		switch x.Status {
		case ports.StatusSearching:
			if !isCustomer {
				return ports.ErrNotFound
			}
			end(x, ports.StatusCancelled, ports.EndCancelledByCustomer, now)
		case ports.StatusPendingPayment, ports.StatusActive:
			reason := ports.EndEndedByCustomer
			if isMitra {
				reason = ports.EndEndedByMitra
			}
			released = *x.MitraID
			end(x, ports.StatusEnded, reason, now)
		default:
			return fmt.Errorf("%w: the session is already %s", core.ErrInvalidState, x.Status)
		}
		return out.ended(tx, x, now)
	})
	if err != nil {
		return View{}, err
	}
	if released != "" {
		s.avail.RecomputeLoad(ctx, released)
	} else {
		s.mirrorQueue(ctx, sess) // cancelled while searching: out of the queue for good
	}
	s.kick()
	s.deliver(ctx, &out)
	return ViewOf(sess, now), nil
}

// end moves x to a final status and clears its pending deadlines.
func end(x *ports.Session, st ports.SessionStatus, reason ports.EndReason, now time.Time) {
	x.Status = st
	x.EndReason = &reason
	x.EndedAt = &now
	x.OfferExpiresAt, x.PaymentDueAt, x.WarnAt, x.NextBatchAt = nil, nil, nil, nil
}

// Reroute releases the session's mitra and searches again among the available
// mitras, never offering it to a mitra it was rerouted away from.
func (s *Service) Reroute(ctx context.Context, customerID, sessionID string) (View, error) {
	cur, err := s.store.Session(ctx, sessionID)
	if err != nil {
		return View{}, err
	}
	exclude := slices.Clone(cur.ExcludedMitraIDs)
	if cur.MitraID != nil {
		exclude = append(exclude, *cur.MitraID)
	}
	fresh, batched, err := s.round(ctx, exclude)
	if err != nil {
		return View{}, err
	}
	now := s.now()
	var (
		released string
		out      outbox
	)
	sess, err := s.store.UpdateSession(ctx, sessionID, func(ctx context.Context, tx ports.SessionTx, x *ports.Session) error {
		if x.CustomerID != customerID {
			return ports.ErrNotFound
		}
		if x.Status != ports.StatusPendingPayment && x.Status != ports.StatusActive {
			return fmt.Errorf("%w: only a pending_payment or active session can be rerouted, this one is %s", core.ErrInvalidState, x.Status)
		}
		released = *x.MitraID
		if !slices.Contains(x.ExcludedMitraIDs, released) {
			x.ExcludedMitraIDs = append(x.ExcludedMitraIDs, released)
		}
		if x.Status == ports.StatusActive && x.ExpiresAt != nil {
			left := max(0, int(x.ExpiresAt.Sub(now).Seconds()))
			x.RemainingSeconds = &left
		}
		x.Status = ports.StatusSearching
		x.MitraID = nil
		x.AcceptedAt, x.PaymentDueAt, x.ExpiresAt, x.WarnAt = nil, nil, nil, nil
		x.StartedAt = nil
		x.SearchingSince = now
		deadline := now.Add(s.cfg.PairingTimeout)
		x.OfferExpiresAt = &deadline
		x.OfferedMitraIDs = slices.DeleteFunc(slices.Clone(fresh), func(id string) bool {
			return slices.Contains(x.ExcludedMitraIDs, id)
		})
		x.BatchStart, x.NextBatchAt = 0, nil
		if batched {
			s.startBatches(x, now)
		}
		if err := out.update(tx, x, now, released); err != nil {
			return err
		}
		return out.offer(tx, x, now)
	})
	if err != nil {
		return View{}, err
	}
	s.avail.RecomputeLoad(ctx, released)
	s.wake()
	s.kick()
	s.deliver(ctx, &out)
	return ViewOf(sess, now), nil
}

// Get returns a session to a participant or an admin; ports.ErrNotFound to anyone else.
func (s *Service) Get(ctx context.Context, p auth.Principal, sessionID string) (View, error) {
	sess, err := s.store.Session(ctx, sessionID)
	if err != nil {
		return View{}, err
	}
	if !participant(p, sess) {
		return View{}, ports.ErrNotFound
	}
	v := ViewOf(sess, s.now())
	if err := s.queueFigures(ctx, &v, sess); err != nil {
		return View{}, err
	}
	return v, nil
}

// List returns the caller's sessions, newest first.
func (s *Service) List(ctx context.Context, p auth.Principal) ([]View, error) {
	list, err := s.store.SessionsOf(ctx, p.UserID, listLimit)
	if err != nil {
		return nil, err
	}
	now := s.now()
	out := make([]View, len(list))
	for i, x := range list {
		out[i] = ViewOf(x, now)
		if err := s.queueFigures(ctx, &out[i], x); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func participant(p auth.Principal, x ports.Session) bool {
	switch p.Role {
	case ports.RoleAdmin:
		return true
	case ports.RoleCustomer:
		return x.CustomerID == p.UserID
	case ports.RoleMitra:
		return x.MitraID != nil && *x.MitraID == p.UserID
	}
	return false
}
