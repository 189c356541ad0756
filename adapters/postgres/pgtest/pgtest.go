// Package pgtest gives tests their own Postgres database.
//
// Each call creates a fresh database with a random name on the server that the
// environment variable TEST_DATABASE_URL points at (a DSN of an admin database,
// for example postgres://root@127.0.0.1:5432/postgres?sslmode=disable), and
// drops it WITH (FORCE) when the test ends. When TEST_DATABASE_URL is unset the
// test is skipped, or fails when REQUIRE_INTEGRATION=1 (as in CI).
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"

	"github.com/halobestie/mitra-availability/adapters/postgres"
	"github.com/halobestie/mitra-availability/migrations"
)

// Environment variables the harness reads.
const (
	EnvDatabaseURL        = "TEST_DATABASE_URL"
	EnvRequireIntegration = "REQUIRE_INTEGRATION"
)

const setupTimeout = 60 * time.Second

// AdminDSN returns TEST_DATABASE_URL, skipping the test when it is unset (or
// failing it when REQUIRE_INTEGRATION=1).
func AdminDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(EnvDatabaseURL)
	if dsn != "" {
		return dsn
	}
	if os.Getenv(EnvRequireIntegration) == "1" {
		t.Fatalf("%s is not set but %s=1: this test needs a Postgres server", EnvDatabaseURL, EnvRequireIntegration)
	}
	t.Skipf("skipping Postgres integration test: set %s to a Postgres admin DSN "+
		"(e.g. postgres://root@127.0.0.1:5432/postgres?sslmode=disable) to run it", EnvDatabaseURL)
	return ""
}

// NewEmptyDSN creates a fresh database with no migration applied and returns its
// DSN. The database is dropped when the test ends.
func NewEmptyDSN(t testing.TB) string {
	t.Helper()
	admin := AdminDSN(t)
	cfg, err := pgx.ParseConfig(admin)
	if err != nil {
		t.Fatalf("pgtest: parse %s: %v", EnvDatabaseURL, err)
	}
	name := "test_" + randomHex(t, 8)

	adminDB := stdlib.OpenDB(*cfg)
	defer adminDB.Close()
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	if _, err := adminDB.ExecContext(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() { dropDatabase(t, cfg, name) })

	dsn, err := withDatabase(admin, name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return dsn
}

// NewDSN creates a fresh database, applies every migration to it and returns its
// DSN, for tests that open their own pool. The database is dropped when the test ends.
func NewDSN(t testing.TB) string {
	t.Helper()
	dsn := NewEmptyDSN(t)
	sqldb, err := openSQL(dsn)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	defer sqldb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	if err := migrations.Up(ctx, sqldb); err != nil {
		t.Fatalf("pgtest: migrate: %v", err)
	}
	return dsn
}

// NewDB creates a fresh, migrated database and returns a bun.DB connected to it
// by postgres.Open, so tests run on the production pool settings. The pool is
// closed and the database dropped when the test ends.
func NewDB(t testing.TB) *bun.DB {
	t.Helper()
	dsn := NewDSN(t)
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	db, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("pgtest: open: %v", err)
	}
	// Registered after the drop, so it runs before it: the pool is closed first.
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func openSQL(dsn string) (*sql.DB, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse dsn: %w", err)
	}
	return stdlib.OpenDB(*cfg), nil
}

func dropDatabase(t testing.TB, cfg *pgx.ConnConfig, name string) {
	t.Helper()
	adminDB := stdlib.OpenDB(*cfg)
	defer adminDB.Close()
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	if _, err := adminDB.ExecContext(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		t.Errorf("pgtest: drop database %s: %v", name, err)
	}
}

// withDatabase returns dsn with its database name replaced by name. It accepts
// both URL DSNs (postgres://…) and keyword/value DSNs (host=… dbname=…).
func withDatabase(dsn, name string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("parse %s: %w", EnvDatabaseURL, err)
		}
		u.Path = "/" + name
		u.RawPath = ""
		return u.String(), nil
	}
	// In a keyword/value DSN a later setting overrides an earlier one.
	return dsn + " dbname=" + name, nil
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("pgtest: random name: %v", err)
	}
	return hex.EncodeToString(b)
}
