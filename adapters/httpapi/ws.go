package httpapi

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/halobestie/mitra-availability/core"
	"github.com/halobestie/mitra-availability/core/auth"
	"github.com/halobestie/mitra-availability/ports"
)

// Defaults of HubOptions.
const (
	DefaultPingInterval = 25 * time.Second
	DefaultWriteTimeout = 5 * time.Second
	DefaultPollInterval = time.Second
	DefaultRecent       = 256
)

// replayPage is how many events a connection reads from the log at once.
const replayPage = 500

// wsReadLimit bounds a message from a client. Clients have nothing to say on
// this socket; their messages are read (so that control frames are handled)
// and dropped, and a larger one closes the connection (StatusMessageTooBig).
const wsReadLimit = 4 << 10

// HubOptions configure NewHub. Zero values take the defaults.
type HubOptions struct {
	// PingInterval is how often each connection is pinged; a missed pong
	// closes it. It keeps idle connections open through proxies and NATs and
	// finds dead peers. Default DefaultPingInterval.
	PingInterval time.Duration
	// WriteTimeout bounds each write of a message and each wait for a pong.
	// Default DefaultWriteTimeout.
	WriteTimeout time.Duration
	// PollInterval is how often the hub compares the newest event id of
	// each connected user in the log with what its connections sent, to
	// deliver what the bus did not bring (a cache outage). Default
	// DefaultPollInterval.
	PollInterval time.Duration
	// Recent is how many recent events of each connected user the hub keeps
	// from the bus, so that live delivery reads no log. Default DefaultRecent.
	Recent int
	// Registerer receives the hub's metrics (websocket_connections,
	// websocket_log_reads_total). Nil registers none.
	Registerer prometheus.Registerer
	// Presence, when set, is told of every connection that opens and
	// closes, so that push knows who has a WebSocket on any instance.
	Presence ports.Presence
}

// presenceTimeout bounds each presence call of the hub (the Valkey presence
// has a shorter deadline of its own).
const presenceTimeout = 2 * time.Second

// Hub serves GET /ws (docs/contract.md §8, §13): it keeps this instance's
// WebSocket connections, indexed by user, and writes to each the events of
// its user's stream in the event log, in order, each once, from where the
// connection started (the newest event at connect, or ?after=).
//
// Every connection remembers the id of the last event it sent. The bus
// handler only routes: it keeps the event in a short per-user buffer and
// wakes the user's connections, without waiting. A woken connection's
// writer sends the events after its last id from the buffer when they follow
// on without a gap, and otherwise reads them from the log. A poller compares
// the newest ids in the log with the connections every PollInterval, reads
// what those behind lack for all of them in one statement into the same
// buffers, and wakes them, so an event the bus lost (a cache outage, another
// instance's PUBLISH dropped) is delivered within a poll, and whichever path
// wakes a connection, it never sends an event twice nor skips one. One slow
// client never slows anyone: its writer falls behind on its own, and a write
// that takes longer than WriteTimeout cuts it. Each connection also has a
// reader (which handles control frames and drops client messages) and a
// pinger.
type Hub struct {
	bus    ports.EventBus
	events ports.EventLog
	log    *slog.Logger
	opts   HubOptions

	connections prometheus.Gauge   // nil without a Registerer
	logReads    prometheus.Counter // nil without a Registerer

	mu          sync.RWMutex
	conns       map[string]map[*wsClient]struct{} // by user id
	recent      map[string]*recentEvents          // by user id, for users with connections
	started     bool
	stopped     bool
	unsubscribe func()
	stopPoll    context.CancelFunc
	pollDone    chan struct{}
	wg          sync.WaitGroup // one per connection being served
}

// recentEvents are the newest events of one user that the bus brought,
// ordered by id.
type recentEvents struct {
	events []ports.LoggedEvent
}

// add inserts e in order, once, keeping at most limit events.
func (r *recentEvents) add(e ports.LoggedEvent, limit int) {
	i, found := slices.BinarySearchFunc(r.events, e.Seq, func(x ports.LoggedEvent, seq int64) int {
		return cmp.Compare(x.Seq, seq)
	})
	if found {
		return
	}
	r.events = slices.Insert(r.events, i, e)
	if len(r.events) > limit {
		r.events = slices.Delete(r.events, 0, len(r.events)-limit)
	}
}

