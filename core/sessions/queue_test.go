package sessions_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/core"
	"github.com/halobestie/mitra-availability/core/auth"
	"github.com/halobestie/mitra-availability/core/sessions"
	"github.com/halobestie/mitra-availability/ports"
)

// queueFixture is a fixture whose capacity triggers are recorded: a test
// checks that a capacity arrival kicked the dispatcher, then runs the pass
// the dispatcher would run.
type queueFixture struct {
	*fixture
	kicks int
}

func newQueueFixture(t *testing.T) *queueFixture {
	t.Helper()
	q := &queueFixture{fixture: newFixture(t)}
	q.svc.SetKick(func() { q.kicks++ })
	q.mitras.SetCapacityHook(q.svc.Kick)
	return q
}

// queue requests a queued session for c.
func (q *queueFixture) queue(t *testing.T, c auth.Principal) sessions.View {
	t.Helper()
	v, err := q.svc.RequestQueue(context.Background(), c.UserID, 10)
	if err != nil {
		t.Fatalf("queue request: %v", err)
	}
	if v.Status != "searching" {
		t.Fatalf("queued session: status %s, want searching", v.Status)
	}
	return v
}

// dispatchAfterKick asserts that something kicked the dispatcher since the
// last call, then runs one pass and returns how many sessions it offered.
func (q *queueFixture) dispatchAfterKick(t *testing.T, what string) int {
	t.Helper()
	if q.kicks == 0 {
		t.Fatalf("%s: the dispatcher was not kicked", what)
	}
	q.kicks = 0
	n, err := q.svc.Dispatch(context.Background())
	if err != nil {
		t.Fatalf("%s: dispatch: %v", what, err)
	}
	return n
}

// position returns the session's queue_position as its customer sees it (0 for null).
func (q *queueFixture) position(t *testing.T, c auth.Principal, id string) int {
	t.Helper()
	v, err := q.svc.Get(context.Background(), c, id)
	if err != nil {
		t.Fatal(err)
	}
	if v.QueuePosition == nil {
		return 0
	}
	return *v.QueuePosition
}

// offeredTo reports the sessions offered to mitra m so far, in order.
func (q *queueFixture) offeredTo(m auth.Principal) []string {
	var ids []string
	for _, e := range q.bus.of(ports.EventSessionOffer, m.UserID) {
		ids = append(ids, e["session_id"].(string))
	}
	return ids
}

func wantIDs(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %v, want %v", what, got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: %v, want %v", what, got, want)
		}
	}
}

