package e2e

import (
	"net/http"
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/client"
)

// docs/contract.md §4 and §5: an admin creates, reads and patches a mitra; deactivation
// takes it offline, revokes its sessions and locks every mitra endpoint with
// 403 account_deactivated; reactivation lets it log in again, still offline.
func TestAdminMitraLifecycle(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{
		"DEFAULT_MITRA_CAPACITY":            "2",
		"AVAILABILITY_SNAPSHOT_TTL_SECONDS": "1",
	})
	admin := s.adminToken(t)

	phone := randomPhone(t)
	three := 3
	created := s.createMitra(t, admin, client.CreateMitraRequest{
		Phone: phone, Password: "mitra-password", DisplayName: "Fajar", Capacity: &three,
	})
	if want := (client.Mitra{
		ID: created.ID, DisplayName: "Fajar", Phone: phone, IsActive: true, IsOnline: false,
		Presence: client.MitraPresenceOffline, Capacity: 3, ActiveSessions: 0, LastHeartbeatAt: nil,
		Reachable: false, Available: false,
	}); !sameJSON(created, want) {
		t.Fatalf("created mitra = %s, want %s", jsonOf(created), jsonOf(want))
	}
	id := created.ID

	if got := s.mitraView(t, admin, id); !sameJSON(got, created) {
		t.Fatalf("GET mitra = %s, want the created view %s", jsonOf(got), jsonOf(created))
	}

	// Without capacity, a new mitra gets DEFAULT_MITRA_CAPACITY.
	other := s.createMitra(t, admin, client.CreateMitraRequest{
		Phone: randomPhone(t), Password: "mitra-password", DisplayName: "Gita",
	})
	if other.Capacity != 2 {
		t.Fatalf("capacity of a mitra created without one = %d, want 2 (DEFAULT_MITRA_CAPACITY)", other.Capacity)
	}
	if other.ID == id {
		t.Fatal("two mitras got the same id")
	}

	// A phone in use, by a mitra, a customer or the admin, is 409 phone_taken.
	customerPhone := randomPhone(t)
	s.signupCustomer(t, customerPhone, "customer-password", "Hana")
	for _, p := range []string{phone, customerPhone, adminPhone} {
		r := s.request(t, http.MethodPost, "/api/admin/mitras", admin, map[string]any{
			"phone": p, "password": "mitra-password", "display_name": "Dup",
		})
		wantError(t, "create mitra with phone "+p, r, http.StatusConflict, "phone_taken")
	}

	// A well-formed id that is no mitra is 404 not_found.
	customerID := s.login(t, customerPhone, "customer-password").User.ID
	for _, missing := range []string{"00000000-0000-4000-8000-000000000000", customerID} {
		wantError(t, "GET unknown mitra", s.get(t, "/api/admin/mitras/"+missing, admin), http.StatusNotFound, "not_found")
		r := s.request(t, http.MethodPatch, "/api/admin/mitras/"+missing, admin, map[string]any{"capacity": 2})
		wantError(t, "PATCH unknown mitra", r, http.StatusNotFound, "not_found")
	}

	// The mitra logs in and goes online.
	mitra := s.login(t, phone, "mitra-password")
	if mu := mitra.User; mu.Role != client.UserRoleMitra || mu.ID != id {
		t.Fatalf("mitra login user = %s, want role mitra, id %s", jsonOf(mu), id)
	}
	self := mitraOf(t, "GET /api/mitra/status", s.get(t, "/api/mitra/status", mitra.Access), http.StatusOK)
	if !sameJSON(self, created) {
		t.Fatalf("the mitra's own view = %s, want %s", jsonOf(self), jsonOf(created))
	}
	online := mitraOf(t, "go online", s.request(t, http.MethodPost, "/api/mitra/status/online", mitra.Access, nil), http.StatusOK)
	wantMitraState(t, "online", online, true, true, true)
	if online.LastHeartbeatAt == nil {
		t.Fatal("last_heartbeat_at is null after going online")
	}
	wantStatus(t, "heartbeat", s.request(t, http.MethodPost, "/api/mitra/status/heartbeat", mitra.Access, nil), http.StatusNoContent)
	wantMitraState(t, "admin view of the online mitra", s.mitraView(t, admin, id), true, true, true)

	// PATCH capacity.
	patched := mitraOf(t, "PATCH capacity", s.request(t, http.MethodPatch, "/api/admin/mitras/"+id, admin, map[string]any{"capacity": 5}), http.StatusOK)
	if patched.Capacity != 5 || !patched.IsActive || !patched.IsOnline {
		t.Fatalf("patched = %s, want capacity 5, active, online", jsonOf(patched))
	}
	if got := s.mitraView(t, admin, id); !sameJSON(got, patched) {
		t.Fatalf("GET after PATCH = %s, want the PATCH answer %s", jsonOf(got), jsonOf(patched))
	}

	// Deactivate.
	deactivated := mitraOf(t, "deactivate", s.request(t, http.MethodPatch, "/api/admin/mitras/"+id, admin, map[string]any{"is_active": false}), http.StatusOK)
	if deactivated.IsActive || deactivated.Capacity != 5 {
		t.Fatalf("deactivated = %s, want inactive, capacity 5", jsonOf(deactivated))
	}
	wantMitraState(t, "deactivated", deactivated, false, false, false)
	if v := s.mitraView(t, admin, id); v.IsActive {
		t.Fatalf("admin view of the deactivated mitra = %s, want inactive", jsonOf(v))
	} else {
		wantMitraState(t, "admin view of the deactivated mitra", v, false, false, false)
	}

	// Its auth sessions are revoked at once.
	wantError(t, "refresh of a deactivated mitra", s.refreshResponse(t, mitra.Refresh),
		http.StatusUnauthorized, "unauthenticated")
	// Its still-unexpired access token is refused on every mitra endpoint.
	for _, ep := range []struct{ method, path string }{
		{http.MethodGet, "/api/mitra/status"},
		{http.MethodPost, "/api/mitra/status/heartbeat"},
		{http.MethodPost, "/api/mitra/status/online"},
		{http.MethodPost, "/api/mitra/status/offline"},
	} {
		r := s.request(t, ep.method, ep.path, mitra.Access, nil)
		wantError(t, ep.method+" "+ep.path+" when deactivated", r, http.StatusForbidden, "account_deactivated")
	}
	r := s.request(t, http.MethodPost, "/api/auth/login", "", map[string]any{"phone": phone, "password": "mitra-password"})
	wantError(t, "login of a deactivated mitra", r, http.StatusForbidden, "account_deactivated")
	// Still deactivated and offline: the refused calls changed nothing.
	if v := s.mitraView(t, admin, id); v.IsActive || v.IsOnline {
		t.Fatalf("after the refused calls = %s, want inactive and offline", jsonOf(v))
	}

	// The dashboard counts it (the counts may lag by the snapshot TTL, 1 s here).
	dash := waitDashboard(t, s, admin, func(d client.Dashboard) bool {
		return d.DeactivatedMitras == 1 && d.OnlineMitras == 0
	})
	checkDashboard(t, dash)

	// Reactivate: it can log in again and is offline until it goes online.
	reactivated := mitraOf(t, "reactivate", s.request(t, http.MethodPatch, "/api/admin/mitras/"+id, admin, map[string]any{"is_active": true}), http.StatusOK)
	if !reactivated.IsActive {
		t.Fatalf("reactivated = %s, want active", jsonOf(reactivated))
	}
	wantMitraState(t, "reactivated", reactivated, false, false, false)
	again := s.login(t, phone, "mitra-password")
	own := mitraOf(t, "GET /api/mitra/status after reactivation", s.get(t, "/api/mitra/status", again.Access), http.StatusOK)
	if !own.IsActive || own.IsOnline {
		t.Fatalf("own view after reactivation = %s, want active and offline", jsonOf(own))
	}
	wantError(t, "heartbeat while offline",
		s.request(t, http.MethodPost, "/api/mitra/status/heartbeat", again.Access, nil),
		http.StatusConflict, "not_online")
	back := mitraOf(t, "online after reactivation", s.request(t, http.MethodPost, "/api/mitra/status/online", again.Access, nil), http.StatusOK)
	if !back.IsActive || !back.IsOnline || !back.Reachable {
		t.Fatalf("online after reactivation = %s, want active, online, reachable", jsonOf(back))
	}
}

