package sessions_test

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/adapters/memory"
	"github.com/halobestie/mitra-availability/core/auth"
	"github.com/halobestie/mitra-availability/core/mirror"
	"github.com/halobestie/mitra-availability/core/sessions"
	"github.com/halobestie/mitra-availability/ports"
)

// countingStore counts the queue reads that the queue mirror replaces.
type countingStore struct {
	ports.SessionStore
	mu           sync.Mutex
	ahead, stats int
}

func (c *countingStore) QueueAhead(ctx context.Context, e ports.QueueEntry) (int, error) {
	c.mu.Lock()
	c.ahead++
	c.mu.Unlock()
	return c.SessionStore.QueueAhead(ctx, e)
}

func (c *countingStore) QueueStats(ctx context.Context, since time.Time) (ports.QueueStats, error) {
	c.mu.Lock()
	c.stats++
	c.mu.Unlock()
	return c.SessionStore.QueueStats(ctx, since)
}

func (c *countingStore) reads() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ahead + c.stats
}

// write is one queue mirror write, as the service issued it.
type write struct {
	op string // join, leave, matched
	m  ports.QueueMember
	at time.Time
}

// recordingMirror is the memory queue mirror, failing every call while
// down (or with err), and recording the writes that reached it.
type recordingMirror struct {
	*memory.QueueMirror
	mu     sync.Mutex
	down   bool
	err    error
	writes []write
	gate   func() // when set, every write runs it first
}

var errQueueDown = errors.New("i/o timeout")

func (r *recordingMirror) fail() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	if r.down {
		return errQueueDown
	}
	return nil
}

func (r *recordingMirror) record(w write) {
	r.mu.Lock()
	r.writes = append(r.writes, w)
	gate := r.gate
	r.mu.Unlock()
	if gate != nil {
		gate()
	}
}

func (r *recordingMirror) QueueJoin(ctx context.Context, m ports.QueueMember) error {
	if err := r.fail(); err != nil {
		return err
	}
	r.record(write{op: "join", m: m})
	return r.QueueMirror.QueueJoin(ctx, m)
}

func (r *recordingMirror) QueueLeave(ctx context.Context, m ports.QueueMember) error {
	if err := r.fail(); err != nil {
		return err
	}
	r.record(write{op: "leave", m: m})
	return r.QueueMirror.QueueLeave(ctx, m)
}

func (r *recordingMirror) QueueMatched(ctx context.Context, id string, at, forget time.Time) error {
	if err := r.fail(); err != nil {
		return err
	}
	r.record(write{op: "matched", m: ports.QueueMember{ID: id}, at: at})
	return r.QueueMirror.QueueMatched(ctx, id, at, forget)
}

func (r *recordingMirror) QueueFigures(ctx context.Context, of *ports.QueueMember, since time.Time) (ports.QueueFigures, error) {
	if err := r.fail(); err != nil {
		return ports.QueueFigures{}, err
	}
	return r.QueueMirror.QueueFigures(ctx, of, since)
}

func (r *recordingMirror) QueueReseed(ctx context.Context, t ports.QueueTruth) (int, error) {
	if err := r.fail(); err != nil {
		return 0, err
	}
	return r.QueueMirror.QueueReseed(ctx, t)
}

// mirrorFixture is a queue fixture whose service has a queue mirror.
type mirrorFixture struct {
	*queueFixture
	counted *countingStore
	qm      *recordingMirror
	health  *mirror.Health
	metrics *memory.Metrics
	seeder  *mirror.Seeder
}

func newMirrorFixture(t *testing.T) *mirrorFixture {
	t.Helper()
	f := newFixture(t)
	counted := &countingStore{SessionStore: f.store}
	svc, err := sessions.NewService(counted, f.mitras, f.bus, f.clock, slog.New(slog.DiscardHandler),
		sessions.Config{PairingTimeout: pairing, PaymentTimeout: payment, WarningLead: lead})
	if err != nil {
		t.Fatal(err)
	}
	f.svc = svc
	q := &queueFixture{fixture: f}
	q.svc.SetKick(func() { q.kicks++ })
	q.mitras.SetCapacityHook(q.svc.Kick)
	mf := &mirrorFixture{queueFixture: q, counted: counted, qm: &recordingMirror{QueueMirror: memory.NewQueueMirror()},
		health: mirror.NewHealth("memory", true), metrics: memory.NewMetrics()}
	mf.seeder = mirror.NewSeeder(f.mirror, f.store, mf.health, mf.metrics, slog.New(slog.DiscardHandler))
	mf.seeder.SetQueue(mf.qm, f.store, sessions.MatchWindow, f.clock.Now)
	svc.SetQueueMirror(sessions.QueueMirror{Mirror: mf.qm, Health: mf.health, Metrics: mf.metrics})
	mf.seed(t, mirror.ReasonStart)
	return mf
}

