package e2e

import (
	"net/http"
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/client"
)

// Timing of the timer assertions across instances. A deadline fires when
// the scheduler of some instance next wakes (within a second) and claims it;
// timerSlack bounds how late its event may reach a client on a loaded
// machine. Nothing may fire before its deadline: the servers share the test's
// clock, so earlySlack only absorbs the rounding of times in the views.
const (
	timerSlack = 6 * time.Second
	earlySlack = 250 * time.Millisecond
)

// docs/contract.md §8 across two instances A and B on one Postgres and one Valkey:
// the offer, session_taken and session_update reach a client connected to the
// other instance than the one that caused them; the warning and the expiry
// fire exactly once in total, so each of the customer's connections (one on
// each instance) receives each exactly once, on time.
func TestMultiInstanceRealtime(t *testing.T) {
	t.Parallel()
	// The shortest session lasts a minute: with a lead of 58 s the warning
	// comes 2 s after payment, the expiry 60 s after it.
	c := startCluster(t, 2, map[string]string{"SESSION_WARNING_LEAD_SECONDS": "58"})
	a, b := c.Servers[0], c.Servers[1]
	admin := a.adminToken(t)
	m1 := a.newMitra(t, admin, 1)
	a.goOnline(t, m1)
	m2 := b.newMitra(t, admin, 1) // the admin's token from A works on B
	b.goOnline(t, m2)
	wm1 := a.dialWS(t, "mitra 1 on A", m1.Token)
	wm2 := b.dialWS(t, "mitra 2 on B", m2.Token)
	cust := b.newCustomer(t)
	wcA := a.dialWS(t, "customer on A", cust.Token)
	wcB := b.dialWSQuery(t, "customer on B", cust.Token)
	customer := []*WSClient{wcA, wcB}

	// Requested on B: offered to mitra 1 on A (across) and mitra 2 on B.
	id := b.requestSession(t, cust, 1)
	wm1.waitFor(t, "session_offer from B", eventTimeout, event("session_offer", id))
	wm2.waitFor(t, "session_offer", eventTimeout, event("session_offer", id))

	// Accepted on A: session_taken reaches mitra 2 on B, the update both
	// connections of the customer.
	pending := sessionOf(t, "accept on A", a.post(t, "/api/sessions/"+id+"/accept", m1.Token, nil), http.StatusOK)
	wm2.waitFor(t, "session_taken from A", eventTimeout, event("session_taken", id))
	for _, w := range append(customer, wm1) {
		f := w.waitFor(t, "session_update pending_payment", eventTimeout, update(id, "pending_payment"))
		if got := f.sessionView(t); !sameSession(got, pending) {
			t.Fatalf("%s: session_update %s, want the accept answer %s", w.name, jsonOf(got), jsonOf(pending))
		}
	}
	// Per-session state reads its own writes on any instance.
	if got := b.getSession(t, id, cust.Token); !sameSession(got, pending) {
		t.Fatalf("GET on B right after the accept on A = %s, want %s", jsonOf(got), jsonOf(pending))
	}

	// Paid on B: the update reaches mitra 1 on A.
	active := sessionOf(t, "pay on B", b.post(t, "/api/sessions/"+id+"/pay", cust.Token, nil), http.StatusOK)
	started := at(t, "paid.started_at", active.StartedAt)
	expires := at(t, "paid.expires_at", active.ExpiresAt)
	wantDuration(t, "expires_at - started_at", expires.Sub(started), time.Minute)
	for _, w := range append(customer, wm1) {
		w.waitFor(t, "session_update active", eventTimeout, update(id, "active"))
	}
	if got := a.getSession(t, id, m1.Token); got.Status != client.SessionStatusActive || !sameJSON(got.ExpiresAt, active.ExpiresAt) {
		t.Fatalf("GET on A right after the pay on B = %s, want %s", jsonOf(got), jsonOf(active))
	}

	// The warning, once, SESSION_WARNING_LEAD_SECONDS before expiry.
	warnAt := expires.Add(-58 * time.Second)
	for _, w := range customer {
		waitTimer(t, w, "session_warning", warnAt, event("session_warning", id), func(f wsFrame) {
			if f.Body["kind"] != "three_minutes_left" {
				t.Fatalf("%s: session_warning kind %v, want three_minutes_left: %s", w.name, f.Body["kind"], f.Raw)
			}
			if at := checkTime(t, "session_warning.expires_at", f.Body["expires_at"]); !at.Equal(expires) {
				t.Fatalf("%s: session_warning expires_at %s, want %s", w.name, at, expires)
			}
		})
	}

	// The expiry, once, at expires_at.
	for _, w := range append(customer, wm1) {
		waitTimer(t, w, "session_ended", expires, event("session_ended", id), func(f wsFrame) {
			if f.Body["reason"] != "expired" {
				t.Fatalf("%s: session_ended reason %v, want expired: %s", w.name, f.Body["reason"], f.Raw)
			}
		})
	}
	for _, s := range c.Servers {
		got := s.getSession(t, id, cust.Token)
		wantEnded(t, "expired session", got, client.SessionStatusEnded, "expired", m1.ID)
		within(t, "ended_at", at(t, "expired.ended_at", got.EndedAt), expires.Add(-earlySlack), expires.Add(timerSlack))
		wantLoad(t, "mitra 1 after the expiry", s.mitraView(t, admin, m1.ID), 0, true)
	}

	time.Sleep(settleWindow)
	for _, w := range customer {
		w.wantCount(t, "session_update", 2, event("session_update", id))
		w.wantCount(t, "session_warning", 1, event("session_warning", id))
		w.wantCount(t, "session_ended", 1, event("session_ended", id))
		w.wantCount(t, "any frame", 4, anyFrame)
	}
	wm1.wantCount(t, "session_offer", 1, event("session_offer", id))
	wm1.wantCount(t, "session_update", 2, event("session_update", id))
	wm1.wantCount(t, "session_ended", 1, event("session_ended", id))
	wm1.wantCount(t, "any frame", 4, anyFrame) // no warning: it is the customer's
	wm2.wantCount(t, "session_offer", 1, event("session_offer", id))
	wm2.wantCount(t, "session_taken", 1, event("session_taken", id))
	wm2.wantCount(t, "any frame", 2, anyFrame)
}

