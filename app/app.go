// Package app wires the service together with fx: one option set per
// environment (dev, test, prod), the store and cache chosen by configuration,
// and every background worker owned by a lifecycle hook.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/halobestie/mitra-availability/adapters/clock"
	"github.com/halobestie/mitra-availability/adapters/httpapi"
	"github.com/halobestie/mitra-availability/adapters/metrics"
	"github.com/halobestie/mitra-availability/adapters/password"
	"github.com/halobestie/mitra-availability/adapters/token"
	"github.com/halobestie/mitra-availability/app/config"
	"github.com/halobestie/mitra-availability/core/auth"
	"github.com/halobestie/mitra-availability/core/mirror"
	"github.com/halobestie/mitra-availability/core/mitras"
	"github.com/halobestie/mitra-availability/core/push"
	"github.com/halobestie/mitra-availability/core/sessions"
	"github.com/halobestie/mitra-availability/ports"
)

// PasswordCost is the bcrypt cost of the environment.
type PasswordCost int

// Options returns the fx option set that serves cfg.
func Options(cfg config.Config, log *slog.Logger) fx.Option {
	return fx.Options(
		fx.Supply(cfg, log),
		fx.WithLogger(func() fxevent.Logger {
			l := &fxevent.SlogLogger{Logger: log}
			l.UseLogLevel(slog.LevelDebug)
			return l
		}),
		envOptions(cfg.AppEnv),
		StoreModule(cfg),
		CacheModule(cfg),
		PushModule(cfg),
		fx.Provide(
			newRegistry,
			newMetrics,
			func() ports.Clock { return clock.System{} },
			newHasher,
			newSigner,
			newAuthService,
			newMitraService,
			newSessionService,
			newScheduler,
			newDispatcher,
			newHub,
			newRevocations,
			newHTTP,
		),
		// One invoke, so the start order is explicit (stop runs in reverse):
		// admin, session timers restored, queue dispatcher, mirror seeded, mirror workers,
		// realtime hub, revoked auth sessions loaded and polled, then the
		// listener.
		fx.Invoke(
			ensureAdmin,
			startScheduler,
			startDispatcher,
			seedBeforeServing,
			runMirrorWorkers,
			startHub,
			runEventSequencer,
			runEventPruner,
			runRevocations,
			startPprof,
			startHTTP,
		),
	)
}

type sessionParams struct {
	fx.In
	Stores  Stores
	Mitras  *mitras.Service
	Bus     ports.EventBus
	Clock   ports.Clock
	Log     *slog.Logger
	Config  config.Config
	Queue   ports.QueueMirror
	Health  *mirror.Health
	Metrics ports.Metrics
}

func newSessionService(p sessionParams) (*sessions.Service, error) {
	s, m, bus, c, log, cfg := p.Stores, p.Mitras, p.Bus, p.Clock, p.Log, p.Config
	svc, err := sessions.NewService(s.Sessions, m, bus, c, log, sessions.Config{
		PairingTimeout: cfg.PairingTimeout,
		PaymentTimeout: cfg.PaymentTimeout,
		WarningLead:    cfg.SessionWarningLead,
		Router:         router(cfg),
		BatchInterval:  cfg.OfferBatchInterval,
		QueueTimeout:   cfg.QueueTimeout,
	})
	if err != nil {
		return nil, err
	}
	m.SetCapacityHook(svc.Kick)
	svc.SetQueueMirror(sessions.QueueMirror{Mirror: p.Queue, Health: p.Health, Metrics: p.Metrics})
	return svc, nil
}

// router is the routing strategy ROUTING_STRATEGY names (docs/contract.md §11).
func router(cfg config.Config) sessions.Router {
	switch cfg.RoutingStrategy {
	case config.RoutingLongestIdle:
		return sessions.LongestIdle{Batch: cfg.OfferBatchSize}
	case config.RoutingLeastLoaded:
		return sessions.LeastLoaded{Batch: cfg.OfferBatchSize}
	}
	return sessions.Blast{Limit: cfg.BlastLimit}
}

func newScheduler(svc *sessions.Service) *sessions.Scheduler { return sessions.NewScheduler(svc) }

func startScheduler(lc fx.Lifecycle, sc *sessions.Scheduler) {
	lc.Append(fx.Hook{OnStart: sc.Start, OnStop: sc.Stop})
}

func newDispatcher(svc *sessions.Service) *sessions.Dispatcher { return sessions.NewDispatcher(svc) }

// startDispatcher runs the waiting queue's dispatcher (docs/contract.md §10).
func startDispatcher(lc fx.Lifecycle, d *sessions.Dispatcher) {
	lc.Append(fx.Hook{OnStart: d.Start, OnStop: d.Stop})
}

type hubParams struct {
	fx.In
	Bus      ports.EventBus
	Stores   Stores
	Log      *slog.Logger
	Registry *prometheus.Registry
	Presence ports.Presence `optional:"true"` // only with a push backend
}

func newHub(p hubParams) *httpapi.Hub {
	return httpapi.NewHub(p.Bus, p.Stores.Events, p.Log, httpapi.HubOptions{Registerer: p.Registry, Presence: p.Presence})
}

func startHub(lc fx.Lifecycle, h *httpapi.Hub) {
	lc.Append(fx.Hook{OnStart: h.Start, OnStop: h.Stop})
}

