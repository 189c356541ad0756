package loadgen

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"
)

// The invariants the Checker watches.
const (
	// InvariantMirror (a): the Valkey mirror matches the Postgres truth
	// (online mitras, their load and capacity, the deactivated set) within
	// one reseed cycle.
	InvariantMirror = "mirror_matches_store"
	// InvariantCapacity (b): no mitra ever held more open sessions
	// (pending_payment or active) than its capacity.
	InvariantCapacity = "capacity_respected"
	// InvariantOneWarning (c): no session got two session_warning events.
	InvariantOneWarning = "one_warning_per_session"
	// InvariantEndedOnce (d): every session ends exactly once (one
	// session_ended per connection) and every session whose expires_at passed
	// ended as expired, on time.
	InvariantEndedOnce = "sessions_end_once_and_on_time"
	// InvariantDeactivated (e): no deactivated mitra is offered a session.
	InvariantDeactivated = "no_offer_to_deactivated"
	// InvariantAway: no mitra is offered a session while it is away (docs/contract.md §12).
	InvariantAway = "no_offer_to_away"
	// InvariantDeclined: no mitra is offered a session again after declining it (docs/contract.md §11).
	InvariantDeclined = "no_offer_after_decline"
	// InvariantNoLoss: each user's events arrive once each, in event_id
	// order, none skipped, across reconnections that resume with ?after=
	// (docs/contract.md §13).
	InvariantNoLoss = "events_once_in_order_none_lost"
)

// Invariants lists every invariant, in the order of the brief.
var Invariants = []string{InvariantMirror, InvariantCapacity, InvariantOneWarning, InvariantEndedOnce, InvariantDeactivated,
	InvariantAway, InvariantDeclined, InvariantNoLoss, InvariantFIFO, InvariantQueueLoss}

// Sources of a violation.
const (
	SourcePostgres  = "postgres"
	SourceValkey    = "valkey"
	SourceWebSocket = "websocket"
	SourceHTTP      = "http"
)

// Violation is one broken invariant.
type Violation struct {
	Invariant string    `json:"invariant"`
	Kind      string    `json:"kind"`
	Subject   string    `json:"subject"` // a mitra or session id
	Source    string    `json:"source"`
	Detail    string    `json:"detail"`
	At        time.Time `json:"at"`
}

func (v Violation) key() string { return v.Invariant + "|" + v.Kind + "|" + v.Subject }

// MitraRecord is a mitra as Postgres holds it, with its open sessions
// (pending_payment or active) counted.
type MitraRecord struct {
	ID       string
	IsActive bool
	IsOnline bool
	IsAway   bool
	Capacity int
	Open     int
}

// SessionRecord is a chat session as Postgres holds it (or as its final
// view shows it; SearchingSince and OfferedMitraIDs are then unknown).
type SessionRecord struct {
	ID              string
	Status          string
	CustomerID      string
	MitraID         string // "" when none
	EndReason       string // "" when none
	CreatedAt       time.Time
	SearchingSince  time.Time
	ExpiresAt       *time.Time
	EndedAt         *time.Time
	OfferedMitraIDs []string
}

// RecordOf converts a session view into a SessionRecord.
func RecordOf(v SessionView) SessionRecord {
	r := SessionRecord{
		ID: v.ID, Status: string(v.Status), CustomerID: v.CustomerID,
		CreatedAt: v.CreatedAt, ExpiresAt: v.ExpiresAt, EndedAt: v.EndedAt,
	}
	if v.MitraID != nil {
		r.MitraID = *v.MitraID
	}
	if v.EndReason != nil {
		r.EndReason = string(*v.EndReason)
	}
	return r
}

// StoreReader reads the truth from Postgres. PostgresReader implements it;
// tests hand in crafted data.
type StoreReader interface {
	// Mitras returns every mitra with its open-session count.
	Mitras(ctx context.Context) ([]MitraRecord, error)
	// OpenSessions returns the sessions in searching, pending_payment or active.
	OpenSessions(ctx context.Context) ([]SessionRecord, error)
	// Sessions returns the sessions created at or after since.
	Sessions(ctx context.Context, since time.Time) ([]SessionRecord, error)
}

// MirrorEntry is one online mitra of the mirror.
type MirrorEntry struct {
	Open      int
	Capacity  int
	Heartbeat time.Time
}

// MirrorState is the content of the availability mirror (docs/valkey-keys.md).
type MirrorState struct {
	Seeded      bool
	Free        map[string]MirrorEntry
	Full        map[string]MirrorEntry
	Deactivated map[string]bool
	Away        map[string]bool
}

// MirrorReader reads the availability mirror. ValkeyReader implements it.
type MirrorReader interface {
	MirrorState(ctx context.Context) (MirrorState, error)
}

// Kinds of mirror drift.
const (
	DriftNotSeeded          = "not_seeded"
	DriftMissingOnline      = "online_missing_from_mirror"
	DriftExtraOnline        = "offline_online_in_mirror"
	DriftLoad               = "load_differs"
	DriftCapacity           = "capacity_differs"
	DriftWrongSet           = "wrong_free_full_set"
	DriftAway               = "away"
	DriftInBothSets         = "in_free_and_full"
	DriftDeactivatedMissing = "deactivated_missing_from_mirror"
	DriftDeactivatedExtra   = "active_in_deactivated_set"
)

