package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/client"
)

// clockSlack absorbs the rounding of times to the store's precision and the
// distance between a request's start and the server's clock reading.
const clockSlack = 2 * time.Second

// docs/contract.md §7 and §8, one instance with CACHE_BACKEND=valkey: a request is
// blasted to the available mitras (and to no offline one), the first accept
// wins and the others are told the session is taken, payment starts the
// clock, an extension moves expires_at, the mitra ends it; every step reaches
// the customer and the mitra over the WebSocket, exactly once.
func TestSessionLifecycle(t *testing.T) {
	t.Parallel()
	s := startValkeyServer(t, map[string]string{"PAIRING_TIMEOUT_SECONDS": "120"})
	admin := s.adminToken(t)
	var mitras []actor
	var wm []*WSClient
	for i := range 3 {
		m := s.newMitra(t, admin, 1)
		s.goOnline(t, m)
		mitras = append(mitras, m)
		wm = append(wm, s.dialWS(t, fmt.Sprintf("mitra %d", i), m.Token))
	}
	offline := s.newMitra(t, admin, 1)
	wOffline := s.dialWS(t, "offline mitra", offline.Token)
	cust := s.newCustomer(t)
	wc := s.dialWSQuery(t, "customer", cust.Token)

	// Request: 201 searching, offered to each available mitra.
	before := time.Now()
	r := s.post(t, "/api/sessions", cust.Token, map[string]any{"duration_minutes": 30})
	after := time.Now()
	searching := sessionOf(t, "POST /api/sessions", r, http.StatusCreated)
	if v := searching; v.Status != client.SessionStatusSearching || v.CustomerID != cust.ID || v.MitraID != nil ||
		v.DurationMinutes != 30 || v.RemainingSeconds != 1800 || v.AcceptedAt != nil || v.StartedAt != nil ||
		v.ExpiresAt != nil || v.EndedAt != nil || v.EndReason != nil {
		t.Fatalf("created session = %s, want searching for the customer, 30 minutes, 1800 s left, nothing else set", jsonOf(v))
	}
	created := searching.CreatedAt
	within(t, "created_at", created, before.Add(-clockSlack), after.Add(clockSlack))
	id := searching.ID
	if got := s.getSession(t, id, cust.Token); !sameSession(got, searching) {
		t.Fatalf("GET after create = %s, want %s", jsonOf(got), jsonOf(searching))
	}

	for i, w := range wm {
		f := w.waitFor(t, "session_offer", eventTimeout, event("session_offer", id))
		offer := decode[client.SessionOfferEvent](t, "session_offer", f.Raw)
		if offer.DurationMinutes != 30 {
			t.Fatalf("mitra %d: offer duration_minutes = %d, want 30: %s", i, offer.DurationMinutes, f.Raw)
		}
		checkUTC(t, "offer_expires_at", &offer.OfferExpiresAt)
		within(t, "offer_expires_at", offer.OfferExpiresAt, created.Add(120*time.Second-clockSlack), created.Add(120*time.Second+clockSlack))
	}

	// Accept by mitra 1: 200 pending_payment.
	before = time.Now()
	r = s.post(t, "/api/sessions/"+id+"/accept", mitras[1].Token, nil)
	after = time.Now()
	pending := sessionOf(t, "accept", r, http.StatusOK)
	if v := pending; v.ID != id || v.Status != client.SessionStatusPendingPayment || v.CustomerID != cust.ID ||
		mitraOfSession(v) != mitras[1].ID || v.DurationMinutes != 30 || v.RemainingSeconds != 1800 || v.StartedAt != nil ||
		v.ExpiresAt != nil || v.EndedAt != nil || v.EndReason != nil || !v.CreatedAt.Equal(searching.CreatedAt) {
		t.Fatalf("accepted session = %s, want pending_payment with mitra 1, 30 minutes, 1800 s left, created as before", jsonOf(v))
	}
	within(t, "accepted_at", at(t, "accepted.accepted_at", pending.AcceptedAt), before.Add(-clockSlack), after.Add(clockSlack))

	wm[0].waitFor(t, "session_taken", eventTimeout, event("session_taken", id))
	wm[2].waitFor(t, "session_taken", eventTimeout, event("session_taken", id))
	for _, w := range []*WSClient{wc, wm[1]} {
		f := w.waitFor(t, "session_update pending_payment", eventTimeout, update(id, "pending_payment"))
		if got := f.sessionView(t); !sameSession(got, pending) {
			t.Fatalf("%s: session_update view %s, want the accept answer %s", w.name, jsonOf(got), jsonOf(pending))
		}
	}
	for _, tok := range []string{cust.Token, mitras[1].Token, admin} {
		if got := s.getSession(t, id, tok); !sameSession(got, pending) {
			t.Fatalf("GET after accept = %s, want %s", jsonOf(got), jsonOf(pending))
		}
	}
	wantError(t, "GET by an offered mitra that did not accept", s.get(t, "/api/sessions/"+id, mitras[0].Token),
		http.StatusNotFound, "not_found")
	holding := s.mitraView(t, admin, mitras[1].ID)
	wantLoad(t, "mitra holding a pending session", holding, 1, false)
	if !holding.Reachable {
		t.Fatalf("mitra holding a pending session = %s, want reachable", jsonOf(holding))
	}

	// Pay: active, expires_at = started_at + duration.
	before = time.Now()
	r = s.post(t, "/api/sessions/"+id+"/pay", cust.Token, nil)
	after = time.Now()
	active := sessionOf(t, "pay", r, http.StatusOK)
	if v := active; v.Status != client.SessionStatusActive || mitraOfSession(v) != mitras[1].ID ||
		!sameJSON(v.AcceptedAt, pending.AcceptedAt) || v.DurationMinutes != 30 || v.EndedAt != nil || v.EndReason != nil {
		t.Fatalf("paid session = %s, want active with mitra 1, accepted as before, 30 minutes", jsonOf(v))
	}
	started := at(t, "paid.started_at", active.StartedAt)
	within(t, "started_at", started, before.Add(-clockSlack), after.Add(clockSlack))
	expires := at(t, "paid.expires_at", active.ExpiresAt)
	wantDuration(t, "expires_at - started_at after pay", expires.Sub(started), 30*time.Minute)
	wantRange(t, "remaining_seconds after pay", float64(active.RemainingSeconds), 1800-5, 1800)
	for _, w := range []*WSClient{wc, wm[1]} {
		f := w.waitFor(t, "session_update active", eventTimeout, update(id, "active"))
		if got := f.sessionView(t); !sameSession(got, active) {
			t.Fatalf("%s: session_update view %s, want the pay answer %s", w.name, jsonOf(got), jsonOf(active))
		}
	}

	// Extend by 10 minutes: expires_at moves 10 minutes later.
	extended := sessionOf(t, "extend", s.post(t, "/api/sessions/"+id+"/extend", cust.Token, map[string]any{"minutes": 10}), http.StatusOK)
	if v := extended; v.Status != client.SessionStatusActive || !sameJSON(v.StartedAt, active.StartedAt) || v.DurationMinutes != 40 {
		t.Fatalf("extended session = %s, want active, started as before, 40 minutes", jsonOf(v))
	}
	wantDuration(t, "expires_at moved by the extension", at(t, "extended.expires_at", extended.ExpiresAt).Sub(expires), 10*time.Minute)
	wantRange(t, "remaining_seconds after extend", float64(extended.RemainingSeconds), 2400-10, 2400)
	for _, w := range []*WSClient{wc, wm[1]} {
		f := w.waitFor(t, "session_update extended", eventTimeout, func(f wsFrame) bool {
			return update(id, "active")(f) && f.Session()["duration_minutes"] == float64(40)
		})
		if got := f.sessionView(t); !sameSession(got, extended) {
			t.Fatalf("%s: session_update view %s, want the extend answer %s", w.name, jsonOf(got), jsonOf(extended))
		}
	}
	if got := s.getSession(t, id, cust.Token); !sameSession(got, extended) {
		t.Fatalf("GET after extend = %s, want %s", jsonOf(got), jsonOf(extended))
	}

	// End by the mitra.
	before = time.Now()
	r = s.post(t, "/api/sessions/"+id+"/end", mitras[1].Token, nil)
	after = time.Now()
	ended := sessionOf(t, "end by mitra", r, http.StatusOK)
	wantEnded(t, "ended session", ended, client.SessionStatusEnded, "ended_by_mitra", mitras[1].ID)
	if !sameJSON(ended.StartedAt, active.StartedAt) {
		t.Fatalf("ended session = %s, want started as paid (%s)", jsonOf(ended), jsonOf(active.StartedAt))
	}
	within(t, "ended_at", at(t, "ended.ended_at", ended.EndedAt), before.Add(-clockSlack), after.Add(clockSlack))
	for _, w := range []*WSClient{wc, wm[1]} {
		f := w.waitFor(t, "session_ended", eventTimeout, event("session_ended", id))
		if f.Body["reason"] != "ended_by_mitra" {
			t.Fatalf("%s: session_ended reason %v, want ended_by_mitra: %s", w.name, f.Body["reason"], f.Raw)
		}
	}
	if got := s.getSession(t, id, cust.Token); !sameSession(got, ended) {
		t.Fatalf("GET after end = %s, want %s", jsonOf(got), jsonOf(ended))
	}
	wantLoad(t, "mitra after the end", s.mitraView(t, admin, mitras[1].ID), 0, true)

	// GET /api/sessions lists the caller's sessions.
	for _, tok := range []string{cust.Token, mitras[1].Token} {
		list := s.listSessions(t, tok)
		if len(list) != 1 || !sameSession(list[0], ended) {
			t.Fatalf("GET /api/sessions = %s, want just %s", jsonOf(list), jsonOf(ended))
		}
	}
	if list := s.listSessions(t, mitras[0].Token); len(list) != 0 {
		t.Fatalf("GET /api/sessions of a mitra that took part in nothing = %s, want none", jsonOf(list))
	}

	// A second request, offered to all three again (mitra 1 was released),
	// then cancelled by the customer while searching. It also marks the end
	// of the first session's events on every connection.
	id2 := sessionOf(t, "second request", s.post(t, "/api/sessions", cust.Token, map[string]any{"duration_minutes": 15}), http.StatusCreated).ID
	for _, w := range wm {
		w.waitFor(t, "second session_offer", eventTimeout, event("session_offer", id2))
	}
	cancelled := sessionOf(t, "cancel while searching", s.post(t, "/api/sessions/"+id2+"/end", cust.Token, nil), http.StatusOK)
	wantEnded(t, "cancelled session", cancelled, client.SessionStatusCancelled, "cancelled_by_customer", "")
	f := wc.waitFor(t, "session_ended of the cancelled search", eventTimeout, event("session_ended", id2))
	if f.Body["reason"] != "cancelled_by_customer" {
		t.Fatalf("session_ended reason %v, want cancelled_by_customer", f.Body["reason"])
	}
	list := s.listSessions(t, cust.Token)
	if len(list) != 2 || list[0].ID != id2 || list[1].ID != id {
		t.Fatalf("GET /api/sessions = %s, want [%s, %s] (newest first)", jsonOf(list), id2, id)
	}

	// Every event came exactly once, and only to its recipients.
	time.Sleep(settleWindow)
	sessionUpdates := func(f wsFrame) bool { return f.Type() == "session_update" }
	for _, i := range []int{0, 2} {
		wm[i].wantCount(t, "session_offer", 1, event("session_offer", id))
		wm[i].wantCount(t, "session_taken", 1, event("session_taken", id))
		wm[i].wantCount(t, "session_update", 0, sessionUpdates)
		wm[i].wantCount(t, "session_ended", 0, func(f wsFrame) bool { return f.Type() == "session_ended" })
		wm[i].wantCount(t, "any frame", 3, anyFrame) // offer, taken, second offer
	}
	wm[1].wantCount(t, "session_offer", 1, event("session_offer", id))
	wm[1].wantCount(t, "session_taken", 0, event("session_taken", id))
	wm[1].wantCount(t, "session_update", 3, event("session_update", id))
	wm[1].wantCount(t, "session_ended", 1, event("session_ended", id))
	wm[1].wantCount(t, "any frame", 6, anyFrame)
	wc.wantCount(t, "session_update", 3, event("session_update", id))
	wc.wantCount(t, "session_ended", 1, event("session_ended", id))
	wc.wantCount(t, "session_ended of the cancelled search", 1, event("session_ended", id2))
	wc.wantCount(t, "any frame", 5, anyFrame)
	wOffline.wantCount(t, "any frame (it was offline)", 0, anyFrame)
}

