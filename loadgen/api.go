package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/halobestie/mitra-availability/client"
)

// The views and events of the service's API are the types of package client,
// generated from docs/openapi.yaml; the load generator keeps no copy of them.
type (
	// SessionView is the session view (docs/contract.md §7).
	SessionView = client.Session
	// MitraView is the mitra view (docs/contract.md §4).
	MitraView = client.Mitra
	// UserView is the user view (docs/contract.md §3).
	UserView = client.User
	// Tokens is the answer of login and refresh.
	Tokens = client.Tokens
	// Beacon is the answer of GET /api/availability.
	Beacon = client.Beacon
)

// Session statuses and end reasons of docs/contract.md §7, as the store's rows
// and the checker's records spell them.
const (
	StatusSearching      = string(client.SessionStatusSearching)
	StatusPendingPayment = string(client.SessionStatusPendingPayment)
	StatusActive         = string(client.SessionStatusActive)
	StatusEnded          = string(client.SessionStatusEnded)
	StatusUnmatched      = string(client.SessionStatusUnmatched)
	StatusCancelled      = string(client.SessionStatusCancelled)

	EndReasonExpired = string(client.EndReasonExpired)
)

// ptrTo returns a pointer to v (the optional fields of a request).
func ptrTo[T any](v T) *T { return &v }

// IsOpen reports whether the session is searching, pending_payment or active.
func IsOpen(v SessionView) bool {
	switch string(v.Status) {
	case StatusSearching, StatusPendingPayment, StatusActive:
		return true
	}
	return false
}

// Held reports whether the session counts against its mitra's capacity
// (pending_payment or active with a mitra).
func Held(v SessionView) bool {
	return v.MitraID != nil && (string(v.Status) == StatusPendingPayment || string(v.Status) == StatusActive)
}

// WebSocket event types of docs/contract.md §8.
const (
	EventSessionOffer   = string(client.SessionOfferEventTypeSessionOffer)
	EventSessionTaken   = string(client.SessionTakenEventTypeSessionTaken)
	EventSessionUpdate  = string(client.SessionUpdateEventTypeSessionUpdate)
	EventSessionWarning = string(client.SessionWarningEventTypeSessionWarning)
	EventSessionEnded   = string(client.SessionEndedEventTypeSessionEnded)
	// EventQueueUpdate is docs/contract.md §10's.
	EventQueueUpdate = string(client.QueueUpdateEventTypeQueueUpdate)
)

// Frame is one WebSocket event of docs/contract.md §8, decoded once for every
// type: the union of the fields of client.SessionOfferEvent, SessionTakenEvent,
// SessionUpdateEvent, SessionWarningEvent, SessionEndedEvent and QueueUpdateEvent.
type Frame struct {
	EventID         string       `json:"event_id"`
	At              time.Time    `json:"at"` // when the server caused the event
	Type            string       `json:"type"`
	SessionID       string       `json:"session_id"`
	DurationMinutes int          `json:"duration_minutes"`
	OfferExpiresAt  *time.Time   `json:"offer_expires_at"`
	Kind            string       `json:"kind"`
	ExpiresAt       *time.Time   `json:"expires_at"`
	Reason          string       `json:"reason"`
	Session         *SessionView `json:"session"`
	QueuePosition   *int         `json:"queue_position"`
}

// Subject is the session the frame is about.
func (f Frame) Subject() string {
	if f.SessionID != "" {
		return f.SessionID
	}
	if f.Session != nil {
		return f.Session.ID
	}
	return ""
}

// APIError is a non-2xx answer of the service.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("HTTP %d %s: %s", e.Status, e.Code, e.Message)
}

// ErrorCode returns the error code of err when it is an *APIError, else "".
func ErrorCode(err error) string {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Code
	}
	return ""
}

