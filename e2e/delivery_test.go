package e2e

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// eventID is the frame's event_id as a number; it fails the test when the
// frame has none.
func eventID(t *testing.T, f wsFrame) int64 {
	t.Helper()
	s, ok := f.Body["event_id"].(string)
	if !ok {
		t.Fatalf("frame without an event_id string: %s", f.Raw)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("event_id %q: %v", s, err)
	}
	checkTime(t, "frame at", f.Body["at"])
	return n
}

// wantConsecutive checks that frames carry the ids from, from+1, … in order.
func wantConsecutive(t *testing.T, what string, frames []wsFrame, from int64) {
	t.Helper()
	for i, f := range frames {
		if got := eventID(t, f); got != from+int64(i) {
			t.Fatalf("%s: frame %d has event_id %d, want %d (no gap, no duplicate): %s", what, i, got, from+int64(i), f.Raw)
		}
	}
}

// eventsPage is GET /api/events.
func (s *Server) eventsPage(t *testing.T, token, query string) Response {
	t.Helper()
	return s.get(t, "/api/events"+query, token)
}

// docs/contract.md §13: every frame carries event_id and at; a client that
// reconnects with ?after= on another instance, or after a restart, gets what
// it missed in order and then goes on live, with no gap and no duplicate;
// GET /api/events serves the same stream to polling clients.
func TestResumeAcrossInstancesAndRestarts(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 2, nil)
	a, b := c.Servers[0], c.Servers[1]
	admin := a.adminToken(t)
	m := a.newMitra(t, admin, 1)
	a.goOnline(t, m)
	cust := b.newCustomer(t)

	ws := a.dialWS(t, "customer on A", cust.Token)
	id := b.requestSession(t, cust, 30)
	wantStatus(t, "accept", a.post(t, "/api/sessions/"+id+"/accept", m.Token, nil), http.StatusOK)
	first := ws.waitFor(t, "session_update pending_payment", eventTimeout, update(id, "pending_payment"))
	firstID := eventID(t, first)
	ws.close()

	// Missed while disconnected, caused on B.
	wantStatus(t, "pay on B", b.post(t, "/api/sessions/"+id+"/pay", cust.Token, nil), http.StatusOK)
	wantStatus(t, "extend on B", b.post(t, "/api/sessions/"+id+"/extend", cust.Token, map[string]any{"minutes": 5}), http.StatusOK)

	// Resumed on B: the two missed events, then live ones.
	rb := b.dialWSWith(t, "customer resumed on B", "/ws?after="+strconv.FormatInt(firstID, 10)+"&access_token="+url.QueryEscape(cust.Token), nil)
	rb.waitForNth(t, "the two missed events", eventTimeout, 2, anyFrame)
	wantStatus(t, "end on A", a.post(t, "/api/sessions/"+id+"/end", cust.Token, nil), http.StatusOK)
	rb.waitFor(t, "session_ended live", eventTimeout, event("session_ended", id))
	time.Sleep(settleWindow)
	frames := rb.all()
	if len(frames) != 3 {
		t.Fatalf("resumed connection got %d frames, want 3:%s", len(frames), rb.dump())
	}
	wantConsecutive(t, "resumed on B", frames, firstID+1)
	if frames[0].Type() != "session_update" || frames[2].Type() != "session_ended" {
		t.Fatalf("resumed frames out of order:%s", rb.dump())
	}
	lastID := eventID(t, frames[2])

	// Polling: the whole stream, page by page, on either instance.
	var polled []map[string]any
	after := "0"
	for range 10 {
		r := a.eventsPage(t, cust.Token, "?limit=2&after="+after)
		wantStatus(t, "GET /api/events", r, http.StatusOK)
		evs, _ := r.Body["events"].([]any)
		for _, e := range evs {
			polled = append(polled, e.(map[string]any))
		}
		next, _ := r.Body["next_after"].(string)
		if len(evs) == 0 {
			if next != after {
				t.Fatalf("empty page next_after %q, want %q", next, after)
			}
			break
		}
		after = next
	}
	if int64(len(polled)) != lastID {
		t.Fatalf("polled %d events, want %d", len(polled), lastID)
	}
	for i, e := range polled {
		if e["event_id"] != strconv.Itoa(i+1) {
			t.Fatalf("polled event %d has event_id %v", i, e["event_id"])
		}
	}

	// A crash and a new instance: it resumes from the same log.
	a.Kill(t)
	id2 := b.requestSession(t, cust, 10)
	wantStatus(t, "accept on B", b.post(t, "/api/sessions/"+id2+"/accept", m.Token, nil), http.StatusOK)
	n := c.add(t, nil)
	rn := n.dialWSWith(t, "customer on the new instance", "/ws?after="+strconv.FormatInt(lastID, 10)+"&access_token="+url.QueryEscape(cust.Token), nil)
	rn.waitFor(t, "the missed accept", eventTimeout, update(id2, "pending_payment"))
	wantStatus(t, "end on B", b.post(t, "/api/sessions/"+id2+"/end", cust.Token, nil), http.StatusOK)
	rn.waitFor(t, "session_ended live", eventTimeout, event("session_ended", id2))
	time.Sleep(settleWindow)
	if got := rn.all(); len(got) != 2 {
		t.Fatalf("new instance: %d frames, want 2:%s", len(got), rn.dump())
	}
	wantConsecutive(t, "new instance", rn.all(), lastID+1)

	// Bad input and gone.
	for _, q := range []struct{ query, field string }{
		{"?after=-1", "after"}, {"?after=x", "after"}, {"?after=1.5", "after"},
		{"?limit=0", "limit"}, {"?limit=501", "limit"}, {"?limit=ten", "limit"},
	} {
		msg := wantError(t, "GET /api/events"+q.query, b.eventsPage(t, cust.Token, q.query), http.StatusBadRequest, "invalid_request")
		if !strings.Contains(msg, q.field) {
			t.Errorf("GET /api/events%s: message %q does not name %s", q.query, msg, q.field)
		}
	}
	wantError(t, "after beyond the newest", b.eventsPage(t, cust.Token, "?after=99999"), http.StatusGone, "gone")
	r := b.wsHandshake(t, "/ws?after=99999", http.Header{"Authorization": {"Bearer " + cust.Token}})
	wantError(t, "WebSocket resume beyond the newest", r, http.StatusGone, "gone")
}

// docs/contract.md §13: with Valkey unreachable, an event caused on one instance
// still reaches a client connected to the other within 2 s (from the log).
func TestDeliveryWhileValkeyIsDown(t *testing.T) {
	t.Parallel()
	p := startPair(t, map[string]string{"VALKEY_URL": "redis://127.0.0.1:1"}, 0, 1)
	b, cust, wm := p.B, p.cust, p.mitraWS[0]
	start := time.Now()
	id := b.requestSession(t, cust, 10)
	f := wm.waitFor(t, "session_offer from B", eventTimeout, event("session_offer", id))
	if took := f.At.Sub(start); took > 2*time.Second+revocationSlack {
		t.Fatalf("the offer took %s to cross instances with Valkey down, want within 2 s", took)
	} else {
		t.Logf("offer from B reached A in %s with Valkey down", took)
	}
	wantStatus(t, "cancel on B", b.post(t, "/api/sessions/"+id+"/end", cust.Token, nil), http.StatusOK)
	time.Sleep(settleWindow)
	wm.wantCount(t, "session_offer", 1, event("session_offer", id))
	wantConsecutive(t, "mitra on A", wm.all(), 1)
}
