package ports

import (
	"context"
	"time"
)

// QueueMember is a waiting session as the queue mirror holds it: its queue
// key (QueueEntry's Priority, QueuedAt at microsecond precision, Seq) and the
// version of the write.
//
// Version orders the writes of one session, so that a write that arrives
// late (a best-effort write after the commit, overtaken by another
// instance's) never undoes a newer one. It is the number of mitras the
// session excludes (len(ExcludedMitraIDs)) for a join and for the leave of
// a dispatch, and QueueVersionFinal for a leave after which the session
// never waits again (matched, cancelled, timed out, unmatched). A session
// joins with 0; it leaves when dispatched with the same number; it can only
// wait again after every mitra it was offered to declined it, that is with
// a larger number.
type QueueMember struct {
	ID       string
	Priority int
	QueuedAt time.Time
	Seq      int64
	Version  int64
}

// QueueVersionFinal is the version of a leave that ends a session's part in
// the queue: no later join of it applies.
const QueueVersionFinal int64 = 1 << 50

// QueueMemberOf is s's member of the queue mirror at version v.
func QueueMemberOf(s Session, v int64) QueueMember {
	return QueueMember{ID: s.ID, Priority: s.Queue.Priority, QueuedAt: s.Queue.QueuedAt, Seq: s.Queue.Seq, Version: v}
}

// QueueMatch is a queued session accepted by a mitra at At.
type QueueMatch struct {
	ID string
	At time.Time
}

// QueueTruth is what the queue mirror is reseeded from: every waiting
// session, and the queued sessions matched at or after MatchedSince.
type QueueTruth struct {
	Waiting      []QueueMember
	Matched      []QueueMatch
	MatchedSince time.Time
}

// QueueFigures are the queue mirror's answer.
type QueueFigures struct {
	// Found: the member asked about is in the mirror; Ahead counts the
	// members before it in the queue's order. Both zero when none was asked.
	Found bool
	Ahead int
	// Waiting counts the members; OldestQueuedAt is the least QueuedAt among
	// them (UTC, microseconds), nil when none waits.
	Waiting        int
	OldestQueuedAt *time.Time
	// MatchedSince counts the matches recorded at or after the given
	// instant (compared at millisecond precision).
	MatchedSince int
}

// QueueMirror mirrors the waiting queue (docs/contract.md §10) into a cache
// (Valkey) so that queue positions and the queue's figures cost no store
// statement. Postgres is the truth: writes reach the mirror after the store
// committed, best-effort, and a reseed makes it equal to the truth again.
// Every method honours ctx's deadline.
//
// A join applies only when its version is above the last version applied
// for the session; a leave when it is not below it. The last version is
// kept for at least QueueVersionKeep after the write, so a write that
// arrives that late is still ordered; a reseed repairs anything later.
type QueueMirror interface {
	// QueueJoin adds a waiting session at its key (unless a write of a
	// version at or above m.Version was applied).
	QueueJoin(ctx context.Context, m QueueMember) error
	// QueueLeave removes a session from the queue (unless a write of a
	// version above m.Version was applied).
	QueueLeave(ctx context.Context, m QueueMember) error
	// QueueMatched records that a queued session was matched at at, and
	// forgets the matches before forgetBefore.
	QueueMatched(ctx context.Context, id string, at, forgetBefore time.Time) error
	// QueueFigures answers where of stands (when not nil), the queue's
	// length and oldest entry, and the matches at or after matchedSince, in
	// one round trip. ErrMirrorNotSeeded when the queue was never reseeded
	// or lost its data.
	QueueFigures(ctx context.Context, of *QueueMember, matchedSince time.Time) (QueueFigures, error)
	// QueueReseed makes the mirror equal to t, except where a later write
	// (a version at or above a waiting member's) already applied, and marks
	// it seeded. It adds the matches of t and forgets those before
	// t.MatchedSince. It returns how many members it added or removed.
	QueueReseed(ctx context.Context, t QueueTruth) (int, error)
}

// QueueVersionKeep is how long a queue mirror keeps the last version
// written for a session.
const QueueVersionKeep = time.Hour

// QueueTruthSource is what the queue mirror's reseed asks of the store, the
// source of truth.
type QueueTruthSource interface {
	// QueueTruth returns every waiting session as a member at version
	// len(ExcludedMitraIDs) (in no particular order), and the queued
	// sessions matched at or after matchedSince; its MatchedSince is
	// matchedSince. Times are UTC at microsecond precision.
	QueueTruth(ctx context.Context, matchedSince time.Time) (QueueTruth, error)
}
