package app_test

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/fx"

	"github.com/halobestie/mitra-availability/adapters/push/fcmtest"
	"github.com/halobestie/mitra-availability/app"
	"github.com/halobestie/mitra-availability/app/config"
)

// The graph builds with every push backend on every cache backend.
func TestPushWiringValidates(t *testing.T) {
	creds := filepath.Join(t.TempDir(), "sa.json")
	if err := os.WriteFile(creds, fcmtest.New(t).Credentials(), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, cache := range []map[string]string{
		{"CACHE_BACKEND": "memory"}, {"CACHE_BACKEND": "none"}, {"VALKEY_URL": "redis://127.0.0.1:1"},
	} {
		for _, backend := range []string{"none", "log", "fcm"} {
			env := map[string]string{"PUSH_BACKEND": backend, "FCM_PROJECT_ID": "p", "FCM_CREDENTIALS_FILE": creds}
			for k, v := range cache {
				env[k] = v
			}
			cfg, err := config.Load(func(k string) string { return env[k] })
			if err != nil {
				t.Fatalf("%v: %v", env, err)
			}
			if err := fx.ValidateApp(app.Options(cfg, slog.New(slog.DiscardHandler))); err != nil {
				t.Errorf("PUSH_BACKEND=%s %v: %v", backend, cache, err)
			}
		}
	}
}
