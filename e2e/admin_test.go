package e2e

import (
	"net/http"
	"reflect"
	"testing"
	"time"
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
	created := s.createMitra(t, admin, map[string]any{
		"phone": phone, "password": "mitra-password", "display_name": "Fajar", "capacity": 3,
	})
	checkMitraView(t, "created mitra", created)
	want := map[string]any{
		"display_name": "Fajar", "phone": phone, "is_active": true, "is_online": false,
		"capacity": float64(3), "active_sessions": float64(0), "last_heartbeat_at": nil,
		"reachable": false, "available": false,
	}
	expectFields(t, "created mitra", created, want)
	id := created["id"].(string)

	if got := s.mitraView(t, admin, id); !reflect.DeepEqual(got, created) {
		t.Fatalf("GET mitra = %v, want the created view %v", got, created)
	}

	// Without capacity, a new mitra gets DEFAULT_MITRA_CAPACITY.
	other := s.createMitra(t, admin, map[string]any{
		"phone": randomPhone(t), "password": "mitra-password", "display_name": "Gita",
	})
	checkMitraView(t, "mitra without capacity", other)
	if other["capacity"] != float64(2) {
		t.Fatalf("capacity of a mitra created without one = %v, want 2 (DEFAULT_MITRA_CAPACITY)", other["capacity"])
	}
	if other["id"] == id {
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
	customerID := s.login(t, customerPhone, "customer-password").Body["user"].(map[string]any)["id"].(string)
	for _, missing := range []string{"00000000-0000-4000-8000-000000000000", customerID} {
		wantError(t, "GET unknown mitra", s.get(t, "/api/admin/mitras/"+missing, admin), http.StatusNotFound, "not_found")
		r := s.request(t, http.MethodPatch, "/api/admin/mitras/"+missing, admin, map[string]any{"capacity": 2})
		wantError(t, "PATCH unknown mitra", r, http.StatusNotFound, "not_found")
	}

	// The mitra logs in and goes online.
	mitra := s.login(t, phone, "mitra-password")
	if mu := mitra.Body["user"].(map[string]any); mu["role"] != "mitra" || mu["id"] != id {
		t.Fatalf("mitra login user = %v, want role mitra, id %s", mu, id)
	}
	self := s.get(t, "/api/mitra/status", mitra.Access)
	wantStatus(t, "GET /api/mitra/status", self, http.StatusOK)
	if !reflect.DeepEqual(self.Body, created) {
		t.Fatalf("the mitra's own view = %v, want %v", self.Body, created)
	}
	r := s.request(t, http.MethodPost, "/api/mitra/status/online", mitra.Access, nil)
	wantStatus(t, "go online", r, http.StatusOK)
	checkMitraView(t, "online", r.Body)
	expectFields(t, "online", r.Body, map[string]any{"is_online": true, "reachable": true, "available": true})
	if r.Body["last_heartbeat_at"] == nil {
		t.Fatal("last_heartbeat_at is null after going online")
	}
	wantStatus(t, "heartbeat", s.request(t, http.MethodPost, "/api/mitra/status/heartbeat", mitra.Access, nil), http.StatusNoContent)
	expectFields(t, "admin view of the online mitra", s.mitraView(t, admin, id),
		map[string]any{"is_online": true, "reachable": true, "available": true})

	// PATCH capacity.
	r = s.request(t, http.MethodPatch, "/api/admin/mitras/"+id, admin, map[string]any{"capacity": 5})
	wantStatus(t, "PATCH capacity", r, http.StatusOK)
	checkMitraView(t, "patched", r.Body)
	expectFields(t, "patched", r.Body, map[string]any{"capacity": float64(5), "is_active": true, "is_online": true})
	if got := s.mitraView(t, admin, id); !reflect.DeepEqual(got, r.Body) {
		t.Fatalf("GET after PATCH = %v, want the PATCH answer %v", got, r.Body)
	}

	// Deactivate.
	r = s.request(t, http.MethodPatch, "/api/admin/mitras/"+id, admin, map[string]any{"is_active": false})
	wantStatus(t, "deactivate", r, http.StatusOK)
	checkMitraView(t, "deactivated", r.Body)
	expectFields(t, "deactivated", r.Body, map[string]any{
		"is_active": false, "is_online": false, "reachable": false, "available": false, "capacity": float64(5),
	})
	expectFields(t, "admin view of the deactivated mitra", s.mitraView(t, admin, id), map[string]any{
		"is_active": false, "is_online": false, "reachable": false, "available": false,
	})

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
	r = s.request(t, http.MethodPost, "/api/auth/login", "", map[string]any{"phone": phone, "password": "mitra-password"})
	wantError(t, "login of a deactivated mitra", r, http.StatusForbidden, "account_deactivated")
	// Still deactivated and offline: the refused calls changed nothing.
	expectFields(t, "after the refused calls", s.mitraView(t, admin, id), map[string]any{"is_active": false, "is_online": false})

	// The dashboard counts it (the counts may lag by the snapshot TTL, 1 s here).
	dash := waitDashboard(t, s, admin, func(d map[string]any) bool {
		return d["deactivated_mitras"] == float64(1) && d["online_mitras"] == float64(0)
	})
	checkDashboard(t, dash)

	// Reactivate: it can log in again and is offline until it goes online.
	r = s.request(t, http.MethodPatch, "/api/admin/mitras/"+id, admin, map[string]any{"is_active": true})
	wantStatus(t, "reactivate", r, http.StatusOK)
	expectFields(t, "reactivated", r.Body, map[string]any{
		"is_active": true, "is_online": false, "reachable": false, "available": false,
	})
	again := s.login(t, phone, "mitra-password")
	self = s.get(t, "/api/mitra/status", again.Access)
	wantStatus(t, "GET /api/mitra/status after reactivation", self, http.StatusOK)
	expectFields(t, "own view after reactivation", self.Body, map[string]any{"is_active": true, "is_online": false})
	wantError(t, "heartbeat while offline",
		s.request(t, http.MethodPost, "/api/mitra/status/heartbeat", again.Access, nil),
		http.StatusConflict, "not_online")
	r = s.request(t, http.MethodPost, "/api/mitra/status/online", again.Access, nil)
	wantStatus(t, "online after reactivation", r, http.StatusOK)
	expectFields(t, "online after reactivation", r.Body, map[string]any{"is_active": true, "is_online": true, "reachable": true})
}

// docs/contract.md §2: the wrong role is 403 forbidden; no or bad credentials 401.
func TestRoleChecks(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	admin := s.adminToken(t)
	mitraPhone := randomPhone(t)
	m := s.createMitra(t, admin, map[string]any{"phone": mitraPhone, "password": "mitra-password", "display_name": "Indra"})
	mitraID := m["id"].(string)
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
	if got := s.mitraView(t, admin, mitraID); !reflect.DeepEqual(got, m) {
		t.Fatalf("mitra after refused calls = %v, want %v", got, m)
	}
	r := s.request(t, http.MethodPost, "/api/auth/login", "", map[string]any{"phone": newPhone, "password": "mitra-password"})
	wantError(t, "login of the refused mitra", r, http.StatusUnauthorized, "invalid_credentials")
	s.createMitra(t, admin, map[string]any{"phone": newPhone, "password": "mitra-password", "display_name": "Now"})
}

// expectFields fails the test unless v[k] equals want[k] for every k of want.
func expectFields(t *testing.T, what string, v map[string]any, want map[string]any) {
	t.Helper()
	for k, w := range want {
		got, ok := v[k]
		if !ok {
			t.Fatalf("%s: field %q missing from %v", what, k, v)
		}
		if !reflect.DeepEqual(got, w) {
			t.Fatalf("%s: %s = %#v, want %#v (view: %v)", what, k, got, w, v)
		}
	}
}

// waitDashboard polls GET /api/admin/dashboard until ok accepts it (the counts
// may lag by AVAILABILITY_SNAPSHOT_TTL_SECONDS) and returns it.
func waitDashboard(t *testing.T, s *Server, admin string, ok func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := s.get(t, "/api/admin/dashboard", admin)
		wantStatus(t, "GET /api/admin/dashboard", r, http.StatusOK)
		if ok(r.Body) {
			return r.Body
		}
		if time.Now().After(deadline) {
			t.Fatalf("dashboard did not reach the expected counts: %s", r.Raw)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkDashboard asserts the dashboard's shape (docs/contract.md §4) with CACHE_BACKEND=memory.
func checkDashboard(t *testing.T, d map[string]any) {
	t.Helper()
	for _, k := range []string{"online_mitras", "available_mitras", "deactivated_mitras"} {
		num(t, "dashboard", d, k)
	}
	sessions, ok := d["sessions"].(map[string]any)
	if !ok {
		t.Fatalf("dashboard.sessions = %v, want an object", d["sessions"])
	}
	for _, k := range []string{"searching", "pending_payment", "active"} {
		if n := num(t, "dashboard.sessions", sessions, k); n != 0 {
			t.Fatalf("dashboard.sessions.%s = %v, want 0", k, n)
		}
	}
	cache, ok := d["cache"].(map[string]any)
	if !ok {
		t.Fatalf("dashboard.cache = %v, want an object", d["cache"])
	}
	expectFields(t, "dashboard.cache", cache, map[string]any{"backend": "memory", "healthy": true})
}
