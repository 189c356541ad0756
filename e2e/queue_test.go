package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/client"
)

// position is the session's queue_position, 0 for null.
func position(v client.Session) int {
	if v.QueuePosition == nil {
		return 0
	}
	return *v.QueuePosition
}

// queueRequest sends POST /api/sessions with queue: true on s and returns the view.
func (s *Server) queueRequest(t *testing.T, c actor, minutes int) client.Session {
	t.Helper()
	q := true
	v := sessionOf(t, "POST /api/sessions with queue", s.post(t, "/api/sessions", c.Token,
		client.CreateSessionRequest{DurationMinutes: minutes, Queue: &q}), http.StatusCreated)
	if v.Status != client.SessionStatusSearching {
		t.Fatalf("queued session: %s, want status searching", jsonOf(v))
	}
	return v
}

// queueFigures reads the dashboard's queue figures on s.
func (s *Server) queueFigures(t *testing.T, admin string) (length, longest int) {
	t.Helper()
	d := viewOf[client.Dashboard](t, "GET /api/admin/dashboard", s.get(t, "/api/admin/dashboard", admin), http.StatusOK)
	return d.Queue.Length, d.Queue.LongestWaitSeconds
}

// docs/contract.md §10 across two instances A and B on one Postgres and one
// Valkey: customers queue on either instance in one queue; a request
// without queue is refused while they wait; a mitra going online on the
// other instance gets the oldest waiting session first; positions and the
// dashboard's figures are the same on both instances; cancel works.
func TestQueueAcrossInstances(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 2, nil)
	a, b := c.Servers[0], c.Servers[1]
	admin := a.adminToken(t)
	m := a.newMitra(t, admin, 1)
	c1, c2, c3 := a.newCustomer(t), b.newCustomer(t), a.newCustomer(t)
	wc1 := a.dialWS(t, "customer 1 on A", c1.Token)
	wc2 := b.dialWS(t, "customer 2 on B", c2.Token)

	// Bad input changes nothing.
	r := a.post(t, "/api/sessions", c1.Token, `{"duration_minutes":10,"queue":"yes"}`)
	if msg := wantError(t, "queue not a boolean", r, http.StatusBadRequest, "invalid_request"); !strings.Contains(msg, "queue") {
		t.Fatalf("the 400 does not name queue: %q", msg)
	}

	v1 := a.queueRequest(t, c1, 10)
	v2 := b.queueRequest(t, c2, 10)
	if p1, p2 := position(v1), position(v2); p1 != 1 || p2 != 2 {
		t.Fatalf("positions %d and %d, want 1 and 2", p1, p2)
	}
	if v1.EstimatedWaitSeconds != nil {
		t.Fatalf("estimate before any match: %d, want null", *v1.EstimatedWaitSeconds)
	}
	id1, id2 := v1.ID, v2.ID
	// Queued on A, read on B and the other way round.
	if p := position(b.getSession(t, id1, c1.Token)); p != 1 {
		t.Fatalf("position of the first on B: %d", p)
	}
	if p := position(a.getSession(t, id2, c2.Token)); p != 2 {
		t.Fatalf("position of the second on A: %d", p)
	}
	wantError(t, "request without queue while others wait", a.post(t, "/api/sessions", c3.Token, map[string]any{"duration_minutes": 10}),
		http.StatusConflict, "no_mitra_available")
	wantError(t, "second open session", b.post(t, "/api/sessions", c1.Token, map[string]any{"duration_minutes": 10, "queue": true}),
		http.StatusConflict, "open_session_exists")
	for _, s := range []*Server{a, b} {
		if n, longest := s.queueFigures(t, admin); n != 2 || longest < 0 || longest > 60 {
			t.Fatalf("dashboard queue: length %d, longest %d s; want 2 and a few seconds", n, longest)
		}
	}

	// The mitra goes online on B: the oldest, queued on A, is offered to it.
	wm := b.dialWS(t, "mitra on B", m.Token)
	b.goOnline(t, m)
	f := wm.waitFor(t, "session_offer of the oldest", eventTimeout, event("session_offer", id1))
	if f.Body["offer_expires_at"] == nil {
		t.Fatalf("offer without a deadline: %v", f)
	}
	if p := position(a.getSession(t, id1, c1.Token)); p != 0 {
		t.Fatalf("an offered session has queue_position %d, want null", p)
	}
	if p := position(a.getSession(t, id2, c2.Token)); p != 1 {
		t.Fatalf("the second moved to %d, want 1", p)
	}
	// queue_update: the second is told its new place, the first that it left the queue.
	f = wc2.waitFor(t, "queue_update of the second", eventTimeout, func(f wsFrame) bool {
		return f.Type() == "queue_update" && f.SessionID() == id2
	})
	if f.Body["queue_position"] != float64(1) {
		t.Fatalf("queue_update to the second: %s, want queue_position 1", f.Raw)
	}
	f = wc1.waitFor(t, "queue_update of the first", eventTimeout, func(f wsFrame) bool {
		return f.Type() == "queue_update" && f.SessionID() == id1
	})
	if f.Body["queue_position"] != nil || f.Body["estimated_wait_seconds"] != nil {
		t.Fatalf("queue_update to the offered first: %s, want a null position and estimate", f.Raw)
	}
	r = b.post(t, "/api/sessions/"+id1+"/accept", m.Token, nil)
	wantStatus(t, "accept of the queued session", r, http.StatusOK)
	wc1.waitFor(t, "session_update pending_payment", eventTimeout, update(id1, "pending_payment"))
	if wm.count(event("session_offer", id2)) != 0 {
		t.Fatal("the second session was offered to a full mitra")
	}

	// The match gives the estimate a rate; the second waits on.
	time.Sleep(100 * time.Millisecond)
	got := b.getSession(t, id2, c2.Token)
	if position(got) != 1 {
		t.Fatalf("second: %s", jsonOf(got))
	}

	// The first ends: its place goes to the second, on whichever instance passes first.
	wantStatus(t, "end", a.post(t, "/api/sessions/"+id1+"/end", c1.Token, nil), http.StatusOK)
	wm.waitFor(t, "session_offer of the second", eventTimeout, event("session_offer", id2))
	wc2.waitFor(t, "queue_update: the second left the queue", eventTimeout, func(f wsFrame) bool {
		return f.Type() == "queue_update" && f.SessionID() == id2 && f.Body["queue_position"] == nil
	})
	if n := wc2.count(func(f wsFrame) bool { return f.Type() == "queue_update" }); n != 2 {
		t.Fatalf("the second got %d queue_update events, want 2 (position 1, then offered):\n%s", n, wc2.dump())
	}

	// A third queues and cancels while waiting.
	v3 := b.queueRequest(t, c3, 10)
	if position(v3) != 1 || v3.EstimatedWaitSeconds == nil {
		t.Fatalf("third: %s; want position 1 and an estimate (one match in the window)", jsonOf(v3))
	}
	got = sessionOf(t, "cancel while waiting", a.post(t, "/api/sessions/"+v3.ID+"/end", c3.Token, nil), http.StatusOK)
	wantEnded(t, "cancelled while waiting", got, client.SessionStatusCancelled, "cancelled_by_customer", "")
	if got.QueuePosition != nil || got.EstimatedWaitSeconds != nil {
		t.Fatalf("cancelled: %s, want null queue figures", jsonOf(got))
	}
	if n, _ := b.queueFigures(t, admin); n != 0 {
		t.Fatalf("dashboard queue length %d after the cancel, want 0", n)
	}
}

// docs/contract.md §10: QUEUE_TIMEOUT_SECONDS in the queue ends the session as
// unmatched, with session_ended to the customer.
func TestQueueTimeoutEndsUnmatched(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"QUEUE_TIMEOUT_SECONDS": "2"})
	cust := s.newCustomer(t)
	w := s.dialWS(t, "customer", cust.Token)
	v := s.queueRequest(t, cust, 10)
	id := v.ID
	queued := v.CreatedAt
	f := w.waitFor(t, "session_ended unmatched", 2*time.Second+timerSlack, event("session_ended", id))
	if f.Body["reason"] != "unmatched" {
		t.Fatalf("session_ended: %v, want reason unmatched", f)
	}
	if time.Since(queued) < 2*time.Second-earlySlack {
		t.Fatalf("ended %v after queuing, before the queue timeout", time.Since(queued))
	}
	got := s.getSession(t, id, cust.Token)
	wantEnded(t, "after the queue timeout", got, client.SessionStatusUnmatched, "unmatched", "")
	if got.QueuePosition != nil {
		t.Fatalf("after the queue timeout: %s", jsonOf(got))
	}
}