// queueMany queues a session of n new customers each, and returns the
// customers by session and the sessions in the order they queued.
func (mf *mirrorFixture) queueMany(t *testing.T, n int) (map[string]auth.Principal, []string) {
	t.Helper()
	cs := map[string]auth.Principal{}
	var ids []string
	for range n {
		c := mf.customer(t)
		v := mf.queue(t, c)
		cs[v.ID] = c
		ids = append(ids, v.ID)
	}
	return cs, ids
}

func (mf *mirrorFixture) seed(t *testing.T, reason string) {
	t.Helper()
	if _, err := mf.seeder.Seed(context.Background(), reason); err != nil {
		t.Fatalf("seed: %v", err)
	}
	if mf.health.Dirty() {
		t.Fatal("dirty after a seed")
	}
}

// storeFigures is what the store answers for the queue (the truth).
func (mf *mirrorFixture) storeFigures(t *testing.T) (map[string]int, ports.QueueStats) {
	t.Helper()
	ctx := context.Background()
	tr, err := mf.store.QueueTruth(ctx, mf.clock.Now().Add(-sessions.MatchWindow))
	if err != nil {
		t.Fatal(err)
	}
	pos := map[string]int{}
	for _, m := range tr.Waiting {
		n, err := mf.store.QueueAhead(ctx, ports.QueueEntry{Priority: m.Priority, QueuedAt: m.QueuedAt, Seq: m.Seq})
		if err != nil {
			t.Fatal(err)
		}
		pos[m.ID] = n + 1
	}
	st, err := mf.store.QueueStats(ctx, mf.clock.Now().Add(-sessions.MatchWindow))
	if err != nil {
		t.Fatal(err)
	}
	return pos, st
}

// check compares what the service answers from the mirror with the
// store's answers, and asserts the store was not asked: the position of
// every session of cs (waiting or not), the queue summary, and the mirror's
// membership against the store's waiting sessions.
func (mf *mirrorFixture) check(t *testing.T, what string, cs map[string]auth.Principal) {
	t.Helper()
	ctx := context.Background()
	wantPos, st := mf.storeFigures(t)
	before := mf.counted.reads()
	for id, c := range cs {
		v, err := mf.svc.Get(ctx, c, id)
		if err != nil {
			t.Fatalf("%s: get %s: %v", what, id, err)
		}
		got := 0
		if v.QueuePosition != nil {
			got = *v.QueuePosition
		}
		if got != wantPos[id] {
			t.Errorf("%s: position of %s from the mirror = %d, the store's %d", what, id, got, wantPos[id])
		}
	}
	sum, err := mf.svc.QueueSummary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := sessions.QueueSummary{Length: st.Waiting}
	if st.OldestQueuedAt != nil {
		want.LongestWaitSeconds = int(mf.clock.Now().Sub(*st.OldestQueuedAt) / time.Second)
	}
	if sum != want {
		t.Errorf("%s: summary from the mirror %+v, the store's %+v", what, sum, want)
	}
	if n := mf.counted.reads() - before; n != 0 {
		t.Errorf("%s: %d store queue reads while the mirror is trusted, want 0", what, n)
	}
	f, err := mf.qm.QueueMirror.QueueFigures(ctx, nil, mf.clock.Now().Add(-sessions.MatchWindow))
	if err != nil || f.Waiting != st.Waiting || f.MatchedSince != st.MatchedSince {
		t.Errorf("%s: mirror figures %+v, %v; the store's %+v", what, f, err, st)
	}
}