// Drift is one difference between the mirror and the store.
type Drift struct {
	Kind    string `json:"kind"`
	MitraID string `json:"mitra_id"`
	Detail  string `json:"detail"`
}

func (d Drift) key() string { return d.Kind + "|" + d.MitraID }

// maxMirrorLoad is the largest load or capacity a mirror score holds
// (docs/valkey-keys.md): larger values are stored clamped.
const maxMirrorLoad = 127

func clampLoad(n int) int { return min(max(n, 0), maxMirrorLoad) }

// CompareMirror returns every difference between the mirror m and the
// store's mitras, sorted by mitra then kind. The heartbeat is not compared:
// the mirror legitimately holds later heartbeats than the store (they are
// written back in batches).
func CompareMirror(store []MitraRecord, m MirrorState) []Drift {
	if !m.Seeded {
		return []Drift{{Kind: DriftNotSeeded, Detail: "the mirror has no seeded marker"}}
	}
	var out []Drift
	known := make(map[string]bool, len(store))
	for _, r := range store {
		known[r.ID] = true
		free, inFree := m.Free[r.ID]
		full, inFull := m.Full[r.ID]
		if inFree && inFull {
			out = append(out, Drift{DriftInBothSets, r.ID, "in both the free and the full set"})
		}
		if !r.IsActive {
			if !m.Deactivated[r.ID] {
				out = append(out, Drift{DriftDeactivatedMissing, r.ID, "deactivated in the store, not in the deactivated set"})
			}
		} else if m.Deactivated[r.ID] {
			out = append(out, Drift{DriftDeactivatedExtra, r.ID, "active in the store, in the deactivated set"})
		}
		online := r.IsOnline && r.IsActive
		switch {
		case online && !inFree && !inFull:
			out = append(out, Drift{DriftMissingOnline, r.ID, fmt.Sprintf("online in the store (open %d, capacity %d), absent from the mirror", r.Open, r.Capacity)})
		case !online && (inFree || inFull):
			out = append(out, Drift{DriftExtraOnline, r.ID, fmt.Sprintf("online in the mirror, store has is_online=%t is_active=%t", r.IsOnline, r.IsActive)})
		case online:
			e, set := free, "free"
			if !inFree {
				e, set = full, "full"
			}
			if e.Open != clampLoad(r.Open) {
				out = append(out, Drift{DriftLoad, r.ID, fmt.Sprintf("open sessions: mirror %d, store %d", e.Open, r.Open)})
			}
			if e.Capacity != clampLoad(r.Capacity) {
				out = append(out, Drift{DriftCapacity, r.ID, fmt.Sprintf("capacity: mirror %d, store %d", e.Capacity, r.Capacity)})
			}
			if offerable := !r.IsAway && clampLoad(r.Open) < clampLoad(r.Capacity); offerable != (set == "free") {
				out = append(out, Drift{DriftWrongSet, r.ID, fmt.Sprintf("in the %s set with open %d, capacity %d, away %t in the store", set, r.Open, r.Capacity, r.IsAway)})
			}
			if m.Away[r.ID] != r.IsAway {
				out = append(out, Drift{DriftAway, r.ID, fmt.Sprintf("away: mirror %t, store %t", m.Away[r.ID], r.IsAway)})
			}
		}
	}
	for _, set := range []map[string]MirrorEntry{m.Free, m.Full} {
		for id := range set {
			if !known[id] {
				out = append(out, Drift{DriftExtraOnline, id, "online in the mirror, unknown to the store"})
			}
		}
	}
	for id := range m.Deactivated {
		if !known[id] {
			out = append(out, Drift{DriftDeactivatedExtra, id, "in the deactivated set, unknown to the store"})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].MitraID != out[j].MitraID {
			return out[i].MitraID < out[j].MitraID
		}
		return out[i].Kind < out[j].Kind
	})
	return slices.CompactFunc(out, func(a, b Drift) bool { return a.key() == b.key() })
}

// Defaults of CheckerConfig.
const (
	DefaultGrace           = 5 * time.Second
	DefaultQueueGrace      = 500 * time.Millisecond
	DefaultReseedInterval  = 300 * time.Second
	DefaultHoldTolerance   = time.Second
	DefaultRegistrationLag = time.Second
	mirrorRecheckEvery     = time.Second
)

