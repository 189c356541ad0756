package app

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valkey-io/valkey-go"
	"go.uber.org/fx"

	"github.com/halobestie/mitra-availability/adapters/eventbus"
	"github.com/halobestie/mitra-availability/adapters/limiter"
	"github.com/halobestie/mitra-availability/adapters/memory"
	"github.com/halobestie/mitra-availability/adapters/nocache"
	valkeymirror "github.com/halobestie/mitra-availability/adapters/valkey"
	"github.com/halobestie/mitra-availability/app/config"
	"github.com/halobestie/mitra-availability/core/mirror"
	"github.com/halobestie/mitra-availability/core/sessions"
	"github.com/halobestie/mitra-availability/core/worker"
	"github.com/halobestie/mitra-availability/ports"
)

// CacheModule provides the availability mirror from CACHE_BACKEND, its
// health, and the workers that keep it honest.
func CacheModule(cfg config.Config) fx.Option {
	var backend fx.Option
	switch cfg.CacheBackend {
	case config.CacheValkey:
		backend = fx.Provide(newValkeyClient, newValkeyMirror, newValkeyQueueMirror, newValkeyBus, newValkeyRevocationSource, newValkeyLimiter)
	case config.CacheNone:
		backend = fx.Provide(func() (ports.AvailabilityMirror, ports.QueueMirror, *mirror.Health, ports.EventBus, revocationSource, ports.Limiter) {
			// No cache: other instances' revocations are read from the store.
			return nocache.NewMirror(), nocache.NewQueueMirror(), mirror.NewHealth(config.CacheNone, false), eventbus.NewMemory(), revocationSource{poll: true}, memory.NewLimiter()
		})
	default:
		backend = fx.Provide(func() (ports.AvailabilityMirror, ports.QueueMirror, *mirror.Health, ports.EventBus, revocationSource, ports.Limiter) {
			// One instance: it knows every revocation itself.
			return memory.NewMirror(), memory.NewQueueMirror(), mirror.NewHealth(config.CacheMemory, true), eventbus.NewMemory(), revocationSource{}, memory.NewLimiter()
		})
	}
	return fx.Module("cache."+cfg.CacheBackend,
		backend,
		fx.Provide(
			func(h *mirror.Health) ports.CacheHealth { return h },
			newSeeder,
			newSweeps,
		),
	)
}

// newValkeyClient returns the Valkey client, which connects in the
// background: the service starts and serves while Valkey is unreachable (the
// cache is degraded and reads fall back to the store), and picks it up when
// it answers. Every new connection marks the mirror for a reseed. Only a
// malformed VALKEY_URL fails the start.
func newValkeyClient(lc fx.Lifecycle, cfg config.Config, log *slog.Logger) (valkey.Client, *mirror.Health, error) {
	h := mirror.NewHealth(config.CacheValkey, true)
	conn, err := valkeymirror.NewConnector(valkeymirror.Config{
		URL:    cfg.ValkeyURL,
		OnDial: h.Reconnected,
	}, log)
	if err != nil {
		return nil, nil, fmt.Errorf("VALKEY_URL: %w", err)
	}
	lc.Append(fx.Hook{OnStart: conn.Start, OnStop: conn.Stop})
	return conn.Lazy(), h, nil
}

func newValkeyMirror(lc fx.Lifecycle, client valkey.Client, cfg config.Config) ports.AvailabilityMirror {
	m := valkeymirror.NewMirror(client, cfg.ValkeyPrefix, cfg.ValkeyTimeout)
	lc.Append(fx.Hook{OnStop: m.Stop}) // after the client's hook: runs before it closes the client
	return m
}

// newValkeyQueueMirror mirrors the waiting queue next to the availability
// mirror (docs/valkey-keys.md, "Waiting queue").
func newValkeyQueueMirror(client valkey.Client, cfg config.Config) ports.QueueMirror {
	return valkeymirror.NewQueueMirror(client, cfg.ValkeyPrefix, cfg.ValkeyTimeout)
}