// The mirror's answers equal the store's through every change of the
// queue (request, dispatch, decline by all, accept, cancel, queue and
// pairing timeouts), and no queue read reaches the store.
func TestQueueMirrorAnswersAsTheStore(t *testing.T) {
	mf := newMirrorFixture(t)
	ctx := context.Background()
	cs := map[string]auth.Principal{}
	var ids []string
	var custs []auth.Principal
	for range 5 {
		c := mf.customer(t)
		v := mf.queue(t, c)
		cs[v.ID] = c
		ids = append(ids, v.ID)
		custs = append(custs, c)
		mf.clock.Advance(time.Second)
	}
	mf.check(t, "five queued", cs)

	m := mf.onlineMitra(t, 1)
	mf.dispatchAfterKick(t, "online")
	wantIDs(t, "offers", mf.offeredTo(m), ids[0])
	mf.check(t, "the first offered", cs)

	if err := mf.svc.Decline(ctx, m.UserID, ids[0]); err != nil {
		t.Fatal(err)
	}
	mf.check(t, "declined by all: back at its place", cs)
	mf.dispatchAfterKick(t, "decline")
	wantIDs(t, "offers", mf.offeredTo(m), ids[0], ids[1])
	mf.check(t, "the second offered", cs)

	if _, err := mf.svc.Accept(ctx, m.UserID, ids[1]); err != nil {
		t.Fatal(err)
	}
	mf.check(t, "the second matched", cs)
	est, err := mf.svc.Get(ctx, custs[2], ids[2])
	if err != nil || est.EstimatedWaitSeconds == nil || *est.EstimatedWaitSeconds != 1800 {
		t.Fatalf("estimate from the mirror's match rate: %+v, %v; want 1800 (position 2, one match in 15 min)", est.EstimatedWaitSeconds, err)
	}

	if _, err := mf.svc.End(ctx, custs[3], ids[3]); err != nil {
		t.Fatal(err)
	}
	mf.check(t, "the fourth cancelled", cs)

	m2 := mf.onlineMitra(t, 1)
	mf.dispatchAfterKick(t, "online")
	wantIDs(t, "offers to the second mitra", mf.offeredTo(m2), ids[0])
	mf.check(t, "the first offered again", cs)
	mf.advance(t, pairing) // its offer lapses: unmatched
	mf.check(t, "the first unmatched at the pairing timeout", cs)

	mf.advance(t, sessions.DefaultQueueTimeout)
	mf.check(t, "the rest unmatched at the queue timeout", cs)
	if f, _ := mf.qm.QueueMirror.QueueFigures(ctx, nil, mf.clock.Now()); f.Waiting != 0 {
		t.Fatalf("the mirror still holds %d sessions", f.Waiting)
	}
	if n := mf.metrics.WriteFailures("queue_join") + mf.metrics.WriteFailures("queue_leave") + mf.metrics.WriteFailures("queue_matched"); n != 0 {
		t.Fatalf("%d mirror writes failed", n)
	}
}

