package httpapi

import (
	"context"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/halobestie/mitra-availability/adapters/clock"
	"github.com/halobestie/mitra-availability/adapters/eventbus"
	"github.com/halobestie/mitra-availability/adapters/memory"
	"github.com/halobestie/mitra-availability/adapters/password"
	"github.com/halobestie/mitra-availability/adapters/token"
	"github.com/halobestie/mitra-availability/core/auth"
	"github.com/halobestie/mitra-availability/core/mirror"
	"github.com/halobestie/mitra-availability/core/mitras"
	"github.com/halobestie/mitra-availability/core/push"
	"github.com/halobestie/mitra-availability/core/sessions"
)

// buildServerForTest builds the whole API on in-memory adapters: the server
// whose routes openapi_test compares with docs/openapi.yaml.
func buildServerForTest(t testing.TB) *echo.Echo {
	e, _, _ := buildServer(t, auth.Throttle{}, nil)
	return e
}

// buildServerWithStore is buildServerForTest that also returns its store.
func buildServerWithStore(t testing.TB) (*echo.Echo, *memory.Store) {
	e, st, _ := buildServer(t, auth.Throttle{}, nil)
	return e, st
}

// buildServer is buildServerForTest with a login throttle and trusted
// proxies; it also returns its store and the auth service (to create admins).
func buildServer(t testing.TB, throttle auth.Throttle, trusted []netip.Prefix) (*echo.Echo, *memory.Store, *auth.Service) {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	e, err := New(Options{
		Logger:         log,
		Registry:       prometheus.NewRegistry(),
		Ready:          func(context.Context) ReadyStatus { return ReadyStatus{StoreOK: true, CacheOK: true} },
		TrustedProxies: trusted,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	st := memory.NewStore()
	h, err := password.NewBcrypt(4)
	if err != nil {
		t.Fatal(err)
	}
	sg, err := token.NewSigner([]byte("test-secret-test-secret-test-secret"))
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.System{}
	as, err := auth.NewService(st, st, st, h, sg, clk, auth.Config{AccessTTL: time.Minute, RefreshTTL: time.Hour, Throttle: throttle})
	if err != nil {
		t.Fatal(err)
	}
	ms, err := mitras.NewService(mitras.Deps{Store: st, Queries: st, AuthDB: st, Stats: st,
		Mirror: memory.NewMirror(), Health: mirror.NewHealth("memory", true), Metrics: memory.NewMetrics(),
		Hasher: h, Clock: clk, Log: log},
		mitras.Config{DefaultCapacity: 1, HeartbeatStale: 90 * time.Second, SnapshotTTL: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	bus := eventbus.NewMemory()
	ss, err := sessions.NewService(st, ms, bus, clk, log, sessions.Config{PairingTimeout: time.Minute, PaymentTimeout: time.Minute, WarningLead: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	hub := NewHub(bus, st, log, HubOptions{})
	ds, err := push.NewDevices(st)
	if err != nil {
		t.Fatal(err)
	}
	if err := RegisterRoutes(e, Services{Auth: as, Mitras: ms, Sessions: ss, Devices: ds, Hub: hub, Events: st}); err != nil {
		t.Fatal(err)
	}
	return e, st, as
}
