package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// wsReadLimit bounds one frame from the server.
const wsReadLimit = 1 << 20

// wsRetry is the pause before dialing again after a failure or a drop.
const wsRetry = time.Second

// holdWebSocket keeps one WebSocket connection of u open, to a random URL,
// until ctx ends, dialing again when it drops. Every frame is recorded by
// the checker and the event counters, then handed to deliver (which must
// not block). It returns when ctx ends, or when the server refuses u with
// 403 (a deactivated mitra).
func (r *Runner) holdWebSocket(ctx context.Context, u *User, deliver func(Frame)) {
	for ctx.Err() == nil {
		refused := r.wsSession(ctx, u, deliver)
		if refused {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wsRetry/2 + rand.N(wsRetry)):
		}
	}
}

// wsSession dials once and reads until the connection ends. It reports
// whether the server refused u for good (403).
func (r *Runner) wsSession(ctx context.Context, u *User, deliver func(Frame)) (refused bool) {
	base := r.randomURL()
	token, gen := u.tokens()
	h := http.Header{}
	h.Set("Authorization", "Bearer "+token)
	dctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
	start := time.Now()
	// Resume after the last event received, so that nothing is lost across
	// reconnections (docs/contract.md §13).
	path := routeWebSocket
	if last := u.LastEventID(); last != "" {
		path += "?after=" + url.QueryEscape(last)
	}
	conn, resp, err := websocket.Dial(dctx, strings.TrimRight(base, "/")+path, &websocket.DialOptions{
		HTTPHeader:      h,
		HTTPClient:      r.client.hc,
		CompressionMode: websocket.CompressionDisabled,
	})
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return false
		}
		status := StatusTransportError
		if resp != nil {
			status = resp.StatusCode
		}
		r.client.record(base, http.MethodGet, routeWebSocket, status, "", time.Since(start))
		r.ws.Inc("dial_errors")
		switch status {
		case http.StatusUnauthorized:
			_ = u.renew(ctx, r.client, r.randomURL(), gen)
		case http.StatusForbidden:
			return true
		case http.StatusGone:
			// The log no longer holds what follows: start afresh (counted).
			r.ws.Inc("resume_gone")
			r.checker.StreamRestarted(u.ID())
			u.setLastEventID("")
		}
		return false
	}
	r.client.record(base, http.MethodGet, routeWebSocket, http.StatusSwitchingProtocols, "", time.Since(start))
	conn.SetReadLimit(wsReadLimit)
	r.ws.Inc("connects")
	r.wsOpen.Add(1)
	defer r.wsOpen.Add(-1)
	id := r.checker.ConnOpened(u.ID(), u.Role, time.Now())

	// Close with a close handshake when ctx ends; Read then returns.
	stop := context.AfterFunc(ctx, func() { _ = conn.Close(websocket.StatusNormalClosure, "load generator done") })
	defer stop()
	for {
		_, data, err := conn.Read(context.Background())
		at := time.Now()
		if err != nil {
			r.checker.ConnClosed(id, at)
			_ = conn.CloseNow()
			if ctx.Err() == nil {
				r.ws.Inc("disconnects")
			}
			var ce websocket.CloseError
			if errors.As(err, &ce) && ce.Code == websocket.StatusPolicyViolation {
				r.ws.Inc("closed_by_policy") // revoked auth session, or fell behind the retention
			}
			return false
		}
		var f Frame
		if err := json.Unmarshal(data, &f); err != nil || f.Type == "" {
			r.ws.Inc("event:malformed")
			continue
		}
		r.ws.Inc("event:" + f.Type)
		r.checker.Frame(id, f, at)
		if f.EventID != "" {
			u.setLastEventID(f.EventID)
		}
		deliver(f)
	}
}
