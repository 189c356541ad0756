package push_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/adapters/push"
	"github.com/halobestie/mitra-availability/adapters/push/fcmtest"
	"github.com/halobestie/mitra-availability/ports"
)

const project = "halo-test"

func newFCM(t *testing.T, fake *fcmtest.Server, edit func(*push.FCMConfig)) *push.FCM {
	t.Helper()
	cfg := push.FCMConfig{ProjectID: project, Credentials: fake.Credentials(), Endpoint: fake.URL}
	if edit != nil {
		edit(&cfg)
	}
	f, err := push.NewFCM(cfg)
	if err != nil {
		t.Fatalf("NewFCM: %v", err)
	}
	return f
}

func offer(token string) ports.Push {
	return ports.Push{
		Device: ports.Device{UserID: "u1", Platform: ports.PlatformFCM, Token: token},
		Event: ports.Event{Type: ports.EventSessionOffer, UserIDs: []string{"u1"}, Seqs: []int64{42},
			Payload: json.RawMessage(`{"event_id":"42","at":"2031-01-01T00:00:00Z","type":"session_offer","session_id":"s1","duration_minutes":30,"offer_expires_at":"2031-01-01T00:00:00Z"}`)},
	}
}

func pushWithin(t *testing.T, f *push.FCM, p ports.Push, d time.Duration) (error, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	start := time.Now()
	err := f.Push(ctx, p)
	return err, time.Since(start)
}

func assertNoRefusals(t *testing.T, fake *fcmtest.Server) {
	t.Helper()
	if errs := fake.Errors(); len(errs) > 0 {
		t.Errorf("the fake refused requests: %v", errs)
	}
}

func TestFCMSends(t *testing.T) {
	fake := fcmtest.New(t)
	f := newFCM(t, fake, nil)
	for _, tok := range []string{"device-1", "device-2", "device-3"} {
		if err, _ := pushWithin(t, f, offer(tok), 5*time.Second); err != nil {
			t.Fatalf("Push(%s): %v", tok, err)
		}
	}
	assertNoRefusals(t, fake)
	msgs := fake.Messages()
	if len(msgs) != 3 {
		t.Fatalf("%d messages, want 3", len(msgs))
	}
	m := msgs[0]
	if m.Project != project || m.Token != "device-1" {
		t.Errorf("message to project %q token %q, want %q device-1", m.Project, m.Token, project)
	}
	if m.Data["type"] != "session_offer" || !json.Valid([]byte(m.Data["event"])) ||
		!strings.Contains(m.Data["event"], `"session_id":"s1"`) || !strings.Contains(m.Data["event"], `"event_id":"42"`) ||
		m.Data["event_id"] != "42" {
		t.Errorf("data = %v, want type session_offer, event_id 42 and the frame as event", m.Data)
	}
	if m.Notification["title"] == "" || m.Notification["body"] == "" {
		t.Errorf("an offer carries no notification: %v", m.Notification)
	}
	var raw struct {
		Message struct {
			Android struct{ Priority string } `json:"android"`
			APNS    struct {
				Headers map[string]string `json:"headers"`
			} `json:"apns"`
		} `json:"message"`
	}
	if err := json.Unmarshal(m.Raw, &raw); err != nil {
		t.Fatal(err)
	}
	if raw.Message.Android.Priority != "HIGH" || raw.Message.APNS.Headers["apns-priority"] != "10" {
		t.Errorf("priorities android %q apns %q, want HIGH and 10", raw.Message.Android.Priority, raw.Message.APNS.Headers["apns-priority"])
	}
	// One access token serves every push until it expires.
	if n := fake.TokenCalls(); n != 1 {
		t.Errorf("%d token requests for 3 pushes, want 1 (the token is cached)", n)
	}
}

