package app_test

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/dig"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/halobestie/mitra-availability/adapters/httpapi"
	vk "github.com/halobestie/mitra-availability/adapters/valkey"
	"github.com/halobestie/mitra-availability/app"
	"github.com/halobestie/mitra-availability/app/config"
	"github.com/halobestie/mitra-availability/client"
	"github.com/halobestie/mitra-availability/internal/redisproc"
)

const (
	valkeyStartAdminPhone = "+6281100000001"
	valkeyStartAdminPass  = "admin-password-1"
)

// TestValkeyUnreachableAtStart: with CACHE_BACKEND=valkey and nothing on
// VALKEY_URL, the service starts, serves from the store with the cache
// degraded, and picks Valkey up (reseeding it) once a server appears there.
func TestValkeyUnreachableAtStart(t *testing.T) {
	server := redisproc.NewForTest(t, redisproc.Options{}) // started once the app runs
	prefix := "test:" + randomHex(t, 6) + ":"
	url := server.URL()
	cfg := valkeyStartConfig(t, map[string]string{
		"APP_ENV":           "test",
		"STORE_BACKEND":     "memory",
		"CACHE_BACKEND":     "valkey",
		"VALKEY_URL":        url,
		"VALKEY_KEY_PREFIX": prefix,
		"HTTP_ADDR":         "127.0.0.1:0",
		"ADMIN_PHONE":       valkeyStartAdminPhone,
		"ADMIN_PASSWORD":    valkeyStartAdminPass,
	})

	var srv *httpapi.HTTPServer
	fxApp := fxtest.New(t, app.Options(cfg, slog.New(slog.DiscardHandler)), fx.Populate(&srv))
	began := time.Now()
	fxApp.RequireStart()
	t.Cleanup(fxApp.RequireStop)
	if d := time.Since(began); d > 5*time.Second {
		t.Fatalf("start took %v with Valkey unreachable", d)
	}
	a := newAPI(t, "http://"+srv.Addr())

	var ready client.Ready
	a.do(http.MethodGet, "/readyz", "", nil, http.StatusOK, &ready)
	if ready.Store != client.ReadyStoreOk || ready.Cache != client.ReadyCacheDegraded {
		t.Fatalf("readyz = %+v, want store ok, cache degraded", ready)
	}

	login := func(phone, password string) string {
		t.Helper()
		var tk client.Tokens
		a.do(http.MethodPost, "/api/auth/login", "", map[string]string{"phone": phone, "password": password}, http.StatusOK, &tk)
		return tk.AccessToken
	}
	admin := login(valkeyStartAdminPhone, valkeyStartAdminPass)
	var m client.Mitra
	a.do(http.MethodPost, "/api/admin/mitras", admin, map[string]any{
		"phone": "+6281100000002", "password": "mitra-password-1", "display_name": "Mitra",
	}, http.StatusCreated, &m)
	mitra := login("+6281100000002", "mitra-password-1")
	var online client.Mitra
	if a.do(http.MethodPost, "/api/mitra/status/online", mitra, nil, http.StatusOK, &online); !online.IsOnline {
		t.Fatalf("online: %+v", online)
	}
	a.do(http.MethodPost, "/api/mitra/status/heartbeat", mitra, nil, http.StatusNoContent, nil)

	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	appeared := time.Now()
	eventually(t, 8*time.Second, "readyz cache ok", func() string {
		a.do(http.MethodGet, "/readyz", "", nil, http.StatusOK, &ready)
		if ready.Cache != client.ReadyCacheOk {
			return "cache " + string(ready.Cache)
		}
		return ""
	})
	raw, err := vk.Open(context.Background(), vk.Config{URL: url})
	if err != nil {
		t.Fatalf("raw client: %v", err)
	}
	defer raw.Close()
	free := prefix + "{avail}:free"
	eventually(t, 8*time.Second, "the mitra in "+free, func() string {
		if _, err := raw.Do(context.Background(), raw.B().Zscore().Key(free).Member(m.ID).Build()).AsFloat64(); err != nil {
			return err.Error()
		}
		return ""
	})
	t.Logf("cache ok and reseeded %v after the server appeared", time.Since(appeared))

	a.do(http.MethodPost, "/api/mitra/status/heartbeat", mitra, nil, http.StatusNoContent, nil) // on the cache
}

// TestValkeyMalformedURLFailsStart: a VALKEY_URL that the configuration
// accepts but the client cannot use fails the start with one line naming
// VALKEY_URL.
func TestValkeyMalformedURLFailsStart(t *testing.T) {
	cfg := valkeyStartConfig(t, map[string]string{
		"APP_ENV":       "test",
		"STORE_BACKEND": "memory",
		"CACHE_BACKEND": "valkey",
		"VALKEY_URL":    "redis://127.0.0.1:1/2,127.0.0.1:2", // a cluster has no database number
		"HTTP_ADDR":     "127.0.0.1:0",
	})
	fxApp := fx.New(app.Options(cfg, slog.New(slog.DiscardHandler)), fx.NopLogger)
	err := fxApp.Err()
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = fxApp.Stop(ctx)
		t.Fatal("the app was built with a malformed VALKEY_URL")
	}
	msg := dig.RootCause(err).Error()
	if !strings.HasPrefix(msg, "VALKEY_URL: ") || strings.Contains(msg, "\n") {
		t.Fatalf("error = %q, want one line starting with VALKEY_URL", msg)
	}
}

// valkeyStartConfig loads the configuration from env only.
func valkeyStartConfig(t *testing.T, env map[string]string) config.Config {
	t.Helper()
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}