// docs/contract.md §2: the wrong role is 403 forbidden; no or bad credentials 401.
func TestRoleChecks(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	admin := s.adminToken(t)
	mitraPhone := randomPhone(t)
	m := s.createMitra(t, admin, client.CreateMitraRequest{Phone: mitraPhone, Password: "mitra-password", DisplayName: "Indra"})
	mitraID := m.ID
	mitra := s.login(t, mitraPhone, "mitra-password").Access
	customerPhone := randomPhone(t)
	s.signupCustomer(t, customerPhone, "customer-password", "Joko")
	customer := s.login(t, customerPhone, "customer-password").Access

	newPhone := randomPhone(t)
	adminEndpoints := []struct {
		method, path string
		body         any
	}{
		{http.MethodPost, "/api/admin/mitras", map[string]any{"phone": newPhone, "password": "mitra-password", "display_name": "Nope"}},
		{http.MethodGet, "/api/admin/mitras/" + mitraID, nil},
		{http.MethodPatch, "/api/admin/mitras/" + mitraID, map[string]any{"is_active": false}},
		{http.MethodGet, "/api/admin/dashboard", nil},
	}
	mitraEndpoints := []struct{ method, path string }{
		{http.MethodGet, "/api/mitra/status"},
		{http.MethodPost, "/api/mitra/status/online"},
		{http.MethodPost, "/api/mitra/status/offline"},
		{http.MethodPost, "/api/mitra/status/heartbeat"},
	}

	for _, ep := range adminEndpoints {
		name := ep.method + " " + ep.path
		wantError(t, name+" as customer", s.request(t, ep.method, ep.path, customer, ep.body), http.StatusForbidden, "forbidden")
		wantError(t, name+" as mitra", s.request(t, ep.method, ep.path, mitra, ep.body), http.StatusForbidden, "forbidden")
		wantError(t, name+" without a token", s.request(t, ep.method, ep.path, "", ep.body), http.StatusUnauthorized, "unauthenticated")
	}
	for _, ep := range mitraEndpoints {
		name := ep.method + " " + ep.path
		wantError(t, name+" as customer", s.request(t, ep.method, ep.path, customer, nil), http.StatusForbidden, "forbidden")
		wantError(t, name+" as admin", s.request(t, ep.method, ep.path, admin, nil), http.StatusForbidden, "forbidden")
		wantError(t, name+" without a token", s.request(t, ep.method, ep.path, "", nil), http.StatusUnauthorized, "unauthenticated")
	}

	// The refused calls changed nothing: the mitra is as created, still active
	// and offline, and the refused creation made no account.
	if got := s.mitraView(t, admin, mitraID); !sameJSON(got, m) {
		t.Fatalf("mitra after refused calls = %s, want %s", jsonOf(got), jsonOf(m))
	}
	r := s.request(t, http.MethodPost, "/api/auth/login", "", map[string]any{"phone": newPhone, "password": "mitra-password"})
	wantError(t, "login of the refused mitra", r, http.StatusUnauthorized, "invalid_credentials")
	s.createMitra(t, admin, client.CreateMitraRequest{Phone: newPhone, Password: "mitra-password", DisplayName: "Now"})
}

