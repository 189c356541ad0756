// Package postgres implements the store ports on PostgreSQL with uptrace/bun
// over the pgx v5 database/sql driver.
//
// Every query is one statement where the rules allow (data-modifying CTEs
// rather than read-then-write round trips), and every driver error leaves the
// package translated into the ports sentinels: no rows → ports.ErrNotFound,
// the users.phone unique violation → ports.ErrPhoneTaken, the one-open-session-
// per-customer index → ports.ErrOpenSessionExists, connection failures →
// ports.ErrStoreUnavailable (wrapped with the cause).
package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/halobestie/mitra-availability/ports"
)

// Pool settings. Two cores serve many requests, each of which holds a
// connection for a few milliseconds; more connections would only queue in Postgres.
const (
	maxOpenConns       = 20
	maxIdleConns       = 20
	connMaxLifetime    = 30 * time.Minute
	connMaxIdleTime    = 5 * time.Minute
	defaultConnTimeout = 5 * time.Second
	defaultPingTimeout = 10 * time.Second
)

// Open connects to the Postgres server at dsn (a postgres:// URL or a
// keyword/value DSN) and pings it with ctx. A malformed DSN is a plain error;
// a server that cannot be reached is an error wrapping ports.ErrStoreUnavailable.
//
// Unless the DSN says otherwise, statements go over the simple protocol: bun
// interpolates arguments itself, so server-side prepared statements would only
// cost a round trip and a cache slot per distinct statement text. A connection
// attempt gives up after 5s unless the DSN sets connect_timeout.
func Open(ctx context.Context, dsn string) (*bun.DB, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse dsn: %w", err)
	}
	if !strings.Contains(dsn, "default_query_exec_mode") {
		cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = defaultConnTimeout
	}
	sqldb := stdlib.OpenDB(*cfg)
	sqldb.SetMaxOpenConns(maxOpenConns)
	sqldb.SetMaxIdleConns(maxIdleConns)
	sqldb.SetConnMaxLifetime(connMaxLifetime)
	sqldb.SetConnMaxIdleTime(connMaxIdleTime)

	pingCtx := ctx
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		pingCtx, cancel = context.WithTimeout(ctx, defaultPingTimeout)
		defer cancel()
	}
	if err := sqldb.PingContext(pingCtx); err != nil {
		_ = sqldb.Close()
		return nil, fmt.Errorf("postgres: ping %s:%d: %w: %w", cfg.Host, cfg.Port, ports.ErrStoreUnavailable, err)
	}
	return bun.NewDB(sqldb, pgdialect.New()), nil
}

// errNilDB is returned by NewStore for a nil *bun.DB.
var errNilDB = errors.New("postgres: nil *bun.DB")