// after returns the events after last that follow on from it without a gap
// (none when the buffer does not hold last+1).
func (r *recentEvents) after(last int64) []ports.LoggedEvent {
	if r == nil {
		return nil
	}
	i, found := slices.BinarySearchFunc(r.events, last+1, func(x ports.LoggedEvent, seq int64) int {
		return cmp.Compare(x.Seq, seq)
	})
	if !found {
		return nil
	}
	n := 1
	for i+n < len(r.events) && r.events[i+n].Seq == last+1+int64(n) {
		n++
	}
	return slices.Clone(r.events[i : i+n])
}

// wsClient is one connection of a user.
type wsClient struct {
	userID    string
	sessionID string // the auth session of the access token it connected with
	conn      *websocket.Conn
	wake      chan struct{} // capacity 1: the writer has something to look at
	last      atomic.Int64  // id of the last event sent; written by the writer only
	check     atomic.Bool   // the log may hold events after last that the buffer lacks

	closeOnce sync.Once
	closing   chan struct{}        // closed to ask the writer to close the connection
	code      websocket.StatusCode // why; set before closing is closed
	reason    string
	cutWrite  context.CancelFunc // aborts a write in progress
	kill      context.CancelFunc // ends the connection's context: closes it at once
}

// requestClose asks the writer to close the connection with code and reason;
// with cut, a write in progress is aborted too (the connection then ends
// without a close frame, which a peer that stopped reading would not get
// anyway). It never blocks and reports whether this call was the first.
func (c *wsClient) requestClose(code websocket.StatusCode, reason string, cut bool) bool {
	first := false
	c.closeOnce.Do(func() {
		first = true
		c.code, c.reason = code, reason
		close(c.closing)
		if cut {
			c.cutWrite()
		}
	})
	return first
}

// signal wakes the writer without blocking.
func (c *wsClient) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// NewHub returns a hub that delivers the events of events (the log), woken
// by bus. log receives connection errors (nil discards). The hub does
// nothing until Start.
func NewHub(bus ports.EventBus, events ports.EventLog, log *slog.Logger, opts HubOptions) *Hub {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.PingInterval <= 0 {
		opts.PingInterval = DefaultPingInterval
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.Recent <= 0 {
		opts.Recent = DefaultRecent
	}
	h := &Hub{
		bus:    bus,
		events: events,
		log:    log.With(slog.String("component", "websocket")),
		opts:   opts,
		conns:  make(map[string]map[*wsClient]struct{}),
		recent: make(map[string]*recentEvents),
	}
	if opts.Registerer != nil {
		h.registerMetrics(opts.Registerer)
	}
	return h
}

// registerMetrics registers the hub's metrics, reusing identical ones that
// are already registered (two hubs on one registry share them). A metric that
// cannot be registered is logged and left out: metrics never stop the hub.
func (h *Hub) registerMetrics(reg prometheus.Registerer) {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "websocket_connections",
		Help: "Open WebSocket connections on this instance.",
	})
	if g, err := registerOrReuse[prometheus.Gauge](reg, g); err == nil {
		h.connections = g
	} else {
		h.log.Warn("registering websocket_connections", slog.Any("error", err))
	}
	c := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "websocket_log_reads_total",
		Help: "Reads of the event log by WebSocket connections: replays after ?after=, and events the bus did not bring.",
	})
	if c, err := registerOrReuse[prometheus.Counter](reg, c); err == nil {
		h.logReads = c
	} else {
		h.log.Warn("registering websocket_log_reads_total", slog.Any("error", err))
	}
}

// Start subscribes the hub to the bus. It fails when the hub has no bus, is
// already started, or was stopped.
func (h *Hub) Start(context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.bus == nil:
		return errors.New("httpapi: websocket hub has no event bus")
	case h.events == nil:
		return errors.New("httpapi: websocket hub has no event log")
	case h.stopped:
		return errors.New("httpapi: websocket hub was stopped")
	case h.started:
		return errors.New("httpapi: websocket hub already started")
	}
	h.started = true
	h.unsubscribe = h.bus.Subscribe(h.route)
	ctx, cancel := context.WithCancel(context.Background())
	h.stopPoll, h.pollDone = cancel, make(chan struct{})
	go h.pollLoop(ctx, h.pollDone)
	return nil
}

// pollLoop runs poll every PollInterval until ctx ends.
func (h *Hub) pollLoop(ctx context.Context, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(h.opts.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			h.poll(ctx)
		}
	}
}

