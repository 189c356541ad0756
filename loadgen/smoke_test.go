package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/internal/serverproc"
)

// testWriter sends each progress line to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestSmoke runs the load generator for about ten seconds against the real
// server binary on the in-memory backends, with 20 mitras and 5 customers,
// and expects no 5xx, no unanswered request and no invariant violation.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server binary")
	}
	const adminPhone, adminPassword = "+620000000001", "smoke-admin-password"
	url := serverproc.Start(t, serverproc.BuildForTest(t), map[string]string{
		"STORE_BACKEND": "memory", "CACHE_BACKEND": "memory", "LOG_LEVEL": "warn",
		"APP_ENV":     "test",
		"ADMIN_PHONE": adminPhone, "ADMIN_PASSWORD": adminPassword,
		"PAIRING_TIMEOUT_SECONDS":           "5",
		"PAYMENT_TIMEOUT_SECONDS":           "8",
		"QUEUE_TIMEOUT_SECONDS":             "4",
		"AVAILABILITY_SNAPSHOT_TTL_SECONDS": "1",
		"HEARTBEAT_STALE_SECONDS":           "6",
		"MITRA_AUTO_OFFLINE_SWEEP_SECONDS":  "2",
		"ACCESS_TOKEN_TTL":                  "4s", // so that the run refreshes its tokens on 401
	}).URL

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
	cfg.QueueTimeout, cfg.PairingTimeout = 4*time.Second, 5*time.Second
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
