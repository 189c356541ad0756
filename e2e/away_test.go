package e2e

import (
	"net/http"
	"testing"

	"github.com/halobestie/mitra-availability/client"
)

// docs/contract.md §12, on two instances sharing Postgres and Valkey: an away mitra
// stays online and reachable, heartbeats, is never offered a session, and
// stays away through the end of its session, heartbeats and an instance that
// dies and another that starts, until it goes online itself.
func TestAwayPresence(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 2, nil)
	a, b := c.Servers[0], c.Servers[1]
	admin := a.adminToken(t)
	m := a.newMitra(t, admin, 2)
	a.goOnline(t, m)
	cust := b.newCustomer(t)

	// A session with the mitra, then the mitra goes away on A: the session goes on.
	id := b.requestSession(t, cust, 5)
	wantStatus(t, "accept", a.post(t, "/api/sessions/"+id+"/accept", m.Token, nil), http.StatusOK)
	away := mitraOf(t, "POST /api/mitra/status/away", a.post(t, "/api/mitra/status/away", m.Token, nil), http.StatusOK)
	wantPresence(t, "away answer", away, client.MitraPresenceAway)
	wantMitraState(t, "away answer", away, true, true, false)
	wantLoad(t, "away answer", away, 1, false)
	wantPresence(t, "away on B", b.mitraView(t, admin, m.ID), client.MitraPresenceAway)
	if av := b.availability(t, m.ID, cust.Token); av.MitraID != m.ID || !av.Reachable || av.Available {
		t.Fatalf("availability on B = %s, want reachable, not available", jsonOf(av))
	}

	// Heartbeats are accepted on either instance and change nothing.
	for _, s := range []*Server{a, b} {
		wantStatus(t, "heartbeat while away", s.post(t, "/api/mitra/status/heartbeat", m.Token, nil), http.StatusNoContent)
	}
	// The end of its session does not bring it back.
	wantStatus(t, "end", b.post(t, "/api/sessions/"+id+"/end", cust.Token, nil), http.StatusOK)
	after := b.mitraView(t, admin, m.ID)
	wantPresence(t, "after the session ended", after, client.MitraPresenceAway)
	wantLoad(t, "after the session ended", after, 0, false)

	// Nobody else is online: a request finds no mitra.
	cust2 := a.newCustomer(t)
	wantError(t, "request while the only mitra is away", a.post(t, "/api/sessions", cust2.Token,
		map[string]any{"duration_minutes": 5}), http.StatusConflict, "no_mitra_available")
	wantError(t, "direct request of the away mitra", b.post(t, "/api/sessions", cust2.Token,
		map[string]any{"duration_minutes": 5, "mitra_id": m.ID}), http.StatusConflict, "no_mitra_available")

	// An instance dies and a new one starts (it reseeds the mirror): still away.
	a.Kill(t)
	n := c.add(t, nil)
	wantPresence(t, "on a new instance", n.mitraView(t, admin, m.ID), client.MitraPresenceAway)
	wantStatus(t, "heartbeat on the new instance", n.post(t, "/api/mitra/status/heartbeat", m.Token, nil), http.StatusNoContent)
	wantError(t, "request after the restart", n.post(t, "/api/sessions", cust2.Token,
		map[string]any{"duration_minutes": 5}), http.StatusConflict, "no_mitra_available")

	// Online again: available and offered.
	again := mitraOf(t, "online", n.post(t, "/api/mitra/status/online", m.Token, nil), http.StatusOK)
	wantPresence(t, "online again", again, client.MitraPresenceOnline)
	wantMitraState(t, "online again", again, true, true, true)
	wm := b.dialWS(t, "mitra on B", m.Token)
	id2 := n.requestSession(t, cust2, 5)
	wm.waitFor(t, "offer after online", eventTimeout, event("session_offer", id2))

	// Offline ends away too; away by a customer is 403.
	wantPresence(t, "offline", mitraOf(t, "offline", b.post(t, "/api/mitra/status/offline", m.Token, nil), http.StatusOK),
		client.MitraPresenceOffline)
	wantError(t, "away by a customer", b.post(t, "/api/mitra/status/away", cust.Token, nil), http.StatusForbidden, "forbidden")
}