// poll reads the newest event id of every connected user (one statement,
// none without connections), reads what the connections behind it lack
// (one more statement) and wakes them.
func (h *Hub) poll(ctx context.Context) {
	h.mu.RLock()
	users := make([]string, 0, len(h.conns))
	for u := range h.conns {
		users = append(users, u)
	}
	h.mu.RUnlock()
	if len(users) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, h.opts.PollInterval)
	defer cancel()
	heads, err := h.events.Heads(ctx, users)
	if err != nil {
		if ctx.Err() == nil {
			h.log.Warn("reading the event log heads failed", slog.Any("error", err))
		}
		return
	}
	// The events the bus did not bring are read for every connection behind
	// at once (one statement, however many connections: while Valkey is
	// down that is every connection a blast reached on this instance) into
	// the users' buffers, from which the connections send them as if the bus
	// had brought them. A connection the read does not cover (it failed, or
	// the user is further behind than one read) reads the log itself.
	after := map[string]int64{}
	h.mu.RLock()
	for u, head := range heads {
		for c := range h.conns[u] {
			if last := c.last.Load(); last < head {
				if a, ok := after[u]; !ok || last < a {
					after[u] = last
				}
			}
		}
	}
	h.mu.RUnlock()
	if len(after) == 0 {
		return
	}
	if h.logReads != nil {
		h.logReads.Inc()
	}
	read, err := h.events.EventsAfterEach(ctx, after, h.opts.Recent)
	if err != nil && ctx.Err() == nil {
		h.log.Warn("reading the event log failed; the connections read it themselves", slog.Any("error", err))
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for u := range after {
		set := h.conns[u]
		if len(set) == 0 {
			continue
		}
		evs := read[u]
		covered := err == nil && len(evs) < h.opts.Recent
		if len(evs) > 0 {
			buf := h.recent[u]
			if buf == nil {
				buf = &recentEvents{}
				h.recent[u] = buf
			}
			for _, e := range evs {
				buf.add(e, h.opts.Recent)
			}
		}
		for c := range set {
			if c.last.Load() < heads[u] {
				if !covered {
					c.check.Store(true)
				}
				c.signal()
			}
		}
	}
}

