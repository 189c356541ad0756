package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/adapters/push/fcmtest"
)

// pushQuiet is how long a test watches for a push that must not come.
const pushQuiet = 1500 * time.Millisecond

// startPushCluster starts n instances with PUSH_BACKEND=fcm pointed at a fake
// FCM served by the test: FCM_ENDPOINT is the fake, and the credentials
// file's token_uri too.
func startPushCluster(t *testing.T, n int) (*Cluster, *fcmtest.Server) {
	t.Helper()
	fake := fcmtest.New(t)
	creds := filepath.Join(t.TempDir(), "service-account.json")
	if err := os.WriteFile(creds, fake.Credentials(), 0o600); err != nil {
		t.Fatal(err)
	}
	c := startCluster(t, n, map[string]string{
		"PUSH_BACKEND":         "fcm",
		"FCM_PROJECT_ID":       "e2e-project",
		"FCM_CREDENTIALS_FILE": creds,
		"FCM_ENDPOINT":         fake.URL,
	})
	return c, fake
}

// putDevice registers a device token for a.
func (s *Server) putDevice(t *testing.T, a actor, token string) {
	t.Helper()
	r := s.request(t, http.MethodPut, "/api/me/device", a.Token, map[string]any{"platform": "fcm", "token": token})
	wantStatus(t, "PUT /api/me/device", r, http.StatusNoContent)
}

// messagesTo returns the fake's messages to device token.
func messagesTo(fake *fcmtest.Server, token string) []fcmtest.Message {
	var out []fcmtest.Message
	for _, m := range fake.Messages() {
		if m.Token == token {
			out = append(out, m)
		}
	}
	return out
}

// waitPush waits for the n-th message to token and returns it.
func waitPush(t *testing.T, fake *fcmtest.Server, token string, n int) fcmtest.Message {
	t.Helper()
	deadline := time.Now().Add(eventTimeout)
	for {
		if ms := messagesTo(fake, token); len(ms) >= n {
			return ms[n-1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no push #%d to %s within %v; the fake got %d messages, refused %v",
				n, token, eventTimeout, len(fake.Messages()), fake.Errors())
		}
		fake.WaitMessages(len(fake.Messages())+1, 100*time.Millisecond)
	}
}

// metric reads one sample of s's /metrics, such as
// push_notifications_total{outcome="sent"}; 0 when absent.
func (s *Server) metric(t *testing.T, sample string) float64 {
	t.Helper()
	r := s.get(t, "/metrics", "")
	wantStatus(t, "GET /metrics", r, http.StatusOK)
	sc := bufio.NewScanner(bytes.NewReader(r.Raw))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if ok && name == sample {
			f, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
			if err != nil {
				t.Fatalf("/metrics %s %q: %v", sample, value, err)
			}
			return f
		}
	}
	return 0
}