// StatusOf returns the HTTP status of err when it is an *APIError, else 0.
func StatusOf(err error) int {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

// errRequestBudget is returned instead of a request once the run's request
// budget is spent.
var errRequestBudget = errors.New("loadgen: request budget spent")

// Client sends the requests of the load generator and records each one in
// its current Recorder. Once a budget set with SetBudget is spent it sends
// nothing more (errRequestBudget) and calls onBudget, once.
type Client struct {
	hc *http.Client
	// sinkMu guards rec and phase: a request is recorded in both or in
	// neither of a pair, so that a phase that ends (its figures taken once
	// it is swapped out) misses none of the run's requests.
	sinkMu     sync.RWMutex
	rec        *Recorder
	phase      *phase // also records, when set
	sent       atomic.Int64
	limit      atomic.Int64 // sent may not exceed it; 0: no bound
	budgetOnce sync.Once
	onBudget   func()
}

// NewClient returns a client whose requests time out after timeout, with no
// request budget.
func NewClient(timeout time.Duration, rec *Recorder, onBudget func()) *Client {
	tr := &http.Transport{
		Proxy:               nil, // loopback load: never through a proxy
		MaxIdleConns:        4096,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	c := &Client{
		hc:       &http.Client{Transport: tr, Timeout: timeout},
		onBudget: onBudget,
	}
	c.rec = rec
	return c
}

// SetRecorder makes rec receive the requests sent from now on.
func (c *Client) SetRecorder(rec *Recorder) {
	c.sinkMu.Lock()
	defer c.sinkMu.Unlock()
	c.rec = rec
}

// setSinks sets the recorder and the phase together; once it returns, no
// request is being recorded in the previous ones.
func (c *Client) setSinks(rec *Recorder, p *phase) {
	c.sinkMu.Lock()
	defer c.sinkMu.Unlock()
	c.rec, c.phase = rec, p
}

// setPhase sets the phase; once it returns, no request is being recorded in
// the previous one.
func (c *Client) setPhase(p *phase) {
	c.sinkMu.Lock()
	defer c.sinkMu.Unlock()
	c.phase = p
}

// SetBudget allows n more requests from now on; n ≤ 0 removes the bound.
func (c *Client) SetBudget(n int64) {
	if n <= 0 {
		c.limit.Store(0)
		return
	}
	c.limit.Store(c.sent.Load() + n)
}

// Sent is how many requests were sent.
func (c *Client) Sent() int64 { return c.sent.Load() }

// Close releases the idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// Do sends one request to base+path and decodes a 2xx answer into out (when
// not nil). route is the route template the request is recorded under. A
// non-2xx answer is an *APIError. A request cancelled by ctx is not recorded.
func (c *Client) Do(ctx context.Context, base, method, route, path, token string, body, out any) error {
	if n, limit := c.sent.Add(1), c.limit.Load(); limit > 0 && n > limit {
		c.sent.Add(-1)
		c.budgetOnce.Do(func() {
			if c.onBudget != nil {
				c.onBudget()
			}
		})
		return errRequestBudget
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encoding %s %s: %w", method, route, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(base, "/")+path, rd)
	if err != nil {
		return fmt.Errorf("building %s %s: %w", method, route, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	start := time.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			c.record(base, method, route, StatusTransportError, "", time.Since(start))
		}
		return fmt.Errorf("%s %s: %w", method, route, err)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	resp.Body.Close()
	latency := time.Since(start)
	if err != nil {
		if ctx.Err() == nil {
			c.record(base, method, route, StatusTransportError, "", latency)
		}
		return fmt.Errorf("%s %s: reading the answer: %w", method, route, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		ae := &APIError{Status: resp.StatusCode}
		var env struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(data, &env) == nil {
			ae.Code, ae.Message = env.Error.Code, env.Error.Message
		}
		c.record(base, method, route, resp.StatusCode, ae.Code, latency)
		return ae
	}
	c.record(base, method, route, resp.StatusCode, "", latency)
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decoding the answer: %w", method, route, err)
		}
	}
	return nil
}

func (c *Client) record(base, method, route string, status int, code string, latency time.Duration) {
	c.sinkMu.RLock()
	defer c.sinkMu.RUnlock()
	if c.rec != nil {
		c.rec.Record(method, route, status, code, latency)
	}
	if c.phase != nil {
		c.phase.record(strings.TrimRight(base, "/"), method, route, status, code, latency)
	}
}

// Route templates, as recorded.
const (
	routeCustomers    = "/api/customers"
	routeLogin        = "/api/auth/login"
	routeRefresh      = "/api/auth/refresh"
	routeAdminMitras  = "/api/admin/mitras"
	routeAdminMitra   = "/api/admin/mitras/:id"
	routeMitraStatus  = "/api/mitra/status"
	routeOnline       = "/api/mitra/status/online"
	routeOffline      = "/api/mitra/status/offline"
	routeAway         = "/api/mitra/status/away"
	routeHeartbeat    = "/api/mitra/status/heartbeat"
	routeAvailability = "/api/availability"
	routeSessions     = "/api/sessions"
	routeSession      = "/api/sessions/:id"
	routeAccept       = "/api/sessions/:id/accept"
	routeDecline      = "/api/sessions/:id/decline"
	routePay          = "/api/sessions/:id/pay"
	routeExtend       = "/api/sessions/:id/extend"
	routeEnd          = "/api/sessions/:id/end"
	routeReroute      = "/api/sessions/:id/reroute"
	routeHealthz      = "/healthz"
	routeWebSocket    = "/ws"
)

// sessionPath is the path of a session action ("" for the session itself).
func sessionPath(id, action string) string {
	if action == "" {
		return "/api/sessions/" + id
	}
	return "/api/sessions/" + id + "/" + action
}

// User is one account of the run with its tokens. Its calls refresh the
// tokens on a 401 (and log in again when the refresh fails), as the apps do.
type User struct {
	Role     string
	Phone    string
	Password string

	id atomic.Value // string

	mu      sync.Mutex
	access  string
	refresh string
	gen     int // bumped at every token change

	lastEvent atomic.Value // string: the event_id of the last frame received, resumed after
}

// LastEventID is the event_id of the last frame the user's connections
// received ("" before the first).
func (u *User) LastEventID() string {
	s, _ := u.lastEvent.Load().(string)
	return s
}

func (u *User) setLastEventID(id string) { u.lastEvent.Store(id) }

// ID is the user's id ("" before the first login).
func (u *User) ID() string {
	s, _ := u.id.Load().(string)
	return s
}

func (u *User) tokens() (string, int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.access, u.gen
}

func (u *User) setTokens(t Tokens) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.access, u.refresh = t.AccessToken, t.RefreshToken
	u.gen++
	if t.User.ID != "" {
		u.id.Store(t.User.ID)
	}
}

// Login logs the user in on base.
func (u *User) Login(ctx context.Context, c *Client, base string) error {
	var t Tokens
	err := c.Do(ctx, base, http.MethodPost, routeLogin, routeLogin, "",
		client.LoginRequest{Phone: u.Phone, Password: u.Password}, &t)
	if err != nil {
		return err
	}
	u.setTokens(t)
	return nil
}

// renew replaces the tokens of generation gen: by a refresh, or by a new
// login when the refresh is refused. When another call already renewed them
// it does nothing.
func (u *User) renew(ctx context.Context, c *Client, base string, gen int) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.gen != gen {
		return nil
	}
	var t Tokens
	err := c.Do(ctx, base, http.MethodPost, routeRefresh, routeRefresh, "", client.RefreshRequest{RefreshToken: u.refresh}, &t)
	if err != nil {
		if ctx.Err() != nil || errors.Is(err, errRequestBudget) {
			return err
		}
		err = c.Do(ctx, base, http.MethodPost, routeLogin, routeLogin, "",
			client.LoginRequest{Phone: u.Phone, Password: u.Password}, &t)
		if err != nil {
			return fmt.Errorf("logging in again: %w", err)
		}
	}
	u.access, u.refresh = t.AccessToken, t.RefreshToken
	u.gen++
	return nil
}

// Call sends an authenticated request to base. On 401 it renews the tokens
// once and retries.
func (u *User) Call(ctx context.Context, c *Client, base, method, route, path string, body, out any) error {
	token, gen := u.tokens()
	err := c.Do(ctx, base, method, route, path, token, body, out)
	if StatusOf(err) != http.StatusUnauthorized {
		return err
	}
	if rerr := u.renew(ctx, c, base, gen); rerr != nil {
		// The renewal's answer is the more precise one (403 account_deactivated).
		return fmt.Errorf("renewing the tokens after a 401: %w", rerr)
	}
	token, _ = u.tokens()
	return c.Do(ctx, base, method, route, path, token, body, out)
}
