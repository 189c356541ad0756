package ports

import (
	"context"
	"errors"
	"time"
)

// SessionStatus is the lifecycle state of a chat session.
type SessionStatus string

// Statuses: searching → pending_payment → active → ended; searching may end as
// unmatched or cancelled, pending_payment as cancelled or ended.
const (
	StatusSearching      SessionStatus = "searching"
	StatusPendingPayment SessionStatus = "pending_payment"
	StatusActive         SessionStatus = "active"
	StatusEnded          SessionStatus = "ended"
	StatusUnmatched      SessionStatus = "unmatched"
	StatusCancelled      SessionStatus = "cancelled"
)

// Open reports whether the status is searching, pending_payment or active.
func (s SessionStatus) Open() bool {
	return s == StatusSearching || s == StatusPendingPayment || s == StatusActive
}

// HoldsMitra reports whether a session in this status counts against its
// mitra's capacity (pending_payment or active).
func (s SessionStatus) HoldsMitra() bool {
	return s == StatusPendingPayment || s == StatusActive
}

// EndReason says why a session ended.
type EndReason string

const (
	EndUnmatched           EndReason = "unmatched"
	EndPaymentTimeout      EndReason = "payment_timeout"
	EndCancelledByCustomer EndReason = "cancelled_by_customer"
	EndEndedByCustomer     EndReason = "ended_by_customer"
	EndEndedByMitra        EndReason = "ended_by_mitra"
	EndExpired             EndReason = "expired"
)

// ErrOpenSessionExists: the customer already has a searching, pending_payment
// or active session (the store enforces one with a unique index).
var ErrOpenSessionExists = errors.New("customer already has an open session")

// Session is one chat session. Times are UTC; nil means "not yet".
type Session struct {
	ID              string
	CustomerID      string
	MitraID         *string
	Status          SessionStatus
	EndReason       *EndReason
	DurationMinutes int
	// Paid is set once payment was confirmed; a paid session that is rerouted
	// keeps it, and its next accept makes it active at once.
	Paid bool
	// RemainingSeconds is the time that remained when a paid active session
	// was rerouted (its clock stops); nil otherwise.
	RemainingSeconds *int
	CreatedAt        time.Time
	// SearchingSince is when the current search began (creation or reroute).
	SearchingSince time.Time
	OfferExpiresAt *time.Time // searching: the pairing deadline
	PaymentDueAt   *time.Time // pending_payment: the payment deadline
	AcceptedAt     *time.Time
	StartedAt      *time.Time
	ExpiresAt      *time.Time // active: when it ends as expired
	WarnAt         *time.Time // active: when the warning is due
	WarningSentAt  *time.Time // set once, when the warning was claimed; never cleared
	EndedAt        *time.Time
	// OfferedMitraIDs are the mitras the current search was offered to;
	// ExcludedMitraIDs those rerouted away from, never offered it again.
	OfferedMitraIDs  []string
	ExcludedMitraIDs []string
	// NextBatchAt is, for a search offered in batches (docs/contract.md §11,
	// longest_idle and least_loaded), when the next batch is added; nil for a
	// search offered at once (a blast, or to one requested mitra). It is never
	// after OfferExpiresAt.
	NextBatchAt *time.Time
	// BatchStart is the index in OfferedMitraIDs where the latest batch
	// begins (0 for the first batch and for a blast).
	BatchStart int
	// Queue is the session's place in the waiting queue (docs/contract.md
	// §10); nil for a session that was not requested with queue: true.
	Queue     *QueueEntry
	UpdatedAt time.Time
}

// QueueEntry is a session's place in the waiting queue. The queue's order is
// a key: Priority descending (0 for every session today; a priority class is
// a larger number), then QueuedAt, then Seq, which the store assigns when it
// inserts a queued session, so two sessions queued at the same instant keep
// their arrival order. The entry stays with the session after it is
// matched, as history (MatchedAt set).
type QueueEntry struct {
	Priority  int
	QueuedAt  time.Time
	Seq       int64     // assigned by the store; ignored on write
	ExpiresAt time.Time // the queue timeout: waiting past it ends the session as unmatched
	// MatchedAt is when a mitra accepted the session; nil while it takes
	// part in the queue.
	MatchedAt *time.Time
	// NotifiedPosition is the queue position last told to the customer (in
	// the answer to the request or a queue_update): nil when none was, 0
	// when the last notice said it left the queue (offered). NotifiedAt is
	// when it was told.
	NotifiedPosition *int
	NotifiedAt       *time.Time
}

// Queued reports whether the session takes part in the waiting queue:
// searching, requested with queue: true and not yet matched. A queued
// session either waits (no offer stands: OfferExpiresAt is nil) or was
// dispatched (offered, its pairing deadline running).
func (s Session) Queued() bool {
	return s.Status == StatusSearching && s.Queue != nil && s.Queue.MatchedAt == nil
}

// Waiting reports whether the session waits in the queue for an offer.
func (s Session) Waiting() bool { return s.Queued() && s.OfferExpiresAt == nil }

// Before reports whether e comes before o in the queue's order.
func (e QueueEntry) Before(o QueueEntry) bool {
	if e.Priority != o.Priority {
		return e.Priority > o.Priority
	}
	if !e.QueuedAt.Equal(o.QueuedAt) {
		return e.QueuedAt.Before(o.QueuedAt)
	}
	return e.Seq < o.Seq
}

// MitraLoad is a mitra's capacity state read inside a session transaction.
type MitraLoad struct {
	IsActive     bool
	Capacity     int
	OpenSessions int // sessions in pending_payment or active with it
}