// docs/contract.md §7 reroute: a paid session keeps its remaining time (the clock
// stops at the reroute), the released mitra is never offered it again and is
// refused with 403 when it tries to accept; the next accept makes it active
// at once.
func TestSessionReroute(t *testing.T) {
	t.Parallel()
	s := startValkeyServer(t, nil)
	admin := s.adminToken(t)
	var mitras []actor
	var wm []*WSClient
	for i := range 3 {
		m := s.newMitra(t, admin, 1)
		s.goOnline(t, m)
		mitras = append(mitras, m)
		wm = append(wm, s.dialWS(t, fmt.Sprintf("mitra %d", i), m.Token))
	}
	cust := s.newCustomer(t)
	wc := s.dialWS(t, "customer", cust.Token)

	// Rerouting is for pending_payment and active sessions only.
	id := s.requestSession(t, cust, 10)
	wantError(t, "reroute while searching", s.post(t, "/api/sessions/"+id+"/reroute", cust.Token, nil),
		http.StatusConflict, "invalid_state")
	for _, w := range wm {
		w.waitFor(t, "session_offer", eventTimeout, event("session_offer", id))
	}
	wantStatus(t, "accept by mitra 0", s.post(t, "/api/sessions/"+id+"/accept", mitras[0].Token, nil), http.StatusOK)
	paid := sessionOf(t, "pay", s.post(t, "/api/sessions/"+id+"/pay", cust.Token, nil), http.StatusOK)
	expires := at(t, "paid.expires_at", paid.ExpiresAt)

	// Reroute the active session: searching, mitra released, time frozen.
	remaining := s.reroute(t, id, cust.Token, expires).RemainingSeconds
	f := wm[0].waitFor(t, "session_update of the release", eventTimeout, update(id, "searching"))
	if v := f.sessionView(t); v.MitraID != nil {
		t.Fatalf("the released mitra's session_update has mitra_id %s, want null", *v.MitraID)
	}
	wc.waitFor(t, "session_update searching", eventTimeout, update(id, "searching"))
	for _, i := range []int{1, 2} {
		wm[i].waitForNth(t, "the reroute's session_offer", eventTimeout, 2, event("session_offer", id))
	}
	wantError(t, "GET by the released mitra", s.get(t, "/api/sessions/"+id, mitras[0].Token), http.StatusNotFound, "not_found")
	// The released mitra is available again, but never offered this session again.
	wantLoad(t, "released mitra", s.mitraView(t, admin, mitras[0].ID), 0, true)
	wantError(t, "accept by the released mitra", s.post(t, "/api/sessions/"+id+"/accept", mitras[0].Token, nil),
		http.StatusForbidden, "forbidden")

	// The clock stays stopped while searching.
	frozenAt := time.Now()
	for time.Since(frozenAt) < 2*time.Second {
		time.Sleep(250 * time.Millisecond)
	}
	if got := s.getSession(t, id, cust.Token); got.RemainingSeconds != remaining || got.Status != client.SessionStatusSearching {
		t.Fatalf("GET 2 s after the reroute = %s, want searching with remaining_seconds still %d", jsonOf(got), remaining)
	}

	// Mitra 1 accepts: active at once, expiring after the time that remained.
	before := time.Now()
	r := s.post(t, "/api/sessions/"+id+"/accept", mitras[1].Token, nil)
	after := time.Now()
	reaccepted := sessionOf(t, "accept after the reroute", r, http.StatusOK)
	if reaccepted.Status != client.SessionStatusActive || mitraOfSession(reaccepted) != mitras[1].ID {
		t.Fatalf("re-accepted = %s, want active with mitra 1", jsonOf(reaccepted))
	}
	started := at(t, "re-accepted.started_at", reaccepted.StartedAt)
	within(t, "started_at after the re-accept", started, before.Add(-clockSlack), after.Add(clockSlack))
	if !sameJSON(reaccepted.AcceptedAt, reaccepted.StartedAt) {
		t.Fatalf("a paid session is active at its accept: accepted_at %s, started_at %s", jsonOf(reaccepted.AcceptedAt), jsonOf(reaccepted.StartedAt))
	}
	expires = at(t, "re-accepted.expires_at", reaccepted.ExpiresAt)
	wantDuration(t, "expires_at - accept time after the reroute", expires.Sub(started), time.Duration(remaining)*time.Second)
	wm[2].waitForNth(t, "session_taken", eventTimeout, 2, event("session_taken", id))
	wc.waitFor(t, "session_update active again", eventTimeout, func(f wsFrame) bool {
		return update(id, "active")(f) && f.Session()["mitra_id"] == mitras[1].ID
	})

	// A second reroute: now offered to mitra 2 only.
	remaining = s.reroute(t, id, cust.Token, expires).RemainingSeconds
	wm[2].waitForNth(t, "the second reroute's session_offer", eventTimeout, 3, event("session_offer", id))
	for _, i := range []int{0, 1} {
		wantError(t, fmt.Sprintf("accept by released mitra %d", i), s.post(t, "/api/sessions/"+id+"/accept", mitras[i].Token, nil),
			http.StatusForbidden, "forbidden")
	}
	third := sessionOf(t, "accept by mitra 2", s.post(t, "/api/sessions/"+id+"/accept", mitras[2].Token, nil), http.StatusOK)
	if third.Status != client.SessionStatusActive || mitraOfSession(third) != mitras[2].ID {
		t.Fatalf("accepted by mitra 2 = %s, want active with mitra 2", jsonOf(third))
	}
	wantDuration(t, "expires_at - accept time after the second reroute",
		at(t, "expires_at", third.ExpiresAt).Sub(at(t, "started_at", third.StartedAt)), time.Duration(remaining)*time.Second)
	wm[2].waitFor(t, "session_update", eventTimeout, update(id, "active"))
	wm[1].waitFor(t, "session_update of the second release", eventTimeout, update(id, "searching"))

	time.Sleep(settleWindow)
	wm[0].wantCount(t, "session_offer", 1, event("session_offer", id))
	wm[0].wantCount(t, "session_taken", 0, event("session_taken", id))
	wm[1].wantCount(t, "session_offer", 2, event("session_offer", id))
	wm[1].wantCount(t, "session_taken", 1, event("session_taken", id))
	wm[2].wantCount(t, "session_offer", 3, event("session_offer", id))
	wm[2].wantCount(t, "session_taken", 2, event("session_taken", id))
	for i, m := range mitras {
		if i == 2 {
			wantLoad(t, "mitra 2 at the end", s.mitraView(t, admin, m.ID), 1, false)
		} else {
			wantLoad(t, fmt.Sprintf("mitra %d at the end", i), s.mitraView(t, admin, m.ID), 0, true)
		}
	}
}

