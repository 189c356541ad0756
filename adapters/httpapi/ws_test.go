package httpapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/halobestie/mitra-availability/adapters/eventbus"
	"github.com/halobestie/mitra-availability/core/auth"
	"github.com/halobestie/mitra-availability/ports"
)

// wsTokens is the fake authenticator's table: token → user id.
var wsTokens = map[string]string{"token-u": "user-u", "token-v": "user-v", "token-s": "user-s", "token-f": "user-f"}

// wsFakeAuth authenticates the tokens of wsTokens; the auth session of
// "token-x" is "session-x".
func wsFakeAuth(token string) (auth.Principal, error) {
	if id, ok := wsTokens[token]; ok {
		return auth.Principal{UserID: id, Role: ports.RoleCustomer, SessionID: "session-" + strings.TrimPrefix(token, "token-")}, nil
	}
	return auth.Principal{}, errors.New("token signature mismatch (detail that must not reach the client)")
}

// fakeLog is a ports.EventLog over arbitrary user ids (the fake
// authenticator's), for the hub's tests.
type fakeLog struct {
	mu     sync.Mutex
	events map[string][]ports.LoggedEvent
	gone   map[string]int64 // events up to this id were pruned
}

func newFakeLog() *fakeLog {
	return &fakeLog{events: map[string][]ports.LoggedEvent{}, gone: map[string]int64{}}
}

// append logs e for its users and returns it with its ids.
func (l *fakeLog) append(e ports.Event) ports.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var users []string // deduped in order, as the stores do
	for _, u := range e.UserIDs {
		if !slices.Contains(users, u) {
			users = append(users, u)
		}
	}
	e.UserIDs = users
	e.Seqs = make([]int64, len(e.UserIDs))
	for i, u := range e.UserIDs {
		e.Seqs[i] = int64(len(l.events[u])) + 1
		l.events[u] = append(l.events[u], e.For(i))
	}
	return e
}

func (l *fakeLog) EventsAfter(_ context.Context, userID string, after int64, limit int) ([]ports.LoggedEvent, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	stream := l.events[userID]
	if after > int64(len(stream)) || (after > 0 && after < l.gone[userID]) {
		return nil, ports.ErrEventsGone
	}
	out := slices.Clone(stream[after:])
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (l *fakeLog) Heads(_ context.Context, userIDs []string) (map[string]int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int64{}
	for _, u := range userIDs {
		if n := len(l.events[u]); n > 0 {
			out[u] = int64(n)
		}
	}
	return out, nil
}

func (l *fakeLog) EventsAfterEach(_ context.Context, after map[string]int64, limit int) (map[string][]ports.LoggedEvent, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string][]ports.LoggedEvent{}
	for u, a := range after {
		stream := l.events[u]
		start := max(a, l.gone[u])
		if start >= int64(len(stream)) {
			continue
		}
		evs := slices.Clone(stream[start:])
		if len(evs) > limit {
			evs = evs[:limit]
		}
		out[u] = evs
	}
	return out, nil
}

func (l *fakeLog) PruneEvents(context.Context, time.Time, int) (int, error) { return 0, nil }

// frameRE matches what the hub adds to a payload.
var frameRE = regexp.MustCompile(`^\{"event_id":"[0-9]+","at":"[^"]+",`)

// payloadOf strips event_id and at from a frame.
func payloadOf(frame string) string { return frameRE.ReplaceAllString(frame, "{") }

// countingBus is a memory bus that counts its live subscriptions.
type countingBus struct {
	*eventbus.Memory
	live atomic.Int32
}

func (b *countingBus) Subscribe(h func(ports.Event)) func() {
	b.live.Add(1)
	unsubscribe := b.Memory.Subscribe(h)
	var once sync.Once
	return func() {
		once.Do(func() {
			b.live.Add(-1)
			unsubscribe()
		})
	}
}

type wsFixture struct {
	hub    *Hub
	bus    *countingBus
	url    string // ws://…/ws
	reg    *prometheus.Registry
	events *fakeLog
}