// waitDashboard polls GET /api/admin/dashboard until ok accepts it (the counts
// may lag by AVAILABILITY_SNAPSHOT_TTL_SECONDS) and returns it.
func waitDashboard(t *testing.T, s *Server, admin string, ok func(client.Dashboard) bool) client.Dashboard {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		d := viewOf[client.Dashboard](t, "GET /api/admin/dashboard", s.get(t, "/api/admin/dashboard", admin), http.StatusOK)
		if ok(d) {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("dashboard did not reach the expected counts: %s", jsonOf(d))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkDashboard asserts the dashboard (docs/contract.md §4) of a server with
// CACHE_BACKEND=memory and no session.
func checkDashboard(t *testing.T, d client.Dashboard) {
	t.Helper()
	if d.OnlineMitras < 0 || d.AvailableMitras < 0 || d.DeactivatedMitras < 0 {
		t.Fatalf("dashboard counts a negative number: %s", jsonOf(d))
	}
	if d.Sessions.Searching != 0 || d.Sessions.PendingPayment != 0 || d.Sessions.Active != 0 {
		t.Fatalf("dashboard.sessions = %s, want all 0", jsonOf(d.Sessions))
	}
	if d.Cache.Backend != client.DashboardCacheBackendMemory || !d.Cache.Healthy {
		t.Fatalf("dashboard.cache = %s, want memory, healthy", jsonOf(d.Cache))
	}
}