// CheckerConfig configures a Checker. Zero durations take the defaults.
type CheckerConfig struct {
	// Store reads Postgres; nil skips the store checks.
	Store StoreReader
	// Mirror reads the Valkey mirror; nil (or a nil Store) skips invariant (a).
	Mirror MirrorReader
	// Since: sessions created before it are not checked by (d) and (e).
	Since time.Time
	// Grace is the slack of every timing check: how late a timer may fire,
	// how long an event may take to arrive, how long a write takes to reach
	// every reader. Default DefaultGrace.
	Grace time.Duration
	// ReseedInterval is the servers' VALKEY_ONLINE_MIRROR_SWEEP_SECONDS: a
	// mirror drift older than ReseedInterval+Grace is a violation. Default
	// DefaultReseedInterval.
	ReseedInterval time.Duration
	// MirrorFinalWait bounds how long Final re-checks a drift that is still
	// there; negative: no re-check. Default ReseedInterval+Grace, so that a
	// drift still present when Final returns is a violation.
	MirrorFinalWait time.Duration
	// HoldTolerance shortens every observed hold of a session by a mitra
	// before holds are compared, to absorb clock reads that precede the
	// commit they belong to. Default DefaultHoldTolerance.
	HoldTolerance time.Duration
	// RegistrationLag is how long after the handshake a WebSocket connection
	// may take to receive events. Default DefaultRegistrationLag.
	RegistrationLag time.Duration
	// Now is the clock (time.Now when nil). The observations' times and the
	// stores' timestamps must come from comparable clocks (one host).
	Now func() time.Time
	// QueueTimeout and PairingTimeout are the servers' QUEUE_TIMEOUT_SECONDS
	// and PAIRING_TIMEOUT_SECONDS: a queued session still searching longer
	// than both and the grace after it was queued is lost. QueueTimeout 0
	// skips that age check.
	QueueTimeout   time.Duration
	PairingTimeout time.Duration
	// QueueGrace is the slack of the FIFO check: two queued sessions are
	// compared only when queued more than this apart, and an offer counts as
	// before another only when more than this earlier (a request's time and
	// its place in the queue differ by its wait for the queue's lock).
	// Default DefaultQueueGrace.
	QueueGrace time.Duration
}

// CheckStats are counts of what the checker looked at.
type CheckStats struct {
	Passes              int     `json:"passes"`
	StoreErrors         int     `json:"store_errors"`
	MirrorErrors        int     `json:"mirror_errors"`
	MirrorComparisons   int     `json:"mirror_comparisons"`
	MirrorDriftSeen     int     `json:"mirror_drift_seen"`
	MirrorDriftResolved int     `json:"mirror_drift_resolved"`
	UnresolvedDrift     []Drift `json:"unresolved_drift"`
	Connections         int     `json:"ws_connections"`
	OffersSeen          int     `json:"offers_seen"`
	OffersToDeactivated int     `json:"offers_to_deactivated_in_grace"`
	// OffersLate counts the offers that reached a mitra more than Grace
	// after the server made them (at); OfferLagMax is the longest such lag.
	OffersLate     int     `json:"offers_late"`
	OfferLagMax    float64 `json:"offer_lag_max_ms"`
	WarningsSeen   int     `json:"warnings_seen"`
	EndedSeen      int     `json:"ended_seen"`
	EndedDelivered int     `json:"ended_delivery_verified"`
	HoldsObserved  int     `json:"holds_observed"`
	// Events counts the frames with an event_id; EventsLost the ids a
	// user's stream skipped (across its reconnections, which resume with
	// ?after=), EventsDuplicated the ids that came again; StreamRestarts the
	// resumes refused with 410 gone (the stream starts afresh, nothing is
	// counted lost across it).
	Events           int `json:"events_received"`
	EventsLost       int `json:"events_lost"`
	EventsDuplicated int `json:"events_duplicated"`
	StreamRestarts   int `json:"stream_restarts"`
	// FramesWithoutEventID counts the frames that carried no event_id.
	FramesWithoutEventID int `json:"frames_without_event_id"`
	MitraViewsChecked    int `json:"mitra_views_checked"`
	SessionsChecked      int `json:"sessions_checked"`
	Deactivations        int `json:"deactivations"`
	Aways                int `json:"aways"`
	Declines             int `json:"declines"`
}

// Result is the outcome of Final.
type Result struct {
	Violations []Violation `json:"violations"`
	Stats      CheckStats  `json:"stats"`
	Queue      QueueStats  `json:"queue"`
}

// Checker watches the invariants of the service during and after a run.
//
// It learns from observations that the run feeds it (WebSocket connections
// and frames, session and mitra views from HTTP answers, deactivations) and,
// when given, from Postgres and the Valkey mirror, which Sample reads during
// the run and Final after it. Every method is safe for concurrent use.
type Checker struct {
	cfg CheckerConfig

	mu          sync.Mutex
	nextConn    int64
	conns       map[int64]*connInfo
	connsByUser map[string][]int64
	frames      map[frameKey][]frameSeen
	deactivated map[string]time.Time
	away        map[string]time.Time    // mitra → when its away answered
	declined    map[[2]string]time.Time // {mitra, session} → when the decline answered
	holds       map[holdKey]*hold
	capacity    map[string]int
	finalViews  map[string]SessionView
	checked     map[string]bool // sessions checked against (d) and (e)
	drift       map[string]driftSeen
	streams     map[string]*streamSeen
	violations  []Violation
	seen        map[string]bool
	stats       CheckStats
	queue       map[string]*queuedSession // Queued
	queueStats  QueueStats
}

type connInfo struct {
	user   string
	role   string
	opened time.Time
	closed time.Time // zero while open
}

