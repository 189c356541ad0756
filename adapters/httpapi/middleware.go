package httpapi

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/halobestie/mitra-availability/core/auth"
)

// routeUnmatched labels requests that matched no route, so that scanners
// probing random paths cannot grow the metrics without bound.
const routeUnmatched = "unmatched"

// headerRequestID is X-Request-ID in net/http's canonical form, the key of
// the header maps: looked up and set as is, it needs no canonicalizing (which
// allocates a copy of "X-Request-ID" on every call).
const headerRequestID = "X-Request-Id"

// headerValue is h.Get(key) for a key already in canonical form.
func headerValue(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// maxRequestIDLen bounds an X-Request-ID taken from a client.
const maxRequestIDLen = 128

// reqContext is the echo.Context every handler gets inside the stack: the
// request id and the authenticated principal live in it, where Echo's own
// store (c.Set) would allocate a map and box each value on every request.
// It is pooled: the stack takes one per request and returns it when the
// request is done (Echo pools its own context the same way, so nothing may
// keep either beyond the request).
type reqContext struct {
	echo.Context
	id        string
	principal auth.Principal
}

var reqContexts = sync.Pool{New: func() any { return new(reqContext) }}

// requestID returns the id of the request being served ("" outside the stack).
func requestID(c echo.Context) string {
	if rc, ok := c.(*reqContext); ok {
		return rc.id
	}
	return ""
}

// setPrincipal records the authenticated caller of the request.
func setPrincipal(c echo.Context, p auth.Principal) {
	if rc, ok := c.(*reqContext); ok {
		rc.principal = p
	}
}

// principal returns the authenticated caller (zero outside authenticate).
func principal(c echo.Context) auth.Principal {
	if rc, ok := c.(*reqContext); ok {
		return rc.principal
	}
	return auth.Principal{}
}

// requestIDs generates the ids of requests that bring no usable one: UUIDs
// of version 8 (RFC 9562, custom) made of random bits drawn once per process
// and a counter added to the last 48, so unique per request without reading
// randomness for each.
type requestIDs struct {
	base [16]byte
	n    atomic.Uint64
}

func newRequestIDs() *requestIDs {
	g := &requestIDs{}
	if _, err := rand.Read(g.base[:]); err != nil {
		panic(fmt.Sprintf("httpapi: reading randomness: %v", err)) // crypto/rand does not fail on Linux
	}
	return g
}

// next returns a fresh id: xxxxxxxx-xxxx-8xxx-yxxx-xxxxxxxxxxxx.
func (g *requestIDs) next() string {
	u := g.base
	n := g.n.Add(1)
	tail := (uint64(u[10])<<40 | uint64(u[11])<<32 | uint64(u[12])<<24 | uint64(u[13])<<16 | uint64(u[14])<<8 | uint64(u[15])) + n
	for i := 15; i >= 10; i-- {
		u[i] = byte(tail)
		tail >>= 8
	}
	u[6] = u[6]&0x0f | 0x80 // version 8
	u[8] = u[8]&0x3f | 0x80 // variant 10
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:])
	return string(b[:])
}

// saneRequestID accepts 1..128 characters from [A-Za-z0-9._:-], enough for
// UUIDs, ULIDs and trace ids, and nothing that could forge a log line.
func saneRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		ch := id[i]
		switch {
		case ch >= 'a' && ch <= 'z', ch >= 'A' && ch <= 'Z', ch >= '0' && ch <= '9':
		case ch == '.', ch == '_', ch == ':', ch == '-':
		default:
			return false
		}
	}
	return true
}

// httpMetrics are the request metrics of docs/contract.md §9.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec

	// children caches the series of each (method, route, status) seen, so a
	// request costs a map lookup instead of hashing its label values in
	// WithLabelValues. Copy on write: readers never lock. The keys are
	// bounded (known methods, route templates, the statuses handlers answer).
	children atomic.Pointer[map[metricKey]metricChildren]
	mu       sync.Mutex // serializes writers of children
}

type metricKey struct {
	method, route string
	status        int
}

type metricChildren struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// observe counts one request and its latency.
func (m *httpMetrics) observe(method, route string, status int, elapsed time.Duration) {
	k := metricKey{method, route, status}
	ch, ok := (*m.children.Load())[k]
	if !ok {
		ch = m.add(k)
	}
	ch.requests.Inc()
	ch.duration.Observe(elapsed.Seconds())
}

// add creates the series of k, once.
func (m *httpMetrics) add(k metricKey) metricChildren {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := *m.children.Load()
	if ch, ok := old[k]; ok {
		return ch
	}
	ch := metricChildren{
		requests: m.requests.WithLabelValues(k.method, k.route, strconv.Itoa(k.status)),
		duration: m.duration.WithLabelValues(k.method, k.route),
	}
	next := make(map[metricKey]metricChildren, len(old)+1)
	maps.Copy(next, old)
	next[k] = ch
	m.children.Store(&next)
	return ch
}

