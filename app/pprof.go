package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"

	"go.uber.org/fx"

	"github.com/halobestie/mitra-availability/adapters/httpapi"
	"github.com/halobestie/mitra-availability/app/config"
)

// pprofHandler serves net/http/pprof's index and profiles under /debug/pprof/.
func pprofHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// startPprof serves the Go profiler on PPROF_ADDR, a listener of its own
// (never the API's), when it is set: an operator's opt-in for profiling
// under load (docs/operations.md). Bind it to loopback; it has no auth.
func startPprof(lc fx.Lifecycle, cfg config.Config, log *slog.Logger) {
	_ = addPprof(lc, cfg, log)
}

// addPprof appends the hook of startPprof and returns its server (nil when off).
func addPprof(lc fx.Lifecycle, cfg config.Config, log *slog.Logger) *httpapi.HTTPServer {
	if cfg.PprofAddr == "" {
		return nil
	}
	srv := httpapi.NewHTTPServer(cfg.PprofAddr, pprofHandler())
	lc.Append(fx.Hook{
		OnStart: func(ctx context.Context) error {
			if err := srv.Start(ctx); err != nil {
				return fmt.Errorf("PPROF_ADDR: %w", err)
			}
			log.Warn("serving the Go profiler (PPROF_ADDR)", "addr", srv.Addr())
			return nil
		},
		OnStop: srv.Stop,
	})
	return srv
}