// Writes arrive late and out of order (best-effort writes of several
// instances): whatever their order, the versions leave the mirror as the
// last state. A late join never puts back a dispatched session.
func TestQueueMirrorVersionsOrderWrites(t *testing.T) {
	mf := newMirrorFixture(t)
	ctx := context.Background()
	cs, ids := mf.queueMany(t, 4)
	m := mf.onlineMitra(t, 2)
	mf.dispatchAfterKick(t, "online") // offers the first two
	// The first declined by all: back in the queue.
	if err := mf.svc.Decline(ctx, m.UserID, ids[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := mf.svc.Accept(ctx, m.UserID, ids[1]); err != nil {
		t.Fatal(err)
	}
	if _, err := mf.svc.End(ctx, cs[ids[2]], ids[2]); err != nil {
		t.Fatal(err)
	}
	mf.dispatchAfterKick(t, "accept") // one slot left: the fourth (the first excludes m)
	mf.check(t, "before the replays", cs)

	// The first request's join, arriving after the session was dispatched
	// and put back, and the dispatch's leave arriving last.
	first := mf.qm.writes[0]
	if first.op != "join" || first.m.ID != ids[0] || first.m.Version != 0 {
		t.Fatalf("first write %+v, want the join of %s at version 0", first, ids[0])
	}
	writes := slices.Clone(mf.qm.writes)
	want, _ := mf.storeFigures(t)
	for round := range 20 {
		fresh := memory.NewQueueMirror()
		if _, err := fresh.QueueReseed(ctx, ports.QueueTruth{}); err != nil {
			t.Fatal(err)
		}
		order := slices.Clone(writes)
		if round == 0 {
			slices.Reverse(order)
		} else {
			rand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		}
		for _, w := range order {
			var err error
			switch w.op {
			case "join":
				err = fresh.QueueJoin(ctx, w.m)
			case "leave":
				err = fresh.QueueLeave(ctx, w.m)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		for _, id := range ids {
			s, err := mf.store.Session(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			m := ports.QueueMemberOf(s, 0)
			f, err := fresh.QueueFigures(ctx, &m, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			if f.Found != (want[id] > 0) || (f.Found && f.Ahead+1 != want[id]) {
				t.Fatalf("round %d: %s in the mirror %v at %d; the store's position %d (0: not waiting)", round, id, f.Found, f.Ahead+1, want[id])
			}
		}
	}

	// A join replayed late on the service's own mirror: the dispatched
	// fourth stays out.
	fourth, _ := mf.store.Session(ctx, ids[3])
	if fourth.Waiting() {
		t.Fatal("the fourth should be offered")
	}
	if err := mf.qm.QueueMirror.QueueJoin(ctx, ports.QueueMemberOf(fourth, 0)); err != nil {
		t.Fatal(err)
	}
	mf.check(t, "after a late join of a dispatched session", cs)
}

// While the mirror fails or is not trusted, every read falls back to the
// store with the same answers; no request fails; the failed writes are
// counted and make the mirror dirty, and the reseed makes it equal again.
func TestQueueMirrorFallsBackAndReseeds(t *testing.T) {
	mf := newMirrorFixture(t)
	ctx := context.Background()
	cs, ids := mf.queueMany(t, 3)
	mf.check(t, "seeded", cs)

	// The mirror times out: reads answer from the store.
	mf.qm.down = true
	pos := mf.position(t, cs[ids[2]], ids[2])
	if pos != 3 {
		t.Fatalf("position with the mirror down = %d, want 3 (from the store)", pos)
	}
	if !mf.health.Dirty() || mf.metrics.Fallbacks("queue_figures") == 0 {
		t.Fatal("a failed mirror read must be counted and make the mirror dirty")
	}
	// Writes fail without failing the request; the store answers meanwhile.
	c := mf.customer(t)
	v := mf.queue(t, c)
	cs[v.ID] = c
	if _, err := mf.svc.End(ctx, cs[ids[0]], ids[0]); err != nil {
		t.Fatal(err)
	}
	if n := mf.metrics.WriteFailures("queue_join") + mf.metrics.WriteFailures("queue_leave"); n != 2 {
		t.Fatalf("%d failed mirror writes counted, want 2 (a join, a leave)", n)
	}
	before := mf.counted.reads()
	if p := mf.position(t, c, v.ID); p != 3 {
		t.Fatalf("position of the new session from the store = %d, want 3", p)
	}
	if sum, err := mf.svc.QueueSummary(ctx); err != nil || sum.Length != 3 {
		t.Fatalf("summary from the store: %+v, %v", sum, err)
	}
	if mf.counted.reads() == before {
		t.Fatal("the store was not asked while the mirror is down")
	}

	// Back, but not reseeded yet: still not trusted.
	mf.qm.down = false
	before = mf.counted.reads()
	if p := mf.position(t, c, v.ID); p != 3 || mf.counted.reads() == before {
		t.Fatalf("position while dirty = %d (store reads %d); want 3 from the store", p, mf.counted.reads()-before)
	}
	mf.seed(t, mirror.ReasonReconnect)
	mf.check(t, "reseeded after the outage", cs)

	// Lost data (a restart empty): ErrMirrorNotSeeded, fallback, reseed.
	mf.qm.Flush()
	if p := mf.position(t, c, v.ID); p != 3 {
		t.Fatalf("position with the mirror flushed = %d, want 3", p)
	}
	if !mf.health.Dirty() {
		t.Fatal("ErrMirrorNotSeeded must make the mirror dirty")
	}
	mf.seed(t, mirror.ReasonLostData)
	mf.check(t, "reseeded after lost data", cs)

	// A session the mirror lost (its join dropped): the store answers it.
	tr, err := mf.store.QueueTruth(ctx, mf.clock.Now().Add(-sessions.MatchWindow))
	if err != nil {
		t.Fatal(err)
	}
	tr.Waiting = slices.DeleteFunc(tr.Waiting, func(m ports.QueueMember) bool { return m.ID == v.ID })
	if _, err := mf.qm.QueueMirror.QueueReseed(ctx, tr); err != nil {
		t.Fatal(err)
	}
	before = mf.counted.reads()
	if p := mf.position(t, c, v.ID); p != 3 || mf.counted.reads() == before {
		t.Fatalf("position of a session missing from the mirror = %d; want 3 from the store", p)
	}
	// The periodic reseed heals it, counting the drift.
	mf.seed(t, mirror.ReasonPeriodic)
	mf.check(t, "after the periodic reseed", cs)
}

// TestQueueMirrorWritesOfAPassGoTogether: the writes of the sessions one
// dispatch pass offers are in flight at the same time (so the client
// pipelines them), and each still reaches the mirror.
func TestQueueMirrorWritesOfAPassGoTogether(t *testing.T) {
	mf := newMirrorFixture(t)
	const n = 4
	cs, _ := mf.queueMany(t, n)
	var (
		mu             sync.Mutex
		inFlight, most int
		allIn          = make(chan struct{})
		closeOnce      sync.Once
	)
	mf.qm.gate = func() {
		mu.Lock()
		inFlight++
		most = max(most, inFlight)
		if inFlight == n {
			closeOnce.Do(func() { close(allIn) })
		}
		mu.Unlock()
		select {
		case <-allIn:
		case <-time.After(2 * time.Second): // one at a time: none waits for the others
		}
		mu.Lock()
		inFlight--
		mu.Unlock()
	}
	mf.onlineMitra(t, n)
	if got := mf.dispatchAfterKick(t, "online"); got != n {
		t.Fatalf("the pass offered %d sessions, want %d", got, n)
	}
	mf.qm.gate = nil
	if most != n {
		t.Errorf("at most %d of the pass's %d writes in flight together, want all", most, n)
	}
	mf.check(t, "after the pass", cs)
}