// newWSFixture serves New(…) plus GET /ws on an httptest server, with a
// started hub over a memory bus.
func newWSFixture(t *testing.T, opts HubOptions) wsFixture {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts.Registerer = reg
	bus := &countingBus{Memory: eventbus.NewMemory()}
	events := newFakeLog()
	hub := NewHub(bus, events, nil, opts)
	if err := hub.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	e, err := New(Options{
		Registry: reg,
		Ready:    func(context.Context) ReadyStatus { return ReadyStatus{StoreOK: true, CacheOK: true} },
	})
	if err != nil {
		t.Fatal(err)
	}
	e.GET("/ws", hub.Handler(wsFakeAuth))
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { // runs before srv.Close
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := hub.Stop(ctx); err != nil {
			t.Errorf("hub.Stop: %v", err)
		}
	})
	return wsFixture{hub: hub, bus: bus, events: events, url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws", reg: reg}
}

// dial opens a client connection authenticated by "Authorization: Bearer token".
func (f wsFixture) dial(t *testing.T, token string, opts *websocket.DialOptions) *websocket.Conn {
	t.Helper()
	if opts == nil {
		opts = &websocket.DialOptions{}
	}
	opts.HTTPHeader = http.Header{"Authorization": {"Bearer " + token}}
	return f.dialURL(t, f.url, opts)
}

func (f wsFixture) dialURL(t *testing.T, url string, opts *websocket.DialOptions) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, opts)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	c.SetReadLimit(1 << 20)
	t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

func (f wsFixture) publish(t *testing.T, payload string, userIDs ...string) {
	t.Helper()
	e := f.events.append(ports.Event{Type: ports.EventSessionUpdate, UserIDs: userIDs, Payload: json.RawMessage(payload), At: time.Now()})
	if err := f.bus.Publish(context.Background(), e); err != nil {
		t.Fatal(err)
	}
}

// conns counts the hub's connections of userID: open ones, and ones asked to close.
func (f wsFixture) conns(userID string) (open, closing int) {
	f.hub.mu.RLock()
	defer f.hub.mu.RUnlock()
	for c := range f.hub.conns[userID] {
		select {
		case <-c.closing:
			closing++
		default:
			open++
		}
	}
	return open, closing
}

// waitConns waits until userID has exactly n registered connections.
func (f wsFixture) waitConns(t *testing.T, userID string, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		open, closing := f.conns(userID)
		if open+closing == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has %d connections (%d closing) after %v, want %d", userID, open+closing, closing, within, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// wsReader reads a client connection in the background (which also answers
// the server's pings).
type wsReader struct {
	msgs chan []byte
	done chan struct{}
	err  error // why reading ended; valid once done is closed
}

func startReading(t *testing.T, c *websocket.Conn) *wsReader {
	r := &wsReader{msgs: make(chan []byte, 4096), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for {
			typ, b, err := c.Read(context.Background())
			if err != nil {
				r.err = err
				return
			}
			if typ != websocket.MessageText {
				r.err = fmt.Errorf("got a %v message, want text", typ)
				return
			}
			r.msgs <- b
		}
	}()
	return r
}

// next returns the next message, failing t if none comes within d.
func (r *wsReader) next(t *testing.T, d time.Duration) string {
	t.Helper()
	select {
	case m := <-r.msgs:
		return payloadOf(string(m))
	case <-r.done:
		t.Fatalf("connection ended while waiting for a message: %v", r.err)
	case <-time.After(d):
		t.Fatalf("no message within %v", d)
	}
	return ""
}

// none fails t if a message arrives within d.
func (r *wsReader) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case m := <-r.msgs:
		t.Fatalf("unexpected message %s", m)
	case <-time.After(d):
	}
}

// ended waits for the connection to end and returns why.
func (r *wsReader) ended(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case <-r.done:
		return r.err
	case <-time.After(d):
		t.Fatalf("connection still open after %v", d)
		return nil
	}
}

// metricValue reads a gauge or counter.
func metricValue(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		t.Fatal(err)
	}
	if g := out.GetGauge(); g != nil {
		return g.GetValue()
	}
	return out.GetCounter().GetValue()
}