// reroute reroutes session id and checks the answer: searching, no mitra,
// nothing but created_at and the ids kept, and remaining_seconds the time that
// was left before expires. It returns the answer.
func (s *Server) reroute(t *testing.T, id, token string, expires time.Time) client.Session {
	t.Helper()
	prev := s.getSession(t, id, token)
	before := time.Now()
	r := s.post(t, "/api/sessions/"+id+"/reroute", token, nil)
	after := time.Now()
	v := sessionOf(t, "reroute", r, http.StatusOK)
	if v.ID != id || v.Status != client.SessionStatusSearching || v.MitraID != nil || v.CustomerID != prev.CustomerID ||
		!v.CreatedAt.Equal(prev.CreatedAt) || v.EndedAt != nil || v.EndReason != nil || v.ExpiresAt != nil {
		t.Fatalf("rerouted = %s, want searching, no mitra, no expiry, the same customer and created_at as %s", jsonOf(v), jsonOf(prev))
	}
	lo := math.Floor(expires.Sub(after).Seconds()) - 1
	hi := math.Ceil(expires.Sub(before).Seconds()) + 1
	wantRange(t, "remaining_seconds at the reroute", float64(v.RemainingSeconds), lo, hi)
	return v
}

// docs/contract.md §7: of twenty concurrent accepts by twenty offered mitras exactly
// one wins and nineteen get 409 session_taken; a mitra of capacity 1 that
// accepts two sessions at the same instant gets one, and 409 at_capacity.
func TestSessionAcceptRace(t *testing.T) {
	t.Parallel()
	s := startValkeyServer(t, nil)
	admin := s.adminToken(t)
	const n = 20
	mitras := make([]actor, n)
	wm := make([]*WSClient, n)
	for i := range n {
		mitras[i] = s.newMitra(t, admin, 1)
		s.goOnline(t, mitras[i])
		wm[i] = s.dialWS(t, fmt.Sprintf("mitra %d", i), mitras[i].Token)
	}
	cust := s.newCustomer(t)
	id := s.requestSession(t, cust, 20)
	for _, w := range wm {
		w.waitFor(t, "session_offer", eventTimeout, event("session_offer", id))
	}

	results := race(t, n, func(i int) (int, string, error) {
		return s.tryPost("/api/sessions/"+id+"/accept", mitras[i].Token)
	})
	winner := -1
	for i, res := range results {
		switch {
		case res.status == http.StatusOK:
			if winner >= 0 {
				t.Fatalf("mitras %d and %d both won the accept", winner, i)
			}
			winner = i
		case res.status == http.StatusConflict && res.code == "session_taken":
		default:
			t.Fatalf("accept by mitra %d: %d %s, want 200 or 409 session_taken", i, res.status, res.code)
		}
	}
	if winner < 0 {
		t.Fatalf("no accept won: %v", results)
	}
	if got := s.getSession(t, id, cust.Token); got.Status != client.SessionStatusPendingPayment || mitraOfSession(got) != mitras[winner].ID {
		t.Fatalf("session after the race = %s, want pending_payment with mitra %d", jsonOf(got), winner)
	}
	wantLoad(t, "the winner", s.mitraView(t, admin, mitras[winner].ID), 1, false)
	for i, w := range wm {
		if i == winner {
			w.waitFor(t, "session_update", eventTimeout, update(id, "pending_payment"))
		} else {
			w.waitFor(t, "session_taken", eventTimeout, event("session_taken", id))
		}
	}
	// Another customer's request reaches the nineteen losers, not the full winner.
	cust2 := s.newCustomer(t)
	id2 := s.requestSession(t, cust2, 20)
	for i, w := range wm {
		if i != winner {
			w.waitFor(t, "second session_offer", eventTimeout, event("session_offer", id2))
		}
	}
	time.Sleep(settleWindow)
	for i, w := range wm {
		if i == winner {
			w.wantCount(t, "session_taken", 0, event("session_taken", id))
			w.wantCount(t, "second session_offer", 0, event("session_offer", id2))
		} else {
			w.wantCount(t, "session_taken", 1, event("session_taken", id))
		}
	}
	wantStatus(t, "cancel the second search", s.post(t, "/api/sessions/"+id2+"/end", cust2.Token, nil), http.StatusOK)

	// Capacity: one mitra of capacity 1, two sessions requested of it, both
	// accepted at once.
	solo := s.newMitra(t, admin, 1)
	s.goOnline(t, solo)
	c1, c2 := s.newCustomer(t), s.newCustomer(t)
	for round := range 3 {
		ids := []string{
			s.requestSessionOf(t, c1, 5, solo.ID),
			s.requestSessionOf(t, c2, 5, solo.ID),
		}
		results := race(t, 2, func(i int) (int, string, error) {
			return s.tryPost("/api/sessions/"+ids[i]+"/accept", solo.Token)
		})
		won, lost := -1, -1
		for i, res := range results {
			switch {
			case res.status == http.StatusOK && won < 0:
				won = i
			case res.status == http.StatusConflict && res.code == "at_capacity" && lost < 0:
				lost = i
			default:
				t.Fatalf("round %d: concurrent accepts by a mitra of capacity 1 = %v, want one 200 and one 409 at_capacity", round, results)
			}
		}
		if v := s.getSession(t, ids[won], solo.Token); v.Status != client.SessionStatusPendingPayment || mitraOfSession(v) != solo.ID {
			t.Fatalf("the won session = %s, want pending_payment with the mitra", jsonOf(v))
		}
		owners := []actor{c1, c2}
		if v := s.getSession(t, ids[lost], owners[lost].Token); v.Status != client.SessionStatusSearching || v.MitraID != nil {
			t.Fatalf("the lost session = %s, want searching, no mitra", jsonOf(v))
		}
		full := s.mitraView(t, admin, solo.ID)
		wantLoad(t, "the full mitra", full, 1, false)
		if full.Capacity != 1 {
			t.Fatalf("the full mitra = %s, want capacity 1", jsonOf(full))
		}
		// Once the won session ends, the mitra may take the other one.
		wantStatus(t, "end the won session", s.post(t, "/api/sessions/"+ids[won]+"/end", owners[won].Token, nil), http.StatusOK)
		wantStatus(t, "accept the other session", s.post(t, "/api/sessions/"+ids[lost]+"/accept", solo.Token, nil), http.StatusOK)
		wantStatus(t, "end the other session", s.post(t, "/api/sessions/"+ids[lost]+"/end", solo.Token, nil), http.StatusOK)
	}
}

