package loadgen

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"
)

// DefaultReservoirSize bounds the latency samples kept per route. Up to this
// many requests every latency is kept and the percentiles are exact; beyond
// it a uniform random sample of this size is kept (Vitter's algorithm R).
const DefaultReservoirSize = 100_000

// windowSampleSize bounds the latency samples of one progress interval.
const windowSampleSize = 20_000

// StatusTransportError is the status recorded for a request that got no HTTP
// answer (connection refused, reset, timeout).
const StatusTransportError = 0

// Percentile returns the p-th percentile (0 < p ≤ 100) of sorted, by the
// nearest-rank method: the smallest sample such that at least p percent of
// the samples are less than or equal to it. It returns 0 for no samples; p
// at or below 0 gives the minimum, above 100 the maximum.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(n)))
	rank = min(max(rank, 1), n)
	return sorted[rank-1]
}

// Reservoir keeps a bounded uniform sample of latencies. The zero value is
// not usable; call NewReservoir. It is not safe for concurrent use.
type Reservoir struct {
	size    int
	seen    int64
	samples []time.Duration
	rng     *rand.Rand
}

// NewReservoir returns a reservoir of at most size samples (at least 1).
func NewReservoir(size int) *Reservoir {
	size = max(size, 1)
	return &Reservoir{size: size, rng: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))}
}

// Add offers one latency to the sample.
func (r *Reservoir) Add(d time.Duration) {
	r.seen++
	if len(r.samples) < r.size {
		r.samples = append(r.samples, d)
		return
	}
	if j := r.rng.Int64N(r.seen); j < int64(r.size) {
		r.samples[j] = d
	}
}

// Seen is how many latencies were offered.
func (r *Reservoir) Seen() int64 { return r.seen }

// Sorted returns a sorted copy of the kept samples.
func (r *Reservoir) Sorted() []time.Duration {
	s := slices.Clone(r.samples)
	slices.Sort(s)
	return s
}

// Reset drops every sample.
func (r *Reservoir) Reset() {
	r.seen = 0
	r.samples = r.samples[:0]
}