// docs/contract.md §7 timers survive an instance's death: instance A handles the
// request, accept and payment and is then killed with SIGKILL before the
// warning is due; instance B fires the warning and the expiry on time, once,
// to the clients connected to it.
func TestMultiInstanceKill(t *testing.T) {
	t.Parallel()
	// Warning 10 s after payment, expiry 60 s after it.
	const lead = 50 * time.Second
	p := startPair(t, map[string]string{"SESSION_WARNING_LEAD_SECONDS": "50"}, 0, 0)
	a, b, admin, m, cust := p.A, p.B, p.admin, p.mitra, p.cust
	wmA, wmB, wcA, wcB := p.mitraWS[0], p.mitraWS[1], p.custWS[0], p.custWS[1]

	id := a.requestSession(t, cust, 1)
	wmB.waitFor(t, "session_offer from A", eventTimeout, event("session_offer", id))
	wantStatus(t, "accept on A", a.post(t, "/api/sessions/"+id+"/accept", m.Token, nil), http.StatusOK)
	paid := sessionOf(t, "pay on A", a.post(t, "/api/sessions/"+id+"/pay", cust.Token, nil), http.StatusOK)
	expires := at(t, "paid.expires_at", paid.ExpiresAt)
	warnAt := expires.Add(-lead)
	for _, w := range []*WSClient{wcB, wmB, wcA} {
		w.waitFor(t, "session_update active", eventTimeout, update(id, "active"))
	}

	a.Kill(t)
	if killed := time.Now(); !killed.Before(warnAt) {
		t.Fatalf("instance A was killed at %s, after the warning was due (%s): the machine is too slow for this test",
			killed.Format(time.RFC3339Nano), warnAt.Format(time.RFC3339Nano))
	}
	// B serves on, and reads the session from the shared store.
	wantStatus(t, "GET /readyz on B", b.get(t, "/readyz", ""), http.StatusOK)
	if got := b.getSession(t, id, cust.Token); got.Status != client.SessionStatusActive || mitraOfSession(got) != m.ID ||
		!sameJSON(got.ExpiresAt, paid.ExpiresAt) {
		t.Fatalf("session on B after A died = %s, want active with the mitra, expiring as paid %s", jsonOf(got), jsonOf(paid))
	}

	waitTimer(t, wcB, "session_warning", warnAt, event("session_warning", id), func(f wsFrame) {
		if f.Body["kind"] != "three_minutes_left" {
			t.Fatalf("session_warning kind %v, want three_minutes_left", f.Body["kind"])
		}
	})
	for _, w := range []*WSClient{wcB, wmB} {
		waitTimer(t, w, "session_ended", expires, event("session_ended", id), func(f wsFrame) {
			if f.Body["reason"] != "expired" {
				t.Fatalf("%s: session_ended reason %v, want expired", w.name, f.Body["reason"])
			}
		})
	}
	got := b.getSession(t, id, cust.Token)
	wantEnded(t, "session expired by B", got, client.SessionStatusEnded, "expired", m.ID)
	within(t, "ended_at", at(t, "expired.ended_at", got.EndedAt), expires.Add(-earlySlack), expires.Add(timerSlack))
	if v := b.mitraView(t, admin, m.ID); v.ActiveSessions != 0 {
		t.Fatalf("mitra after the expiry = %s, want no active session", jsonOf(v))
	}

	time.Sleep(settleWindow)
	wcB.wantCount(t, "session_warning", 1, event("session_warning", id))
	wcB.wantCount(t, "session_ended", 1, event("session_ended", id))
	wmB.wantCount(t, "session_ended", 1, event("session_ended", id))
	wmB.wantCount(t, "session_warning", 0, event("session_warning", id))
	// A's connections died with it, before anything was due.
	for _, w := range []*WSClient{wcA, wmA} {
		if ended, _ := w.closed(); !ended {
			t.Fatalf("%s: the connection to the killed instance is still open", w.name)
		}
		w.wantCount(t, "session_warning", 0, event("session_warning", id))
		w.wantCount(t, "session_ended", 0, event("session_ended", id))
	}
}