// A data-only event (session_update) carries no notification.
func TestFCMDataOnly(t *testing.T) {
	fake := fcmtest.New(t)
	f := newFCM(t, fake, nil)
	p := offer("device-1")
	p.Event = ports.Event{Type: ports.EventSessionUpdate, Payload: json.RawMessage(`{"type":"session_update","session":{}}`)}
	if err, _ := pushWithin(t, f, p, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if m := fake.Messages()[0]; m.Notification != nil || m.Data["type"] != "session_update" {
		t.Errorf("message = %+v, want data only", m)
	}
}

// A token that expires is fetched again: tokens within oauth2's ten-second
// expiry margin are never reused.
func TestFCMTokenRefreshedWhenExpired(t *testing.T) {
	fake := fcmtest.New(t)
	fake.SetTokenTTL(5 * time.Second)
	f := newFCM(t, fake, nil)
	for range 3 {
		if err, _ := pushWithin(t, f, offer("device-1"), 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	assertNoRefusals(t, fake)
	if n := fake.TokenCalls(); n != 3 {
		t.Errorf("%d token requests for 3 pushes with expiring tokens, want 3", n)
	}
}

// A token FCM refuses with 401 (revoked before it expired) is dropped: the
// retry fetches a new one, and the push goes through.
func TestFCMUnauthorizedTokenRefetched(t *testing.T) {
	fake := fcmtest.New(t)
	f := newFCM(t, fake, nil)
	if err, _ := pushWithin(t, f, offer("device-1"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	fake.RevokeTokens()
	if err, _ := pushWithin(t, f, offer("device-1"), 5*time.Second); err != nil {
		t.Fatalf("push after the token was revoked: %v", err)
	}
	if err, _ := pushWithin(t, f, offer("device-1"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	assertNoRefusals(t, fake)
	if n := fake.TokenCalls(); n != 2 {
		t.Errorf("%d token requests, want 2 (one at first, one after the 401, then cached again)", n)
	}
	if n := len(fake.Messages()); n != 3 {
		t.Errorf("%d messages delivered, want 3", n)
	}
}

func TestFCMRetriesServerErrors(t *testing.T) {
	fake := fcmtest.New(t)
	fake.Reply(fcmtest.Reply{Status: http.StatusInternalServerError}, fcmtest.Reply{Status: http.StatusServiceUnavailable})
	f := newFCM(t, fake, nil)
	if err, _ := pushWithin(t, f, offer("device-1"), 5*time.Second); err != nil {
		t.Fatalf("Push after 500 and 503: %v", err)
	}
	if got := statuses(fake.Messages()); got != "500 503 200" {
		t.Errorf("attempts answered %s, want 500 503 200", got)
	}
}

func TestFCMGivesUpOnPersistentServerErrors(t *testing.T) {
	fake := fcmtest.New(t)
	fake.SetDefault(fcmtest.Reply{Status: http.StatusInternalServerError})
	f := newFCM(t, fake, nil)
	err, took := pushWithin(t, f, offer("device-1"), 5*time.Second)
	if err == nil || errors.Is(err, ports.ErrPushTokenUnregistered) {
		t.Fatalf("Push against a failing FCM = %v, want a plain failure", err)
	}
	if n := len(fake.Messages()); n != 3 {
		t.Errorf("%d attempts, want 3", n)
	}
	if took > 2*time.Second {
		t.Errorf("giving up took %v", took)
	}
}

// A client error other than UNREGISTERED is not retried and does not drop the token.
func TestFCMClientErrorIsNotRetried(t *testing.T) {
	fake := fcmtest.New(t)
	fake.Reply(fcmtest.Reply{Status: http.StatusBadRequest,
		Body: `{"error":{"code":400,"message":"bad","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"INVALID_ARGUMENT"}]}}`})
	f := newFCM(t, fake, nil)
	err, _ := pushWithin(t, f, offer("device-1"), 5*time.Second)
	if err == nil || errors.Is(err, ports.ErrPushTokenUnregistered) || !strings.Contains(err.Error(), "INVALID_ARGUMENT") {
		t.Fatalf("Push = %v, want a failure naming INVALID_ARGUMENT", err)
	}
	if n := len(fake.Messages()); n != 1 {
		t.Errorf("%d attempts, want 1", n)
	}
}

func TestFCMUnregistered(t *testing.T) {
	for name, reply := range map[string]fcmtest.Reply{
		"404 errorCode": fcmtest.Unregistered,
		"400 status":    {Status: http.StatusBadRequest, Body: `{"error":{"code":400,"message":"gone","status":"UNREGISTERED"}}`},
	} {
		t.Run(name, func(t *testing.T) {
			fake := fcmtest.New(t)
			fake.Reply(reply)
			f := newFCM(t, fake, nil)
			err, _ := pushWithin(t, f, offer("stale-device"), 5*time.Second)
			if !errors.Is(err, ports.ErrPushTokenUnregistered) {
				t.Fatalf("Push = %v, want ErrPushTokenUnregistered", err)
			}
			if n := len(fake.Messages()); n != 1 {
				t.Errorf("%d attempts, want 1 (an unregistered token is not retried)", n)
			}
		})
	}
}

// A hung FCM costs the caller its deadline, no more.
func TestFCMTimeout(t *testing.T) {
	fake := fcmtest.New(t)
	fake.SetDefault(fcmtest.Reply{Delay: 10 * time.Second})
	t.Run("caller deadline", func(t *testing.T) {
		f := newFCM(t, fake, nil)
		err, took := pushWithin(t, f, offer("device-1"), 300*time.Millisecond)
		if err == nil {
			t.Fatal("Push against a hung FCM succeeded")
		}
		if took > time.Second {
			t.Errorf("Push took %v with a 300ms deadline", took)
		}
	})
	t.Run("request timeout", func(t *testing.T) {
		f := newFCM(t, fake, func(c *push.FCMConfig) { c.RequestTimeout = 150 * time.Millisecond })
		err, took := pushWithin(t, f, offer("device-1"), 5*time.Second)
		if err == nil {
			t.Fatal("Push against a hung FCM succeeded")
		}
		// Three attempts of 150ms with 200ms and 400ms between them.
		if took > 2*time.Second {
			t.Errorf("Push took %v", took)
		}
	})
}

func TestFCMTokenEndpointFailure(t *testing.T) {
	fake := fcmtest.New(t)
	fake.SetTokenReply(&fcmtest.Reply{Status: http.StatusInternalServerError})
	f := newFCM(t, fake, nil)
	err, _ := pushWithin(t, f, offer("device-1"), 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), "access token") {
		t.Fatalf("Push without a token = %v, want an access token error", err)
	}
	if n := len(fake.Messages()); n != 0 {
		t.Errorf("%d messages sent without a token", n)
	}
	// The token endpoint recovers: so does pushing.
	fake.SetTokenReply(nil)
	if err, _ := pushWithin(t, f, offer("device-1"), 5*time.Second); err != nil {
		t.Fatalf("Push after the token endpoint recovered: %v", err)
	}
	assertNoRefusals(t, fake)
}

// TokenURL overrides the credentials' token_uri.
func TestFCMTokenURLOverride(t *testing.T) {
	fake := fcmtest.New(t)
	other := fcmtest.New(t) // its credentials point at itself
	f := newFCM(t, fake, func(c *push.FCMConfig) {
		c.Credentials = other.Credentials()
		c.TokenURL = other.URL + fcmtest.TokenPath
		c.Endpoint = other.URL
	})
	if err, _ := pushWithin(t, f, offer("device-1"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if fake.TokenCalls() != 0 || other.TokenCalls() != 1 {
		t.Errorf("token calls: fake %d, other %d; want 0 and 1", fake.TokenCalls(), other.TokenCalls())
	}
}

func TestNewFCMValidates(t *testing.T) {
	fake := fcmtest.New(t)
	good := fake.Credentials()
	var m map[string]any
	_ = json.Unmarshal(good, &m)
	with := func(k string, v any) []byte {
		c := map[string]any{}
		for key, val := range m {
			c[key] = val
		}
		c[k] = v
		b, _ := json.Marshal(c)
		return b
	}
	cases := map[string]push.FCMConfig{
		"no project":      {Credentials: good},
		"not JSON":        {ProjectID: project, Credentials: []byte("{")},
		"not a service":   {ProjectID: project, Credentials: with("type", "authorized_user")},
		"no client email": {ProjectID: project, Credentials: with("client_email", "")},
		"broken key":      {ProjectID: project, Credentials: with("private_key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")},
		"no key":          {ProjectID: project, Credentials: with("private_key", "")},
		"bad endpoint":    {ProjectID: project, Credentials: good, Endpoint: "ftp://x"},
	}
	for name, cfg := range cases {
		if _, err := push.NewFCM(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func statuses(msgs []fcmtest.Message) string {
	var s []string
	for _, m := range msgs {
		s = append(s, strconv.Itoa(m.Status))
	}
	return strings.Join(s, " ")
}