func TestWSRejectsUnauthenticated(t *testing.T) {
	f := newWSFixture(t, HubOptions{})
	cases := []struct {
		name, query string
		header      http.Header
	}{
		{"no token", "", nil},
		{"unknown token in header", "", http.Header{"Authorization": {"Bearer nope"}}},
		{"unknown token in query", "?access_token=nope", nil},
		{"not bearer", "", http.Header{"Authorization": {"Basic dXNlcjpwYXNz"}}},
		{"empty bearer", "", http.Header{"Authorization": {"Bearer "}}},
		// A bad header is not rescued by a good query token.
		{"bad header, good query", "?access_token=token-u", http.Header{"Authorization": {"Bearer nope"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, resp, err := websocket.Dial(ctx, f.url+tc.query, &websocket.DialOptions{HTTPHeader: tc.header})
			if err == nil {
				_ = c.CloseNow()
				t.Fatal("handshake succeeded")
			}
			if resp == nil {
				t.Fatalf("no HTTP response: %v", err)
			}
			defer func() { _ = resp.Body.Close() }()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401", resp.StatusCode)
			}
			if up := resp.Header.Get("Upgrade"); up != "" {
				t.Fatalf("response carries Upgrade: %q", up)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Fatalf("Content-Type %q, want JSON", ct)
			}
			body, _ := io.ReadAll(resp.Body)
			var env errorEnvelope
			if err := json.Unmarshal(body, &env); err != nil {
				t.Fatalf("body %s: %v", body, err)
			}
			if env.Error.Code != codeUnauthenticated || env.Error.Message == "" {
				t.Fatalf("envelope %s, want code %q", body, codeUnauthenticated)
			}
			if strings.Contains(string(body), "signature") {
				t.Fatalf("envelope leaks the authenticator's error: %s", body)
			}
		})
	}
	if open, closing := f.conns("user-u"); open+closing != 0 {
		t.Fatalf("rejected handshakes registered %d connections", open+closing)
	}
}

