package loadgen

import (
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/client"
)

// queuedView is the 201 answer of a queued request created at t0+d.
func queuedView(id string, d time.Duration, waiting bool) SessionView {
	v := SessionView{ID: id, Status: client.SessionStatusSearching, CreatedAt: t0.Add(d)}
	if waiting {
		v.QueuePosition = ptr(1)
	}
	return v
}

func offerFrame(id string, at time.Duration) Frame {
	return Frame{Type: EventSessionOffer, SessionID: id, At: t0.Add(at)}
}

// The FIFO check compares first offers: a session queued later offered
// before an earlier one that still waited is a violation; within the
// grace, after the earlier one's offer or end, or with the earlier one
// offered unseen but matched, it is not.
func TestQueueFIFO(t *testing.T) {
	c, clk := newTestChecker(t, CheckerConfig{QueueGrace: 100 * time.Millisecond})
	mitra := c.ConnOpened("m", "mitra", t0)
	for _, v := range []SessionView{
		queuedView("a", 0, true),                     // waits, offered at 10s
		queuedView("b", time.Second, true),           // offered at 10s too (same pass)
		queuedView("c", 2*time.Second, true),         // cancelled at 5s, before d's offer
		queuedView("d", 3*time.Second, true),         // offered at 6s: before a, which waited
		queuedView("e", 3050*time.Millisecond, true), // within the grace of d: not compared with it
		queuedView("f", 4*time.Second, true),         // offered at 12s, after the others' offers or ends
	} {
		c.Queued(v)
	}
	c.Frame(mitra, offerFrame("a", 10*time.Second), t0.Add(10*time.Second))
	c.Frame(mitra, offerFrame("b", 10*time.Second), t0.Add(10*time.Second))
	c.Frame(mitra, offerFrame("d", 6*time.Second), t0.Add(6*time.Second))
	c.Frame(mitra, offerFrame("f", 12*time.Second), t0.Add(12*time.Second))
	cancelled := func(id string, at time.Duration) SessionView {
		return SessionView{ID: id, Status: "cancelled", EndReason: ptr(client.SessionEndReasonCancelledByCustomer), EndedAt: ptr(t0.Add(at))}
	}
	c.SessionView(cancelled("c", 5*time.Second))
	c.FinalViews([]SessionView{
		{ID: "a", Status: client.SessionStatusPendingPayment, MitraID: ptr("m"), AcceptedAt: ptr(t0.Add(11 * time.Second))},
		cancelled("e", 11*time.Second),
	})
	clk.t = t0.Add(20 * time.Second)
	res := final(t, c)
	// a and b waited while d was offered.
	wantViolations(t, res.Violations, InvariantFIFO+"/later_offered_first", InvariantFIFO+"/later_offered_first")
	if res.Violations[0].Subject == res.Violations[1].Subject {
		t.Fatalf("violations %+v, want one about a and one about b", res.Violations)
	}
	q := res.Queue
	if q.Queued != 6 || q.Waited != 6 || q.Offered != 4 || q.Matched != 1 || q.Cancelled != 2 || q.Open != 3 || q.Violations != 2 {
		t.Fatalf("queue stats %+v", q)
	}
}

// Without a session_offer frame, the answer (offered at once) and the
// queue_update that says a session left the queue witness its offer; the
// latter up to a second late.
func TestQueueFIFOWitnesses(t *testing.T) {
	c, _ := newTestChecker(t, CheckerConfig{QueueGrace: 100 * time.Millisecond})
	cust := c.ConnOpened("cust", "customer", t0)
	c.Queued(queuedView("a", 0, true))
	c.Queued(queuedView("c", 500*time.Millisecond, true))
	c.Queued(queuedView("b", 2*time.Second, false)) // offered at once, at 2s
	left := func(id string, at time.Duration) Frame {
		return Frame{Type: EventQueueUpdate, SessionID: id, At: t0.Add(at)}
	}
	c.Frame(cust, left("a", 3200*time.Millisecond), t0.Add(4*time.Second)) // offered after 2.2s: after b
	c.Frame(cust, left("c", 2500*time.Millisecond), t0.Add(4*time.Second)) // maybe by 1.5s: not surely after b
	res := final(t, c)
	wantViolations(t, res.Violations, InvariantFIFO+"/later_offered_first")
	if res.Violations[0].Subject != "a" || res.Queue.Offered != 3 || res.Queue.Updates != 2 {
		t.Fatalf("violations %+v, stats %+v", res.Violations, res.Queue)
	}
}

func TestQueueFIFOInOrder(t *testing.T) {
	c, _ := newTestChecker(t, CheckerConfig{})
	mitra := c.ConnOpened("m", "mitra", t0)
	for i, id := range []string{"a", "b", "c"} {
		c.Queued(queuedView(id, time.Duration(i)*time.Second, true))
		c.Frame(mitra, offerFrame(id, time.Duration(10+i)*time.Second), t0.Add(20*time.Second))
	}
	res := final(t, c)
	wantViolations(t, res.Violations)
	if res.Queue.PairsChecked != 3 || res.Queue.Violations != 0 || res.Queue.MaxWaitSeconds != 10 {
		t.Fatalf("queue stats %+v", res.Queue)
	}
}

// A queued session still searching past the queue and pairing timeouts is
// lost; one queued lately is not; one whose outcome is known is not.
func TestQueueLost(t *testing.T) {
	c, clk := newTestChecker(t, CheckerConfig{QueueTimeout: 10 * time.Second, PairingTimeout: 5 * time.Second, Grace: time.Second})
	c.Queued(queuedView("stuck", 0, true))
	c.Queued(queuedView("late", 10*time.Second, true))
	c.Queued(queuedView("timedout", 0, true))
	c.SessionView(SessionView{ID: "timedout", Status: "unmatched", EndReason: ptr(client.SessionEndReasonUnmatched), EndedAt: ptr(t0.Add(10 * time.Second))})
	clk.t = t0.Add(17 * time.Second)
	res := final(t, c)
	wantViolations(t, res.Violations, InvariantQueueLoss+"/queued_session_lost")
	if res.Violations[0].Subject != "stuck" || res.Queue.Lost != 1 || res.Queue.Unmatched != 1 {
		t.Fatalf("violations %+v, stats %+v", res.Violations, res.Queue)
	}
}