// SessionTx is what a session transaction may do while it holds the session's lock.
type SessionTx interface {
	// LockMitraLoad locks the mitra's row until the transaction ends (so two
	// sessions accepted by the same mitra at the same instant serialise) and
	// returns its capacity state. ErrNotFound for an unknown mitra.
	LockMitraLoad(ctx context.Context, mitraID string) (MitraLoad, error)
	// Emit writes e to the event log in this transaction (the outbox): it
	// is logged if and only if the transaction commits. Once the
	// transaction has committed, e.Seqs holds its ids (one per user of
	// e.UserIDs, which the store dedupes in order); the caller then
	// publishes it. A store that gives the ids after the commit
	// (EventSequencer) does so before the transition returns; when another
	// instance gave them first, e.Seqs stays empty and that instance
	// publishes e.
	Emit(e *Event)
}

// TimerKind names a session deadline.
type TimerKind string

const (
	TimerPairing TimerKind = "pairing" // searching past OfferExpiresAt
	TimerPayment TimerKind = "payment" // pending_payment past PaymentDueAt
	TimerWarning TimerKind = "warning" // active, WarnAt passed, WarningSentAt nil
	TimerExpiry  TimerKind = "expiry"  // active past ExpiresAt
	TimerBatch   TimerKind = "batch"   // searching, NextBatchAt passed: offer the next batch
	TimerQueue   TimerKind = "queue"   // waiting in the queue past Queue.ExpiresAt
)

// DueTimer is a deadline that has passed.
type DueTimer struct {
	SessionID string
	Kind      TimerKind
	At        time.Time
}

// SessionStore persists chat sessions.
type SessionStore interface {
	// CreateSession inserts s (the store assigns ID, CreatedAt and UpdatedAt)
	// and, when fn is not nil, runs fn with the inserted session in the same
	// transaction (to emit its events); an error from fn aborts the insert
	// and is returned as is. ErrOpenSessionExists when the customer has an
	// open session.
	CreateSession(ctx context.Context, s Session, fn func(ctx context.Context, tx SessionTx, s Session) error) (Session, error)
	// Session returns ErrNotFound when there is no such session.
	Session(ctx context.Context, id string) (Session, error)
	// SessionsOf lists the sessions where userID is the customer or the mitra,
	// newest first, at most limit.
	SessionsOf(ctx context.Context, userID string, limit int) ([]Session, error)
	// UpdateSession runs fn on the session while holding its lock (SELECT … FOR
	// UPDATE in Postgres, a mutex in memory) inside one transaction, then saves
	// what fn changed. An error from fn aborts the transaction and is returned
	// as is, unwrapped. ErrNotFound for an unknown session.
	UpdateSession(ctx context.Context, id string, fn func(ctx context.Context, tx SessionTx, s *Session) error) (Session, error)
	// DueTimers returns up to limit deadlines that are due at now, oldest first.
	DueTimers(ctx context.Context, now time.Time, limit int) ([]DueTimer, error)
	// NextTimer returns the earliest pending deadline; ok false when there is none.
	NextTimer(ctx context.Context) (at time.Time, ok bool, err error)

	// HasWaiting reports whether any session waits in the queue.
	HasWaiting(ctx context.Context) (bool, error)
	// QueueBusy reports whether a queue pass has anything to do: a session
	// waits, or a dispatched queued session is owed the notice that it left
	// the queue (NotifiedPosition > 0).
	QueueBusy(ctx context.Context) (bool, error)
	// QueuePass runs fn under the queue lock, shared by every instance
	// (pg_advisory_xact_lock in Postgres, the store's mutex in memory),
	// inside one transaction: what fn saved, created and emitted commits
	// together when fn returns nil, and nothing does otherwise. An error
	// from fn is returned as is. fn must not keep tx beyond its return.
	QueuePass(ctx context.Context, fn func(ctx context.Context, tx QueueTx) error) error
	// QueueAhead counts the waiting sessions that come before e in the
	// queue's order (a waiting session's position is QueueAhead + 1).
	QueueAhead(ctx context.Context, e QueueEntry) (int, error)
	// QueueStats answers the queue's figures at now.
	QueueStats(ctx context.Context, matchedSince time.Time) (QueueStats, error)
}

// QueueStats are the waiting queue's figures.
type QueueStats struct {
	Waiting        int
	OldestQueuedAt *time.Time // QueuedAt of the longest-waiting session; nil when none waits
	// MatchedSince counts the queued sessions accepted at or after the
	// given instant.
	MatchedSince int
}

// QueueTx is what a queue pass may do while it holds the queue lock.
type QueueTx interface {
	SessionTx
	// Waiting returns up to limit waiting sessions in the queue's order,
	// each locked until the pass ends.
	Waiting(ctx context.Context, limit int) ([]Session, error)
	// FreeSlots counts the offers the queue may make now: the sum over the
	// given mitras that are active, online and not away of their capacity
	// less their open sessions (never below 0 for one mitra), less the
	// searching sessions whose offer stands (offered to at least one mitra
	// that has not declined it), queued or not. Unknown ids count nothing.
	FreeSlots(ctx context.Context, mitraIDs []string) (int, error)
	// Offered returns up to limit dispatched queued sessions (searching,
	// queued, unmatched, an offer deadline set) whose NotifiedPosition is
	// positive, in the queue's order, each locked until the pass ends.
	Offered(ctx context.Context, limit int) ([]Session, error)
	// Ahead is QueueAhead inside the pass.
	Ahead(ctx context.Context, e QueueEntry) (int, error)
	// Save writes back s, a session this pass read with Waiting or Offered, or created.
	Save(ctx context.Context, s Session) error
	// Create inserts s as CreateSession does (assigning Queue.Seq when
	// s.Queue is set). ports.ErrOpenSessionExists when the customer has
	// an open session; the pass goes on without it.
	Create(ctx context.Context, s Session) (Session, error)
}