// docs/contract.md §7: with PAIRING_TIMEOUT_SECONDS=2 and two instances, a search
// nobody accepts ends as unmatched once, at offer_expires_at.
func TestMultiInstancePairingTimeout(t *testing.T) {
	t.Parallel()
	p := startPair(t, map[string]string{"PAIRING_TIMEOUT_SECONDS": "2"}, 0, 1)
	c, a, b, m, cust := p.c, p.A, p.B, p.mitra, p.cust
	wmA, wmB, wcA, wcB := p.mitraWS[0], p.mitraWS[1], p.custWS[0], p.custWS[1]

	requested := sessionOf(t, "request on B", b.post(t, "/api/sessions", cust.Token, map[string]any{"duration_minutes": 5}), http.StatusCreated)
	id, created := requested.ID, requested.CreatedAt
	f := wmA.waitFor(t, "session_offer", eventTimeout, event("session_offer", id))
	wmB.waitFor(t, "session_offer", eventTimeout, event("session_offer", id))
	deadline := checkTime(t, "offer_expires_at", f.Body["offer_expires_at"])
	within(t, "offer_expires_at", deadline, created.Add(2*time.Second-clockSlack), created.Add(2*time.Second+clockSlack))

	for _, w := range []*WSClient{wcA, wcB} {
		waitTimer(t, w, "session_ended", deadline, event("session_ended", id), func(f wsFrame) {
			if f.Body["reason"] != "unmatched" {
				t.Fatalf("%s: session_ended reason %v, want unmatched", w.name, f.Body["reason"])
			}
		})
	}
	for _, s := range c.Servers {
		got := s.getSession(t, id, cust.Token)
		wantEnded(t, "unmatched session", got, client.SessionStatusUnmatched, "unmatched", "")
		within(t, "ended_at", at(t, "unmatched.ended_at", got.EndedAt), deadline.Add(-earlySlack), deadline.Add(timerSlack))
	}
	wantError(t, "accept after the search ended", a.post(t, "/api/sessions/"+id+"/accept", m.Token, nil),
		http.StatusConflict, "invalid_state")

	time.Sleep(settleWindow)
	for _, w := range []*WSClient{wcA, wcB} {
		w.wantCount(t, "session_ended", 1, event("session_ended", id))
		w.wantCount(t, "any frame", 1, anyFrame)
	}
	for _, w := range []*WSClient{wmA, wmB} {
		w.wantCount(t, "session_offer", 1, event("session_offer", id))
		w.wantCount(t, "any frame", 1, anyFrame) // no event tells a mitra a search ended without it
	}
}

