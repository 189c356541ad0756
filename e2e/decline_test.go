package e2e

import (
	"net/http"
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/client"
)

// docs/contract.md §11 decline, on two instances: 204 for an offered mitra, which can
// then no longer accept; the other offers stand; 403 for a mitra never
// offered the session or a customer; 400 for a malformed id; 404 for an
// unknown one; 409 invalid_state once the session is not searching.
func TestDecline(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 2, nil)
	a, b := c.Servers[0], c.Servers[1]
	admin := a.adminToken(t)
	m1 := a.newMitra(t, admin, 1)
	a.goOnline(t, m1)
	m2 := b.newMitra(t, admin, 1)
	b.goOnline(t, m2)
	cust := a.newCustomer(t)
	id := a.requestSession(t, cust, 5)
	late := b.newMitra(t, admin, 1)
	b.goOnline(t, late)

	r := b.post(t, "/api/sessions/"+id+"/decline", m1.Token, nil)
	wantStatus(t, "decline on B", r, http.StatusNoContent)
	if len(r.Raw) != 0 {
		t.Fatalf("decline answered a body: %q", r.Raw)
	}
	wantStatus(t, "repeated decline on A", a.post(t, "/api/sessions/"+id+"/decline", m1.Token, nil), http.StatusNoContent)
	wantError(t, "accept after decline", a.post(t, "/api/sessions/"+id+"/accept", m1.Token, nil), http.StatusForbidden, "forbidden")
	wantError(t, "decline by a mitra never offered", a.post(t, "/api/sessions/"+id+"/decline", late.Token, nil), http.StatusForbidden, "forbidden")
	wantError(t, "decline by the customer", a.post(t, "/api/sessions/"+id+"/decline", cust.Token, nil), http.StatusForbidden, "forbidden")
	wantError(t, "decline of a malformed id", a.post(t, "/api/sessions/not-a-uuid/decline", m1.Token, nil), http.StatusBadRequest, "invalid_request")
	wantError(t, "decline of an unknown id", a.post(t, "/api/sessions/00000000-0000-4000-8000-000000000000/decline", m1.Token, nil), http.StatusNotFound, "not_found")
	if v := b.getSession(t, id, cust.Token); v.Status != client.SessionStatusSearching {
		t.Fatalf("session after the decline = %s, want searching", jsonOf(v))
	}

	wantStatus(t, "accept by the other offered mitra", a.post(t, "/api/sessions/"+id+"/accept", m2.Token, nil), http.StatusOK)
	wantError(t, "decline once taken", b.post(t, "/api/sessions/"+id+"/decline", m2.Token, nil), http.StatusConflict, "invalid_state")
	wantError(t, "decline once taken (declined before)", b.post(t, "/api/sessions/"+id+"/decline", m1.Token, nil), http.StatusConflict, "invalid_state")
}

// docs/contract.md §11 BLAST_LIMIT: with BLAST_LIMIT=1 a request is offered to one of
// the available mitras, not all of them.
func TestBlastLimit(t *testing.T) {
	t.Parallel()
	s := startValkeyServer(t, map[string]string{"BLAST_LIMIT": "1"})
	admin := s.adminToken(t)
	var ws []*WSClient
	for range 3 {
		m := s.newMitra(t, admin, 1)
		s.goOnline(t, m)
		ws = append(ws, s.dialWS(t, "mitra", m.Token))
	}
	cust := s.newCustomer(t)
	id := s.requestSession(t, cust, 5)
	time.Sleep(settleWindow)
	offers := 0
	for _, w := range ws {
		offers += w.count(event("session_offer", id))
	}
	if offers != 1 {
		t.Fatalf("session offered %d times with BLAST_LIMIT=1 and 3 available mitras, want 1", offers)
	}
}
