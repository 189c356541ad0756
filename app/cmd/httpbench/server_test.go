package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// serverVars are the variables the server reads; they are removed from the
// inherited environment so that only what the test sets reaches it.
var serverVars = []string{
	"HTTP_ADDR", "APP_ENV", "STORE_BACKEND", "DATABASE_URL", "MIGRATE_ON_START",
	"CACHE_BACKEND", "VALKEY_URL", "VALKEY_KEY_PREFIX", "VALKEY_TIMEOUT",
	"JWT_SECRET", "ACCESS_TOKEN_TTL", "REFRESH_TOKEN_TTL", "ADMIN_PHONE", "ADMIN_PASSWORD",
	"DEFAULT_MITRA_CAPACITY", "HEARTBEAT_STALE_SECONDS", "MITRA_AUTO_OFFLINE_SWEEP_SECONDS",
	"HEARTBEAT_MIRROR_INTERVAL_SECONDS", "VALKEY_ONLINE_MIRROR_SWEEP_SECONDS",
	"AVAILABILITY_SNAPSHOT_TTL_SECONDS", "PAIRING_TIMEOUT_SECONDS", "PAYMENT_TIMEOUT_SECONDS",
	"SESSION_WARNING_LEAD_SECONDS", "SHUTDOWN_TIMEOUT", "LOG_LEVEL",
}

// TestAgainstRealServer builds the real server binary, starts it on the
// in-memory store and cache, and runs the benchmark against it with tiny
// settings; then runs it with a wrong admin password (exit 2), and stops the
// server with SIGTERM, which must exit 0.
func TestAgainstRealServer(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "server")
	build := exec.Command("go", "build", "-o", bin, "github.com/halobestie/mitra-availability/app/cmd/server")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build the server: %v\n%s", err, out)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	const phone, password = "+620000000001", "httpbench-test-admin"
	cmd := exec.Command(bin)
	drop := map[string]bool{}
	for _, k := range serverVars {
		drop[k] = true
	}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !drop[k] {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "HTTP_ADDR="+addr, "APP_ENV=test", "STORE_BACKEND=memory", "CACHE_BACKEND=memory",
		"JWT_SECRET=httpbench-test-secret-0123456789abcdef", "ADMIN_PHONE="+phone, "ADMIN_PASSWORD="+password, "LOG_LEVEL=warn")
	var out bytes.Buffer // written by the process' copier goroutines; read only after Wait
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the server: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			_ = cmd.Process.Kill()
			<-done
			t.Logf("server output:\n%s", out.String())
		}
	}()

	// The floor server, as bench-http.sh runs it (here in this process).
	floorCtx, stopFloor := context.WithCancel(context.Background())
	floorAddr := make(chan string, 1)
	floorDone := make(chan error, 1)
	go func() {
		pr, pw := io.Pipe()
		go func() {
			line, _ := bufio.NewReader(pr).ReadString('\n')
			floorAddr <- strings.TrimSpace(strings.TrimPrefix(line, "listening on "))
			io.Copy(io.Discard, pr)
		}()
		floorDone <- serveFloor(floorCtx, "127.0.0.1:0", pw)
		pw.Close()
	}()
	floorURL := "http://" + <-floorAddr
	defer func() {
		stopFloor()
		if err := <-floorDone; err != nil {
			t.Errorf("floor server: %v", err)
		}
	}()

	wantTargets := []string{floorName, "GET /healthz", "GET /api/availability", "POST /api/mitra/status/heartbeat",
		"GET /api/mitras/{id}/availability", "GET /api/mitra/status",
		"GET /api/mitras/{id}/availability at 500/s", "GET /api/mitra/status at 500/s", sessionName}
	// The Go generator always; wrk too when it is installed.
	generators := []string{"off"}
	if _, err := exec.LookPath("wrk"); err == nil {
		generators = append(generators, "auto")
	}
	for _, gen := range generators {
		jsonPath := filepath.Join(dir, "report-"+gen+".json")
		var stdout, stderr bytes.Buffer
		code := run([]string{"-url", "http://" + addr, "-admin-phone", phone, "-admin-password", password,
			"-mitras", "20", "-concurrency", "4", "-duration", "300ms", "-warmup", "50ms", "-label", "memory", "-json", jsonPath,
			"-floor-url", floorURL, "-floor-pid", strconv.Itoa(os.Getpid()), "-server-pid", strconv.Itoa(cmd.Process.Pid),
			"-rate", "500", "-wrk", gen},
			env(nil), &stdout, &stderr)
		if code != exitPass {
			t.Fatalf("-wrk %s: exit %d\n%s\n%s", gen, code, stdout.String(), stderr.String())
		}
		data, err := os.ReadFile(jsonPath)
		if err != nil {
			t.Fatal(err)
		}
		var rep Report
		if err := json.Unmarshal(data, &rep); err != nil {
			t.Fatal(err)
		}
		if !rep.Pass || rep.Label != "memory" || rep.Mitras != 20 || len(rep.Results) != len(wantTargets) {
			t.Fatalf("-wrk %s: report %+v", gen, rep)
		}
		wantTool := map[bool]string{true: "wrk", false: "go"}
		for i, r := range rep.Results {
			open := r.Rate > 0
			closedTool := wantTool[gen == "auto" && r.Target != sessionName]
			switch {
			case r.Target != wantTargets[i] || r.Requests < 20 || r.RPS <= 0 || r.Failed() || r.P99Ms <= 0 || r.CPUPerRequestUs <= 0:
				t.Errorf("-wrk %s: result %d: %+v", gen, i, r)
			case open && (r.Tool != "go" || r.RatioToHealthz != 0 || r.RatioToFloor != 0 || r.Rate != 500):
				t.Errorf("-wrk %s: fixed-rate result %d: %+v", gen, i, r)
			case !open && (r.Tool != closedTool || r.RatioToHealthz <= 0 || r.RatioToFloor <= 0):
				t.Errorf("-wrk %s: closed-loop result %d (want tool %s): %+v", gen, i, closedTool, r)
			}
		}
		if rep.Results[0].RatioToFloor != 1 || rep.Results[1].RatioToHealthz != 1 {
			t.Errorf("-wrk %s: floor ratios %v, %v", gen, rep.Results[0].RatioToFloor, rep.Results[1].RatioToHealthz)
		}
		if !strings.Contains(stdout.String(), "PASS") || !strings.Contains(stdout.String(), "load generator") {
			t.Errorf("-wrk %s: table:\n%s", gen, stdout.String())
		}
	}

	// A wrong admin password: the setup fails, exit 2.
	var stdout, stderr bytes.Buffer
	code := run([]string{"-url", "http://" + addr, "-admin-phone", phone, "-admin-password", "wrong-password", "-mitras", "1"},
		env(nil), &stdout, &stderr)
	if code != exitCannot || !strings.Contains(stderr.String(), "admin login") || !strings.Contains(stderr.String(), "401") {
		t.Errorf("wrong password: exit %d\n%s", code, stderr.String())
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		stopped = true
		if err != nil {
			t.Fatalf("the server did not exit 0 after SIGTERM: %v\n%s", err, out.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the server did not exit within 20 s of SIGTERM")
	}
}