// docs/contract.md §7: with PAYMENT_TIMEOUT_SECONDS=2 and two instances, an accepted
// session left unpaid is cancelled with payment_timeout once, and the mitra
// is released.
func TestMultiInstancePaymentTimeout(t *testing.T) {
	t.Parallel()
	p := startPair(t, map[string]string{"PAYMENT_TIMEOUT_SECONDS": "2"}, 1, 0)
	c, a, b, admin, m, cust := p.c, p.A, p.B, p.admin, p.mitra, p.cust
	wmA, wmB, wcA, wcB := p.mitraWS[0], p.mitraWS[1], p.custWS[0], p.custWS[1]

	id := a.requestSession(t, cust, 5)
	wmB.waitFor(t, "session_offer", eventTimeout, event("session_offer", id))
	accepted := sessionOf(t, "accept on B", b.post(t, "/api/sessions/"+id+"/accept", m.Token, nil), http.StatusOK)
	due := at(t, "accepted.accepted_at", accepted.AcceptedAt).Add(2 * time.Second)
	wantLoad(t, "mitra holding the pending session", a.mitraView(t, admin, m.ID), 1, false)

	all := []*WSClient{wcA, wcB, wmA, wmB}
	for _, w := range all {
		waitTimer(t, w, "session_ended", due, event("session_ended", id), func(f wsFrame) {
			if f.Body["reason"] != "payment_timeout" {
				t.Fatalf("%s: session_ended reason %v, want payment_timeout", w.name, f.Body["reason"])
			}
		})
	}
	for _, s := range c.Servers {
		got := s.getSession(t, id, cust.Token)
		wantEnded(t, "unpaid session", got, client.SessionStatusCancelled, "payment_timeout", m.ID)
		within(t, "ended_at", at(t, "unpaid.ended_at", got.EndedAt), due.Add(-earlySlack), due.Add(timerSlack))
		wantLoad(t, "released mitra", s.mitraView(t, admin, m.ID), 0, true)
	}
	wantError(t, "pay after the payment timeout", a.post(t, "/api/sessions/"+id+"/pay", cust.Token, nil),
		http.StatusConflict, "invalid_state")

	time.Sleep(settleWindow)
	for _, w := range all {
		w.wantCount(t, "session_ended", 1, event("session_ended", id))
	}
	for _, w := range []*WSClient{wcA, wcB} {
		w.wantCount(t, "any frame", 2, anyFrame) // the accept's update, the end
	}
}

// pair is how most two-instance tests start: instances A and B of one
// cluster (env on top of its environment), the admin's token, a mitra of
// capacity 1 created and online on instance mitraOn, a customer signed up on
// instance custOn (0 is A, 1 is B), and a WebSocket of each of them on each
// instance.
type pair struct {
	c               *Cluster
	A, B            *Server
	admin           string
	mitra, cust     actor
	mitraWS, custWS [2]*WSClient // on A, on B
}

func startPair(t *testing.T, env map[string]string, mitraOn, custOn int) *pair {
	t.Helper()
	c := startCluster(t, 2, env)
	p := &pair{c: c, A: c.Servers[0], B: c.Servers[1]}
	p.admin = p.A.adminToken(t)
	p.mitra = c.Servers[mitraOn].newMitra(t, p.admin, 1)
	c.Servers[mitraOn].goOnline(t, p.mitra)
	p.cust = c.Servers[custOn].newCustomer(t)
	for i, name := range []string{"A", "B"} {
		p.mitraWS[i] = c.Servers[i].dialWS(t, "mitra on "+name, p.mitra.Token)
		p.custWS[i] = c.Servers[i].dialWS(t, "customer on "+name, p.cust.Token)
	}
	return p
}

// waitTimer waits on w for the event of a deadline at due: it must arrive
// no earlier than due and at most timerSlack after it. check inspects it.
func waitTimer(t *testing.T, w *WSClient, what string, due time.Time, pred framePred, check func(wsFrame)) {
	t.Helper()
	f := w.waitFor(t, what, time.Until(due)+timerSlack+eventTimeout, pred)
	if f.At.Before(due.Add(-earlySlack)) {
		t.Fatalf("%s: %s arrived at %s, before its deadline %s", w.name, what,
			f.At.Format(time.RFC3339Nano), due.Format(time.RFC3339Nano))
	}
	if f.At.After(due.Add(timerSlack)) {
		t.Fatalf("%s: %s arrived at %s, %s after its deadline %s", w.name, what,
			f.At.Format(time.RFC3339Nano), f.At.Sub(due), due.Format(time.RFC3339Nano))
	}
	t.Logf("%s: %s arrived %s after its deadline", w.name, what, f.At.Sub(due).Round(time.Millisecond))
	check(f)
}