// docs/contract.md §2 and §7: bad input, unknown and foreign sessions, the wrong role
// and the wrong state get the documented errors, and none of them changes
// the session.
func TestSessionBadInput(t *testing.T) {
	t.Parallel()
	s := startValkeyServer(t, nil)
	admin := s.adminToken(t)
	m1, m2, m3 := s.newMitra(t, admin, 1), s.newMitra(t, admin, 1), s.newMitra(t, admin, 1)
	s.goOnline(t, m1)
	s.goOnline(t, m2) // m3 stays offline
	cust, other := s.newCustomer(t), s.newCustomer(t)

	// Refused requests create nothing.
	for _, c := range []badBody{
		{"duration 0", `{"duration_minutes": 0}`, "duration_minutes"},
		{"duration 241", `{"duration_minutes": 241}`, "duration_minutes"},
		{"duration -1", `{"duration_minutes": -1}`, "duration_minutes"},
		{"duration as a string", `{"duration_minutes": "30"}`, "duration_minutes"},
		{"duration fractional", `{"duration_minutes": 1.5}`, "duration_minutes"},
		{"duration null", `{"duration_minutes": null}`, "duration_minutes"},
		{"duration missing", `{}`, "duration_minutes"},
		{"duration missing with a mitra", `{"mitra_id": "` + m1.ID + `"}`, "duration_minutes"},
		{"malformed mitra_id", `{"duration_minutes": 30, "mitra_id": "nope"}`, "mitra_id"},
		{"mitra_id as a number", `{"duration_minutes": 30, "mitra_id": 7}`, "mitra_id"},
		{"unknown field", `{"duration_minutes": 30, "minutes": 5}`, "minutes"},
		{"malformed JSON", `{"duration_minutes": `, ""},
		{"empty body", ``, ""},
		{"array", `[30]`, ""},
	} {
		r := s.request(t, http.MethodPost, "/api/sessions", cust.Token, c.body)
		wantInvalid(t, c, r)
	}
	r := s.post(t, "/api/sessions", cust.Token, map[string]any{"duration_minutes": 30, "mitra_id": m3.ID})
	wantError(t, "request of an offline mitra", r, http.StatusConflict, "no_mitra_available")
	// A well-formed mitra_id that is no mitra: not found, or nobody available
	// (docs/contract.md §2 and §7 both fit); never a 500, and nothing is created.
	for _, ghost := range []string{"7d0c0f1e-3b5a-4c1d-9e2f-0a1b2c3d4e5f", cust.ID} {
		r := s.post(t, "/api/sessions", cust.Token, map[string]any{"duration_minutes": 30, "mitra_id": ghost})
		if r.Status == http.StatusNotFound {
			wantError(t, "request of an unknown mitra", r, http.StatusNotFound, "not_found")
		} else {
			wantError(t, "request of an unknown mitra", r, http.StatusConflict, "no_mitra_available")
		}
	}
	wantError(t, "request by a mitra", s.post(t, "/api/sessions", m1.Token, map[string]any{"duration_minutes": 30}),
		http.StatusForbidden, "forbidden")
	wantError(t, "request by the admin", s.post(t, "/api/sessions", admin, map[string]any{"duration_minutes": 30}),
		http.StatusForbidden, "forbidden")
	wantError(t, "request without a token", s.post(t, "/api/sessions", "", map[string]any{"duration_minutes": 30}),
		http.StatusUnauthorized, "unauthenticated")
	if list := s.listSessions(t, cust.Token); len(list) != 0 {
		t.Fatalf("refused requests created sessions: %v", list)
	}

	id := s.requestSession(t, cust, 30)
	wantError(t, "a second open session", s.post(t, "/api/sessions", cust.Token, map[string]any{"duration_minutes": 30}),
		http.StatusConflict, "open_session_exists")
	if list := s.listSessions(t, cust.Token); len(list) != 1 {
		t.Fatalf("open_session_exists created a session: %v", list)
	}

	type call struct {
		name        string
		op          string // "" for GET /api/sessions/{id}
		id          string
		token       string
		body        any
		status      int
		code, field string
	}
	unknown := "7d0c0f1e-3b5a-4c1d-9e2f-0a1b2c3d4e5f"
	ops := []struct {
		op    string
		token string
		body  any
	}{
		{"", cust.Token, nil},
		{"accept", m1.Token, nil},
		{"pay", cust.Token, nil},
		{"extend", cust.Token, map[string]any{"minutes": 5}},
		{"end", cust.Token, nil},
		{"reroute", cust.Token, nil},
	}
	var calls []call
	for _, o := range ops {
		for _, bad := range []string{"not-a-uuid", "123", strings.ToUpper(id) + "0", id[:35] + "g", "%20" + id[1:]} {
			calls = append(calls, call{"malformed id " + bad, o.op, bad, o.token, o.body, http.StatusBadRequest, "invalid_request", "id"})
		}
		calls = append(calls, call{"unknown session", o.op, unknown, o.token, o.body, http.StatusNotFound, "not_found", ""})
	}
	calls = append(calls,
		// Not a participant: the session's existence is not revealed.
		call{"another customer's GET", "", id, other.Token, nil, http.StatusNotFound, "not_found", ""},
		call{"another customer's pay", "pay", id, other.Token, nil, http.StatusNotFound, "not_found", ""},
		call{"another customer's extend", "extend", id, other.Token, map[string]any{"minutes": 5}, http.StatusNotFound, "not_found", ""},
		call{"another customer's end", "end", id, other.Token, nil, http.StatusNotFound, "not_found", ""},
		call{"another customer's reroute", "reroute", id, other.Token, nil, http.StatusNotFound, "not_found", ""},
		call{"an offered mitra's GET", "", id, m1.Token, nil, http.StatusNotFound, "not_found", ""},
		call{"an offered mitra's end of a search", "end", id, m1.Token, nil, http.StatusNotFound, "not_found", ""},
		call{"accept by a mitra it was not offered to", "accept", id, m3.Token, nil, http.StatusForbidden, "forbidden", ""},
		// The wrong role.
		call{"accept by the customer", "accept", id, cust.Token, nil, http.StatusForbidden, "forbidden", ""},
		call{"accept by the admin", "accept", id, admin, nil, http.StatusForbidden, "forbidden", ""},
		call{"pay by a mitra", "pay", id, m1.Token, nil, http.StatusForbidden, "forbidden", ""},
		call{"extend by a mitra", "extend", id, m1.Token, map[string]any{"minutes": 5}, http.StatusForbidden, "forbidden", ""},
		call{"reroute by a mitra", "reroute", id, m1.Token, nil, http.StatusForbidden, "forbidden", ""},
		call{"end by the admin", "end", id, admin, nil, http.StatusForbidden, "forbidden", ""},
		call{"accept without a token", "accept", id, "", nil, http.StatusUnauthorized, "unauthenticated", ""},
		// The wrong state (searching).
		call{"pay while searching", "pay", id, cust.Token, nil, http.StatusConflict, "invalid_state", ""},
		call{"extend while searching", "extend", id, cust.Token, map[string]any{"minutes": 5}, http.StatusConflict, "invalid_state", ""},
		call{"reroute while searching", "reroute", id, cust.Token, nil, http.StatusConflict, "invalid_state", ""},
	)
	for _, m := range []string{"0", "121", `"5"`, "null", "2.5"} {
		calls = append(calls, call{"extend by " + m, "extend", id, cust.Token, `{"minutes": ` + m + `}`, http.StatusBadRequest, "invalid_request", "minutes"})
	}
	calls = append(calls, call{"extend without minutes", "extend", id, cust.Token, `{}`, http.StatusBadRequest, "invalid_request", "minutes"})
	calls = append(calls, call{"extend with an empty body", "extend", id, cust.Token, ``, http.StatusBadRequest, "invalid_request", ""})

	run := func(calls []call) {
		t.Helper()
		want := s.getSession(t, id, cust.Token)
		for _, c := range calls {
			method, path := http.MethodPost, "/api/sessions/"+c.id+"/"+c.op
			if c.op == "" {
				method, path = http.MethodGet, "/api/sessions/"+c.id
			}
			what := c.name + " (" + method + " " + path + ")"
			r := s.request(t, method, path, c.token, c.body)
			msg := wantError(t, what, r, c.status, c.code)
			if c.field != "" {
				wantMention(t, msg, c.field)
			}
			if got := s.getSession(t, id, cust.Token); !sameSession(got, want) {
				t.Fatalf("%s changed the session: %v, was %v", what, got, want)
			}
		}
	}
	run(calls)

	// Pending payment.
	wantStatus(t, "accept by m1", s.post(t, "/api/sessions/"+id+"/accept", m1.Token, nil), http.StatusOK)
	run([]call{
		{"extend while pending", "extend", id, cust.Token, map[string]any{"minutes": 5}, http.StatusConflict, "invalid_state", ""},
		{"accept by another offered mitra", "accept", id, m2.Token, nil, http.StatusConflict, "session_taken", ""},
		{"end by another mitra", "end", id, m2.Token, nil, http.StatusNotFound, "not_found", ""},
		{"GET by another mitra", "", id, m2.Token, nil, http.StatusNotFound, "not_found", ""},
		{"pay by another customer", "pay", id, other.Token, nil, http.StatusNotFound, "not_found", ""},
		{"extend by 0 while pending", "extend", id, cust.Token, map[string]any{"minutes": 0}, http.StatusBadRequest, "invalid_request", "minutes"},
	})

	// Active.
	wantStatus(t, "pay", s.post(t, "/api/sessions/"+id+"/pay", cust.Token, nil), http.StatusOK)
	run([]call{
		{"pay twice", "pay", id, cust.Token, nil, http.StatusConflict, "invalid_state", ""},
		{"accept by another offered mitra", "accept", id, m2.Token, nil, http.StatusConflict, "session_taken", ""},
		{"extend by 121", "extend", id, cust.Token, map[string]any{"minutes": 121}, http.StatusBadRequest, "invalid_request", "minutes"},
		{"extend by another customer", "extend", id, other.Token, map[string]any{"minutes": 5}, http.StatusNotFound, "not_found", ""},
	})

	// Ended: every transition is refused.
	wantStatus(t, "end by the customer", s.post(t, "/api/sessions/"+id+"/end", cust.Token, nil), http.StatusOK)
	run([]call{
		{"end an ended session", "end", id, cust.Token, nil, http.StatusConflict, "invalid_state", ""},
		{"end an ended session by its mitra", "end", id, m1.Token, nil, http.StatusConflict, "invalid_state", ""},
		{"pay an ended session", "pay", id, cust.Token, nil, http.StatusConflict, "invalid_state", ""},
		{"extend an ended session", "extend", id, cust.Token, map[string]any{"minutes": 5}, http.StatusConflict, "invalid_state", ""},
		{"reroute an ended session", "reroute", id, cust.Token, nil, http.StatusConflict, "invalid_state", ""},
		{"accept an ended session", "accept", id, m2.Token, nil, http.StatusConflict, "invalid_state", ""},
	})
	if v := s.getSession(t, id, cust.Token); v.Status != client.SessionStatusEnded || endReason(v) != "ended_by_customer" {
		t.Fatalf("ended session = %s, want ended by the customer", jsonOf(v))
	}

	// Nobody available.
	for _, m := range []actor{m1, m2} {
		wantStatus(t, "go offline", s.post(t, "/api/mitra/status/offline", m.Token, nil), http.StatusOK)
	}
	wantError(t, "request with nobody online", s.post(t, "/api/sessions", cust.Token, map[string]any{"duration_minutes": 30}),
		http.StatusConflict, "no_mitra_available")
	wantError(t, "request of an offline mitra", s.post(t, "/api/sessions", cust.Token, map[string]any{"duration_minutes": 30, "mitra_id": m1.ID}),
		http.StatusConflict, "no_mitra_available")
	if list := s.listSessions(t, cust.Token); len(list) != 1 {
		t.Fatalf("no_mitra_available created a session: %v", list)
	}
}