func newHTTPMetrics(reg prometheus.Registerer) (*httpMetrics, error) {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "http_requests_total",
		Help: "HTTP requests served, by method, matched route template and status.",
	}, []string{"method", "route", "status"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "http_request_duration_seconds",
		Help:    "Latency of HTTP requests, by method and matched route template.",
		Buckets: prometheus.DefBuckets,
	}, []string{"method", "route"})

	var err error
	if requests, err = registerOrReuse(reg, requests); err != nil {
		return nil, fmt.Errorf("httpapi: registering http_requests_total: %w", err)
	}
	if duration, err = registerOrReuse(reg, duration); err != nil {
		return nil, fmt.Errorf("httpapi: registering http_request_duration_seconds: %w", err)
	}
	m := &httpMetrics{requests: requests, duration: duration}
	m.children.Store(&map[metricKey]metricChildren{})
	return m, nil
}

// registerOrReuse registers c, or returns the identical collector already
// registered (so two servers built on one registry share their metrics).
func registerOrReuse[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}

// metricMethod bounds the method label to the standard methods.
func metricMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "OTHER"
}

// stackMiddleware is the server's middleware, one function per request
// rather than one per concern (Echo wraps the handler in every global
// middleware on every request, a closure each), in this order:
//
//   - request id: a sane X-Request-ID from the client, a generated one
//     otherwise, echoed in the response;
//   - recover: a panic in a handler becomes a 500 envelope;
//   - body limit: 413 when the body is over limit;
//   - errors: a returned error goes to onError here, so that the status the
//     metrics and the access log record is the one the client gets;
//   - metrics and one access-log line (built only when its level is enabled).
func stackMiddleware(access AccessLog, m *httpMetrics, limit int64, onError echo.HTTPErrorHandler) echo.MiddlewareFunc {
	ids := newRequestIDs()
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			rc := reqContexts.Get().(*reqContext)
			rc.Context = c
			defer func() {
				*rc = reqContext{}
				reqContexts.Put(rc)
			}()
			req := c.Request()
			rc.id = headerValue(req.Header, headerRequestID)
			if !saneRequestID(rc.id) {
				rc.id = ids.next()
			}
			c.Response().Header()[headerRequestID] = []string{rc.id}

			err := serveLimited(next, rc, limit)
			if err != nil {
				onError(err, rc)
			}
			elapsed := time.Since(start)

			route := c.Path()
			// The router's own 404/405 handlers return these exact sentinels; any
			// handler error is mapped from domain errors, never from these.
			if route == "" || err == echo.ErrNotFound || err == echo.ErrMethodNotAllowed {
				route = routeUnmatched
			}
			status := c.Response().Status
			m.observe(metricMethod(req.Method), route, status, elapsed)

			level := slog.LevelInfo
			if status >= http.StatusInternalServerError {
				level = slog.LevelError
			}
			if ctx := req.Context(); access.Enabled(ctx, level) {
				access.Log(ctx, level, AccessEntry{
					Time:      start.Add(elapsed),
					Method:    req.Method,
					Route:     route,
					Path:      req.URL.Path,
					Status:    status,
					Latency:   elapsed,
					RequestID: rc.id,
					RemoteIP:  c.RealIP(),
				})
			}
			return nil
		}
	}
}

// serveLimited runs next with the body limit (413 at once when
// Content-Length is over it, otherwise the body capped by
// http.MaxBytesReader, whose *http.MaxBytesError the error handler and
// decodeJSON map to 413), turning a panic into a *panicError, which the
// error handler logs with its stack and answers 500 without detail.
// http.ErrAbortHandler is re-raised: it is net/http's way to abort a response.
func serveLimited(next echo.HandlerFunc, c echo.Context, limit int64) (err error) {
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		if r == http.ErrAbortHandler {
			panic(r)
		}
		err = &panicError{value: r, stack: debug.Stack()}
	}()
	req := c.Request()
	if req.ContentLength > limit {
		return &http.MaxBytesError{Limit: limit}
	}
	if req.Body != nil && req.Body != http.NoBody {
		req.Body = http.MaxBytesReader(c.Response(), req.Body, limit)
	}
	return next(c)
}

// panicError carries a recovered panic to the error handler, which logs it
// (with its stack) and answers 500 without detail.
type panicError struct {
	value any
	stack []byte
}

func (p *panicError) Error() string { return fmt.Sprintf("panic: %v", p.value) }
