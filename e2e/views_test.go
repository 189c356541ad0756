package e2e

// The views the suite asserts on are the generated client types (package
// client: docs/openapi.yaml's schemas), never raw maps. Every answer was
// already checked against the document by the suite's HTTP client
// (checkedClient); decoding into the types adds the field names and Go types
// the tests read, and the checks here add what a schema cannot say (UUIDs,
// UTC times, fields that must agree with each other).

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/client"
)

// decode decodes a JSON body into a view, failing on a field the type lacks.
func decode[T any](t *testing.T, what string, raw []byte) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s: not a %T: %v; body: %s", what, v, err, truncate(raw))
	}
	return v
}

// viewOf asserts that r has status want and decodes its body.
func viewOf[T any](t *testing.T, what string, r Response, want int) T {
	t.Helper()
	wantStatus(t, what, r, want)
	return decode[T](t, what, r.Raw)
}

// jsonOf is v as JSON, for failure messages (a view's pointers print as
// their values).
func jsonOf(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// sameJSON reports whether two views encode alike (a pointer field compares
// by its value).
func sameJSON(a, b any) bool { return jsonOf(a) == jsonOf(b) }

// checkUTC asserts that a time of a view was sent in UTC (…Z).
func checkUTC(t *testing.T, what string, ts *time.Time) {
	t.Helper()
	if ts != nil && ts.Location() != time.UTC {
		t.Fatalf("%s: %s is not in UTC (…Z)", what, ts.Format(time.RFC3339Nano))
	}
}

// ------------------------------------------------------------- sessions --

// sessionOf asserts that r is a session view with status want (the answer of
// a request, accept, pay, extend, end or reroute) and returns it.
func sessionOf(t *testing.T, what string, r Response, want int) client.Session {
	t.Helper()
	v := viewOf[client.Session](t, what, r, want)
	checkSession(t, what, v)
	return v
}

// checkSession asserts what the schema cannot: ids are UUIDs, times are UTC,
// and a final status goes with an end reason and an end time.
func checkSession(t *testing.T, what string, v client.Session) {
	t.Helper()
	checkUUID(t, what+".id", v.ID)
	checkUUID(t, what+".customer_id", v.CustomerID)
	if v.MitraID != nil {
		checkUUID(t, what+".mitra_id", *v.MitraID)
	}
	if v.DurationMinutes < 0 || v.RemainingSeconds < 0 {
		t.Fatalf("%s: duration_minutes %d, remaining_seconds %d: negative", what, v.DurationMinutes, v.RemainingSeconds)
	}
	checkUTC(t, what+".created_at", &v.CreatedAt)
	checkUTC(t, what+".accepted_at", v.AcceptedAt)
	checkUTC(t, what+".started_at", v.StartedAt)
	checkUTC(t, what+".expires_at", v.ExpiresAt)
	checkUTC(t, what+".ended_at", v.EndedAt)
	final := v.Status == client.SessionStatusEnded || v.Status == client.SessionStatusUnmatched || v.Status == client.SessionStatusCancelled
	if final != (v.EndReason != nil) || final != (v.EndedAt != nil) {
		t.Fatalf("%s: status %s with end_reason and ended_at %s", what, v.Status, jsonOf(v))
	}
}

// sameSession reports whether two views of a session agree; remaining_seconds
// of an active session counts down, so it may differ by a few seconds.
func sameSession(a, b client.Session) bool {
	if a.Status == client.SessionStatusActive {
		if d := a.RemainingSeconds - b.RemainingSeconds; d < -5 || d > 5 {
			return false
		}
		a.RemainingSeconds, b.RemainingSeconds = 0, 0
	}
	return jsonOf(a) == jsonOf(b)
}

// endReason is the end reason of v, "" while it has none.
func endReason(v client.Session) string {
	if v.EndReason == nil {
		return ""
	}
	return string(*v.EndReason)
}

// mitraOfSession is v's mitra_id, "" while it has none.
func mitraOfSession(v client.Session) string {
	if v.MitraID == nil {
		return ""
	}
	return *v.MitraID
}

// wantEnded fails unless v is in the final status with the end reason, the
// mitra ("" for none) and no time left.
func wantEnded(t *testing.T, what string, v client.Session, status client.SessionStatus, reason, mitraID string) {
	t.Helper()
	if v.Status != status || endReason(v) != reason || mitraOfSession(v) != mitraID || v.RemainingSeconds != 0 {
		t.Fatalf("%s = %s, want status %s, end_reason %s, mitra_id %q, remaining_seconds 0", what, jsonOf(v), status, reason, mitraID)
	}
}

// at is a time of a view that must be set.
func at(t *testing.T, what string, ts *time.Time) time.Time {
	t.Helper()
	if ts == nil {
		t.Fatalf("%s is null", what)
	}
	return *ts
}

// getSession reads a session through the typed client; it must answer 200.
func (s *Server) getSession(t *testing.T, id, token string) client.Session {
	t.Helper()
	resp, err := s.api.GetSessionWithResponse(ctx(t), id, client.WithToken(token))
	if err != nil {
		t.Fatalf("GET /api/sessions/%s: %v", id, err)
	}
	wantStatus(t, "GET /api/sessions/"+id, typed(resp.HTTPResponse, resp.Body), http.StatusOK)
	checkSession(t, "GET /api/sessions/{id}", *resp.JSON200)
	return *resp.JSON200
}

// listSessions reads GET /api/sessions through the typed client.
func (s *Server) listSessions(t *testing.T, token string) []client.Session {
	t.Helper()
	resp, err := s.api.ListSessionsWithResponse(ctx(t), client.WithToken(token))
	if err != nil {
		t.Fatalf("GET /api/sessions: %v", err)
	}
	wantStatus(t, "GET /api/sessions", typed(resp.HTTPResponse, resp.Body), http.StatusOK)
	for _, v := range resp.JSON200.Sessions {
		checkSession(t, "GET /api/sessions element", v)
	}
	return resp.JSON200.Sessions
}

// sessionView is the session of a session_update frame.
func (f wsFrame) sessionView(t *testing.T) client.Session {
	t.Helper()
	v := decode[client.SessionUpdateEvent](t, "session_update frame", f.Raw).Session
	checkSession(t, "session_update.session", v)
	return v
}

// --------------------------------------------------------------- mitras --

// mitraOf asserts that r is a mitra view with status want and returns it.
func mitraOf(t *testing.T, what string, r Response, want int) client.Mitra {
	t.Helper()
	v := viewOf[client.Mitra](t, what, r, want)
	checkMitra(t, what, v)
	return v
}

// checkMitra asserts what the schema cannot: the id is a UUID, presence
// agrees with is_online and available, the heartbeat time is UTC.
func checkMitra(t *testing.T, what string, v client.Mitra) {
	t.Helper()
	checkUUID(t, what+".id", v.ID)
	if v.Capacity < 0 || v.ActiveSessions < 0 {
		t.Fatalf("%s: capacity %d, active_sessions %d: negative", what, v.Capacity, v.ActiveSessions)
	}
	switch p := v.Presence; {
	case p == client.MitraPresenceOffline && !v.IsOnline, p == client.MitraPresenceOnline && v.IsOnline,
		p == client.MitraPresenceAway && v.IsOnline && !v.Available:
	default:
		t.Fatalf("%s: presence %s does not agree with is_online %v, available %v", what, p, v.IsOnline, v.Available)
	}
	checkUTC(t, what+".last_heartbeat_at", v.LastHeartbeatAt)
}

// mitraView reads a mitra as admin through the typed client.
func (s *Server) mitraView(t *testing.T, admin, id string) client.Mitra {
	t.Helper()
	resp, err := s.api.GetMitraWithResponse(ctx(t), id, client.WithToken(admin))
	if err != nil {
		t.Fatalf("GET /api/admin/mitras/%s: %v", id, err)
	}
	wantStatus(t, "GET /api/admin/mitras/{id}", typed(resp.HTTPResponse, resp.Body), http.StatusOK)
	checkMitra(t, "GET /api/admin/mitras/{id}", *resp.JSON200)
	return *resp.JSON200
}

// wantMitraState fails unless v's is_online, reachable and available are as
// given.
func wantMitraState(t *testing.T, what string, v client.Mitra, online, reachable, available bool) {
	t.Helper()
	if v.IsOnline != online || v.Reachable != reachable || v.Available != available {
		t.Fatalf("%s: is_online %v, reachable %v, available %v; want %v, %v, %v (view %s)",
			what, v.IsOnline, v.Reachable, v.Available, online, reachable, available, jsonOf(v))
	}
}

// wantLoad fails unless v holds active sessions and is available as given.
func wantLoad(t *testing.T, what string, v client.Mitra, active int, available bool) {
	t.Helper()
	if v.ActiveSessions != active || v.Available != available {
		t.Fatalf("%s: active_sessions %d, available %v; want %d, %v (view %s)",
			what, v.ActiveSessions, v.Available, active, available, jsonOf(v))
	}
}

// wantPresence fails unless v's presence is want.
func wantPresence(t *testing.T, what string, v client.Mitra, want client.MitraPresence) {
	t.Helper()
	if v.Presence != want {
		t.Fatalf("%s: presence %s, want %s (view %s)", what, v.Presence, want, jsonOf(v))
	}
}

// availability reads GET /api/mitras/{id}/availability through the typed client.
func (s *Server) availability(t *testing.T, id, token string) client.MitraAvailability {
	t.Helper()
	resp, err := s.api.MitraAvailabilityWithResponse(ctx(t), id, client.WithToken(token))
	if err != nil {
		t.Fatalf("GET /api/mitras/%s/availability: %v", id, err)
	}
	wantStatus(t, "GET /api/mitras/{id}/availability", typed(resp.HTTPResponse, resp.Body), http.StatusOK)
	return *resp.JSON200
}
