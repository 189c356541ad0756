package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// Timing of the realtime assertions. They are generous: the servers run with
// -race on a loaded two-core machine.
const (
	// eventTimeout bounds the wait for an event caused by a request.
	eventTimeout = 20 * time.Second
	// wsDialTimeout bounds a WebSocket handshake and its registration.
	wsDialTimeout = 20 * time.Second
	// settleWindow is how long a test keeps listening after the last event it
	// waited for before it asserts that some event came exactly once (an
	// absence can only be observed over time). It spans several ticks of the
	// session scheduler (at most 1 s each) and a pub/sub round trip.
	settleWindow = 3 * time.Second
)

// wsFrame is one message a WebSocket client received.
type wsFrame struct {
	At   time.Time      // when it was read
	Raw  []byte         // the message as sent
	Body map[string]any // the decoded object; nil when it is not one
}

// Type is the frame's "type" field.
func (f wsFrame) Type() string { s, _ := f.Body["type"].(string); return s }

// SessionID is the session the frame is about: its session_id, or the id of
// the session view of a session_update.
func (f wsFrame) SessionID() string {
	if id, ok := f.Body["session_id"].(string); ok {
		return id
	}
	if v, ok := f.Body["session"].(map[string]any); ok {
		id, _ := v["id"].(string)
		return id
	}
	return ""
}

// Session is the session view of a session_update (nil otherwise).
func (f wsFrame) Session() map[string]any {
	v, _ := f.Body["session"].(map[string]any)
	return v
}

// framePred selects frames.
type framePred func(wsFrame) bool

// event selects the frames of type typ about session id.
func event(typ, id string) framePred {
	return func(f wsFrame) bool { return f.Type() == typ && f.SessionID() == id }
}

// update selects the session_update frames of session id whose view has status.
func update(id, status string) framePred {
	return func(f wsFrame) bool {
		return f.Type() == "session_update" && f.SessionID() == id && f.Session()["status"] == status
	}
}

// anyFrame selects every frame.
func anyFrame(wsFrame) bool { return true }

// WSClient is one WebSocket connection to GET /ws that records every frame it
// receives, with its arrival time, from the moment it is connected.
type WSClient struct {
	name   string
	conn   *websocket.Conn
	report func(error) // a frame that does not match docs/openapi.yaml

	mu     sync.Mutex
	frames []wsFrame
	more   chan struct{} // closed and replaced at each new frame
	err    error         // why the reader ended
	done   chan struct{} // closed when the reader ends
	cancel context.CancelFunc
}

// dialWS connects to s's /ws with the token in the Authorization header, and
// returns once s has registered the connection (so that no event sent after
// it returns is missed). The connection is closed when the test ends.
func (s *Server) dialWS(t *testing.T, name, token string) *WSClient {
	t.Helper()
	h := http.Header{}
	h.Set("Authorization", "Bearer "+token)
	return s.dialWSWith(t, name, "/ws", h)
}

// dialWSQuery is dialWS with the token in the access_token query parameter.
func (s *Server) dialWSQuery(t *testing.T, name, token string) *WSClient {
	t.Helper()
	return s.dialWSWith(t, name, "/ws?access_token="+url.QueryEscape(token), nil)
}

func (s *Server) dialWSWith(t *testing.T, name, path string, h http.Header) *WSClient {
	t.Helper()
	before := s.wsConnections(t)
	ctx, cancel := context.WithTimeout(context.Background(), wsDialTimeout)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, wsURL(s.URL)+path, &websocket.DialOptions{HTTPHeader: h, HTTPClient: s.client})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("%s: WebSocket handshake: %v (status %d)", name, err, status)
	}
	conn.SetReadLimit(1 << 20)
	rctx, rcancel := context.WithCancel(context.Background())
	c := &WSClient{name: name, conn: conn, more: make(chan struct{}), done: make(chan struct{}), cancel: rcancel,
		report: func(err error) { t.Errorf("a WebSocket frame does not match docs/openapi.yaml: %v", err) }}
	go c.read(rctx)
	t.Cleanup(c.close)
	// The server registers the connection after the handshake: wait for it.
	deadline := time.Now().Add(wsDialTimeout)
	for s.wsConnections(t) < before+1 {
		if time.Now().After(deadline) {
			t.Fatalf("%s: the server did not register the WebSocket connection within %s (websocket_connections stayed %d)",
				name, wsDialTimeout, before)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return c
}

// wsURL turns http://host into ws://host.
func wsURL(httpURL string) string {
	return "ws" + strings.TrimPrefix(httpURL, "http")
}

// wsConnections reads the websocket_connections gauge of s's /metrics.
func (s *Server) wsConnections(t *testing.T) int {
	t.Helper()
	r := s.get(t, "/metrics", "")
	wantStatus(t, "GET /metrics", r, http.StatusOK)
	sc := bufio.NewScanner(bytes.NewReader(r.Raw))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || name != "websocket_connections" {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			t.Fatalf("GET /metrics: websocket_connections %q: %v", value, err)
		}
		return int(f)
	}
	return 0 // not exported before the first connection
}

