package app

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/uptrace/bun"
	"go.uber.org/fx"

	"github.com/halobestie/mitra-availability/adapters/memory"
	"github.com/halobestie/mitra-availability/adapters/postgres"
	"github.com/halobestie/mitra-availability/app/config"
	"github.com/halobestie/mitra-availability/migrations"
	"github.com/halobestie/mitra-availability/ports"
)

// Stores are the store ports, all served by one backend.
type Stores struct {
	Users    ports.UserStore
	Mitras   ports.MitraStore
	Queries  ports.MitraQueries
	Auth     ports.AuthStore
	Stats    ports.SessionStats
	Truth    ports.AvailabilityTruth
	Sessions ports.SessionStore
	Devices  ports.DeviceStore
	Events   ports.EventLog
	// QueueTruth is what the queue mirror is reseeded from.
	QueueTruth ports.QueueTruthSource
	Ping       func(context.Context) error
}

// StoreModule provides Stores from STORE_BACKEND.
func StoreModule(cfg config.Config) fx.Option {
	if cfg.StoreBackend == config.StorePostgres {
		return fx.Module("store.postgres",
			fx.Provide(openPostgres, newPostgresStores),
			fx.Invoke(migrateOnStart),
		)
	}
	return fx.Module("store.memory", fx.Provide(newMemoryStores))
}

func newMemoryStores() Stores {
	s := memory.NewStore()
	return Stores{Users: s, Mitras: s, Queries: s, Auth: s, Stats: s, Truth: s, Sessions: s, Devices: s, Events: s, QueueTruth: s, Ping: func(context.Context) error { return nil }}
}

// openPostgres connects at construction, so an unreachable Postgres fails the start.
func openPostgres(lc fx.Lifecycle, cfg config.Config) (*bun.DB, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := postgres.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	lc.Append(fx.StopHook(db.Close))
	return db, nil
}

func newPostgresStores(db *bun.DB) (Stores, error) {
	s, err := postgres.NewStore(db)
	if err != nil {
		return Stores{}, err
	}
	return Stores{Users: s, Mitras: s, Queries: s, Auth: s, Stats: s, Truth: s, Sessions: s, Devices: s, Events: s, QueueTruth: s, Ping: s.Ping}, nil
}

func migrateOnStart(lc fx.Lifecycle, cfg config.Config, db *bun.DB, log *slog.Logger) {
	if !cfg.MigrateOnStart {
		return
	}
	lc.Append(fx.StartHook(func(ctx context.Context) error {
		if err := migrations.Up(ctx, db.DB); err != nil {
			return fmt.Errorf("DATABASE_URL: migrating: %w", err)
		}
		log.Info("migrations applied")
		return nil
	}))
}