type frameKey struct{ user, session, typ string }

// streamSeen is what the checker saw of one user's event stream: the id of
// the last event (0 before the first, or after a restart).
type streamSeen struct{ last int64 }

type frameSeen struct {
	conn int64
	at   time.Time
}

type holdKey struct{ mitra, session string }

// hold is the span over which a mitra certainly held a session.
type hold struct{ start, last time.Time }

type driftSeen struct {
	first time.Time
	drift Drift
}

// NewChecker returns a checker.
func NewChecker(cfg CheckerConfig) (*Checker, error) {
	if cfg.Grace < 0 || cfg.ReseedInterval < 0 || cfg.HoldTolerance < 0 || cfg.RegistrationLag < 0 {
		return nil, errors.New("loadgen: checker durations must not be negative")
	}
	if cfg.Grace == 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.QueueGrace <= 0 {
		cfg.QueueGrace = DefaultQueueGrace
	}
	if cfg.ReseedInterval == 0 {
		cfg.ReseedInterval = DefaultReseedInterval
	}
	if cfg.MirrorFinalWait == 0 {
		cfg.MirrorFinalWait = cfg.ReseedInterval + cfg.Grace
	}
	if cfg.HoldTolerance == 0 {
		cfg.HoldTolerance = DefaultHoldTolerance
	}
	if cfg.RegistrationLag == 0 {
		cfg.RegistrationLag = DefaultRegistrationLag
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Checker{
		cfg:         cfg,
		conns:       make(map[int64]*connInfo),
		connsByUser: make(map[string][]int64),
		frames:      make(map[frameKey][]frameSeen),
		streams:     make(map[string]*streamSeen),
		deactivated: make(map[string]time.Time),
		away:        make(map[string]time.Time),
		declined:    make(map[[2]string]time.Time),
		holds:       make(map[holdKey]*hold),
		capacity:    make(map[string]int),
		finalViews:  make(map[string]SessionView),
		checked:     make(map[string]bool),
		drift:       make(map[string]driftSeen),
		seen:        make(map[string]bool),
	}, nil
}

// violate records v unless the same invariant, kind and subject was already
// recorded. c.mu must be held.
func (c *Checker) violate(v Violation) {
	if c.seen[v.key()] {
		return
	}
	c.seen[v.key()] = true
	if v.At.IsZero() {
		v.At = c.cfg.Now()
	}
	c.violations = append(c.violations, v)
}

// Violations returns the violations recorded so far.
func (c *Checker) Violations() []Violation {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.violations)
}

// ConnOpened records a WebSocket connection of user (role "customer" or
// "mitra") whose handshake completed at at, and returns its id.
func (c *Checker) ConnOpened(user, role string, at time.Time) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nextConn++
	id := c.nextConn
	c.conns[id] = &connInfo{user: user, role: role, opened: at}
	c.connsByUser[user] = append(c.connsByUser[user], id)
	c.stats.Connections++
	return id
}

// ConnClosed records that connection id ended at at.
func (c *Checker) ConnClosed(id int64, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ci := c.conns[id]; ci != nil && ci.closed.IsZero() {
		ci.closed = at
	}
}

// Deactivated records that mitra was deactivated; at is when the PATCH
// answered. Offers that reach it more than Grace later are violations.
func (c *Checker) Deactivated(mitra string, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.deactivated[mitra]; !ok {
		c.deactivated[mitra] = at
		c.stats.Deactivations++
	}
}

// Away records that mitra went away; at is when POST …/away answered.
// Offers that reach it more than Grace later, until Back, are violations.
func (c *Checker) Away(mitra string, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.away[mitra] = at
	c.stats.Aways++
}

// Back records that mitra is about to leave away (called before the request
// that takes it online or offline is sent).
func (c *Checker) Back(mitra string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.away, mitra)
}

// Declined records that mitra declined session; at is when the decline
// answered. Any later offer of that session to it (beyond Grace) is a violation.
func (c *Checker) Declined(mitra, session string, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.declined[[2]string{mitra, session}]; !ok {
		c.declined[[2]string{mitra, session}] = at
		c.stats.Declines++
	}
}

// Reactivated forgets a deactivation (offers to the mitra are fine again).
func (c *Checker) Reactivated(mitra string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.deactivated, mitra)
}

