package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// serverEnv lists the variables the server reads; the smoke test removes
// them from the inherited environment so that only its own settings apply.
var serverEnv = []string{
	"HTTP_ADDR", "APP_ENV", "STORE_BACKEND", "DATABASE_URL", "MIGRATE_ON_START",
	"CACHE_BACKEND", "VALKEY_URL", "VALKEY_KEY_PREFIX", "VALKEY_TIMEOUT",
	"JWT_SECRET", "ACCESS_TOKEN_TTL", "REFRESH_TOKEN_TTL", "ADMIN_PHONE", "ADMIN_PASSWORD",
	"DEFAULT_MITRA_CAPACITY", "HEARTBEAT_STALE_SECONDS", "MITRA_AUTO_OFFLINE_SWEEP_SECONDS",
	"HEARTBEAT_MIRROR_INTERVAL_SECONDS", "VALKEY_ONLINE_MIRROR_SWEEP_SECONDS",
	"AVAILABILITY_SNAPSHOT_TTL_SECONDS", "PAIRING_TIMEOUT_SECONDS", "PAYMENT_TIMEOUT_SECONDS",
	"SESSION_WARNING_LEAD_SECONDS", "SHUTDOWN_TIMEOUT", "LOG_LEVEL",
}

// syncBuffer is a bytes.Buffer safe for the server's two output streams.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testWriter sends each progress line to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startServer builds ./app/cmd/server and starts it on the in-memory store
// and cache; it is stopped with SIGTERM (and must exit 0) when the test ends.
func startServer(t *testing.T, env ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "server")
	build := exec.Command("go", "build", "-o", bin, "./app/cmd/server")
	build.Dir = repoRoot(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./app/cmd/server: %v\n%s", err, out)
	}

	addr := freeAddr(t)
	cmd := exec.Command(bin)
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !containsString(serverEnv, name) {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "HTTP_ADDR="+addr, "STORE_BACKEND=memory", "CACHE_BACKEND=memory", "LOG_LEVEL=warn")
	cmd.Env = append(cmd.Env, env...)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the server: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("server exit after SIGTERM: %v\n%s", err, out.String())
			}
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("server did not exit within 15s of SIGTERM\n%s", out.String())
		}
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server output:\n%s", out.String())
		}
	})
	return "http://" + addr
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestSmoke runs the load generator for about ten seconds against the real
// server binary on the in-memory backends, with 20 mitras and 5 customers,
// and expects no 5xx, no unanswered request and no invariant violation.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server binary")
	}
	const adminPhone, adminPassword = "+620000000001", "smoke-admin-password"
	url := startServer(t,
		"APP_ENV=test",
		"ADMIN_PHONE="+adminPhone, "ADMIN_PASSWORD="+adminPassword,
		"PAIRING_TIMEOUT_SECONDS=5",
		"PAYMENT_TIMEOUT_SECONDS=8",
		"AVAILABILITY_SNAPSHOT_TTL_SECONDS=1",
		"HEARTBEAT_STALE_SECONDS=6",
		"MITRA_AUTO_OFFLINE_SWEEP_SECONDS=2",
		"ACCESS_TOKEN_TTL=4s", // so that the run refreshes its tokens on 401
	)

	cfg := DefaultConfig()
	cfg.URLs = []string{url}
	cfg.AdminPhone, cfg.AdminPassword = adminPhone, adminPassword
	cfg.Mitras, cfg.Customers = 20, 5
	cfg.Duration = 10 * time.Second
	cfg.Heartbeat = 2 * time.Second
	cfg.AcceptProbability = 0.5
	cfg.AcceptDelay = DurationRange{100 * time.Millisecond, 500 * time.Millisecond}
	cfg.MitraEndProbability = 0.3
	cfg.MitraEndAfter = DurationRange{time.Second, 4 * time.Second}
	cfg.OfflineProbability = 0.05
	cfg.OfflineFor = DurationRange{time.Second, 3 * time.Second}
	cfg.SessionMinutes = IntRange{1, 1}
	cfg.Think = DurationRange{200 * time.Millisecond, time.Second}
	cfg.BeaconEvery = time.Second
	cfg.PayDelay = DurationRange{100 * time.Millisecond, 500 * time.Millisecond}
	cfg.PollEvery = 2 * time.Second
	cfg.CancelProbability = 0.2
	cfg.Deactivate, cfg.DeactivateAt = 2, 3*time.Second
	cfg.Settle = time.Second
	cfg.Progress = 2 * time.Second

	r, err := NewRunner(cfg, testWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	start := time.Now()
	rep, err := r.Run(ctx)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	var text bytes.Buffer
	if err := WriteText(&text, rep); err != nil {
		t.Fatal(err)
	}
	t.Logf("run took %s\n%s", time.Since(start).Round(time.Millisecond), text.String())

	var problems []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			problems = append(problems, fmt.Errorf(format, args...))
		}
	}
	check(rep.Status5xx == 0, "%d 5xx answers", rep.Status5xx)
	check(rep.TransportErrors == 0, "%d requests without an answer", rep.TransportErrors)
	check(len(rep.Violations) == 0, "violations: %+v", rep.Violations)
	check(rep.Setup.Mitras == 20 && rep.Setup.Customers == 5, "setup: %+v", rep.Setup)
	check(rep.Run.Requests > 100, "only %d requests", rep.Run.Requests)
	check(rep.WebSocket.Connects >= 25, "%d WebSocket connects", rep.WebSocket.Connects)
	check(rep.WebSocket.Events[EventSessionOffer] > 0, "no session_offer: %v", rep.WebSocket.Events)
	check(rep.Simulation["sessions_requested"] > 0 && rep.Simulation["accept_won"] > 0 && rep.Simulation["sessions_paid"] > 0,
		"the sessions went nowhere: %v", rep.Simulation)
	check(rep.Simulation["mitras_deactivated"] == 2 && rep.Checks.Deactivations == 2, "deactivations: %v", rep.Simulation)
	check(rep.Checks.HoldsObserved > 0 && rep.Checks.MitraViewsChecked > 0, "nothing checked: %+v", rep.Checks)
	refreshed := false
	for _, rs := range rep.Run.Routes {
		refreshed = refreshed || rs.Route == routeRefresh && rs.ByStatus["200"] > 0
	}
	check(refreshed, "no token was refreshed")
	check(rep.Pass, "the report failed: %v", rep.Failures)
	if err := errors.Join(problems...); err != nil {
		t.Fatal(err)
	}
}