// docs/contract.md §8: GET /ws without a valid access token is refused with 401 and
// not upgraded, whether the token comes in the header or the query; a valid
// one connects either way and receives its events.
func TestWebSocketAuth(t *testing.T) {
	t.Parallel()
	s := startValkeyServer(t, nil)
	admin := s.adminToken(t)
	m := s.newMitra(t, admin, 1)
	s.goOnline(t, m)
	cust := s.newCustomer(t)
	refresh := s.login(t, cust.Phone, customerPassword).Refresh

	bearer := func(v string) http.Header { return http.Header{"Authorization": []string{v}} }
	refused := []struct {
		name string
		path string
		h    http.Header
	}{
		{"no token", "/ws", nil},
		{"empty query token", "/ws?access_token=", nil},
		{"garbage header token", "/ws", bearer("Bearer garbage")},
		{"garbage query token", "/ws?access_token=garbage", nil},
		{"tampered header token", "/ws", bearer("Bearer " + tamper(cust.Token))},
		{"tampered query token", "/ws?access_token=" + url.QueryEscape(tamper(cust.Token)), nil},
		{"refresh token in the header", "/ws", bearer("Bearer " + refresh)},
		{"refresh token in the query", "/ws?access_token=" + url.QueryEscape(refresh), nil},
		{"Basic scheme", "/ws", bearer("Basic " + cust.Token)},
		{"bad header, good query", "/ws?access_token=" + url.QueryEscape(cust.Token), bearer("Bearer garbage")},
	}
	for _, c := range refused {
		r := s.wsHandshake(t, c.path, c.h)
		wantError(t, "handshake with "+c.name, r, http.StatusUnauthorized, "unauthenticated")
		if st := s.wsDialStatus(t, "dial with "+c.name, c.path, c.h); st != http.StatusUnauthorized {
			t.Fatalf("dial with %s: status %d, want 401", c.name, st)
		}
	}
	if n := s.wsConnections(t); n != 0 {
		t.Fatalf("websocket_connections = %d after refused handshakes, want 0", n)
	}

	// A valid token connects by header and by query, and events arrive.
	wm := s.dialWS(t, "mitra by header", m.Token)
	wc := s.dialWSQuery(t, "customer by query", cust.Token)
	id := s.requestSession(t, cust, 5)
	wm.waitFor(t, "session_offer", eventTimeout, event("session_offer", id))
	wantStatus(t, "accept", s.post(t, "/api/sessions/"+id+"/accept", m.Token, nil), http.StatusOK)
	wc.waitFor(t, "session_update", eventTimeout, update(id, "pending_payment"))
	wm.waitFor(t, "session_update", eventTimeout, update(id, "pending_payment"))

	// A deactivated mitra's still-unexpired token is refused with 403.
	gone := s.newMitra(t, admin, 1)
	r := s.request(t, http.MethodPatch, "/api/admin/mitras/"+gone.ID, admin, map[string]any{"is_active": false})
	wantStatus(t, "deactivate", r, http.StatusOK)
	wantError(t, "handshake of a deactivated mitra", s.wsHandshake(t, "/ws", bearer("Bearer "+gone.Token)),
		http.StatusForbidden, "account_deactivated")
	if st := s.wsDialStatus(t, "dial of a deactivated mitra", "/ws?access_token="+url.QueryEscape(gone.Token), nil); st != http.StatusForbidden {
		t.Fatalf("dial of a deactivated mitra: status %d, want 403", st)
	}
}

