package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/halobestie/mitra-availability/internal/serverproc"
)

// TestAgainstRealServer builds the real server binary, starts it on the
// in-memory store and cache, and runs the benchmark against it with tiny
// settings; then runs it with a wrong admin password (exit 2). The server is
// stopped with SIGTERM, which must exit 0.
func TestAgainstRealServer(t *testing.T) {
	const phone, password = "+620000000001", "httpbench-test-admin"
	srv := serverproc.Start(t, serverproc.BuildForTest(t), map[string]string{
		"APP_ENV": "test", "STORE_BACKEND": "memory", "CACHE_BACKEND": "memory",
		"JWT_SECRET": "httpbench-test-secret-0123456789abcdef", "ADMIN_PHONE": phone, "ADMIN_PASSWORD": password,
		"LOG_LEVEL": "warn",
	})

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

	// The answer floor gives GET /healthz's answer as the server does.
	floorAnswer, serverAnswer := healthzAnswerOf(t, floorURL), healthzAnswerOf(t, srv.URL)
	if floorAnswer != serverAnswer {
		t.Errorf("GET /healthz: the floor answers %q, the server %q", floorAnswer, serverAnswer)
	}

	wantTargets := []string{floorName, answerFloorName, "GET /healthz", "GET /api/availability", "POST /api/mitra/status/heartbeat",
		"GET /api/mitras/{id}/availability", "GET /api/mitra/status",
		"GET /api/mitras/{id}/availability at 500/s", "GET /api/mitra/status at 500/s", sessionName}
	// The Go generator always; wrk too when it is installed.
	dir := t.TempDir()
	generators := []string{"off"}
	if _, err := exec.LookPath("wrk"); err == nil {
		generators = append(generators, "auto")
	}
	for _, gen := range generators {
		jsonPath := filepath.Join(dir, "report-"+gen+".json")
		var stdout, stderr bytes.Buffer
		code := run([]string{"-url", srv.URL, "-admin-phone", phone, "-admin-password", password,
			"-mitras", "20", "-concurrency", "4", "-duration", "300ms", "-warmup", "50ms", "-label", "memory", "-json", jsonPath,
			"-floor-url", floorURL, "-floor-pid", strconv.Itoa(os.Getpid()), "-server-pid", strconv.Itoa(srv.Pid()),
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
		if rep.Results[0].RatioToFloor != 1 || rep.Results[2].RatioToHealthz != 1 {
			t.Errorf("-wrk %s: floor ratios %v, %v", gen, rep.Results[0].RatioToFloor, rep.Results[2].RatioToHealthz)
		}
		if !strings.Contains(stdout.String(), "PASS") || !strings.Contains(stdout.String(), "load generator") {
			t.Errorf("-wrk %s: table:\n%s", gen, stdout.String())
		}
	}

	// A wrong admin password: the setup fails, exit 2.
	var stdout, stderr bytes.Buffer
	code := run([]string{"-url", srv.URL, "-admin-phone", phone, "-admin-password", "wrong-password", "-mitras", "1"},
		env(nil), &stdout, &stderr)
	if code != exitCannot || !strings.Contains(stderr.String(), "admin login") || !strings.Contains(stderr.String(), "401") {
		t.Errorf("wrong password: exit %d\n%s", code, stderr.String())
	}

	// The cleanup of serverproc.Start stops the server with SIGTERM and fails
	// the test unless it exits 0.
}

// healthzAnswerOf is what GET base/healthz answers, as the client sees it:
// the status, the headers but Date (with X-Request-Id's value reduced to its
// length and the two ids it answers checked to differ) and the body.
func healthzAnswerOf(t *testing.T, base string) string {
	t.Helper()
	var ids []string
	var answer string
	for range 2 {
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		h := resp.Header.Clone()
		h.Del("Date")
		id := h.Get("X-Request-Id")
		ids = append(ids, id)
		h.Set("X-Request-Id", strconv.Itoa(len(id)))
		var hb strings.Builder
		if err := h.Write(&hb); err != nil {
			t.Fatal(err)
		}
		answer = fmt.Sprintf("%d\n%s\n%s", resp.StatusCode, hb.String(), body)
	}
	if ids[0] == "" || ids[0] == ids[1] {
		t.Errorf("%s/healthz: request ids %q: want a fresh one per request", base, ids)
	}
	return answer
}