// Frame records a frame received at at on connection conn.
func (c *Checker) Frame(conn int64, f Frame, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ci := c.conns[conn]
	if ci == nil {
		return
	}
	c.streamFrame(ci, f, at)
	c.queueFrameLocked(f, at)
	switch f.Type {
	case EventSessionOffer:
		c.stats.OffersSeen++
		// An offer is judged by when the server made it (the frame's at),
		// not when it arrived: one made before the mitra went away or
		// declined, delivered late, is a late delivery (counted), not an
		// offer to an away or declining mitra. Frames without at are
		// judged by their arrival.
		made := at
		if !f.At.IsZero() {
			made = f.At
			if lag := at.Sub(f.At); lag > c.cfg.Grace {
				c.stats.OffersLate++
				c.stats.OfferLagMax = max(c.stats.OfferLagMax, float64(lag)/float64(time.Millisecond))
			}
		}
		if d, ok := c.away[ci.user]; ok && made.Sub(d) > c.cfg.Grace {
			c.violate(Violation{
				Invariant: InvariantAway, Kind: "offer_received", Subject: ci.user, Source: SourceWebSocket, At: at,
				Detail: fmt.Sprintf("session_offer %s made %s after the mitra %s went away (received %s after)", f.SessionID,
					made.Sub(d).Round(time.Millisecond), ci.user, at.Sub(d).Round(time.Millisecond)),
			})
		}
		if d, ok := c.declined[[2]string{ci.user, f.SessionID}]; ok && made.Sub(d) > c.cfg.Grace {
			c.violate(Violation{
				Invariant: InvariantDeclined, Kind: "offer_received", Subject: ci.user, Source: SourceWebSocket, At: at,
				Detail: fmt.Sprintf("session_offer %s made %s after the mitra %s declined it (received %s after)", f.SessionID,
					made.Sub(d).Round(time.Millisecond), ci.user, at.Sub(d).Round(time.Millisecond)),
			})
		}
		if d, ok := c.deactivated[ci.user]; ok && at.After(d) {
			if at.Sub(d) > c.cfg.Grace {
				c.violate(Violation{
					Invariant: InvariantDeactivated, Kind: "offer_received", Subject: ci.user, Source: SourceWebSocket, At: at,
					Detail: fmt.Sprintf("session_offer %s reached the mitra %s after its deactivation", f.SessionID, at.Sub(d).Round(time.Millisecond)),
				})
			} else {
				c.stats.OffersToDeactivated++ // in flight when it was deactivated
			}
		}
	case EventSessionWarning:
		c.stats.WarningsSeen++
		c.once(ci, conn, f, at, InvariantOneWarning, "second_warning")
	case EventSessionEnded:
		c.stats.EndedSeen++
		c.once(ci, conn, f, at, InvariantEndedOnce, "second_session_ended")
	case EventSessionUpdate:
		if f.Session != nil {
			c.observeSession(*f.Session)
		}
	}
}

// streamFrame checks the frame's event_id against the user's stream: each
// id exactly once, in order, none skipped. The stream of a user is followed
// across its connections one after another (the load generator holds one
// at a time and resumes with ?after=). A frame without an event_id is
// counted (FramesWithoutEventID), and a run with any fails. c.mu must be held.
func (c *Checker) streamFrame(ci *connInfo, f Frame, at time.Time) {
	if f.EventID == "" {
		c.stats.FramesWithoutEventID++
		return
	}
	n, err := strconv.ParseInt(f.EventID, 10, 64)
	if err != nil || n <= 0 {
		c.violate(Violation{Invariant: InvariantNoLoss, Kind: "malformed_event_id", Subject: ci.user, Source: SourceWebSocket, At: at,
			Detail: fmt.Sprintf("event_id %q", f.EventID)})
		return
	}
	c.stats.Events++
	s := c.streams[ci.user]
	if s == nil {
		s = &streamSeen{}
		c.streams[ci.user] = s
	}
	switch {
	case s.last == 0: // the first event of the stream: it starts here
	case n <= s.last:
		c.stats.EventsDuplicated++
		c.violate(Violation{Invariant: InvariantNoLoss, Kind: "event_duplicated", Subject: ci.user, Source: SourceWebSocket, At: at,
			Detail: fmt.Sprintf("%s event_id %d came again (last was %d)", f.Type, n, s.last)})
		return
	case n > s.last+1:
		c.stats.EventsLost += int(n - s.last - 1)
		c.violate(Violation{Invariant: InvariantNoLoss, Kind: "events_lost", Subject: ci.user, Source: SourceWebSocket, At: at,
			Detail: fmt.Sprintf("event_id %d followed %d: %d events never arrived", n, s.last, n-s.last-1)})
	}
	s.last = n
}

// StreamRestarted records that user's resume was refused with 410 gone: its
// next event starts a new stream.
func (c *Checker) StreamRestarted(user string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stats.StreamRestarts++
	delete(c.streams, user)
}

// EventCounts are the counters of the event streams, for per-phase figures.
func (c *Checker) EventCounts() (received, lost, duplicated int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats.Events, c.stats.EventsLost, c.stats.EventsDuplicated
}

// once records a frame that must reach each user at most once per session,
// and records a violation when it came twice: twice on one connection, or
// on a connection opened after the first one arrived (so that it was a
// second event, not one event delivered to two open connections).
func (c *Checker) once(ci *connInfo, conn int64, f Frame, at time.Time, invariant, kind string) {
	k := frameKey{ci.user, f.SessionID, f.Type}
	prev := c.frames[k]
	c.frames[k] = append(prev, frameSeen{conn, at})
	for _, p := range prev {
		if p.conn == conn || ci.opened.After(p.at) {
			c.violate(Violation{
				Invariant: invariant, Kind: kind, Subject: f.SessionID, Source: SourceWebSocket, At: at,
				Detail: fmt.Sprintf("%s reached %s %s %d times (first %s, again %s later)", f.Type, ci.role, ci.user,
					len(prev)+1, p.at.UTC().Format(time.RFC3339Nano), at.Sub(p.at).Round(time.Millisecond)),
			})
			return
		}
	}
}

