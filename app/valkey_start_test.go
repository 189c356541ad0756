package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
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
	base := "http://" + srv.Addr()

	status, ready := valkeyStartDo(t, base, http.MethodGet, "/readyz", "", nil)
	if status != http.StatusOK || ready["store"] != "ok" || ready["cache"] != "degraded" {
		t.Fatalf("readyz = %d %v, want 200 store ok, cache degraded", status, ready)
	}

	admin := valkeyStartLogin(t, base, valkeyStartAdminPhone, valkeyStartAdminPass)
	status, m := valkeyStartDo(t, base, http.MethodPost, "/api/admin/mitras", admin, map[string]any{
		"phone": "+6281100000002", "password": "mitra-password-1", "display_name": "Mitra",
	})
	if status != http.StatusCreated {
		t.Fatalf("create mitra: %d %v", status, m)
	}
	mitraID, _ := m["id"].(string)
	mitra := valkeyStartLogin(t, base, "+6281100000002", "mitra-password-1")
	if status, body := valkeyStartDo(t, base, http.MethodPost, "/api/mitra/status/online", mitra, nil); status != http.StatusOK || body["is_online"] != true {
		t.Fatalf("online: %d %v", status, body)
	}
	if status, body := valkeyStartDo(t, base, http.MethodPost, "/api/mitra/status/heartbeat", mitra, nil); status != http.StatusNoContent {
		t.Fatalf("heartbeat: %d %v", status, body)
	}

	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	appeared := time.Now()
	valkeyStartWait(t, 8*time.Second, "readyz cache ok", func() bool {
		_, ready := valkeyStartDo(t, base, http.MethodGet, "/readyz", "", nil)
		return ready["cache"] == "ok"
	})
	raw, err := vk.Open(context.Background(), vk.Config{URL: url})
	if err != nil {
		t.Fatalf("raw client: %v", err)
	}
	defer raw.Close()
	free := prefix + "{avail}:free"
	valkeyStartWait(t, 8*time.Second, "the mitra in "+free, func() bool {
		_, err := raw.Do(context.Background(), raw.B().Zscore().Key(free).Member(mitraID).Build()).AsFloat64()
		return err == nil
	})
	t.Logf("cache ok and reseeded %v after the server appeared", time.Since(appeared))

	if status, body := valkeyStartDo(t, base, http.MethodPost, "/api/mitra/status/heartbeat", mitra, nil); status != http.StatusNoContent {
		t.Fatalf("heartbeat on the cache: %d %v", status, body)
	}
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

// valkeyStartDo sends body as JSON with an optional Bearer token and returns
// the status and the decoded object (nil when the body is not one).
func valkeyStartDo(t *testing.T, base, method, path, token string, body any) (int, map[string]any) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, base+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, m
}

// valkeyStartLogin logs in and returns the access token.
func valkeyStartLogin(t *testing.T, base, phone, password string) string {
	t.Helper()
	status, body := valkeyStartDo(t, base, http.MethodPost, "/api/auth/login", "", map[string]any{"phone": phone, "password": password})
	token, _ := body["access_token"].(string)
	if status != http.StatusOK || token == "" {
		t.Fatalf("login %s: %d %v", phone, status, body)
	}
	return token
}

// valkeyStartWait polls cond until it holds, or fails after timeout.
func valkeyStartWait(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