// read records the frames until the connection ends.
func (c *WSClient) read(ctx context.Context) {
	defer close(c.done)
	for {
		_, data, err := c.conn.Read(ctx)
		if err != nil {
			c.mu.Lock()
			c.err = err
			close(c.more)
			c.more = make(chan struct{})
			c.mu.Unlock()
			return
		}
		if err := checker.CheckEvent(data); err != nil {
			c.report(fmt.Errorf("%s: %w", c.name, err))
		}
		f := wsFrame{At: time.Now(), Raw: data}
		var m map[string]any
		if json.Unmarshal(data, &m) == nil {
			f.Body = m
		}
		c.mu.Lock()
		c.frames = append(c.frames, f)
		close(c.more)
		c.more = make(chan struct{})
		c.mu.Unlock()
	}
}

// close closes the connection and waits for the reader.
func (c *WSClient) close() {
	_ = c.conn.Close(websocket.StatusNormalClosure, "test over")
	c.cancel()
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
	}
}

// all returns the frames received so far.
func (c *WSClient) all() []wsFrame {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]wsFrame(nil), c.frames...)
}

// closed reports whether the connection has ended, and why.
func (c *WSClient) closed() (bool, error) {
	select {
	case <-c.done:
		c.mu.Lock()
		defer c.mu.Unlock()
		return true, c.err
	default:
		return false, nil
	}
}

// waitFor returns the first frame (received so far or within timeout) that
// pred selects, and fails the test when none comes or the connection ends.
func (c *WSClient) waitFor(t *testing.T, what string, timeout time.Duration, pred framePred) wsFrame {
	t.Helper()
	return c.waitForNth(t, what, timeout, 1, pred)
}

// waitForNth is waitFor for the n-th frame that pred selects (n ≥ 1).
func (c *WSClient) waitForNth(t *testing.T, what string, timeout time.Duration, n int, pred framePred) wsFrame {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		c.mu.Lock()
		seen := 0
		for _, f := range c.frames {
			if pred(f) {
				if seen++; seen == n {
					c.mu.Unlock()
					return f
				}
			}
		}
		more, err := c.more, c.err
		c.mu.Unlock()
		if err != nil {
			t.Fatalf("%s: waiting for %s: the connection ended (%v); frames: %s", c.name, what, err, c.dump())
		}
		select {
		case <-more:
		case <-timer.C:
			t.Fatalf("%s: no %s (#%d) within %s; frames: %s", c.name, what, n, timeout, c.dump())
		}
	}
}

// count is how many frames received so far pred selects.
func (c *WSClient) count(pred framePred) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, f := range c.frames {
		if pred(f) {
			n++
		}
	}
	return n
}

// wantCount fails the test unless exactly n of the frames received so far
// are selected by pred.
func (c *WSClient) wantCount(t *testing.T, what string, n int, pred framePred) {
	t.Helper()
	if got := c.count(pred); got != n {
		t.Fatalf("%s: received %s %d times, want %d; frames: %s", c.name, what, got, n, c.dump())
	}
}

// dump lists the frames received, for failure messages.
func (c *WSClient) dump() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.frames) == 0 {
		return "(none)"
	}
	var b strings.Builder
	for i, f := range c.frames {
		fmt.Fprintf(&b, "\n  #%d %s %s", i, f.At.Format("15:04:05.000"), truncate(f.Raw))
	}
	return b.String()
}

// wsHandshake sends a raw WebSocket upgrade request for path with header h and
// returns the answer, without following or completing any upgrade.
func (s *Server) wsHandshake(t *testing.T, path string, h http.Header) Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.URL+path, nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	for k, vs := range h {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	key := make([]byte, 16)
	if _, err := rand.Read(key); err != nil {
		t.Fatalf("random: %v", err)
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", base64.StdEncoding.EncodeToString(key))
	return s.send(t, req)
}

// wsDialStatus tries a real WebSocket handshake and returns the HTTP status of
// a refused one; it fails the test when the handshake succeeds.
func (s *Server) wsDialStatus(t *testing.T, what, path string, h http.Header) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wsDialTimeout)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, wsURL(s.URL)+path, &websocket.DialOptions{HTTPHeader: h, HTTPClient: s.client})
	if err == nil {
		_ = conn.CloseNow()
		t.Fatalf("%s: the WebSocket handshake succeeded, want it refused", what)
	}
	if resp == nil {
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%s: handshake timed out", what)
		}
		t.Fatalf("%s: handshake failed without an HTTP answer: %v", what, err)
	}
	return resp.StatusCode
}
