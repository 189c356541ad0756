package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/loadgen"
)

func TestFlags(t *testing.T) {
	env := map[string]string{"TEST_DATABASE_URL": "postgres://u@127.0.0.1:1/db", "TEST_REDIS_SERVER": "sh"}
	getenv := func(k string) string { return env[k] }
	for _, tc := range []struct {
		args []string
		want string // "" when valid
	}{
		{[]string{"-server", "bin"}, ""},
		{[]string{}, "-server is required"},
		{[]string{"-server", "bin", "-reseed", "1500ms"}, "whole number of seconds"},
		{[]string{"-server", "bin", "-mitras", "0"}, "at least 1"},
		{[]string{"-server", "bin", "-valkey-hang", "0s"}, "must be positive"},
		{[]string{"-server", "bin", "extra"}, "unexpected arguments"},
		{[]string{"-server", "bin", "-redis-server", "/nonexistent/redis-server"}, "install redis-server"},
	} {
		var stderr bytes.Buffer
		o, _, err := parseFlags(tc.args, getenv, &stderr)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: %v", tc.args, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: error %v, want one containing %q", tc.args, err, tc.want)
		case tc.want == "" && (o.databaseURL != env["TEST_DATABASE_URL"] || o.redisBin != "sh" || o.mitras != 1000 || o.customers != 100):
			t.Errorf("%v: options %+v do not take the defaults and the environment", tc.args, o)
		}
	}
	if code := mainRun([]string{"-mitras", "x"}, getenv, &bytes.Buffer{}, &bytes.Buffer{}); code != 2 {
		t.Errorf("bad flags: exit %d, want 2", code)
	}
}

// TestChaosShort runs the whole chaos sequence, scaled down, against the
// real server binary, a redis-server of its own and the test Postgres: the
// service must hold through every fault.
func TestChaosShort(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers (-short)")
	}
	dsn := os.Getenv("TEST_DATABASE_URL")
	redis := os.Getenv("TEST_REDIS_SERVER")
	if redis == "" {
		redis, _ = exec.LookPath("redis-server")
	}
	if dsn == "" || redis == "" {
		if os.Getenv("REQUIRE_INTEGRATION") != "" {
			t.Fatal("TEST_DATABASE_URL and TEST_REDIS_SERVER (or redis-server on PATH) are required")
		}
		t.Skip("TEST_DATABASE_URL and a redis-server are needed")
	}
	bin := filepath.Join(t.TempDir(), "server")
	build := exec.Command("go", "build", "-o", bin, "github.com/halobestie/mitra-availability/app/cmd/server")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the server: %v\n%s", err, out)
	}
	o := defaultOptions()
	o.serverBin, o.redisBin, o.databaseURL = bin, redis, dsn
	o.mitras, o.customers, o.heartbeat = 40, 10, 5*time.Second
	o.warmup = 3 * time.Second
	o.steady, o.valkeyDown, o.valkeyHang, o.instanceDown, o.recovery, o.reseed = 5*time.Second, 5*time.Second, 3*time.Second, 4*time.Second, 8*time.Second, 10*time.Second
	o.loadgen = func(c *loadgen.Config) { c.Progress = 0 }
	o.transitionBound = 0 // too few transitions at this scale for a median to mean anything; reported only
	var progress bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := run(ctx, o, &progress)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, progress.String())
	}
	var out bytes.Buffer
	if err := writeText(&out, res); err != nil {
		t.Fatal(err)
	}
	if !res.Pass {
		t.Fatalf("the chaos run failed:\n%s\n%s", out.String(), progress.String())
	}
	// The run did what it claims: every phase ran and carried load, every fault was measured.
	var names []string
	for _, p := range res.Load.Phases {
		names = append(names, p.Name)
		if p.Requests == 0 {
			t.Errorf("phase %s carried no request", p.Name)
		}
	}
	// The timed phases last what they were given (the recovery phases are
	// timed from the end of their fault, so they may run a little longer).
	for _, p := range res.Load.Phases {
		length := map[string]time.Duration{phaseWarmup: o.warmup, phaseSteady: o.steady, phaseValkeyHung: o.valkeyHang}[p.Name]
		if length > 0 && (p.Seconds < length.Seconds()-0.5 || p.Seconds > length.Seconds()+1.5) {
			t.Errorf("phase %s lasted %.1fs, want %s", p.Name, p.Seconds, length)
		}
	}
	want := []string{phaseWarmup, phaseSteady, phaseValkeyKilled, phaseValkeyRestarted, phaseValkeyHung, phaseValkeyContinued, phaseInstanceKilled, phaseInstanceRestarted}
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Errorf("phases %v, want %v", names, want)
	}
	for i, f := range res.Faults {
		if f.ReadyAfter == nil || f.MirrorConvergedAfter == nil || (i < 2 && f.DegradedAfter == nil) {
			t.Errorf("fault %q was not fully measured: %+v", f.Fault, f)
		}
	}
	if res.Load.WebSocket.Disconnects == 0 {
		t.Error("killing an instance dropped no WebSocket")
	}
	if res.Load.Checks.MirrorComparisons == 0 || res.Load.Checks.Deactivations == 0 {
		t.Errorf("the checker compared the mirror %d times and saw %d deactivations", res.Load.Checks.MirrorComparisons, res.Load.Checks.Deactivations)
	}
	t.Logf("\n%s", out.String())
}