// A connection whose auth session is revoked is closed with 1008; the other
// connections of the same user (another auth session) stay.
func TestHubClosesRevokedSessions(t *testing.T) {
	f := newWSFixture(t, HubOptions{})
	revoked := f.dial(t, "token-u", nil)
	other := startReading(t, f.dial(t, "token-v", nil))
	f.waitConns(t, "user-u", 1, 2*time.Second)
	f.waitConns(t, "user-v", 1, 2*time.Second)

	f.hub.CloseRevoked([]ports.Revocation{
		{SessionID: "session-u", UserID: "user-u"},
		{SessionID: "session-elsewhere", UserID: "user-v"},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _, err := revoked.Read(ctx)
	if got := websocket.CloseStatus(err); got != websocket.StatusPolicyViolation {
		t.Fatalf("revoked connection read = %v, want close status 1008", err)
	}
	f.waitConns(t, "user-u", 0, 2*time.Second)
	const payload = `{"type":"session_update","session":{"id":"s1"}}`
	f.publish(t, payload, "user-v")
	if got := other.next(t, 2*time.Second); got != payload {
		t.Fatalf("the other user's connection got %s, want %s", got, payload)
	}
}

// A handshake the WebSocket library would refuse in plain text gets the
// JSON envelope, naming the header.
func TestWSBadHandshakeGetsTheEnvelope(t *testing.T) {
	f := newWSFixture(t, HubOptions{})
	for name, tc := range map[string]struct{ version, key, field string }{
		"version": {"8", base64.StdEncoding.EncodeToString(make([]byte, 16)), "Sec-WebSocket-Version"},
		"key":     {"13", "short", "Sec-WebSocket-Key"},
	} {
		t.Run(name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, "http"+strings.TrimPrefix(f.url, "ws"), nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer token-u")
			req.Header.Set("Connection", "Upgrade")
			req.Header.Set("Upgrade", "websocket")
			req.Header.Set("Sec-WebSocket-Version", tc.version)
			req.Header.Set("Sec-WebSocket-Key", tc.key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = resp.Body.Close() }()
			body, _ := io.ReadAll(resp.Body)
			var env errorEnvelope
			if resp.StatusCode != http.StatusBadRequest || json.Unmarshal(body, &env) != nil ||
				env.Error.Code != codeInvalidRequest || !strings.Contains(env.Error.Message, tc.field) {
				t.Fatalf("got %d %s, want 400 invalid_request naming %s", resp.StatusCode, body, tc.field)
			}
		})
	}
}

// A plain GET with a valid token is not upgraded: 426 with the envelope.
func TestWSRequiresUpgrade(t *testing.T) {
	f := newWSFixture(t, HubOptions{})
	req, err := http.NewRequest(http.MethodGet, "http"+strings.TrimPrefix(f.url, "ws"), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer token-u")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	var env errorEnvelope
	if resp.StatusCode != http.StatusUpgradeRequired || json.Unmarshal(body, &env) != nil || env.Error.Code != codeInvalidRequest {
		t.Fatalf("got %d %s, want 426 with an invalid_request envelope", resp.StatusCode, body)
	}
}

func TestWSAuthByHeaderAndQuery(t *testing.T) {
	f := newWSFixture(t, HubOptions{})
	byHeader := startReading(t, f.dial(t, "token-u", nil))
	byQuery := startReading(t, f.dialURL(t, f.url+"?access_token=token-u", nil))
	f.waitConns(t, "user-u", 2, 2*time.Second)

	const payload = `{"type":"session_update","session":{"id":"s1","status":"active"}}`
	f.publish(t, payload, "user-u")
	for name, r := range map[string]*wsReader{"header": byHeader, "query": byQuery} {
		if got := r.next(t, 2*time.Second); got != payload {
			t.Fatalf("%s connection got %s, want %s", name, got, payload)
		}
	}
}

// Events reach every connection of their users, once, and nobody else's.
func TestHubRoutesEventsToUsers(t *testing.T) {
	f := newWSFixture(t, HubOptions{})
	u1 := startReading(t, f.dial(t, "token-u", nil))
	u2 := startReading(t, f.dial(t, "token-u", nil))
	v1 := startReading(t, f.dial(t, "token-v", nil))
	f.waitConns(t, "user-u", 2, 2*time.Second)
	f.waitConns(t, "user-v", 1, 2*time.Second)

	const forU = `{"type":"session_offer","session_id":"a"}`
	const forV = `{"type":"session_taken","session_id":"b"}`
	const forBoth = `{"type":"session_ended","session_id":"c","reason":"expired"}`
	f.publish(t, forU, "user-u")
	f.publish(t, forV, "user-v", "user-v", "user-nobody") // a repeated user gets it once
	f.publish(t, forBoth, "user-u", "user-v")

	for name, r := range map[string]*wsReader{"u1": u1, "u2": u2} {
		for _, want := range []string{forU, forBoth} {
			if got := r.next(t, 2*time.Second); got != want {
				t.Fatalf("%s got %s, want %s", name, got, want)
			}
		}
	}
	for _, want := range []string{forV, forBoth} {
		if got := v1.next(t, 2*time.Second); got != want {
			t.Fatalf("v1 got %s, want %s", got, want)
		}
	}
	for _, r := range []*wsReader{u1, u2, v1} {
		r.none(t, 50*time.Millisecond)
	}
}

// A client that stops reading delays nobody: the others get every event at
// once, and it is cut when a write outlasts WriteTimeout.
func TestHubSlowConsumerDelaysNoOne(t *testing.T) {
	f := newWSFixture(t, HubOptions{WriteTimeout: 500 * time.Millisecond})
	slow := f.dial(t, "token-s", nil) // never read
	fast := startReading(t, f.dial(t, "token-f", nil))
	f.waitConns(t, "user-s", 1, 2*time.Second)
	f.waitConns(t, "user-f", 1, 2*time.Second)

	pad := strings.Repeat("x", 128<<10) // large events fill the slow client's socket buffers quickly
	const n = 64
	for i := range n {
		f.publish(t, fmt.Sprintf(`{"type":"session_update","n":%d,"pad":%q}`, i, pad), "user-s", "user-f")
	}
	for i := range n {
		want := fmt.Sprintf(`{"type":"session_update","n":%d,"pad":%q}`, i, pad)
		if got := fast.next(t, 5*time.Second); got != want {
			t.Fatalf("event %d: got %.60s…, want %.60s…", i, got, want)
		}
	}
	f.waitConns(t, "user-s", 0, 10*time.Second)
	_ = slow.CloseNow()
}

// A resuming client gets what it missed from the log, in order, then goes
// on live; no event comes twice.
func TestHubResumesFromTheLog(t *testing.T) {
	f := newWSFixture(t, HubOptions{})
	for i := 1; i <= 3; i++ {
		f.events.append(ports.Event{Type: "session_update", UserIDs: []string{"user-u"}, At: time.Now(),
			Payload: json.RawMessage(fmt.Sprintf(`{"type":"session_update","n":%d}`, i))})
	}
	r := startReading(t, f.dialURL(t, f.url+"?after=1&access_token=token-u", nil))
	for i := 2; i <= 3; i++ {
		if got, want := r.next(t, 2*time.Second), fmt.Sprintf(`{"type":"session_update","n":%d}`, i); got != want {
			t.Fatalf("replay: got %s, want %s", got, want)
		}
	}
	f.publish(t, `{"type":"session_update","n":4}`, "user-u")
	if got := r.next(t, 2*time.Second); got != `{"type":"session_update","n":4}` {
		t.Fatalf("live: got %s", got)
	}
	r.none(t, 200*time.Millisecond)
}

// An event the bus never brought (another instance's, during a cache
// outage) is delivered from the log by the poll.
func TestHubDeliversWhatTheBusLost(t *testing.T) {
	f := newWSFixture(t, HubOptions{PollInterval: 50 * time.Millisecond})
	r := startReading(t, f.dial(t, "token-u", nil))
	f.waitConns(t, "user-u", 1, 2*time.Second)
	f.events.append(ports.Event{Type: "session_ended", UserIDs: []string{"user-u"}, At: time.Now(),
		Payload: json.RawMessage(`{"type":"session_ended","session_id":"lost"}`)}) // logged, never published
	if got := r.next(t, 2*time.Second); got != `{"type":"session_ended","session_id":"lost"}` {
		t.Fatalf("got %s", got)
	}
	f.publish(t, `{"type":"session_update","n":2}`, "user-u")
	if got := r.next(t, 2*time.Second); got != `{"type":"session_update","n":2}` {
		t.Fatalf("got %s", got)
	}
	r.none(t, 200*time.Millisecond)
}

// A gap in what the bus brought (events from two instances arriving out of
// order) is waited out: the missing event comes over the bus a moment later
// and both go out in order, with no read of the log per connection.
func TestHubWaitsOutAGapForTheBus(t *testing.T) {
	f := newWSFixture(t, HubOptions{PollInterval: time.Hour})
	r1 := startReading(t, f.dial(t, "token-u", nil))
	r2 := startReading(t, f.dial(t, "token-u", nil))
	f.waitRegistrationReads(t, 2)
	first := f.events.append(ports.Event{Type: "session_update", UserIDs: []string{"user-u"}, At: time.Now(),
		Payload: json.RawMessage(`{"type":"session_update","n":1}`)})
	second := f.events.append(ports.Event{Type: "session_update", UserIDs: []string{"user-u"}, At: time.Now(),
		Payload: json.RawMessage(`{"type":"session_update","n":2}`)})
	if err := f.bus.Publish(context.Background(), second); err != nil {
		t.Fatal(err)
	}
	r1.none(t, 200*time.Millisecond) // 2 waits for 1
	if err := f.bus.Publish(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*wsReader{r1, r2} {
		for i := 1; i <= 2; i++ {
			if got, want := r.next(t, 2*time.Second), fmt.Sprintf(`{"type":"session_update","n":%d}`, i); got != want {
				t.Fatalf("got %s, want %s", got, want)
			}
		}
	}
	if n := metricValue(t, f.hub.logReads); n != 2 {
		t.Errorf("log reads = %v, want 2 (one per connection at its registration): the bus filled the gap", n)
	}
}

// waitRegistrationReads waits until the hub read the log n times: once per
// connection at its registration (what was logged before it registered).
func (f wsFixture) waitRegistrationReads(t *testing.T, n float64) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for metricValue(t, f.hub.logReads) < n {
		if time.Now().After(deadline) {
			t.Fatalf("log reads = %v, want %v after the connections registered", metricValue(t, f.hub.logReads), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A gap the bus never fills is filled by the poll, with one read of the log
// for all the user's connections.
func TestHubPollFillsAGapOnce(t *testing.T) {
	f := newWSFixture(t, HubOptions{PollInterval: 300 * time.Millisecond})
	r1 := startReading(t, f.dial(t, "token-u", nil))
	r2 := startReading(t, f.dial(t, "token-u", nil))
	f.waitRegistrationReads(t, 2)
	f.events.append(ports.Event{Type: "session_update", UserIDs: []string{"user-u"}, At: time.Now(),
		Payload: json.RawMessage(`{"type":"session_update","n":1}`)}) // logged, never published
	f.publish(t, `{"type":"session_update","n":2}`, "user-u")
	for _, r := range []*wsReader{r1, r2} {
		for i := 1; i <= 2; i++ {
			if got, want := r.next(t, 2*time.Second), fmt.Sprintf(`{"type":"session_update","n":%d}`, i); got != want {
				t.Fatalf("got %s, want %s", got, want)
			}
		}
	}
	if n := metricValue(t, f.hub.logReads); n != 3 {
		t.Errorf("log reads = %v, want 3: one per connection at its registration, then the poll's for both", n)
	}
	r1.none(t, 200*time.Millisecond)
}

// A resume past the log is refused with 410 gone, and a malformed after
// with 400 naming it, before any upgrade.
func TestHubResumeRefusals(t *testing.T) {
	f := newWSFixture(t, HubOptions{})
	f.events.append(ports.Event{Type: "x", UserIDs: []string{"user-u"}, At: time.Now(), Payload: json.RawMessage(`{"type":"x"}`)})
	for _, tc := range []struct {
		after  string
		status int
		code   string
	}{{"7", http.StatusGone, "gone"}, {"-1", http.StatusBadRequest, codeInvalidRequest}, {"x", http.StatusBadRequest, codeInvalidRequest}} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, resp, err := websocket.Dial(ctx, f.url+"?after="+tc.after, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer token-u"}}})
		cancel()
		if err == nil {
			_ = c.CloseNow()
			t.Fatalf("after=%s: upgraded", tc.after)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		var env errorEnvelope
		if resp.StatusCode != tc.status || json.Unmarshal(body, &env) != nil || env.Error.Code != tc.code {
			t.Fatalf("after=%s: %d %s, want %d %s", tc.after, resp.StatusCode, body, tc.status, tc.code)
		}
	}
}

func TestHubPingKeepsIdleConnectionAlive(t *testing.T) {
	const interval = 50 * time.Millisecond
	f := newWSFixture(t, HubOptions{PingInterval: interval, WriteTimeout: time.Second})
	var pings atomic.Int32
	c := f.dial(t, "token-u", &websocket.DialOptions{
		OnPingReceived: func(context.Context, []byte) bool { pings.Add(1); return true },
	})
	r := startReading(t, c) // reading answers the pings
	f.waitConns(t, "user-u", 1, 2*time.Second)

	time.Sleep(10 * interval)
	if n := pings.Load(); n < 4 {
		t.Fatalf("%d pings in %v, want at least 4", n, 10*interval)
	}
	if open, _ := f.conns("user-u"); open != 1 {
		t.Fatal("idle connection was closed")
	}
	const payload = `{"type":"session_warning","session_id":"s","kind":"three_minutes_left"}`
	f.publish(t, payload, "user-u")
	if got := r.next(t, 2*time.Second); got != payload {
		t.Fatalf("got %s after idling", got)
	}
}

// A client that does not answer pings is cut after one ping and WriteTimeout.
func TestHubClosesConnectionThatMissesPongs(t *testing.T) {
	f := newWSFixture(t, HubOptions{PingInterval: 50 * time.Millisecond, WriteTimeout: 100 * time.Millisecond})
	_ = f.dial(t, "token-u", nil) // never reads, so never answers a ping
	f.waitConns(t, "user-u", 1, 2*time.Second)
	f.waitConns(t, "user-u", 0, 2*time.Second)
}

// Client messages are read and dropped; the connection stays usable. An
// oversized one closes the connection.
func TestWSClientMessages(t *testing.T) {
	f := newWSFixture(t, HubOptions{})
	c := f.dial(t, "token-u", nil)
	r := startReading(t, c)
	f.waitConns(t, "user-u", 1, 2*time.Second)
	ctx := context.Background()
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"hello"}`)); err != nil {
		t.Fatal(err)
	}
	const payload = `{"type":"session_taken","session_id":"s"}`
	f.publish(t, payload, "user-u")
	if got := r.next(t, 2*time.Second); got != payload {
		t.Fatalf("got %s", got)
	}

	if err := c.Write(ctx, websocket.MessageText, []byte(strings.Repeat("x", wsReadLimit+1))); err != nil {
		t.Fatal(err)
	}
	if err := r.ended(t, 5*time.Second); websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
		t.Fatalf("oversized message: connection ended with %v, want StatusMessageTooBig", err)
	}
	f.waitConns(t, "user-u", 0, 2*time.Second)
}

func TestWSClientCloseUnregisters(t *testing.T) {
	f := newWSFixture(t, HubOptions{})
	c := f.dial(t, "token-u", nil)
	f.waitConns(t, "user-u", 1, 2*time.Second)
	if err := c.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatal(err)
	}
	f.waitConns(t, "user-u", 0, 2*time.Second)
	if got := metricValue(t, f.hub.connections); got != 0 {
		t.Fatalf("websocket_connections = %v, want 0", got)
	}
}

func TestHubStopClosesConnections(t *testing.T) {
	f := newWSFixture(t, HubOptions{})
	if got := f.bus.live.Load(); got != 1 {
		t.Fatalf("%d bus subscriptions after Start, want 1", got)
	}
	if err := f.hub.Start(context.Background()); err == nil {
		t.Fatal("second Start succeeded")
	}
	readers := []*wsReader{
		startReading(t, f.dial(t, "token-u", nil)),
		startReading(t, f.dial(t, "token-u", nil)),
		startReading(t, f.dial(t, "token-v", nil)),
	}
	f.waitConns(t, "user-u", 2, 2*time.Second)
	f.waitConns(t, "user-v", 1, 2*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := f.hub.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Stop took %v", d)
	}
	for i, r := range readers {
		if err := r.ended(t, time.Second); websocket.CloseStatus(err) != websocket.StatusGoingAway {
			t.Fatalf("connection %d ended with %v, want StatusGoingAway", i, err)
		}
	}
	if open, closing := f.conns("user-u"); open+closing != 0 {
		t.Fatalf("%d connections left after Stop", open+closing)
	}
	if got := f.bus.live.Load(); got != 0 {
		t.Fatalf("%d bus subscriptions after Stop, want 0", got)
	}
	if got := metricValue(t, f.hub.connections); got != 0 {
		t.Fatalf("websocket_connections = %v, want 0", got)
	}

	// New connections are refused, before any upgrade.
	dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer dcancel()
	c, resp, err := websocket.Dial(dctx, f.url, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer token-u"}}})
	if err == nil {
		_ = c.CloseNow()
		t.Fatal("handshake succeeded after Stop")
	}
	if resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("after Stop: %v, want 503", err)
	}
	_ = resp.Body.Close()

	if err := f.hub.Stop(ctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if err := f.hub.Start(ctx); err == nil {
		t.Fatal("Start after Stop succeeded")
	}
}

// When the peers do not complete the close handshake, Stop cuts them at its
// deadline and reports it.
func TestHubStopDeadlineCutsConnections(t *testing.T) {
	f := newWSFixture(t, HubOptions{})
	_ = f.dial(t, "token-u", nil) // never reads, so never answers the close frame
	f.waitConns(t, "user-u", 1, 2*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := f.hub.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop: %v, want a deadline error", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Stop took %v past its deadline", d)
	}
	f.waitConns(t, "user-u", 0, time.Second)
}

// Before Start the hub would route nothing, so it refuses connections.
func TestHubRefusesBeforeStart(t *testing.T) {
	hub := NewHub(eventbus.NewMemory(), newFakeLog(), nil, HubOptions{})
	e, err := New(Options{Ready: func(context.Context) ReadyStatus { return ReadyStatus{StoreOK: true, CacheOK: true} }})
	if err != nil {
		t.Fatal(err)
	}
	e.GET("/ws", hub.Handler(wsFakeAuth))
	srv := httptest.NewServer(e)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws",
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer token-u"}}})
	if err == nil {
		_ = c.CloseNow()
		t.Fatal("handshake succeeded before Start")
	}
	if resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("before Start: %v, want 503", err)
	}
	_ = resp.Body.Close()
}

func TestHubStartNeedsBus(t *testing.T) {
	if err := NewHub(nil, newFakeLog(), nil, HubOptions{}).Start(context.Background()); err == nil {
		t.Fatal("Start without a bus succeeded")
	}
}
