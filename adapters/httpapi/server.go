// Package httpapi is the HTTP adapter: an Echo server that serves the REST API
// of the contract, the operational endpoints (/healthz, /readyz, /metrics,
// /docs), and translates domain errors into the contract's error envelope.
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultBodyLimit is the largest request body accepted when Options.BodyLimit is zero (1 MiB).
const DefaultBodyLimit int64 = 1 << 20

// ReadyStatus is what Options.Ready reports: whether the store answers, and
// whether the cache does. A cache outage only degrades the service
// (cache "degraded"); it never makes it unready.
type ReadyStatus struct {
	StoreOK bool
	CacheOK bool
}

// Options configure New.
type Options struct {
	// Logger receives the detail of internal errors, and the access log
	// unless AccessLog is set. Nil discards.
	Logger *slog.Logger
	// AccessLog writes the access log. Nil: SlogAccessLog(Logger).
	AccessLog AccessLog
	// Registry holds the HTTP metrics and is served at GET /metrics. Nil uses a
	// fresh registry holding only the HTTP metrics.
	Registry *prometheus.Registry
	// Ready answers GET /readyz. Required.
	Ready func(ctx context.Context) ReadyStatus
	// BodyLimit is the largest request body in bytes; larger ones get 413.
	// Zero means DefaultBodyLimit.
	BodyLimit int64
	// TrustedProxies are the peers whose X-Forwarded-For is believed
	// (TRUSTED_PROXIES); see clientAddrExtractor.
	TrustedProxies []netip.Prefix
}

// New builds the Echo instance: the error handler, the middleware
// (stackMiddleware: request id, access log and metrics, recover, body limit)
// and the operational routes. The API routes are added by RegisterRoutes.
func New(opts Options) (*echo.Echo, error) {
	if opts.Ready == nil {
		return nil, errors.New("httpapi: Options.Ready is required")
	}
	if opts.BodyLimit < 0 {
		return nil, fmt.Errorf("httpapi: Options.BodyLimit must not be negative, got %d", opts.BodyLimit)
	}
	if opts.BodyLimit == 0 {
		opts.BodyLimit = DefaultBodyLimit
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.AccessLog == nil {
		opts.AccessLog = SlogAccessLog(opts.Logger)
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	m, err := newHTTPMetrics(opts.Registry)
	if err != nil {
		return nil, err
	}

	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	// The client address of docs/contract.md §14, decided in this one place: the peer,
	// or X-Forwarded-For as far as TrustedProxies vouch for it.
	e.IPExtractor = clientAddrExtractor(opts.TrustedProxies)
	e.HTTPErrorHandler = newErrorHandler(opts.Logger)

	e.Use(stackMiddleware(opts.AccessLog, m, opts.BodyLimit, e.HTTPErrorHandler))
	registerOpsRoutes(e, opts.Registry, opts.Ready)
	return e, nil
}

// HTTPServer serves an http.Handler on a TCP address with a graceful stop.
// Start binds synchronously, so a port in use fails Start itself; the serve
// goroutine it starts is owned by the server and waited for by Stop.
type HTTPServer struct {
	addr    string
	handler http.Handler
	srv     *http.Server

	mu       sync.Mutex
	ln       net.Listener
	done     chan struct{} // closed when the serve goroutine returns
	serveErr error         // set before done is closed
}

// NewHTTPServer returns a server for handler (usually the *echo.Echo of New)
// on addr (host:port; port 0 picks a free port). Nothing is bound until Start.
// Errors of the http.Server itself (failed handshakes, accept errors) go to the
// standard logger, which slog.SetDefault routes into slog.
func NewHTTPServer(addr string, handler http.Handler) *HTTPServer {
	return &HTTPServer{
		addr:    addr,
		handler: handler,
		srv: &http.Server{
			Handler: handler,
			// Bounds slow-header clients; no read/write timeout, which would cut
			// long-lived connections such as WebSockets.
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       120 * time.Second,
		},
	}
}

// RegisterOnShutdown registers f to be called when Stop begins, for connections
// that Shutdown does not track (hijacked ones, such as WebSockets). Call it before Start.
func (s *HTTPServer) RegisterOnShutdown(f func()) {
	s.srv.RegisterOnShutdown(f)
}

// Start binds the address and serves in a goroutine. It fails when the address
// cannot be bound (for example a port in use) or when the server was started before.
func (s *HTTPServer) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done != nil {
		return errors.New("httpapi: server already started")
	}
	if s.handler == nil {
		return errors.New("httpapi: server has no handler")
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.addr)
	if err != nil {
		return fmt.Errorf("httpapi: listening on %s: %w", s.addr, err)
	}
	s.ln = ln
	s.done = make(chan struct{})
	go s.serve(ln, s.done)
	return nil
}

func (s *HTTPServer) serve(ln net.Listener, done chan struct{}) {
	defer close(done)
	err := s.srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return
	}
	s.mu.Lock()
	s.serveErr = err
	s.mu.Unlock()
}

// Stop stops accepting connections, lets in-flight requests finish and waits
// for the serve goroutine; it also returns the error that ended serving early,
// if any. When ctx ends first, it closes the remaining connections and returns
// ctx's error. Stopping a server that never started is a no-op.
func (s *HTTPServer) Stop(ctx context.Context) error {
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	if done == nil {
		return nil
	}
	shutdownErr := s.srv.Shutdown(ctx)
	if shutdownErr != nil {
		// In-flight requests outlived ctx: cut them off rather than leak them.
		_ = s.srv.Close()
		shutdownErr = fmt.Errorf("httpapi: graceful shutdown: %w", shutdownErr)
	}
	// Shutdown (or Close) has closed the listener, so Serve returns at once:
	// this wait is short and leaves no goroutine behind.
	<-done
	s.mu.Lock()
	serveErr := s.serveErr
	s.mu.Unlock()
	if serveErr != nil {
		serveErr = fmt.Errorf("httpapi: serve: %w", serveErr)
	}
	return errors.Join(shutdownErr, serveErr)
}

// Addr returns the bound address once started (the real port when started on
// port 0), or the configured address before.
func (s *HTTPServer) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return s.ln.Addr().String()
	}
	return s.addr
}