// ---------------------------------------------------------------- helpers --

// customerPassword is the password of every customer newCustomer creates;
// mitraPassword of every mitra newMitra creates.
const (
	customerPassword = "customer-password"
	mitraPassword    = "mitra-password"
)

// actor is a logged-in user.
type actor struct {
	ID, Phone, Token string
}

// newCustomer signs up a customer and logs it in (through the typed client).
func (s *Server) newCustomer(t *testing.T) actor {
	t.Helper()
	phone := randomPhone(t)
	s.signupCustomer(t, phone, customerPassword, "Customer")
	tok := s.login(t, phone, customerPassword)
	return actor{ID: tok.User.ID, Phone: phone, Token: tok.Access}
}

// newMitra creates a mitra of the given capacity as admin and logs it in; it
// stays offline.
func (s *Server) newMitra(t *testing.T, admin string, capacity int) actor {
	t.Helper()
	phone := randomPhone(t)
	m := s.createMitra(t, admin, client.CreateMitraRequest{
		Phone: phone, Password: mitraPassword, DisplayName: "Mitra", Capacity: &capacity,
	})
	tok := s.login(t, phone, mitraPassword)
	return actor{ID: m.ID, Phone: phone, Token: tok.Access}
}

// goOnline takes a mitra online; it must then be available.
func (s *Server) goOnline(t *testing.T, m actor) {
	t.Helper()
	resp, err := s.api.MitraGoOnlineWithResponse(ctx(t), client.WithToken(m.Token))
	if err != nil {
		t.Fatalf("go online: %v", err)
	}
	wantStatus(t, "go online", typed(resp.HTTPResponse, resp.Body), http.StatusOK)
	if v := resp.JSON200; !v.IsOnline || !v.Available || v.ID != m.ID {
		t.Fatalf("go online: mitra view %+v, want itself online and available", *v)
	}
}