// envOptions is what differs between environments.
func envOptions(env string) fx.Option {
	return fx.Supply(passwordCost(env))
}

// passwordCost is the bcrypt cost per environment: the minimum in test (fast
// suites, never in production), the library default in dev, more in prod.
func passwordCost(env string) PasswordCost {
	switch env {
	case config.EnvProd:
		return 12
	case config.EnvTest:
		return 4
	default:
		return 10
	}
}

func newRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

func newMetrics(reg *prometheus.Registry, s Stores) (ports.Metrics, error) {
	if err := reg.Register(metrics.NewSessionsCollector(s.Stats)); err != nil {
		return nil, err
	}
	return metrics.NewPrometheus(reg)
}

func newHasher(cost PasswordCost) (ports.PasswordHasher, error) {
	return password.NewBcrypt(int(cost))
}

func newSigner(cfg config.Config, log *slog.Logger) (ports.TokenSigner, error) {
	if cfg.JWTSecretRandom {
		log.Warn("JWT_SECRET is not set: using a random key, so tokens do not survive a restart nor cross instances")
	}
	return token.NewSigner(cfg.JWTSecret)
}

func newAuthService(s Stores, h ports.PasswordHasher, sg ports.TokenSigner, c ports.Clock, cfg config.Config, lim ports.Limiter, m ports.Metrics) (*auth.Service, error) {
	return auth.NewService(s.Users, s.Mitras, s.Auth, h, sg, c, auth.Config{
		AccessTTL: cfg.AccessTokenTTL, RefreshTTL: cfg.RefreshTokenTTL,
		Throttle: auth.Throttle{
			Limiter:       lim,
			MaxFailures:   cfg.LoginMaxFailures,
			MaxPerAddress: cfg.LoginMaxPerAddress,
			Window:        cfg.LoginWindow,
			Throttled:     m.LoginThrottled,
		},
	})
}

type mitraParams struct {
	fx.In
	Stores  Stores
	Mirror  ports.AvailabilityMirror
	Health  *mirror.Health
	Metrics ports.Metrics
	Hasher  ports.PasswordHasher
	Clock   ports.Clock
	Log     *slog.Logger
	Cfg     config.Config
}

func newMitraService(p mitraParams) (*mitras.Service, error) {
	s, cfg := p.Stores, p.Cfg
	return mitras.NewService(mitras.Deps{
		Store: s.Mitras, Queries: s.Queries, AuthDB: s.Auth, Stats: s.Stats,
		Mirror: p.Mirror, Health: p.Health, Metrics: p.Metrics,
		Hasher: p.Hasher, Clock: p.Clock, Log: p.Log,
	}, mitras.Config{
		DefaultCapacity: cfg.DefaultMitraCapacity,
		HeartbeatStale:  cfg.HeartbeatStale,
		SnapshotTTL:     cfg.AvailabilitySnapshot,
	})
}

type httpParams struct {
	fx.In
	Cfg      config.Config
	Log      *slog.Logger
	Registry *prometheus.Registry
	Stores   Stores
	Cache    ports.CacheHealth
	Auth     *auth.Service
	Mitras   *mitras.Service
	Sessions *sessions.Service
	Devices  *push.Devices
	Hub      *httpapi.Hub
}

func newHTTP(p httpParams) (*httpapi.HTTPServer, error) {
	e, err := httpapi.New(httpapi.Options{
		Logger:         p.Log,
		AccessLog:      AccessLog(p.Log),
		Registry:       p.Registry,
		TrustedProxies: p.Cfg.TrustedProxies,
		Ready: func(ctx context.Context) httpapi.ReadyStatus {
			return readiness(ctx, p.Stores.Ping, p.Cache)
		},
	})
	if err != nil {
		return nil, err
	}
	if err := httpapi.RegisterRoutes(e, httpapi.Services{Auth: p.Auth, Mitras: p.Mitras, Sessions: p.Sessions, Devices: p.Devices, Hub: p.Hub, Events: p.Stores.Events}); err != nil {
		return nil, err
	}
	return httpapi.NewHTTPServer(p.Cfg.HTTPAddr, e), nil
}

func readiness(ctx context.Context, ping func(context.Context) error, cache ports.CacheHealth) httpapi.ReadyStatus {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return httpapi.ReadyStatus{StoreOK: ping(ctx) == nil, CacheOK: cache.Healthy(ctx)}
}

func ensureAdmin(lc fx.Lifecycle, cfg config.Config, svc *auth.Service, log *slog.Logger) {
	if cfg.AdminPhone == "" {
		return
	}
	lc.Append(fx.StartHook(func(ctx context.Context) error {
		u, created, err := svc.EnsureAdmin(ctx, auth.NewAccount{Phone: cfg.AdminPhone, Password: cfg.AdminPassword, DisplayName: "Admin"})
		if err != nil {
			return fmt.Errorf("ADMIN_PHONE: %w", err)
		}
		log.Info("admin ensured", "user_id", u.ID, "created", created)
		return nil
	}))
}

func startHTTP(lc fx.Lifecycle, srv *httpapi.HTTPServer, log *slog.Logger) {
	lc.Append(fx.Hook{
		OnStart: func(ctx context.Context) error {
			if err := srv.Start(ctx); err != nil {
				return fmt.Errorf("HTTP_ADDR: %w", err)
			}
			log.Info("serving", "addr", srv.Addr())
			return nil
		},
		OnStop: srv.Stop,
	})
}
