package migrations

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// Option configures how migrations are run.
type Option func(*options)

type options struct {
	logger *slog.Logger
}

// WithLogger makes goose log each migration it applies or rolls back to l.
// Without it, goose logs nothing.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// MigrationStatus tells whether one migration has been applied.
type MigrationStatus struct {
	Version   int64
	Path      string
	Applied   bool
	AppliedAt time.Time // zero when not applied
}

// newProvider builds a goose Provider over FS that holds a Postgres session-level
// advisory lock while it runs, so several instances starting at once migrate
// one after the other instead of racing. It uses none of goose's package globals.
func newProvider(db *sql.DB, opts []Option) (*goose.Provider, error) {
	if db == nil {
		return nil, errors.New("migrations: nil *sql.DB")
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	// Poll for the lock every second, for up to five minutes (goose's default
	// polls every 5s), so an instance waiting on another's migration starts promptly.
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
	if err != nil {
		return nil, fmt.Errorf("migrations: session locker: %w", err)
	}
	popts := []goose.ProviderOption{
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true),
		// Migrations are written in parallel branches: one with a lower
		// version may land after a higher one was applied somewhere; it is
		// applied then instead of failing the start.
		goose.WithAllowOutofOrder(true),
	}
	if o.logger != nil {
		popts = append(popts, goose.WithSlog(o.logger))
	} else {
		popts = append(popts, goose.WithLogger(goose.NopLogger()))
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, FS, popts...)
	if err != nil {
		return nil, fmt.Errorf("migrations: new provider: %w", err)
	}
	return p, nil
}

// Up applies every pending migration.
func Up(ctx context.Context, db *sql.DB, opts ...Option) error {
	p, err := newProvider(db, opts)
	if err != nil {
		return err
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrations: up: %w", err)
	}
	return nil
}

// Down rolls back the most recently applied migration. It fails when no
// migration is applied.
func Down(ctx context.Context, db *sql.DB, opts ...Option) error {
	p, err := newProvider(db, opts)
	if err != nil {
		return err
	}
	if _, err := p.Down(ctx); err != nil {
		return fmt.Errorf("migrations: down: %w", err)
	}
	return nil
}

// DownTo rolls back every applied migration above version; DownTo(ctx, db, 0)
// rolls back all of them.
func DownTo(ctx context.Context, db *sql.DB, version int64, opts ...Option) error {
	p, err := newProvider(db, opts)
	if err != nil {
		return err
	}
	if _, err := p.DownTo(ctx, version); err != nil {
		return fmt.Errorf("migrations: down to %d: %w", version, err)
	}
	return nil
}

// Status lists every known migration in version order and whether it is applied.
func Status(ctx context.Context, db *sql.DB, opts ...Option) ([]MigrationStatus, error) {
	p, err := newProvider(db, opts)
	if err != nil {
		return nil, err
	}
	st, err := p.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrations: status: %w", err)
	}
	out := make([]MigrationStatus, 0, len(st))
	for _, s := range st {
		ms := MigrationStatus{Applied: s.State == goose.StateApplied, AppliedAt: s.AppliedAt}
		if s.Source != nil {
			ms.Version = s.Source.Version
			ms.Path = s.Source.Path
		}
		out = append(out, ms)
	}
	return out, nil
}