// Stop unsubscribes from the bus, refuses new connections (503, as before
// Start), closes every connection with StatusGoingAway and waits for their
// goroutines to end. When ctx ends first, it cuts the remaining connections
// at once and returns ctx's error. A stopped hub cannot be started again.
//
// http.Server.Shutdown does not wait for hijacked connections such as
// these, so the app stops the hub when it stops the HTTP server.
func (h *Hub) Stop(ctx context.Context) error {
	h.mu.Lock()
	if h.stopped {
		h.mu.Unlock()
		return nil
	}
	h.stopped = true
	unsubscribe := h.unsubscribe
	h.unsubscribe = nil
	stopPoll, pollDone := h.stopPoll, h.pollDone
	h.stopPoll = nil
	for _, set := range h.conns {
		for c := range set {
			c.requestClose(websocket.StatusGoingAway, "server shutting down", false)
		}
	}
	h.mu.Unlock()
	if unsubscribe != nil {
		unsubscribe()
	}
	if stopPoll != nil {
		stopPoll()
		<-pollDone
	}

	done := make(chan struct{})
	go func() {
		h.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	// Cancelling a connection's context closes its socket, which also ends a
	// close handshake in progress (conn.CloseNow would wait for that).
	h.mu.RLock()
	for _, set := range h.conns {
		for c := range set {
			c.kill()
		}
	}
	h.mu.RUnlock()
	return fmt.Errorf("httpapi: closing websocket connections: %w", ctx.Err())
}

// route is the bus handler: it keeps each user's part of e in the user's
// buffer and wakes that user's connections, without blocking.
func (h *Hub) route(e ports.Event) {
	if !e.Logged() {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, userID := range e.UserIDs {
		set := h.conns[userID]
		if len(set) == 0 {
			continue
		}
		buf := h.recent[userID]
		if buf == nil {
			buf = &recentEvents{}
			h.recent[userID] = buf
		}
		buf.add(e.For(i), h.opts.Recent)
		for c := range set {
			c.signal()
		}
	}
}

// CloseRevoked closes, with StatusPolicyViolation, every connection opened
// with an access token of a revoked auth session (a logout, a deactivation).
// It never blocks.
func (h *Hub) CloseRevoked(revs []ports.Revocation) {
	if len(revs) == 0 {
		return
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, r := range revs {
		for c := range h.conns[r.UserID] {
			if c.sessionID == r.SessionID {
				c.requestClose(websocket.StatusPolicyViolation, "auth session revoked", false)
			}
		}
	}
}

// Handler returns the handler of GET /ws. authenticate turns an access token
// into the principal it authenticates, or fails.
//
// The token comes from "Authorization: Bearer <token>" or, for clients that
// cannot set headers on a WebSocket handshake (browsers), from the
// access_token query parameter (the access log never records queries).
// Without a valid token the handler fails with core.ErrUnauthenticated before
// any upgrade, so the client gets the 401 envelope.
//
// Any Origin is accepted: the mobile apps send none, and authentication is a
// bearer token, never a cookie, so a foreign web page cannot ride on a
// user's session (the cross-site WebSocket hijacking that origin checks
// prevent).
func (h *Hub) Handler(authenticate func(token string) (auth.Principal, error)) echo.HandlerFunc {
	return func(c echo.Context) error {
		if authenticate == nil {
			return errors.New("httpapi: websocket handler has no authenticator")
		}
		r := c.Request()
		token, err := wsToken(r)
		if err != nil {
			return err
		}
		after, resume, err := parseAfter(r.URL.Query())
		if err != nil {
			return err
		}
		p, err := authenticate(token)
		if err != nil {
			return wsAuthError(err)
		}
		if p.UserID == "" {
			return fmt.Errorf("%w: the access token names no user", core.ErrUnauthenticated)
		}
		if !isWebSocketUpgrade(r) {
			c.Response().Header().Set("Upgrade", "websocket")
			return echo.NewHTTPError(http.StatusUpgradeRequired, "GET /ws must be a WebSocket upgrade request")
		}
		if err := checkHandshake(r); err != nil {
			return err
		}
		start, err := h.startingPoint(r.Context(), p.UserID, after, resume)
		if err != nil {
			return err
		}
		if !h.beginConn() {
			return echo.NewHTTPError(http.StatusServiceUnavailable)
		}
		defer h.wg.Done()

		conn, err := websocket.Accept(c.Response(), r, &websocket.AcceptOptions{
			InsecureSkipVerify: true, // any Origin: see above
			CompressionMode:    websocket.CompressionDisabled,
		})
		if err != nil {
			// Accept has answered the client itself (checkHandshake leaves it
			// only failures to take over the connection).
			h.log.DebugContext(r.Context(), "websocket handshake failed", slog.Any("error", err))
			return nil
		}
		h.serve(conn, p.UserID, p.SessionID, start)
		return nil
	}
}

// startingPoint is the id after which a new connection delivers: after,
// when the client resumes (410 gone when the log no longer holds what
// follows it), else the newest event of the user's stream.
func (h *Hub) startingPoint(ctx context.Context, userID string, after int64, resume bool) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, h.opts.WriteTimeout)
	defer cancel()
	if resume {
		if _, err := h.events.EventsAfter(ctx, userID, after, 1); err != nil {
			return 0, err
		}
		return after, nil
	}
	heads, err := h.events.Heads(ctx, []string{userID})
	if err != nil {
		return 0, err
	}
	return heads[userID], nil
}

// wsToken extracts the access token of a /ws request.
func wsToken(r *http.Request) (string, error) {
	if auth := r.Header.Get(echo.HeaderAuthorization); auth != "" {
		scheme, token, ok := strings.Cut(auth, " ")
		token = strings.TrimSpace(token)
		if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
			return "", fmt.Errorf("%w: Authorization must be \"Bearer <access_token>\"", core.ErrUnauthenticated)
		}
		return token, nil
	}
	if token := r.URL.Query().Get("access_token"); token != "" {
		return token, nil
	}
	return "", fmt.Errorf("%w: missing access token (Authorization header or access_token query parameter)", core.ErrUnauthenticated)
}

// wsAuthError maps a failure of authenticate: the answers more precise than
// 401 (store down, deactivated account) and core's own unauthenticated
// errors pass through; anything else becomes a plain 401 that reveals no
// detail.
func wsAuthError(err error) error {
	if errors.Is(err, ports.ErrStoreUnavailable) || errors.Is(err, core.ErrAccountDeactivated) ||
		errors.Is(err, core.ErrUnauthenticated) {
		return err
	}
	return fmt.Errorf("%w: invalid or expired access token", core.ErrUnauthenticated)
}