// docs/contract.md §10: the oldest waiting session is offered first whenever
// capacity appears, in each of the ways it appears.
func TestQueueFIFOOnEachCapacityArrival(t *testing.T) {
	q := newQueueFixture(t)
	ctx := context.Background()
	cs := make([]auth.Principal, 6)
	vs := make([]sessions.View, 6)
	for i := range cs {
		cs[i] = q.customer(t)
		vs[i] = q.queue(t, cs[i])
		if vs[i].QueuePosition == nil || *vs[i].QueuePosition != i+1 {
			t.Fatalf("session %d: queue_position %v, want %d", i, vs[i].QueuePosition, i+1)
		}
	}

	// 1. A mitra goes online.
	m := q.onlineMitra(t, 1)
	if n := q.dispatchAfterKick(t, "online"); n != 1 {
		t.Fatalf("online: %d offered, want 1", n)
	}
	wantIDs(t, "offers after online", q.offeredTo(m), vs[0].ID)
	if p := q.position(t, cs[0], vs[0].ID); p != 0 {
		t.Fatalf("an offered session has queue_position %d, want null", p)
	}
	for i := 1; i < 6; i++ {
		if p := q.position(t, cs[i], vs[i].ID); p != i {
			t.Fatalf("session %d at position %d, want %d", i, p, i)
		}
	}
	// No second offer for the same slot.
	if n, _ := q.svc.Dispatch(ctx); n != 0 {
		t.Fatalf("a second pass offered %d sessions for no new slot", n)
	}

	// 2. A session of the mitra ends.
	if _, err := q.svc.Accept(ctx, m.UserID, vs[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := q.svc.End(ctx, cs[0], vs[0].ID); err != nil {
		t.Fatal(err)
	}
	if n := q.dispatchAfterKick(t, "session end"); n != 1 {
		t.Fatalf("session end: %d offered, want 1", n)
	}
	wantIDs(t, "offers after the end", q.offeredTo(m), vs[0].ID, vs[1].ID)

	// 3. Capacity is raised.
	if _, err := q.svc.Accept(ctx, m.UserID, vs[1].ID); err != nil {
		t.Fatal(err)
	}
	two := 2
	if _, err := q.mitras.Patch(ctx, m.UserID, ports.MitraPatch{Capacity: &two}); err != nil {
		t.Fatal(err)
	}
	if n := q.dispatchAfterKick(t, "capacity raised"); n != 1 {
		t.Fatalf("capacity raised: %d offered, want 1", n)
	}
	wantIDs(t, "offers after the capacity rise", q.offeredTo(m), vs[0].ID, vs[1].ID, vs[2].ID)

	// 4. A payment timeout releases the mitra.
	if _, err := q.svc.Accept(ctx, m.UserID, vs[2].ID); err != nil {
		t.Fatal(err)
	}
	q.kicks = 0
	q.clock.Advance(payment)
	if err := q.mitras.Heartbeat(ctx, m.UserID); err != nil {
		t.Fatal(err)
	}
	if _, err := q.svc.FireDue(ctx); err != nil {
		t.Fatal(err)
	}
	if n := q.dispatchAfterKick(t, "payment timeout"); n != 2 {
		t.Fatalf("payment timeout of two sessions: %d offered, want 2", n)
	}
	wantIDs(t, "offers after the payment timeouts", q.offeredTo(m), vs[0].ID, vs[1].ID, vs[2].ID, vs[3].ID, vs[4].ID)

	// 5. A mitra comes back from away.
	m2 := q.onlineMitra(t, 1)
	if _, err := q.mitras.GoAway(ctx, m2.UserID); err != nil {
		t.Fatal(err)
	}
	q.kicks = 0
	if n, _ := q.svc.Dispatch(ctx); n != 0 {
		t.Fatalf("an away mitra got %d queued sessions", n)
	}
	if _, err := q.mitras.GoOnline(ctx, m2.UserID); err != nil {
		t.Fatal(err)
	}
	if n := q.dispatchAfterKick(t, "back from away"); n != 1 {
		t.Fatalf("back from away: %d offered, want 1", n)
	}
	wantIDs(t, "offers to the mitra back from away", q.offeredTo(m2), vs[5].ID)
}

// A session queued while others wait joins the end of the queue, even when a
// slot is free at that instant (its trigger not yet run): the pass that the
// request runs offers the older session first.
func TestQueueNewRequestNeverOvertakes(t *testing.T) {
	q := newQueueFixture(t)
	c1, c2 := q.customer(t), q.customer(t)
	v1 := q.queue(t, c1)
	m := q.onlineMitra(t, 1) // the kick is not run: the slot is free, c1 still waits
	q.kicks = 0
	v2 := q.queue(t, c2)
	wantIDs(t, "offers", q.offeredTo(m), v1.ID)
	if v2.QueuePosition == nil || *v2.QueuePosition != 1 {
		t.Fatalf("the later request: queue_position %v, want 1 (the earlier one was offered)", v2.QueuePosition)
	}

	// Once the queue is empty and a slot is free, a queued request is offered at once.
	q3 := newQueueFixture(t)
	m3 := q3.onlineMitra(t, 1)
	c3 := q3.customer(t)
	v3 := q3.queue(t, c3)
	if v3.QueuePosition != nil || v3.EstimatedWaitSeconds != nil {
		t.Fatalf("offered at once: %+v, want null queue figures", v3)
	}
	wantIDs(t, "offered at once", q3.offeredTo(m3), v3.ID)
}

// A request without queue while others wait gets 409 unless a slot remains
// beyond what the queue takes.
func TestQueueUnqueuedRequestWhileOthersWait(t *testing.T) {
	q := newQueueFixture(t)
	ctx := context.Background()
	c1, c2, c3 := q.customer(t), q.customer(t), q.customer(t)
	v1 := q.queue(t, c1)
	m := q.onlineMitra(t, 1)
	q.kicks = 0
	if _, err := q.svc.Request(ctx, c2.UserID, 10, nil); !errors.Is(err, core.ErrNoMitraAvailable) {
		t.Fatalf("request while the queue takes the only slot: %v, want ErrNoMitraAvailable", err)
	}
	wantIDs(t, "the queued session was offered by that request's pass", q.offeredTo(m), v1.ID)
	// With nobody waiting, a request without queue is a plain blast (docs/contract.md §7).
	if _, err := q.svc.Request(ctx, q.customer(t).UserID, 10, nil); err != nil {
		t.Fatalf("request with an empty queue: %v", err)
	}
	q.queue(t, c3) // waits: m's slot is held by the offers
	// Three places, two held by the standing offers: one for the queue, one beyond it.
	m2 := q.onlineMitra(t, 3)
	q.kicks = 0
	v, err := q.svc.Request(ctx, c2.UserID, 10, nil)
	if err != nil {
		t.Fatalf("request with a slot beyond the queue: %v", err)
	}
	if got := q.offeredTo(m2); len(got) != 2 || got[1] != v.ID {
		t.Fatalf("offers to the new mitra: %v, want the queued session then the request %s", got, v.ID)
	}
	// A direct request never queues and is not held back by the queue.
	c4 := q.customer(t)
	q.queue(t, q.customer(t))
	m4 := q.onlineMitra(t, 1)
	if _, err := q.svc.Request(ctx, c4.UserID, 10, &m4.UserID); err != nil {
		t.Fatalf("direct request while others wait: %v", err)
	}
}

// docs/contract.md §10: waiting QUEUE_TIMEOUT ends the session as unmatched;
// the pairing timeout starts only when it is offered.
func TestQueueTimeout(t *testing.T) {
	q := newQueueFixture(t)
	c := q.customer(t)
	v := q.queue(t, c)
	q.advance(t, sessions.DefaultQueueTimeout-time.Second)
	got, err := q.svc.Get(context.Background(), c, v.ID)
	if err != nil || got.Status != "searching" || got.QueuePosition == nil {
		t.Fatalf("a second before the queue timeout: %+v, %v", got, err)
	}
	q.advance(t, time.Second)
	got, err = q.svc.Get(context.Background(), c, v.ID)
	if err != nil || got.Status != "unmatched" || got.EndReason == nil || *got.EndReason != "unmatched" || got.QueuePosition != nil {
		t.Fatalf("at the queue timeout: %+v, %v; want unmatched", got, err)
	}
	ended := q.bus.of(ports.EventSessionEnded, c.UserID)
	if len(ended) != 1 || ended[0]["reason"] != "unmatched" {
		t.Fatalf("session_ended events: %v", ended)
	}

	// Offered after a long wait: the pairing timeout runs from the offer.
	c2 := q.customer(t)
	v2 := q.queue(t, c2)
	q.advance(t, 10*time.Minute)
	m := q.onlineMitra(t, 1)
	q.dispatchAfterKick(t, "online")
	wantIDs(t, "offers", q.offeredTo(m), v2.ID)
	offer := q.bus.of(ports.EventSessionOffer, m.UserID)[0]
	if want := q.clock.Now().UTC().Add(pairing).Format(time.RFC3339); offer["offer_expires_at"] != want {
		t.Fatalf("offer_expires_at %v, want %s (now + pairing timeout)", offer["offer_expires_at"], want)
	}
	q.advance(t, pairing-time.Second)
	if got, _ := q.svc.Get(context.Background(), c2, v2.ID); got.Status != "searching" {
		t.Fatalf("before the pairing timeout: %s", got.Status)
	}
	q.kicks = 0
	q.advance(t, time.Second)
	if got, _ := q.svc.Get(context.Background(), c2, v2.ID); got.Status != "unmatched" {
		t.Fatalf("at the pairing timeout: %s, want unmatched", got.Status)
	}
	if q.kicks == 0 {
		t.Fatal("an offer that lapsed did not kick the dispatcher")
	}
}

// The customer cancels a waiting session at any time; the sessions behind move up.
func TestQueueCancel(t *testing.T) {
	q := newQueueFixture(t)
	ctx := context.Background()
	c1, c2, c3 := q.customer(t), q.customer(t), q.customer(t)
	v1, v2, v3 := q.queue(t, c1), q.queue(t, c2), q.queue(t, c3)
	got, err := q.svc.End(ctx, c2, v2.ID)
	if err != nil || got.Status != "cancelled" || *got.EndReason != "cancelled_by_customer" {
		t.Fatalf("cancel: %+v, %v", got, err)
	}
	if p := q.position(t, c3, v3.ID); p != 2 {
		t.Fatalf("after a cancel ahead: position %d, want 2", p)
	}
	m := q.onlineMitra(t, 1)
	q.dispatchAfterKick(t, "online")
	wantIDs(t, "offers", q.offeredTo(m), v1.ID)
	// Cancelling the offered session frees its slot for the next one.
	q.kicks = 0
	if _, err := q.svc.End(ctx, c1, v1.ID); err != nil {
		t.Fatal(err)
	}
	q.dispatchAfterKick(t, "cancel of an offered session")
	wantIDs(t, "offers", q.offeredTo(m), v1.ID, v3.ID)
	sum, err := q.svc.QueueSummary(ctx)
	if err != nil || sum.Length != 0 {
		t.Fatalf("summary: %+v, %v", sum, err)
	}
}

// When every mitra a queued session was offered to declines it, it goes back
// to its place in the queue (the head); the free slot goes to the next one
// meanwhile, and the next new mitra gets the declined session first.
func TestQueueDeclineAllReturnsToItsPlace(t *testing.T) {
	q := newQueueFixture(t)
	ctx := context.Background()
	c1, c2 := q.customer(t), q.customer(t)
	v1, v2 := q.queue(t, c1), q.queue(t, c2)
	m := q.onlineMitra(t, 1)
	q.dispatchAfterKick(t, "online")
	wantIDs(t, "offers", q.offeredTo(m), v1.ID)
	if err := q.svc.Decline(ctx, m.UserID, v1.ID); err != nil {
		t.Fatal(err)
	}
	if p := q.position(t, c1, v1.ID); p != 1 {
		t.Fatalf("declined by all: position %d, want 1 (its own place)", p)
	}
	q.dispatchAfterKick(t, "decline")
	wantIDs(t, "offers", q.offeredTo(m), v1.ID, v2.ID)
	if p := q.position(t, c1, v1.ID); p != 1 {
		t.Fatalf("after the next was offered: position %d, want 1", p)
	}
	m2 := q.onlineMitra(t, 1)
	q.dispatchAfterKick(t, "online")
	wantIDs(t, "offers to the new mitra", q.offeredTo(m2), v1.ID)
	if _, err := q.svc.Accept(ctx, m.UserID, v1.ID); !errors.Is(err, core.ErrForbidden) {
		t.Fatalf("accept by the mitra that declined: %v, want ErrForbidden", err)
	}
	if _, err := q.svc.Accept(ctx, m2.UserID, v1.ID); err != nil {
		t.Fatal(err)
	}
}

// queue_position and estimated_wait_seconds: the estimate is unknown until
// a queued session was matched, then position × window / matched.
func TestQueuePositionAndEstimate(t *testing.T) {
	q := newQueueFixture(t)
	ctx := context.Background()
	c1, c2, c3 := q.customer(t), q.customer(t), q.customer(t)
	v1, _ := q.queue(t, c1), q.queue(t, c2)
	if v1.EstimatedWaitSeconds != nil {
		t.Fatalf("estimate with no match yet: %v, want null", *v1.EstimatedWaitSeconds)
	}
	m := q.onlineMitra(t, 1)
	q.dispatchAfterKick(t, "online")
	if _, err := q.svc.Accept(ctx, m.UserID, v1.ID); err != nil {
		t.Fatal(err)
	}
	q.clock.Advance(10 * time.Second) // past the instance's cached rate
	v3 := q.queue(t, c3)
	if v3.QueuePosition == nil || *v3.QueuePosition != 2 || v3.EstimatedWaitSeconds == nil || *v3.EstimatedWaitSeconds != 1800 {
		t.Fatalf("third: position %v, estimate %v; want 2 and 1800 (one match in 15 minutes)", v3.QueuePosition, v3.EstimatedWaitSeconds)
	}
	list, err := q.svc.List(ctx, c3)
	if err != nil || len(list) != 1 || list[0].QueuePosition == nil || *list[0].QueuePosition != 2 {
		t.Fatalf("list: %+v, %v", list, err)
	}
	q.clock.Advance(20 * time.Second)
	sum, err := q.svc.QueueSummary(ctx)
	if err != nil || sum.Length != 2 || sum.LongestWaitSeconds != 30 {
		t.Fatalf("summary: %+v, %v; want 2 waiting, the longest for 30 s", sum, err)
	}
}

// queueUpdates returns the queue_update payloads sent to c so far.
func (q *queueFixture) queueUpdates(c auth.Principal) []map[string]any {
	return q.bus.of(ports.EventQueueUpdate, c.UserID)
}

// docs/contract.md §10: queue_update {session_id, queue_position,
// estimated_wait_seconds} reaches the customer when its position changes,
// at most once a second per session, and once whatever the passes.
func TestQueueUpdateEvents(t *testing.T) {
	q := newQueueFixture(t)
	ctx := context.Background()
	c1, c2, c3 := q.customer(t), q.customer(t), q.customer(t)
	v1, v2, v3 := q.queue(t, c1), q.queue(t, c2), q.queue(t, c3)
	for _, c := range []auth.Principal{c1, c2, c3} {
		if got := q.queueUpdates(c); len(got) != 0 {
			t.Fatalf("queue_update right after the request (the answer told the position): %v", got)
		}
	}
	q.onlineMitra(t, 1)
	q.dispatchAfterKick(t, "online") // c1 offered; its and the others' notices are due a second after the answers
	for _, c := range []auth.Principal{c1, c2, c3} {
		if got := q.queueUpdates(c); len(got) != 0 {
			t.Fatalf("queue_update within a second of the last notice: %v", got)
		}
	}
	q.clock.Advance(time.Second)
	if _, err := q.svc.Dispatch(ctx); err != nil {
		t.Fatal(err)
	}
	want := func(c auth.Principal, id string, n int, pos any) {
		t.Helper()
		got := q.queueUpdates(c)
		if len(got) != n {
			t.Fatalf("queue_update to the customer of %s: %v, want %d", id, got, n)
		}
		last := got[n-1]
		if last["type"] != ports.EventQueueUpdate || last["session_id"] != id || last["queue_position"] != pos {
			t.Fatalf("queue_update %v, want position %v", last, pos)
		}
		if _, ok := last["estimated_wait_seconds"]; !ok {
			t.Fatalf("queue_update without estimated_wait_seconds: %v", last)
		}
	}
	want(c1, v1.ID, 1, nil) // offered: left the queue
	want(c2, v2.ID, 1, float64(1))
	want(c3, v3.ID, 1, float64(2))
	// Once: another pass (another instance's) sends nothing more.
	q.clock.Advance(time.Second)
	if _, err := q.svc.Dispatch(ctx); err != nil {
		t.Fatal(err)
	}
	want(c2, v2.ID, 1, float64(1))
	want(c3, v3.ID, 1, float64(2))
	// A cancel ahead moves c3 up.
	if _, err := q.svc.End(ctx, c2, v2.ID); err != nil {
		t.Fatal(err)
	}
	q.dispatchAfterKick(t, "cancel")
	want(c3, v3.ID, 2, float64(1))
}
