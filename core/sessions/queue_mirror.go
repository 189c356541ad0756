package sessions

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/halobestie/mitra-availability/core/mirror"
	"github.com/halobestie/mitra-availability/ports"
)

// The queue mirror (ports.QueueMirror, docs/valkey-keys.md "Waiting queue").
//
// Reads: while the mirror is trusted (its Health is enabled and not dirty:
// seeded since the last event that may have made it drift), a waiting
// session's position, the queue's length and oldest entry, and the match
// rate of the estimated wait come from one QueueFigures round trip, with no
// store statement. On any mirror error (ErrMirrorNotSeeded, a timeout), when
// the mirror does not hold the session asked about, and while it is not
// trusted, the store answers as it would without a mirror.
//
// Writes: after every committed write that can change a session's part in
// the queue, mirrorQueue writes the session's resulting state, best-effort
// (bounded by the adapter's deadline, counted and reported to Health on
// failure, which schedules a reseed; never failing the request). The write
// carries a version (ports.QueueMember) so that a late write, overtaken by
// another instance's, never undoes a newer one: a dispatched session is
// never put back by a join that arrives after its leave.
//
// Reseed: the mirror's Seeder (core/mirror) reseeds the queue from the
// store's truth (ports.QueueTruthSource) with the availability mirror: at
// start, after a reconnect or lost data, and periodically.

// MatchWindow is how far back the estimated wait looks at the rate at which
// queued sessions were matched: the matches the queue mirror keeps.
const MatchWindow = matchWindow

// QueueMirror is the queue mirror and what decides whether it is trusted.
type QueueMirror struct {
	Mirror  ports.QueueMirror
	Health  *mirror.Health
	Metrics ports.Metrics
}

// SetQueueMirror installs the queue mirror; without one (or with a
// disabled Health) every queue read goes to the store and nothing is
// written.
func (s *Service) SetQueueMirror(q QueueMirror) {
	if q.Mirror == nil || q.Health == nil || q.Metrics == nil {
		s.qm = QueueMirror{}
		return
	}
	s.qm = q
}

// Operation names of the queue mirror, as counted in metrics.
const (
	opQueueJoin    = "queue_join"
	opQueueLeave   = "queue_leave"
	opQueueMatched = "queue_matched"
	opQueueRead    = "queue_figures"
)

// mirrorQueue writes the queue mirror after a commit, from each session's
// resulting state: a waiting session joins at version
// len(ExcludedMitraIDs); a queued one that was offered leaves at that
// version (it waits again only after every mitra it was offered to declined
// it, with a larger one); any other leaves for good (QueueVersionFinal), and
// a matched one is recorded as a match. A session that was never queued is
// skipped. Call it for every session whose queue membership a committed
// write may have changed: a queued request, a dispatch pass's offers, a
// decline that puts a session back, an accept, a cancel, the queue and
// pairing timeouts.
func (s *Service) mirrorQueue(ctx context.Context, xs ...ports.Session) {
	if s.qm.Mirror == nil || !s.qm.Health.Enabled() {
		return
	}
	// The write outlives the request's cancellation (the adapter bounds it
	// with its own deadline), so a client hanging up cannot leave the mirror
	// behind.
	wctx := context.WithoutCancel(ctx)
	type queued struct {
		op    string
		write func(context.Context) error
	}
	var writes []queued
	for _, x := range xs {
		if x.Queue == nil {
			continue
		}
		m := ports.QueueMemberOf(x, int64(len(x.ExcludedMitraIDs)))
		op, write := opQueueLeave, s.qm.Mirror.QueueLeave
		switch {
		case x.Waiting():
			op, write = opQueueJoin, s.qm.Mirror.QueueJoin
		case !x.Queued():
			m.Version = ports.QueueVersionFinal
		}
		writes = append(writes, queued{op, func(ctx context.Context) error { return write(ctx, m) }})
		if !x.Queued() && x.Queue.MatchedAt != nil {
			at := *x.Queue.MatchedAt
			writes = append(writes, queued{opQueueMatched, func(ctx context.Context) error {
				return s.qm.Mirror.QueueMatched(ctx, x.ID, at, s.now().Add(-matchWindow))
			}})
		}
	}
	if len(writes) == 1 {
		s.queueWrite(wctx, writes[0].op, writes[0].write)
		return
	}
	// A pass moves many sessions at once: their writes are independent
	// (each is versioned by its own session) and go out together, so that
	// the client pipelines them into about one round trip instead of one
	// each, which the pass's callers would wait for in turn.
	var wg sync.WaitGroup
	for _, w := range writes {
		wg.Go(func() { s.queueWrite(wctx, w.op, w.write) })
	}
	wg.Wait()
}

// queueWrite runs one best-effort mirror write.
func (s *Service) queueWrite(ctx context.Context, op string, write func(context.Context) error) {
	if !s.qm.Health.Healthy(ctx) {
		// Valkey is known to be unreachable: do not wait out another
		// deadline. The mirror is dirty already, and the reseed that follows
		// Valkey's return reads this write from the store, where it committed.
		s.qm.Metrics.CacheWriteFailed(op)
		return
	}
	err := write(ctx)
	if err == nil || errors.Is(err, ports.ErrCacheDisabled) {
		return
	}
	s.qm.Metrics.CacheWriteFailed(op)
	s.qm.Health.ReportError(err)
	s.log.WarnContext(ctx, "queue mirror write failed; the reseed heals it", "op", op, "err", err)
}

// mirrorFigures asks the queue mirror for the figures of the queue and,
// when of is not nil, of's position; ok false when the store must answer
// instead (the mirror is not trusted, failed, or does not hold of).
func (s *Service) mirrorFigures(ctx context.Context, of *ports.Session, now time.Time) (ports.QueueFigures, bool) {
	if s.qm.Mirror == nil || !s.qm.Health.Enabled() {
		return ports.QueueFigures{}, false
	}
	if s.qm.Health.Dirty() {
		s.qm.Metrics.CacheFallback(opQueueRead)
		return ports.QueueFigures{}, false
	}
	var m *ports.QueueMember
	if of != nil {
		x := ports.QueueMemberOf(*of, int64(len(of.ExcludedMitraIDs)))
		m = &x
	}
	f, err := s.qm.Mirror.QueueFigures(ctx, m, now.Add(-matchWindow))
	if err != nil {
		if errors.Is(err, ports.ErrCacheDisabled) {
			return ports.QueueFigures{}, false
		}
		s.qm.Metrics.CacheFallback(opQueueRead)
		s.qm.Health.ReportError(err)
		s.log.DebugContext(ctx, "queue mirror read failed; falling back to the store", "err", err)
		return ports.QueueFigures{}, false
	}
	if of != nil && !f.Found {
		// The store read the session waiting, the mirror does not hold it:
		// a write in flight (it joined or left a moment ago), or one that
		// failed (then the mirror is dirty already). The store answers.
		s.qm.Metrics.CacheFallback(opQueueRead)
		return ports.QueueFigures{}, false
	}
	return f, true
}

// set records the number of queued sessions matched in the matchWindow
// before now, read from the mirror.
func (r *matchRate) set(now time.Time, matched int) {
	r.mu.Lock()
	r.at, r.matched, r.ok = now, matched, true
	r.mu.Unlock()
}