// checkHandshake checks what websocket.Accept would refuse with a plain-text
// answer, so that the client gets the JSON error envelope instead
// (docs/contract.md §13): the method, the version (13) and the key (16 bytes in base64).
func checkHandshake(r *http.Request) error {
	if r.Method != http.MethodGet {
		return echo.NewHTTPError(http.StatusMethodNotAllowed, "a WebSocket handshake must be a GET")
	}
	if v := r.Header.Get("Sec-WebSocket-Version"); v != "13" {
		return core.Invalid("Sec-WebSocket-Version", fmt.Sprintf("must be 13, got %q", v))
	}
	key := r.Header.Get("Sec-WebSocket-Key")
	if b, err := base64.StdEncoding.DecodeString(key); err != nil || len(b) != 16 {
		return core.Invalid("Sec-WebSocket-Key", "must be 16 bytes in base64")
	}
	return nil
}

// isWebSocketUpgrade reports whether r asks for a WebSocket upgrade.
func isWebSocketUpgrade(r *http.Request) bool {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		return false
	}
	for _, v := range r.Header.Values("Connection") {
		for token := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(token), "upgrade") {
				return true
			}
		}
	}
	return false
}

// beginConn counts a connection about to be served, unless the hub is not
// running (before Start it would get no events; after Stop it must close).
func (h *Hub) beginConn() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.started || h.stopped {
		return false
	}
	h.wg.Add(1)
	return true
}

// register adds c under its user, unless the hub stopped meanwhile.
func (h *Hub) register(c *wsClient) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped {
		return false
	}
	set := h.conns[c.userID]
	if set == nil {
		set = make(map[*wsClient]struct{})
		h.conns[c.userID] = set
	}
	set[c] = struct{}{}
	if h.connections != nil {
		h.connections.Inc()
	}
	return true
}

func (h *Hub) unregister(c *wsClient) {
	h.mu.Lock()
	defer h.mu.Unlock()
	set := h.conns[c.userID]
	if _, ok := set[c]; !ok {
		return
	}
	delete(set, c)
	if len(set) == 0 {
		delete(h.conns, c.userID)
		delete(h.recent, c.userID)
	}
	if h.connections != nil {
		h.connections.Dec()
	}
}

// presenceChanged tells the presence (if any) that a connection of userID
// opened or closed. A failure is logged: the presence heals by itself (see
// ports.Presence), and a connection never fails because of it.
func (h *Hub) presenceChanged(userID string, opened bool) {
	p := h.opts.Presence
	if p == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), presenceTimeout)
	defer cancel()
	call, what := p.Disconnected, "disconnected"
	if opened {
		call, what = p.Connected, "connected"
	}
	if err := call(ctx, userID); err != nil {
		h.log.Debug("recording websocket presence failed", slog.String("change", what),
			slog.String("user_id", userID), slog.Any("error", err))
	}
}

// serve runs one accepted connection, delivering the events after start,
// until it closes.
func (h *Hub) serve(conn *websocket.Conn, userID, sessionID string, start int64) {
	conn.SetReadLimit(wsReadLimit)
	// life ends with serve; writeCtx also ends when a slow consumer is cut.
	life, endLife := context.WithCancel(context.Background())
	defer endLife()
	writeCtx, cutWrite := context.WithCancel(life)
	defer cutWrite()

	c := &wsClient{
		userID:    userID,
		sessionID: sessionID,
		conn:      conn,
		wake:      make(chan struct{}, 1),
		closing:   make(chan struct{}),
		cutWrite:  cutWrite,
		kill:      endLife,
	}
	c.last.Store(start)
	if !h.register(c) {
		h.closeConn(conn, websocket.StatusGoingAway, "server shutting down")
		return
	}
	h.presenceChanged(userID, true)
	// What was logged between the starting point and the registration (or,
	// on a resume, since the client's id) comes from the log.
	c.check.Store(true)
	c.signal()

	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		h.readLoop(life, conn)
	}()
	pingerDone := make(chan struct{})
	go func() {
		defer close(pingerDone)
		h.pingLoop(life, conn)
	}()

	h.writeLoop(writeCtx, c, readerDone)
	// The connection is closed: forget it.
	c.requestClose(websocket.StatusNormalClosure, "", false)
	h.unregister(c)
	h.presenceChanged(userID, false)
	endLife() // stop the pinger (and the reader, if still reading)
	<-readerDone
	<-pingerDone
}