// SessionView records a session view from an HTTP answer.
func (c *Checker) SessionView(v SessionView) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.observeSession(v)
	c.queueViewLocked(v)
}

// observeSession extends the known hold of v's mitra over v. A view of a
// held session proves the mitra held it from accepted_at until the moment
// the view was made: started_at for an active one, and for an active one
// with time left, expires_at − remaining_seconds (floored by the server,
// hence the extra second). c.mu must be held.
func (c *Checker) observeSession(v SessionView) {
	if !Held(v) || v.AcceptedAt == nil {
		return
	}
	last := *v.AcceptedAt
	if string(v.Status) == StatusActive {
		if v.StartedAt != nil && v.StartedAt.After(last) {
			last = *v.StartedAt
		}
		if v.ExpiresAt != nil && v.RemainingSeconds > 0 {
			if t := v.ExpiresAt.Add(-time.Duration(v.RemainingSeconds+1) * time.Second); t.After(last) {
				last = t
			}
		}
	}
	k := holdKey{*v.MitraID, v.ID}
	h := c.holds[k]
	if h == nil {
		c.holds[k] = &hold{start: *v.AcceptedAt, last: last}
		c.stats.HoldsObserved++
		return
	}
	if v.AcceptedAt.Before(h.start) {
		h.start = *v.AcceptedAt
	}
	if last.After(h.last) {
		h.last = last
	}
}

// MitraView records a mitra view from an HTTP answer: its capacity, and a
// violation when it shows more open sessions than capacity.
func (c *Checker) MitraView(v MitraView) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stats.MitraViewsChecked++
	c.capacity[v.ID] = v.Capacity
	if v.ActiveSessions > v.Capacity {
		c.violate(Violation{
			Invariant: InvariantCapacity, Kind: "view_over_capacity", Subject: v.ID, Source: SourceHTTP,
			Detail: fmt.Sprintf("mitra view shows %d active sessions with capacity %d", v.ActiveSessions, v.Capacity),
		})
	}
}

// FinalViews records the last views of sessions (the customers' session
// lists after the run), for the checks of Final.
func (c *Checker) FinalViews(views []SessionView) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, v := range views {
		c.finalViews[v.ID] = v
		c.observeSession(v)
		c.queueViewLocked(v)
	}
}

// Sample runs one pass of the checks that read Postgres and Valkey: the
// mirror comparison (a), open sessions against capacity (b), active sessions
// past their expiry (d) and searches offered to deactivated mitras (e). Read
// errors are counted and returned; violations are recorded.
func (c *Checker) Sample(ctx context.Context) error {
	if c.cfg.Store == nil {
		c.mu.Lock()
		c.stats.Passes++
		c.mu.Unlock()
		return nil
	}
	var errs []error
	var ms MirrorState
	mirrorOK := false
	if c.cfg.Mirror != nil {
		var err error
		if ms, err = c.cfg.Mirror.MirrorState(ctx); err != nil {
			errs = append(errs, fmt.Errorf("reading the mirror: %w", err))
		} else {
			mirrorOK = true
		}
	}
	mitras, err := c.cfg.Store.Mitras(ctx)
	if err != nil {
		errs = append(errs, fmt.Errorf("reading mitras: %w", err))
	}
	storeOK := err == nil
	open, err := c.cfg.Store.OpenSessions(ctx)
	if err != nil {
		errs = append(errs, fmt.Errorf("reading open sessions: %w", err))
	}
	openOK := err == nil
	now := c.cfg.Now()

	c.mu.Lock()
	defer c.mu.Unlock()
	c.stats.Passes++
	if c.cfg.Mirror != nil && !mirrorOK {
		c.stats.MirrorErrors++
		// A drift counts only while observed without a gap: what was seen
		// before the mirror became unreadable (an outage) starts over.
		clear(c.drift)
	}
	if !storeOK || !openOK {
		c.stats.StoreErrors++
	}
	if storeOK {
		c.checkMitras(mitras)
		if mirrorOK {
			c.trackDrift(now, CompareMirror(mitras, ms))
		}
	}
	if openOK {
		for _, r := range open {
			c.checkRecord(r, now, SourcePostgres)
		}
	}
	return errors.Join(errs...)
}

// checkMitras records capacities and the mitras over capacity. c.mu must be held.
func (c *Checker) checkMitras(mitras []MitraRecord) {
	for _, m := range mitras {
		c.capacity[m.ID] = m.Capacity
		if m.Open > m.Capacity {
			c.violate(Violation{
				Invariant: InvariantCapacity, Kind: "store_over_capacity", Subject: m.ID, Source: SourcePostgres,
				Detail: fmt.Sprintf("%d sessions pending_payment or active with capacity %d", m.Open, m.Capacity),
			})
		}
	}
}

