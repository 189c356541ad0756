package sessions

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/halobestie/mitra-availability/core"
	"github.com/halobestie/mitra-availability/ports"
)

// Queue passes are batched per instance (group commit).
//
// Every queue pass holds the store's queue lock, shared by all instances,
// for its whole transaction. Were each request to run a pass of its own, a
// burst of requests would wait on that lock one behind the other, each
// holding a store connection (the chaos run's warm-up measured 53 such
// waits of 3.5 s each in 20 s). Instead, an instance runs one pass at a
// time, and the requests and dispatcher ticks that arrive while it runs
// are served together by the next one: a pass costs its free-slot count
// and its reads once for all of them, and an instance has at most one
// connection waiting on the queue lock.
//
// The first job of a batch runs it (its caller's goroutine; no goroutine
// of its own, so a Service needs no lifecycle to serve requests); the
// others wait for it. A batch starts only when the one before it on this
// instance has finished.

// passTimeout bounds one pass (its reads, the wait on the queue lock and
// its transaction): the requests of a batch wait at most that long for it.
const passTimeout = 10 * time.Second

// jobKind is what a job asks of a pass.
type jobKind int

const (
	// jobQueue: a request with queue: true, which joins the end of the queue.
	jobQueue jobKind = iota
	// jobBehind: a request without queue while sessions wait, served only
	// from the slots the queue leaves.
	jobBehind
	// jobDispatch: the dispatcher's tick; the pass also sends the
	// queue_update notices that are due.
	jobDispatch
)

// passJob is one caller's part of a pass.
type passJob struct {
	kind       jobKind
	customerID string
	duration   int

	// Set by the pass: the job's session as committed (zero when none was
	// created) and the job's own refusal (a core error).
	sess   ports.Session
	refuse error
}

// passBatch is the jobs one pass serves.
type passBatch struct {
	jobs []*passJob
	lead chan struct{} // closed when the batch's first job may run it
	done chan struct{} // closed when the pass has ended

	// Set by the pass.
	err     error           // the pass failed: no job's change committed
	now     time.Time       // the pass's time (under the queue lock)
	offered int             // waiting sessions the pass offered
	moved   []ports.Session // the sessions whose part in the queue the pass changed, as committed
	wait    func(pos int) *int
}

// passes is an instance's batching of queue passes.
type passes struct {
	mu      sync.Mutex
	running bool       // a batch runs now
	next    *passBatch // the batch that collects jobs meanwhile
}

// runJob adds j to the next pass of this instance, runs that pass or waits
// for it, and returns the batch that served j (its err set when the pass
// failed). The pass does not end with ctx: once a job is in a batch, the
// batch commits or fails as a whole (within passTimeout).
func (s *Service) runJob(ctx context.Context, j *passJob) *passBatch {
	p := &s.passes
	p.mu.Lock()
	b := p.next
	if b == nil {
		b = &passBatch{lead: make(chan struct{}), done: make(chan struct{})}
		p.next = b
	}
	b.jobs = append(b.jobs, j)
	first := len(b.jobs) == 1
	if first && !p.running {
		p.running, p.next = true, nil
		close(b.lead)
	}
	p.mu.Unlock()
	if !first {
		<-b.done
		return b
	}
	<-b.lead
	// Hand over: the batch collected meanwhile is run by its first job's
	// caller; none collected, this instance runs no pass until a job comes.
	// The pass hands over as soon as its work under the lock is done, so
	// that the next one reads its input, and waits on the lock, while this
	// one commits and its events are sequenced and delivered.
	handover := sync.OnceFunc(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if nb := p.next; nb != nil {
			p.next = nil
			close(nb.lead)
		} else {
			p.running = false
		}
	})
	s.runBatch(context.WithoutCancel(ctx), b, handover)
	handover()
	close(b.done)
	return b
}

// runBatch runs one pass for b's jobs and delivers its events.
func (s *Service) runBatch(ctx context.Context, b *passBatch, handover func()) {
	ctx, cancel := context.WithTimeout(ctx, passTimeout)
	defer cancel()
	var out outbox
	changed, err := s.pass(ctx, b, &out, handover)
	if err != nil {
		b.err = fmt.Errorf("queue pass: %w", err)
		if !b.has(jobDispatch) {
			s.kick() // the capacity this pass would have served is served by the next
		}
		return
	}
	s.mirrorQueue(ctx, b.moved...)
	if changed {
		s.wake()
	}
	if b.offered > 0 && !b.has(jobDispatch) {
		s.kick() // the positions behind moved: the dispatcher's pass tells them
	}
	if b.offered > 0 {
		s.log.InfoContext(ctx, "queued sessions offered", "count", b.offered)
	}
	s.deliver(ctx, &out)
}

