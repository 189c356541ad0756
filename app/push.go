package app

import (
	"context"
	"log/slog"

	"github.com/valkey-io/valkey-go"
	"go.uber.org/fx"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/halobestie/mitra-availability/adapters/metrics"
	"github.com/halobestie/mitra-availability/adapters/presence"
	pushadapter "github.com/halobestie/mitra-availability/adapters/push"
	"github.com/halobestie/mitra-availability/app/config"
	"github.com/halobestie/mitra-availability/core/push"
	"github.com/halobestie/mitra-availability/core/worker"
	"github.com/halobestie/mitra-availability/ports"
)

// PushModule provides device registration always, and with PUSH_BACKEND log
// or fcm the push path: the pusher, the presence shared by the instances
// (Valkey with CACHE_BACKEND=valkey, this process's otherwise), and the
// notifier that every published event goes through. With PUSH_BACKEND=none
// no presence is kept and no event is looked at.
func PushModule(cfg config.Config) fx.Option {
	devices := fx.Provide(func(s Stores) (*push.Devices, error) { return push.NewDevices(s.Devices) })
	if cfg.PushBackend == config.PushNone {
		return fx.Module("push.none", devices)
	}
	presenceCtor := fx.Provide(newMemoryPresence)
	if cfg.CacheBackend == config.CacheValkey {
		presenceCtor = fx.Provide(newValkeyPresence)
	}
	return fx.Options(
		fx.Module("push."+cfg.PushBackend,
			devices,
			presenceCtor,
			fx.Provide(newPusher, newPushMetrics, newNotifier),
		),
		// At the root, so that the session service gets the decorated bus.
		fx.Decorate(notifyingBus),
	)
}

func newMemoryPresence() ports.Presence { return presence.NewMemory() }

// newValkeyPresence shares connection presence through Valkey; a worker owned
// by the lifecycle refreshes this instance's entries so that they outlive
// their TTL only while the instance lives.
func newValkeyPresence(lc fx.Lifecycle, client valkey.Client, cfg config.Config, log *slog.Logger) (ports.Presence, error) {
	p, err := presence.NewValkey(client, cfg.ValkeyPrefix, presence.ValkeyOptions{Timeout: cfg.ValkeyTimeout})
	if err != nil {
		return nil, err
	}
	var failing bool // read and written by the refresh loop only
	w, err := worker.New("presence-refresh", presence.RefreshInterval(presence.DefaultTTL), func(ctx context.Context) {
		err := p.Refresh(ctx)
		if (err != nil) != failing {
			failing = err != nil
			if failing {
				log.Warn("refreshing the WebSocket presence in Valkey failed; retrying", "err", err)
			} else {
				log.Info("WebSocket presence in Valkey refreshed again")
			}
		}
	})
	if err != nil {
		return nil, err
	}
	lc.Append(fx.Hook{OnStart: w.Start, OnStop: w.Stop})
	return p, nil
}

// newPusher is the pusher of PUSH_BACKEND (log or fcm).
func newPusher(cfg config.Config, log *slog.Logger) (ports.Pusher, error) {
	if cfg.PushBackend == config.PushLog {
		return pushadapter.NewLog(log), nil
	}
	f, err := pushadapter.NewFCM(pushadapter.FCMConfig{
		ProjectID:   cfg.FCMProjectID,
		Credentials: cfg.FCMCredentials,
		Endpoint:    cfg.FCMEndpoint,
		Log:         log,
	})
	if err != nil {
		return nil, &config.Error{Var: "FCM_CREDENTIALS_FILE", Reason: err.Error()}
	}
	return f, nil
}

func newPushMetrics(reg *prometheus.Registry) (ports.PushMetrics, error) {
	return metrics.NewPush(reg, push.Outcomes)
}

// newNotifier starts the push workers with the lifecycle: they start before
// the scheduler and the listener and stop after them, so the events of the
// last requests are still pushed.
func newNotifier(lc fx.Lifecycle, p ports.Presence, s Stores, pusher ports.Pusher, m ports.PushMetrics, cfg config.Config, log *slog.Logger) (*push.Notifier, error) {
	n, err := push.NewNotifier(p, s.Devices, pusher, m, log, push.Config{})
	if err != nil {
		return nil, err
	}
	lc.Append(fx.Hook{
		OnStart: func(ctx context.Context) error {
			log.Info("push notifications on", "backend", cfg.PushBackend)
			return n.Start(ctx)
		},
		OnStop: n.Stop,
	})
	return n, nil
}

// notifyingBus is where events enter push: every event published on this
// instance is handed to the notifier once, after the bus delivered it. It is
// the one place to move when events are first written to a durable log: the
// notifier must then see each event once it is logged, once per recipient.
func notifyingBus(bus ports.EventBus, n *push.Notifier) ports.EventBus {
	return &pushingBus{EventBus: bus, notifier: n}
}

type pushingBus struct {
	ports.EventBus
	notifier *push.Notifier
}

// Publish publishes e, then hands it to the notifier (which never blocks).
// A failed PUBLISH to the other instances does not stop the push: local
// delivery has happened, and the recipients elsewhere are the ones a push
// may still reach.
func (b *pushingBus) Publish(ctx context.Context, e ports.Event) error {
	err := b.EventBus.Publish(ctx, e)
	b.notifier.Notify(e)
	return err
}