// post is a POST with an optional JSON body.
func (s *Server) post(t *testing.T, path, token string, body any) Response {
	t.Helper()
	return s.request(t, http.MethodPost, path, token, body)
}

// requestSession requests a session of minutes for c (a blast) and returns its id.
func (s *Server) requestSession(t *testing.T, c actor, minutes int) string {
	t.Helper()
	return s.createSession(t, "POST /api/sessions", c, client.CreateSessionRequest{DurationMinutes: minutes})
}

// requestSessionOf requests a session of minutes for c of one mitra and returns its id.
func (s *Server) requestSessionOf(t *testing.T, c actor, minutes int, mitraID string) string {
	t.Helper()
	return s.createSession(t, "POST /api/sessions with mitra_id", c, client.CreateSessionRequest{DurationMinutes: minutes, MitraID: &mitraID})
}

// createSession sends POST /api/sessions through the typed client; the session
// must be created, searching, for c.
func (s *Server) createSession(t *testing.T, what string, c actor, body client.CreateSessionRequest) string {
	t.Helper()
	resp, err := s.api.CreateSessionWithResponse(ctx(t), body, client.WithToken(c.Token))
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	wantStatus(t, what, typed(resp.HTTPResponse, resp.Body), http.StatusCreated)
	checkSession(t, "requested session", *resp.JSON201)
	if v := resp.JSON201; v.Status != client.SessionStatusSearching || v.CustomerID != c.ID {
		t.Fatalf("%s: session %s, want searching for customer %s", what, jsonOf(v), c.ID)
	}
	return resp.JSON201.ID
}