// has reports whether one of b's jobs is of kind k.
func (b *passBatch) has(k jobKind) bool {
	for _, j := range b.jobs {
		if j.kind == k {
			return true
		}
	}
	return false
}

// pass is one transaction under the queue lock for b's jobs, in this order:
// the queued requests join the end of the queue (in the order they came);
// the queue is served, oldest first, while slots are free; the requests
// behind the queue are offered from the slots left, in the order they
// came; a dispatcher tick's notices are sent. It reports whether any
// session was created or offered. It calls handover once its statements
// under the lock are done (before the commit).
func (s *Service) pass(ctx context.Context, b *passBatch, out *outbox, handover func()) (bool, error) {
	if !b.has(jobQueue) && !b.has(jobBehind) {
		busy, err := s.store.QueueBusy(ctx)
		if err != nil || !busy {
			return false, err
		}
	}
	in, err := s.prepare(ctx)
	if err != nil {
		return false, err
	}
	b.wait = s.estimator(ctx, s.now())
	changed := false
	err = s.store.QueuePass(ctx, func(ctx context.Context, tx ports.QueueTx) error {
		*out, changed, b.offered, b.now = outbox{}, false, 0, s.now()
		b.moved = nil
		in.used = map[string]bool{}
		for _, j := range b.jobs {
			j.sess, j.refuse = ports.Session{}, nil
		}
		now := b.now
		for _, j := range b.jobs {
			if j.kind != jobQueue {
				continue
			}
			c, err := tx.Create(ctx, ports.Session{
				CustomerID:       j.customerID,
				Status:           ports.StatusSearching,
				DurationMinutes:  j.duration,
				SearchingSince:   now,
				OfferedMitraIDs:  []string{},
				ExcludedMitraIDs: []string{},
				Queue:            &ports.QueueEntry{QueuedAt: now, ExpiresAt: now.Add(s.cfg.QueueTimeout)},
			})
			if errors.Is(err, ports.ErrOpenSessionExists) {
				j.refuse = core.ErrOpenSessionExists
				continue
			}
			if err != nil {
				return err
			}
			j.sess, changed = c, true
		}
		slots := 0
		if len(in.available) > 0 {
			var (
				offered map[string]ports.Session
				err     error
			)
			if slots, offered, err = s.dispatchLocked(ctx, tx, in, now, out); err != nil {
				return err
			}
			b.offered = len(offered)
			b.moved = slices.AppendSeq(b.moved, maps.Values(offered))
			changed = changed || len(offered) > 0
			for _, j := range b.jobs {
				if x, ok := offered[j.sess.ID]; ok && j.kind == jobQueue {
					j.sess = x
				}
			}
		}
		// A queued request that waits is told its position in the answer,
		// the first one it hears.
		for _, j := range b.jobs {
			if j.kind != jobQueue || j.sess.ID == "" || !j.sess.Waiting() {
				continue
			}
			ahead, err := tx.Ahead(ctx, *j.sess.Queue)
			if err != nil {
				return err
			}
			pos := ahead + 1
			j.sess.Queue.NotifiedPosition, j.sess.Queue.NotifiedAt = &pos, &now
			if err := tx.Save(ctx, j.sess); err != nil {
				return err
			}
			b.moved = append(b.moved, j.sess)
		}
		for _, j := range b.jobs {
			if j.kind != jobBehind {
				continue
			}
			var to []string
			batched := false
			if slots > 0 {
				to, batched = s.chooseFrom(in.pool, nil, in.used)
			}
			if len(to) == 0 {
				j.refuse = fmt.Errorf("%w: every free mitra is taken by the waiting queue", core.ErrNoMitraAvailable)
				continue
			}
			c, err := tx.Create(ctx, s.newSearch(j.customerID, j.duration, to, batched, now))
			if errors.Is(err, ports.ErrOpenSessionExists) {
				j.refuse = core.ErrOpenSessionExists
				continue
			}
			if err != nil {
				return err
			}
			if err := out.offer(tx, &c, now); err != nil {
				return err
			}
			j.sess, changed = c, true
			slots--
		}
		if b.has(jobDispatch) {
			if err := s.noticesLocked(ctx, tx, now, b.wait, out); err != nil {
				return err
			}
		}
		handover()
		return nil
	})
	return changed, err
}