// Latency summarises a latency distribution, in milliseconds.
type Latency struct {
	P50 float64 `json:"p50_ms"`
	P95 float64 `json:"p95_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

// SummariseLatency computes the Latency of sorted samples.
func SummariseLatency(sorted []time.Duration) Latency {
	if len(sorted) == 0 {
		return Latency{}
	}
	return Latency{
		P50: ms(Percentile(sorted, 50)),
		P95: ms(Percentile(sorted, 95)),
		P99: ms(Percentile(sorted, 99)),
		Max: ms(sorted[len(sorted)-1]),
	}
}

func ms(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Microsecond)) / 1000
}

// RouteStats are the figures of one route template.
type RouteStats struct {
	Method string `json:"method"`
	Route  string `json:"route"`
	Count  int64  `json:"count"`
	// ByStatus counts requests by HTTP status ("0" is a transport error).
	ByStatus map[string]int64 `json:"by_status"`
	// ByCode counts error answers by their error code.
	ByCode  map[string]int64 `json:"by_code,omitempty"`
	Latency Latency          `json:"latency"`
}

type routeKey struct{ method, route string }

type routeAgg struct {
	count    int64
	byStatus map[int]int64
	byCode   map[string]int64
	lat      *Reservoir
}

// Recorder collects the outcome of every request: counts by route template,
// status and error code, and latency samples per route. It is safe for
// concurrent use.
type Recorder struct {
	reservoir int

	mu         sync.Mutex
	routes     map[routeKey]*routeAgg
	total      int64
	status5xx  int64
	transport  int64
	all        *Reservoir // every route's latencies
	window     *Reservoir // latencies since the last Window call
	windowReqs int64
	window5xx  int64
	// trans holds the latencies of the session transitions that succeeded
	// (IsTransition, 2xx): the requests that write a session and its events
	// in one transaction and publish them.
	trans *Reservoir
}

// IsTransition reports whether a request of method to the route template is
// a session transition: a request, an accept, a decline, a payment, an
// extension, an end or a reroute (each a transaction that changes a session
// and, all but the decline, logs and publishes its events).
func IsTransition(method, route string) bool {
	if method != "POST" {
		return false
	}
	switch route {
	case routeSessions, routeAccept, routeDecline, routePay, routeExtend, routeEnd, routeReroute:
		return true
	}
	return false
}

// TransitionFigures are the latencies of the successful session transitions.
type TransitionFigures struct {
	Count   int64   `json:"count"`
	Latency Latency `json:"latency"`
}

// NewRecorder returns an empty recorder keeping at most reservoir latency
// samples per route (DefaultReservoirSize when not positive).
func NewRecorder(reservoir int) *Recorder {
	if reservoir <= 0 {
		reservoir = DefaultReservoirSize
	}
	return &Recorder{
		reservoir: reservoir,
		routes:    make(map[routeKey]*routeAgg),
		all:       NewReservoir(reservoir),
		window:    NewReservoir(windowSampleSize),
		trans:     NewReservoir(reservoir),
	}
}

// Record adds one request. status is the HTTP status, or
// StatusTransportError; code is the error envelope's code ("" when none).
func (r *Recorder) Record(method, route string, status int, code string, latency time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := routeKey{method, route}
	a := r.routes[k]
	if a == nil {
		a = &routeAgg{byStatus: make(map[int]int64), byCode: make(map[string]int64), lat: NewReservoir(r.reservoir)}
		r.routes[k] = a
	}
	a.count++
	a.byStatus[status]++
	if code != "" {
		a.byCode[code]++
	}
	r.total++
	r.windowReqs++
	switch {
	case status == StatusTransportError:
		r.transport++
	case status >= 500:
		r.status5xx++
		r.window5xx++
	}
	if status != StatusTransportError {
		a.lat.Add(latency)
		r.all.Add(latency)
		r.window.Add(latency)
	}
	if status/100 == 2 && IsTransition(method, route) {
		r.trans.Add(latency)
	}
}

// Transitions summarises the latency of the successful session transitions.
func (r *Recorder) Transitions() TransitionFigures {
	r.mu.Lock()
	defer r.mu.Unlock()
	return TransitionFigures{Count: r.trans.Seen(), Latency: SummariseLatency(r.trans.Sorted())}
}

// Totals returns the request count, the 5xx answers and the transport errors so far.
func (r *Recorder) Totals() (total, status5xx, transport int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total, r.status5xx, r.transport
}

// Overall summarises the latency of every answered request.
func (r *Recorder) Overall() Latency {
	r.mu.Lock()
	defer r.mu.Unlock()
	return SummariseLatency(r.all.Sorted())
}

// WindowStats are the figures of the requests since the previous Window call.
type WindowStats struct {
	Requests  int64
	Status5xx int64
	P95       time.Duration
}

// Window returns the figures since the previous call and starts a new window.
func (r *Recorder) Window() WindowStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := WindowStats{Requests: r.windowReqs, Status5xx: r.window5xx, P95: Percentile(r.window.Sorted(), 95)}
	r.windowReqs, r.window5xx = 0, 0
	r.window.Reset()
	return w
}

// Routes returns the figures of every route, sorted by route then method.
func (r *Recorder) Routes() []RouteStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]RouteStats, 0, len(r.routes))
	for k, a := range r.routes {
		rs := RouteStats{
			Method:   k.method,
			Route:    k.route,
			Count:    a.count,
			ByStatus: make(map[string]int64, len(a.byStatus)),
			Latency:  SummariseLatency(a.lat.Sorted()),
		}
		for st, n := range a.byStatus {
			rs.ByStatus[strconv.Itoa(st)] = n
		}
		if len(a.byCode) > 0 {
			rs.ByCode = make(map[string]int64, len(a.byCode))
			for c, n := range a.byCode {
				rs.ByCode[c] = n
			}
		}
		out = append(out, rs)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Route != out[j].Route {
			return out[i].Route < out[j].Route
		}
		return out[i].Method < out[j].Method
	})
	return out
}

// Counters is a set of named counters, safe for concurrent use.
type Counters struct {
	mu sync.Mutex
	m  map[string]int64
}

// Add adds n to the counter name.
func (c *Counters) Add(name string, n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]int64)
	}
	c.m[name] += n
}

// Inc adds one to the counter name.
func (c *Counters) Inc(name string) { c.Add(name, 1) }

// Get returns the counter name.
func (c *Counters) Get(name string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[name]
}

// Snapshot returns a copy of every counter.
func (c *Counters) Snapshot() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int64, len(c.m))
	for k, v := range c.m {
		out[k] = v
	}
	return out
}