// trackDrift ages the drift seen now, and records a violation for each one
// that lasted longer than a reseed cycle plus the grace. c.mu must be held.
func (c *Checker) trackDrift(now time.Time, drifts []Drift) {
	c.stats.MirrorComparisons++
	cur := make(map[string]Drift, len(drifts))
	for _, d := range drifts {
		cur[d.key()] = d
	}
	for k := range c.drift {
		if _, ok := cur[k]; !ok {
			delete(c.drift, k)
			c.stats.MirrorDriftResolved++
		}
	}
	limit := c.cfg.ReseedInterval + c.cfg.Grace
	for k, d := range cur {
		s, ok := c.drift[k]
		if !ok {
			c.drift[k] = driftSeen{first: now, drift: d}
			c.stats.MirrorDriftSeen++
			continue
		}
		s.drift = d
		c.drift[k] = s
		if age := now.Sub(s.first); age > limit {
			c.violate(Violation{
				Invariant: InvariantMirror, Kind: d.Kind, Subject: d.MitraID, Source: SourceValkey, At: now,
				Detail: fmt.Sprintf("%s, for %s (longer than a reseed cycle of %s plus %s)", d.Detail,
					age.Round(time.Second), c.cfg.ReseedInterval, c.cfg.Grace),
			})
		}
	}
}

// checkRecord checks one session against (d) and (e). c.mu must be held.
func (c *Checker) checkRecord(r SessionRecord, now time.Time, source string) {
	if r.CreatedAt.Before(c.cfg.Since) {
		return
	}
	if !c.checked[r.ID] {
		c.checked[r.ID] = true
		c.stats.SessionsChecked++
	}
	g := c.cfg.Grace
	if r.ExpiresAt != nil {
		exp := *r.ExpiresAt
		switch {
		case r.Status == StatusActive && now.After(exp.Add(g)):
			c.violate(Violation{
				Invariant: InvariantEndedOnce, Kind: "not_ended_at_expiry", Subject: r.ID, Source: source,
				Detail: fmt.Sprintf("still active %s after expires_at %s", now.Sub(exp).Round(time.Millisecond), exp.UTC().Format(time.RFC3339Nano)),
			})
		case r.EndedAt != nil && r.EndReason == EndReasonExpired && r.EndedAt.Before(exp):
			c.violate(Violation{
				Invariant: InvariantEndedOnce, Kind: "expired_early", Subject: r.ID, Source: source,
				Detail: fmt.Sprintf("ended as expired %s before expires_at", exp.Sub(*r.EndedAt).Round(time.Millisecond)),
			})
		case r.EndedAt != nil && r.EndedAt.After(exp.Add(g)):
			kind := "expired_late"
			if r.EndReason != EndReasonExpired {
				kind = "not_ended_as_expired"
			}
			c.violate(Violation{
				Invariant: InvariantEndedOnce, Kind: kind, Subject: r.ID, Source: source,
				Detail: fmt.Sprintf("ended %s after expires_at, end_reason %q", r.EndedAt.Sub(exp).Round(time.Millisecond), r.EndReason),
			})
		}
	}
	if r.SearchingSince.IsZero() {
		return
	}
	for _, m := range r.OfferedMitraIDs {
		d, ok := c.deactivated[m]
		if ok && r.SearchingSince.After(d.Add(g)) {
			c.violate(Violation{
				Invariant: InvariantDeactivated, Kind: "offered_in_store", Subject: m, Source: source,
				Detail: fmt.Sprintf("session %s searching since %s offered to the mitra deactivated at %s", r.ID,
					r.SearchingSince.UTC().Format(time.RFC3339Nano), d.UTC().Format(time.RFC3339Nano)),
			})
		}
	}
}