// newValkeyBus carries realtime events between instances over Valkey pub/sub,
// on a dedicated connection that re-subscribes after any server restart; it
// subscribes once the client has connected.
func newValkeyBus(lc fx.Lifecycle, client valkey.Client, cfg config.Config, log *slog.Logger, reg *prometheus.Registry) (ports.EventBus, error) {
	bus, err := eventbus.NewValkey(client, cfg.ValkeyPrefix+"events", log)
	if err != nil {
		return nil, err
	}
	if err := reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "event_bus_dropped_total",
		Help: "Events not sent to the other instances over Valkey (it was down, hung or too slow); their connections read them from the event log.",
	}, func() float64 { return float64(bus.Dropped()) })); err != nil {
		return nil, err
	}
	lc.Append(fx.Hook{OnStart: bus.Start, OnStop: bus.Stop})
	return bus, nil
}

// newValkeyLimiter counts login attempts in Valkey, shared by every instance,
// and on this instance while Valkey fails (docs/contract.md §14).
func newValkeyLimiter(client valkey.Client, cfg config.Config, m ports.Metrics, log *slog.Logger) ports.Limiter {
	shared := valkeymirror.NewLimiter(client, cfg.ValkeyPrefix, cfg.ValkeyTimeout)
	return limiter.NewFallback(shared, memory.NewLimiter(), m, log)
}

// newSeeder seeds the availability mirror and the queue mirror together:
// the cache is trusted once both are.
func newSeeder(m ports.AvailabilityMirror, q ports.QueueMirror, s Stores, h *mirror.Health, metrics ports.Metrics, clock ports.Clock, log *slog.Logger) *mirror.Seeder {
	seeder := mirror.NewSeeder(m, s.Truth, h, metrics, log)
	seeder.SetQueue(q, s.QueueTruth, sessions.MatchWindow, clock.Now)
	return seeder
}

func newSweeps(seeder *mirror.Seeder, clock ports.Clock, cfg config.Config) *mirror.Sweeps {
	return mirror.NewSweeps(seeder, clock, cfg.HeartbeatStale)
}

// seedBeforeServing seeds the mirror at start, before the HTTP server
// listens. A cache outage only logs: the watcher seeds when the cache answers.
func seedBeforeServing(lc fx.Lifecycle, h *mirror.Health, seeder *mirror.Seeder, log *slog.Logger) {
	if !h.Enabled() {
		return
	}
	lc.Append(fx.StartHook(func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if _, err := seeder.Seed(ctx, mirror.ReasonStart); err != nil {
			log.Warn("seeding the mirror at start failed: serving from the store until it answers", "err", err)
		}
		return nil
	}))
}

// mirrorWatchInterval is how often the watcher asks the mirror whether it lost its data.
const mirrorWatchInterval = time.Second

func runMirrorWorkers(lc fx.Lifecycle, cfg config.Config, h *mirror.Health, seeder *mirror.Seeder, sw *mirror.Sweeps, log *slog.Logger) error {
	if !h.Enabled() {
		return nil
	}
	watcher := mirror.NewWatcher(seeder, log)
	loops := []struct {
		name     string
		interval time.Duration
		run      func(context.Context)
	}{
		{"mirror-watcher", mirrorWatchInterval, watcher.Tick},
		{"auto-offline-sweep", cfg.AutoOfflineSweep, func(ctx context.Context) { sw.AutoOffline(ctx) }},
		{"heartbeat-writeback", cfg.HeartbeatMirrorEvery, func(ctx context.Context) { sw.WriteBack(ctx) }},
		{"mirror-reseed", cfg.MirrorReseedEvery, sw.Reseed},
	}
	for _, l := range loops {
		w, err := worker.New(l.name, l.interval, l.run)
		if err != nil {
			return err
		}
		if l.name == "mirror-watcher" {
			h.SetWake(w.Wake)
		}
		lc.Append(fx.Hook{OnStart: w.Start, OnStop: w.Stop})
	}
	return nil
}
