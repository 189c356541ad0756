package e2e

import (
	"context"
	"database/sql"
	"net/http"
	"strings"
	"testing"

	"github.com/halobestie/mitra-availability/client"
	"github.com/halobestie/mitra-availability/internal/serverproc"
)

// docs/contract.md §9: /healthz, /readyz, /metrics and /docs answer without a token.
func TestOperationalEndpoints(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)

	if h := viewOf[client.Health](t, "GET /healthz", s.get(t, "/healthz", ""), http.StatusOK); h.Status != client.HealthStatusOk {
		t.Fatalf("/healthz = %s, want status ok", jsonOf(h))
	}
	if r := viewOf[client.Ready](t, "GET /readyz", s.get(t, "/readyz", ""), http.StatusOK); r.Store != client.ReadyStoreOk || r.Cache != client.ReadyCacheOk {
		t.Fatalf("/readyz = %s, want store and cache ok", jsonOf(r))
	}

	// Some traffic, so that request metrics exist.
	s.login(t, adminPhone, adminPassword)
	wantError(t, "unknown route", s.get(t, "/api/nothing-here", ""), http.StatusNotFound, "not_found")

	r := s.get(t, "/metrics", "")
	wantStatus(t, "GET /metrics", r, http.StatusOK)
	if !strings.HasPrefix(r.ContentType, "text/plain") {
		t.Fatalf("/metrics Content-Type %q, want the Prometheus text format (text/plain)", r.ContentType)
	}
	metrics := string(r.Raw)
	for _, want := range []string{"# HELP ", "# TYPE "} {
		if !strings.Contains(metrics, want) {
			t.Fatalf("/metrics has no %q line:\n%s", want, truncate(r.Raw))
		}
	}

	r = s.get(t, "/docs", "")
	wantStatus(t, "GET /docs", r, http.StatusOK)
	doc := string(r.Raw)
	if strings.TrimSpace(doc) == "" {
		t.Fatal("/docs is empty")
	}
	if !strings.Contains(doc, "openapi") || !strings.Contains(doc, "3.") {
		t.Fatalf("/docs is not an OpenAPI 3 document:\n%s", truncate(r.Raw))
	}
	for _, path := range []string{
		"/api/customers", "/api/auth/login", "/api/auth/refresh", "/api/auth/logout",
		"/api/admin/mitras", "/api/admin/dashboard", "/api/mitra/status", "/healthz", "/readyz",
	} {
		if !strings.Contains(doc, path) {
			t.Errorf("/docs does not describe %s", path)
		}
	}
}

// docs/contract.md §1: with nothing but HTTP_ADDR set, the server serves on the
// in-memory store and cache.
func TestServesWithoutConfiguration(t *testing.T) {
	t.Parallel()
	s := startProcess(t, nil)

	if r := viewOf[client.Ready](t, "GET /readyz", s.get(t, "/readyz", ""), http.StatusOK); r.Store != client.ReadyStoreOk || r.Cache != client.ReadyCacheOk {
		t.Fatalf("/readyz = %s, want store and cache ok", jsonOf(r))
	}

	phone := randomPhone(t)
	s.signupCustomer(t, phone, "memory-password", "Omar")
	a := s.login(t, phone, "memory-password")
	s.refresh(t, a.Refresh)
}

// docs/contract.md §1: `server migrate` applies the migrations to a fresh database and
// exits 0 (again 0 when there is nothing to do); a server started with
// MIGRATE_ON_START=false then serves on that database.
func TestMigrateCommand(t *testing.T) {
	t.Parallel()
	dsn := freshDatabase(t)
	vars := map[string]string{"STORE_BACKEND": "postgres", "DATABASE_URL": dsn, "APP_ENV": "test"}

	for _, run := range []string{"first", "second"} {
		code, out := runServerCommand(t, vars, "migrate")
		if code != 0 {
			t.Fatalf("%s `server migrate` exited %d; output:\n%s", run, code, out)
		}
	}

	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, table := range []string{"users", "mitras", "goose_db_version"} {
		var found sql.NullString
		if err := db.QueryRowContext(context.Background(), "SELECT to_regclass($1)::text", table).Scan(&found); err != nil {
			t.Fatalf("look for table %s: %v", table, err)
		}
		if !found.Valid {
			t.Fatalf("table %s does not exist after `server migrate`", table)
		}
	}

	s := startServer(t, map[string]string{"DATABASE_URL": dsn, "MIGRATE_ON_START": "false"})
	s.login(t, adminPhone, adminPassword)
}

// docs/contract.md §1: a bad configuration exits non-zero with one clear line naming
// the variable.
func TestBadConfiguration(t *testing.T) {
	t.Parallel()
	requireBinary(t)
	for _, c := range []struct {
		name     string
		vars     map[string]string
		variable string
		oneLine  bool // only that line: nothing else is logged before a config error
	}{
		{"unknown store backend", map[string]string{"STORE_BACKEND": "nope"}, "STORE_BACKEND", true},
		{"unknown cache backend", map[string]string{"CACHE_BACKEND": "memcached"}, "CACHE_BACKEND", true},
		{"unknown APP_ENV", map[string]string{"APP_ENV": "staging"}, "APP_ENV", true},
		{"unparsable duration", map[string]string{"ACCESS_TOKEN_TTL": "soon"}, "ACCESS_TOKEN_TTL", true},
		{"unparsable number", map[string]string{"HEARTBEAT_STALE_SECONDS": "ninety"}, "HEARTBEAT_STALE_SECONDS", true},
		{"prod without JWT_SECRET", map[string]string{"APP_ENV": "prod"}, "JWT_SECRET", true},
		{"negative BLAST_LIMIT", map[string]string{"BLAST_LIMIT": "-5"}, "BLAST_LIMIT", true},
		{"unknown routing strategy", map[string]string{"ROUTING_STRATEGY": "round_robin"}, "ROUTING_STRATEGY", true},
		{"zero OFFER_BATCH_SIZE", map[string]string{"OFFER_BATCH_SIZE": "0"}, "OFFER_BATCH_SIZE", true},
		{"unreachable Postgres", map[string]string{
			"STORE_BACKEND": "postgres",
			"DATABASE_URL":  "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=3",
		}, "DATABASE_URL", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			vars := map[string]string{"HTTP_ADDR": serverproc.FreeAddr(t)}
			for k, v := range c.vars {
				vars[k] = v
			}
			code, out := runServerCommand(t, vars)
			if code == 0 {
				t.Fatalf("the server exited 0 with %v; output:\n%s", c.vars, out)
			}
			if strings.Contains(out, "panic:") || strings.Contains(out, "goroutine ") {
				t.Fatalf("the server panicked instead of naming %s:\n%s", c.variable, out)
			}
			var lines, naming []string
			for _, l := range strings.Split(out, "\n") {
				if strings.TrimSpace(l) == "" {
					continue
				}
				lines = append(lines, l)
				if strings.Contains(l, c.variable) {
					naming = append(naming, l)
				}
			}
			if len(naming) == 0 {
				t.Fatalf("no output line names %s; output:\n%s", c.variable, out)
			}
			if c.oneLine && len(lines) != 1 {
				t.Fatalf("want one line naming %s, got %d lines:\n%s", c.variable, len(lines), out)
			}
		})
	}
}