// Final runs the end-of-run checks and returns every violation with the
// statistics: one more Sample, every session of the run in Postgres and in
// the final views against (d) and (e), the delivery of one session_ended to
// each customer connection that was open across a session's end (d), the
// observed holds of each mitra against its capacity (b), and the mirror,
// re-checked for up to MirrorFinalWait while some drift remains (a).
func (c *Checker) Final(ctx context.Context) (Result, error) {
	var errs []error
	if err := c.Sample(ctx); err != nil {
		errs = append(errs, err)
	}
	var stored []SessionRecord
	if c.cfg.Store != nil {
		var err error
		if stored, err = c.cfg.Store.Sessions(ctx, c.cfg.Since); err != nil {
			errs = append(errs, fmt.Errorf("reading sessions: %w", err))
		}
	}
	now := c.cfg.Now()

	c.mu.Lock()
	records := make(map[string]SessionRecord, len(stored)+len(c.finalViews))
	for _, v := range c.finalViews {
		records[v.ID] = RecordOf(v)
	}
	for _, r := range stored {
		c.checkRecord(r, now, SourcePostgres)
		records[r.ID] = r // the store's record wins
	}
	for _, v := range c.finalViews {
		c.checkRecord(RecordOf(v), now, SourceHTTP)
	}
	c.checkDelivery(records, now)
	c.checkHolds()
	c.checkQueueLocked(now)
	c.mu.Unlock()

	if err := c.settleMirror(ctx); err != nil {
		errs = append(errs, err)
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	res := Result{Violations: slices.Clone(c.violations), Stats: c.stats, Queue: c.queueStats}
	res.Stats.UnresolvedDrift = []Drift{}
	for _, s := range c.drift {
		res.Stats.UnresolvedDrift = append(res.Stats.UnresolvedDrift, s.drift)
	}
	sort.Slice(res.Stats.UnresolvedDrift, func(i, j int) bool {
		return res.Stats.UnresolvedDrift[i].key() < res.Stats.UnresolvedDrift[j].key()
	})
	if res.Violations == nil {
		res.Violations = []Violation{}
	}
	return res, errors.Join(errs...)
}

// settleMirror re-compares the mirror while drift remains, up to MirrorFinalWait.
func (c *Checker) settleMirror(ctx context.Context) error {
	if c.cfg.Store == nil || c.cfg.Mirror == nil || c.cfg.MirrorFinalWait < 0 {
		return nil
	}
	deadline := time.Now().Add(c.cfg.MirrorFinalWait)
	for {
		c.mu.Lock()
		pending := len(c.drift)
		c.mu.Unlock()
		if pending == 0 || !time.Now().Before(deadline) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(mirrorRecheckEvery, time.Until(deadline))):
		}
		ms, err := c.cfg.Mirror.MirrorState(ctx)
		if err != nil {
			c.mu.Lock()
			c.stats.MirrorErrors++
			c.mu.Unlock()
			continue
		}
		mitras, err := c.cfg.Store.Mitras(ctx)
		if err != nil {
			c.mu.Lock()
			c.stats.StoreErrors++
			c.mu.Unlock()
			continue
		}
		now := c.cfg.Now()
		c.mu.Lock()
		c.trackDrift(now, CompareMirror(mitras, ms))
		c.mu.Unlock()
	}
}

// checkDelivery verifies that each session that ended while one of its
// customer's connections was open across the end (and for Grace after it)
// got its session_ended on that connection. c.mu must be held.
func (c *Checker) checkDelivery(records map[string]SessionRecord, now time.Time) {
	for _, r := range records {
		if r.EndedAt == nil || r.CustomerID == "" || r.CreatedAt.Before(c.cfg.Since) {
			continue
		}
		end := *r.EndedAt
		if now.Before(end.Add(c.cfg.Grace)) {
			continue // may still be on its way
		}
		var covering []int64
		for _, id := range c.connsByUser[r.CustomerID] {
			ci := c.conns[id]
			if ci.opened.Add(c.cfg.RegistrationLag).After(end) {
				continue
			}
			if !ci.closed.IsZero() && ci.closed.Before(end.Add(c.cfg.Grace)) {
				continue
			}
			covering = append(covering, id)
		}
		if len(covering) == 0 {
			continue
		}
		got := c.frames[frameKey{r.CustomerID, r.ID, EventSessionEnded}]
		for _, id := range covering {
			// A connection that dropped hands over to the next one, which
			// resumes with ?after=: the event counts for the user.
			delivered := slices.ContainsFunc(got, func(f frameSeen) bool { return f.conn == id }) || len(got) > 0
			if delivered {
				c.stats.EndedDelivered++
				continue
			}
			c.violate(Violation{
				Invariant: InvariantEndedOnce, Kind: "session_ended_not_delivered", Subject: r.ID, Source: SourceWebSocket, At: now,
				Detail: fmt.Sprintf("ended at %s (%s), the customer's connection was open, no session_ended arrived",
					end.UTC().Format(time.RFC3339Nano), r.Status+"/"+r.EndReason),
			})
		}
	}
}

// checkHolds verifies that no mitra certainly held more sessions at once
// than its capacity, from the holds observed in views. c.mu must be held.
func (c *Checker) checkHolds() {
	type edge struct {
		at      time.Time
		delta   int
		session string
	}
	byMitra := make(map[string][]edge)
	for k, h := range c.holds {
		start := h.start.Add(c.cfg.HoldTolerance)
		if !h.last.After(start) {
			continue
		}
		byMitra[k.mitra] = append(byMitra[k.mitra], edge{start, +1, k.session}, edge{h.last, -1, k.session})
	}
	for mitra, edges := range byMitra {
		capacity, ok := c.capacity[mitra]
		if !ok {
			continue
		}
		// Ends sort before starts at the same instant: touching holds do not overlap.
		sort.Slice(edges, func(i, j int) bool {
			if !edges[i].at.Equal(edges[j].at) {
				return edges[i].at.Before(edges[j].at)
			}
			return edges[i].delta < edges[j].delta
		})
		open := map[string]bool{}
		for _, e := range edges {
			if e.delta < 0 {
				delete(open, e.session)
				continue
			}
			open[e.session] = true
			if len(open) > capacity {
				ids := make([]string, 0, len(open))
				for s := range open {
					ids = append(ids, s)
				}
				sort.Strings(ids)
				c.violate(Violation{
					Invariant: InvariantCapacity, Kind: "observed_over_capacity", Subject: mitra, Source: SourceHTTP, At: e.at,
					Detail: fmt.Sprintf("held %d sessions at once with capacity %d: %v", len(open), capacity, ids),
				})
				break
			}
		}
	}
}
