package httpapi

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// requestIDKey is the echo.Context key of the request id.
const requestIDKey = "request_id"

// routeUnmatched labels requests that matched no route, so that scanners
// probing random paths cannot grow the metrics without bound.
const routeUnmatched = "unmatched"

// maxRequestIDLen bounds an X-Request-ID taken from a client.
const maxRequestIDLen = 128

// requestID returns the id of the request being served ("" outside the middleware).
func requestID(c echo.Context) string {
	id, _ := c.Get(requestIDKey).(string)
	return id
}

// requestIDMiddleware honours a sane X-Request-ID from the client, generates
// one otherwise, stores it in the context and echoes it in the response.
func requestIDMiddleware() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			id := c.Request().Header.Get(echo.HeaderXRequestID)
			if !saneRequestID(id) {
				id = uuid.NewString()
			}
			c.Set(requestIDKey, id)
			c.Response().Header().Set(echo.HeaderXRequestID, id)
			return next(c)
		}
	}
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
	return &httpMetrics{requests: requests, duration: duration}, nil
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

// observeMiddleware writes one access-log line and the metrics per request.
// It hands a returned error to the error handler itself, so that the status it
// records is the one the client gets.
func observeMiddleware(logger *slog.Logger, m *httpMetrics) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil {
				c.Error(err)
			}
			elapsed := time.Since(start)

			req := c.Request()
			route := c.Path()
			// The router's own 404/405 handlers return these exact sentinels; any
			// handler error is mapped from domain errors, never from these.
			if route == "" || err == echo.ErrNotFound || err == echo.ErrMethodNotAllowed {
				route = routeUnmatched
			}
			status := c.Response().Status
			method := metricMethod(req.Method)
			m.requests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
			m.duration.WithLabelValues(method, route).Observe(elapsed.Seconds())

			level := slog.LevelInfo
			if status >= http.StatusInternalServerError {
				level = slog.LevelError
			}
			logger.LogAttrs(req.Context(), level, "http request",
				slog.String("method", req.Method),
				slog.String("route", route),
				slog.String("path", req.URL.Path), // never the query: it may carry an access token
				slog.Int("status", status),
				slog.Duration("latency", elapsed),
				slog.String("request_id", requestID(c)),
				slog.String("remote_ip", c.RealIP()),
			)
			return nil
		}
	}
}

// panicError carries a recovered panic to the error handler, which logs it
// (with its stack) and answers 500 without detail.
type panicError struct {
	value any
	stack []byte
}

func (p *panicError) Error() string { return fmt.Sprintf("panic: %v", p.value) }

// recoverMiddleware turns a panic in a handler into a 500 envelope.
// http.ErrAbortHandler is re-raised: it is net/http's way to abort a response.
func recoverMiddleware() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) (err error) {
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
			return next(c)
		}
	}
}

// bodyLimitMiddleware answers 413 at once when Content-Length is over limit,
// and otherwise caps the body with http.MaxBytesReader, whose
// *http.MaxBytesError the error handler (and decodeJSON) map to 413.
func bodyLimitMiddleware(limit int64) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req := c.Request()
			if req.ContentLength > limit {
				return &http.MaxBytesError{Limit: limit}
			}
			if req.Body != nil && req.Body != http.NoBody {
				req.Body = http.MaxBytesReader(c.Response(), req.Body, limit)
			}
			return next(c)
		}
	}
}
