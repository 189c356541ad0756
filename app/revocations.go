package app

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/valkey-io/valkey-go"
	"go.uber.org/fx"

	"github.com/halobestie/mitra-availability/adapters/httpapi"
	valkeymirror "github.com/halobestie/mitra-availability/adapters/valkey"
	"github.com/halobestie/mitra-availability/app/config"
	"github.com/halobestie/mitra-availability/core/auth"
	"github.com/halobestie/mitra-availability/core/mirror"
	"github.com/halobestie/mitra-availability/core/mitras"
	"github.com/halobestie/mitra-availability/core/worker"
	"github.com/halobestie/mitra-availability/ports"
)

// revocationSource says where an instance learns of the other instances'
// revocations: the shared cache (with the store as fallback), the store
// alone (CACHE_BACKEND=none), or nowhere (the in-process cache of a single
// instance, CACHE_BACKEND=memory).
type revocationSource struct {
	cache ports.RevocationCache
	poll  bool
}

// revocationKeep is how long the cache keeps a revocation: the access-token
// lifetime, plus a margin for clock skew.
func revocationKeep(cfg config.Config) time.Duration { return cfg.AccessTokenTTL + time.Minute }

func newValkeyRevocationSource(client valkey.Client, cfg config.Config) revocationSource {
	return revocationSource{
		cache: valkeymirror.NewRevocations(client, cfg.ValkeyPrefix, revocationKeep(cfg), cfg.ValkeyTimeout),
		poll:  true,
	}
}

func newRevocations(src revocationSource, s Stores, h *mirror.Health, c ports.Clock, cfg config.Config, log *slog.Logger) (*auth.Revocations, error) {
	var health auth.CacheStatus
	if src.cache != nil {
		health = h
	}
	return auth.NewRevocations(auth.RevocationsConfig{
		Store: s.Auth, Cache: src.cache, Health: health, Poll: src.poll,
		AccessTTL: cfg.AccessTokenTTL, Clock: c, Log: log,
	})
}

// runRevocations connects the revocations to who needs them (every access
// token check, the deactivation, the WebSocket hub), loads the recent ones
// from the store before the listener starts, and polls for the other
// instances' ones until stop.
func runRevocations(lc fx.Lifecycle, r *auth.Revocations, a *auth.Service, m *mitras.Service, hub *httpapi.Hub) error {
	a.SetRevocations(r)
	a.SetEnsureActive(m.EnsureActive)
	m.SetRevoked(a.RecordRevoked)
	r.OnRevoked(hub.CloseRevoked)
	loop, err := worker.New("revocation-poll", auth.RevocationPoll, r.Tick)
	if err != nil {
		return err
	}
	r.SetWake(loop.Wake)
	lc.Append(fx.Hook{
		OnStart: func(ctx context.Context) error {
			if err := r.Load(ctx); err != nil {
				return fmt.Errorf("DATABASE_URL: loading revoked auth sessions: %w", err)
			}
			return loop.Start(ctx)
		},
		OnStop: loop.Stop,
	})
	return nil
}
