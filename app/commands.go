package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/halobestie/mitra-availability/adapters/clock"
	"github.com/halobestie/mitra-availability/adapters/postgres"
	"github.com/halobestie/mitra-availability/app/config"
	"github.com/halobestie/mitra-availability/core/auth"
	"github.com/halobestie/mitra-availability/migrations"
)

var errNeedsPostgres = errors.New("STORE_BACKEND: this command needs STORE_BACKEND=postgres (set DATABASE_URL)")

// Migrate applies pending migrations (server migrate).
func Migrate(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	if cfg.StoreBackend != config.StorePostgres {
		return errNeedsPostgres
	}
	db, err := postgres.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	defer db.Close()
	if err := migrations.Up(ctx, db.DB); err != nil {
		return fmt.Errorf("DATABASE_URL: migrating: %w", err)
	}
	log.Info("migrations applied")
	return nil
}

// CreateAdmin creates an admin account (server admin create) and returns its id.
func CreateAdmin(ctx context.Context, cfg config.Config, log *slog.Logger, phone, pw, name string) (string, error) {
	if err := Migrate(ctx, cfg, log); err != nil {
		return "", err
	}
	db, err := postgres.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return "", fmt.Errorf("DATABASE_URL: %w", err)
	}
	defer db.Close()
	store, err := postgres.NewStore(db)
	if err != nil {
		return "", err
	}
	hasher, err := newHasher(passwordCost(cfg.AppEnv))
	if err != nil {
		return "", err
	}
	signer, err := newSigner(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return "", err
	}
	svc, err := auth.NewService(store, store, store, hasher, signer, clock.System{}, auth.Config{AccessTTL: cfg.AccessTokenTTL, RefreshTTL: cfg.RefreshTokenTTL})
	if err != nil {
		return "", err
	}
	u, err := svc.CreateAdmin(ctx, auth.NewAccount{Phone: phone, Password: pw, DisplayName: name})
	if err != nil {
		return "", err
	}
	return u.ID, nil
}