// tryPost is a POST without a body that is safe to call from any goroutine:
// it returns the status and error code instead of failing the test.
func (s *Server) tryPost(path, token string) (int, string, error) {
	req, err := http.NewRequest(http.MethodPost, s.URL+path, nil)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", err
	}
	var env struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(raw, &env)
	return resp.StatusCode, env.Error.Code, nil
}

// raceResult is the outcome of one racing call.
type raceResult struct {
	status int
	code   string
}

// race runs f(0..n-1) in n goroutines released at the same instant and
// returns their results; a transport error fails the test.
func race(t *testing.T, n int, f func(i int) (int, string, error)) []raceResult {
	t.Helper()
	results := make([]raceResult, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var ready, done sync.WaitGroup
	for i := range n {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			st, code, err := f(i)
			results[i], errs[i] = raceResult{st, code}, err
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("racing call %d: %v", i, err)
		}
	}
	return results
}

// within fails the test unless lo ≤ got ≤ hi.
func within(t *testing.T, what string, got, lo, hi time.Time) {
	t.Helper()
	if got.Before(lo) || got.After(hi) {
		t.Fatalf("%s = %s, want within [%s, %s]", what, got.Format(time.RFC3339Nano), lo.Format(time.RFC3339Nano), hi.Format(time.RFC3339Nano))
	}
}

// wantDuration fails the test unless got is want, to the millisecond (the
// store keeps microseconds).
func wantDuration(t *testing.T, what string, got, want time.Duration) {
	t.Helper()
	if d := got - want; d < -time.Millisecond || d > time.Millisecond {
		t.Fatalf("%s = %s, want %s", what, got, want)
	}
}

// wantRange fails the test unless lo ≤ got ≤ hi.
func wantRange(t *testing.T, what string, got, lo, hi float64) {
	t.Helper()
	if got < lo || got > hi {
		t.Fatalf("%s = %v, want within [%v, %v]", what, got, lo, hi)
	}
}