// writeLoop sends the user's events when woken, until the connection ends
// or a close is requested.
func (h *Hub) writeLoop(ctx context.Context, c *wsClient, readerDone <-chan struct{}) {
	for {
		select {
		case <-c.closing:
			h.closeConn(c.conn, c.code, c.reason)
			return
		case <-readerDone:
			// The peer closed the connection, or it broke.
			_ = c.conn.CloseNow()
			return
		case <-c.wake:
			err := h.pump(ctx, c)
			switch {
			case err == nil:
			case errors.Is(err, ports.ErrEventsGone):
				// Fell behind the retention: the client must reload.
				c.requestClose(websocket.StatusPolicyViolation, "events gone; reload", false)
			default:
				// A failed write leaves the connection unusable (the library closes it).
				h.log.Debug("websocket write failed", slog.String("user_id", c.userID), slog.Any("error", err))
				_ = c.conn.CloseNow()
				return
			}
		}
	}
}

// pump sends every event after c.last that the buffer or, when needed, the
// log holds, in order. It returns a write error, or ports.ErrEventsGone.
func (h *Hub) pump(ctx context.Context, c *wsClient) error {
	for {
		select {
		case <-c.closing:
			return nil
		default:
		}
		last := c.last.Load()
		h.mu.RLock()
		evs := h.recent[c.userID].after(last)
		h.mu.RUnlock()
		// A gap in the buffer (the bus brought later events but not last+1)
		// is left to the bus, which usually brings the missing event a
		// moment later, and otherwise to the next poll, which reads what
		// every connection behind lacks in one statement. Reading the log
		// here, per connection, made every connection of a user whose events
		// come from both instances read the log on each of them while
		// Valkey was down (about 145 statements a second in the chaos run).
		if len(evs) == 0 {
			if !c.check.Swap(false) {
				return nil
			}
			var err error
			if evs, err = h.readLog(ctx, c, last); err != nil {
				return err
			}
			if len(evs) == 0 {
				return nil
			}
		}
		for _, e := range evs {
			if e.Seq != c.last.Load()+1 {
				c.check.Store(true)
				break
			}
			wctx, cancel := context.WithTimeout(ctx, h.opts.WriteTimeout)
			err := c.conn.Write(wctx, websocket.MessageText, e.Frame())
			cancel()
			if err != nil {
				return err
			}
			c.last.Store(e.Seq)
		}
	}
}

// readLog reads the events after last from the log. A read that fails for
// another reason than ErrEventsGone is logged and retried at the next poll.
func (h *Hub) readLog(ctx context.Context, c *wsClient, last int64) ([]ports.LoggedEvent, error) {
	if h.logReads != nil {
		h.logReads.Inc()
	}
	rctx, cancel := context.WithTimeout(ctx, h.opts.WriteTimeout)
	defer cancel()
	evs, err := h.events.EventsAfter(rctx, c.userID, last, replayPage)
	if errors.Is(err, ports.ErrEventsGone) {
		return nil, err
	}
	if err != nil {
		if ctx.Err() == nil {
			h.log.Warn("reading the event log failed; retried at the next poll", slog.String("user_id", c.userID), slog.Any("error", err))
		}
		c.check.Store(true)
		return nil, nil
	}
	if len(evs) == replayPage {
		c.check.Store(true) // more to read
	}
	return evs, nil
}

// readLoop reads and drops the client's messages, which makes the library
// answer pings and handle pongs and the close handshake, until the connection ends.
func (h *Hub) readLoop(ctx context.Context, conn *websocket.Conn) {
	for {
		if _, _, err := conn.Read(ctx); err != nil {
			return
		}
	}
}

// pingLoop pings every PingInterval and cuts the connection when a pong does
// not come within WriteTimeout.
func (h *Hub) pingLoop(ctx context.Context, conn *websocket.Conn) {
	t := time.NewTicker(h.opts.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, h.opts.WriteTimeout)
		err := conn.Ping(pctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				h.log.Debug("websocket ping failed; closing", slog.Any("error", err))
			}
			_ = conn.CloseNow()
			return
		}
	}
}

// closeConn closes conn with a close handshake (bounded by the library to a
// few seconds for a peer that does not answer).
func (h *Hub) closeConn(conn *websocket.Conn, code websocket.StatusCode, reason string) {
	if err := conn.Close(code, reason); err != nil {
		h.log.Debug("websocket close", slog.Int("code", int(code)), slog.Any("error", err))
	}
}