// docs/contract.md §12: an event for a user with no open WebSocket on any instance
// and a registered device is pushed through FCM; a user with a WebSocket on
// any instance gets it there and no push; a token FCM reports unregistered
// is dropped. Two instances share the presence of connections over Valkey:
// the connected mitra's WebSocket is on the instance where the session is
// not requested.
func TestPushToBackgroundedMitra(t *testing.T) {
	t.Parallel()
	c, fake := startPushCluster(t, 2)
	a, b := c.Servers[0], c.Servers[1]
	admin := a.adminToken(t)

	away := a.newMitra(t, admin, 1) // app in the background: device, no WebSocket
	a.goOnline(t, away)
	a.putDevice(t, away, "device-of-away-mitra")
	connected := a.newMitra(t, admin, 1) // app open: device and a WebSocket on instance a
	a.goOnline(t, connected)
	a.putDevice(t, connected, "device-of-connected-mitra")
	ws := a.dialWS(t, "connected mitra", connected.Token)

	// A customer requests a session on instance b: a blast to both mitras.
	cust := b.newCustomer(t)
	id := b.requestSession(t, cust, 30)

	ws.waitFor(t, "session_offer over the WebSocket", eventTimeout, event("session_offer", id))
	m := waitPush(t, fake, "device-of-away-mitra", 1)
	if m.Project != "e2e-project" || m.Data["type"] != "session_offer" {
		t.Fatalf("push to project %q data %v, want e2e-project and a session_offer", m.Project, m.Data)
	}
	var frame map[string]any
	if err := json.Unmarshal([]byte(m.Data["event"]), &frame); err != nil {
		t.Fatalf("push data.event %q is not the JSON frame: %v", m.Data["event"], err)
	}
	if frame["type"] != "session_offer" || frame["session_id"] != id || frame["duration_minutes"] != float64(30) {
		t.Errorf("pushed frame = %v, want the session_offer of %s", frame, id)
	}
	if m.Notification["title"] == "" {
		t.Errorf("an offer push carries no notification: %s", m.Raw)
	}
	time.Sleep(pushQuiet)
	if ms := messagesTo(fake, "device-of-connected-mitra"); len(ms) != 0 {
		t.Fatalf("the mitra with an open WebSocket was pushed too: %v", ms)
	}
	if got := len(messagesTo(fake, "device-of-away-mitra")); got != 1 {
		t.Errorf("%d pushes to the away mitra, want 1", got)
	}
	if errs := fake.Errors(); len(errs) > 0 {
		t.Errorf("the fake FCM refused requests: %v", errs)
	}
	// The instance where the event happened counted both decisions.
	if sent, conn := b.metric(t, `push_notifications_total{outcome="sent"}`), b.metric(t, `push_notifications_total{outcome="connected"}`); sent != 1 || conn != 1 {
		t.Errorf("instance b counted sent %v, connected %v; want 1 and 1", sent, conn)
	}

	// The WebSocket closes: the next offer reaches that mitra by push.
	ws.close()
	waitUntil(t, "the connected mitra's WebSocket to close on instance a", 10*time.Second, func() bool { return a.wsConnections(t) == 0 })
	// FCM now says the away mitra's token is unregistered: it is dropped.
	fake.SetDefault(fcmtest.Unregistered)
	id2 := b.requestSession(t, b.newCustomer(t), 15)
	waitPush(t, fake, "device-of-away-mitra", 2)
	m2 := waitPush(t, fake, "device-of-connected-mitra", 1)
	if !strings.Contains(m2.Data["event"], id2) {
		t.Errorf("push after the WebSocket closed = %v, want the offer of %s", m2.Data, id2)
	}
	waitUntil(t, "the unregistered outcome", eventTimeout, func() bool {
		return b.metric(t, `push_notifications_total{outcome="unregistered"}`) == 2
	})

	// Both tokens were dropped: a third offer pushes nothing.
	fake.SetDefault(fcmtest.Reply{})
	before := len(fake.Messages())
	b.requestSession(t, b.newCustomer(t), 15)
	time.Sleep(pushQuiet)
	if got := fake.Messages()[before:]; len(got) != 0 {
		t.Errorf("pushes to dropped tokens: %v", got)
	}
}

// Bad input to PUT /api/me/device is 400 naming the field, and stores nothing.
func TestDeviceBadInput(t *testing.T) {
	t.Parallel()
	c, fake := startPushCluster(t, 1)
	s := c.Servers[0]
	admin := s.adminToken(t)
	m := s.newMitra(t, admin, 1)
	s.goOnline(t, m)
	for _, tc := range []struct{ body, field string }{
		{`{"platform":"apns","token":"t"}`, "platform"},
		{`{"platform":"fcm","token":""}`, "token"},
		{`{"platform":"fcm","token":"` + strings.Repeat("x", 4097) + `"}`, "token"},
		{`{"platform":"fcm","token":"t","extra":1}`, "extra"},
	} {
		r := s.request(t, http.MethodPut, "/api/me/device", m.Token, tc.body)
		wantStatus(t, "PUT /api/me/device "+tc.field, r, http.StatusBadRequest)
		e, _ := r.Body["error"].(map[string]any)
		if msg, _ := e["message"].(string); e["code"] != "invalid_request" || !strings.HasPrefix(msg, tc.field+":") {
			t.Errorf("PUT %s = %s, want invalid_request naming %s", truncate([]byte(tc.body)), r.Raw, tc.field)
		}
	}
	// Nothing was stored: an offer to this mitra pushes nothing.
	s.requestSession(t, s.newCustomer(t), 15)
	time.Sleep(pushQuiet)
	if n := len(fake.Messages()); n != 0 {
		t.Errorf("%d pushes after bad registrations, want 0", n)
	}
	if s.metric(t, `push_notifications_total{outcome="no_device"}`) != 1 {
		t.Errorf("no_device = %v, want 1", s.metric(t, `push_notifications_total{outcome="no_device"}`))
	}
	r := s.request(t, http.MethodDelete, "/api/me/device", m.Token, nil)
	wantStatus(t, "DELETE /api/me/device", r, http.StatusNoContent)
}

// waitUntil polls cond until it holds or d passes.
func waitUntil(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
