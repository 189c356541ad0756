package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestPercentile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i + 1)
	}
	for _, c := range []struct {
		values []time.Duration
		p      float64
		want   time.Duration
	}{
		{nil, 50, 0},
		{[]time.Duration{7}, 50, 7},
		{[]time.Duration{7}, 99, 7},
		{[]time.Duration{1, 2}, 50, 1},
		{[]time.Duration{1, 2}, 51, 2},
		{[]time.Duration{1, 2, 3}, 50, 2},
		{hundred, 50, 50},
		{hundred, 95, 95},
		{hundred, 99, 99},
		{hundred, 99.5, 100},
		{hundred, 100, 100},
		{hundred, 0.1, 1},
	} {
		if got := percentile(c.values, c.p); got != c.want {
			t.Errorf("percentile(%d values, %v) = %d, want %d", len(c.values), c.p, got, c.want)
		}
	}
}

func TestSetRatios(t *testing.T) {
	rs := []Result{{Target: baselineName, RPS: 2000}, {Target: "b", RPS: 500}, {Target: "c", RPS: 3000}}
	setRatios(rs)
	for i, want := range []float64{1, 0.25, 1.5} {
		if rs[i].RatioToHealthz != want {
			t.Errorf("%s: ratio %v, want %v", rs[i].Target, rs[i].RatioToHealthz, want)
		}
	}
	// No baseline, or a baseline that measured nothing: no ratio.
	for _, rs := range [][]Result{{{Target: "b", RPS: 500}}, {{Target: baselineName}, {Target: "b", RPS: 500}}} {
		setRatios(rs)
		if got := rs[len(rs)-1].RatioToHealthz; got != 0 {
			t.Errorf("ratio without a usable baseline: %v", got)
		}
	}
}

func TestParseFlags(t *testing.T) {
	var stderr bytes.Buffer
	o, err := parseFlags([]string{
		"-url", "http://localhost:9000/", "-mitras", "50", "-concurrency", "8", "-duration", "3s",
		"-warmup", "0s", "-json", "out.json", "-label", "memory",
	}, env(map[string]string{"ADMIN_PHONE": "+620000000001", "ADMIN_PASSWORD": "from-env"}), &stderr)
	if err != nil {
		t.Fatalf("parseFlags: %v\n%s", err, stderr.String())
	}
	if o.baseURL != "http://localhost:9000" || o.adminPhone != "+620000000001" || o.adminPassword != "from-env" ||
		o.mitras != 50 || o.concurrency != 8 || o.duration != 3*time.Second || o.warmup != 0 ||
		o.jsonPath != "out.json" || o.label != "memory" || o.setupConcurrency != 16 || o.timeout != 10*time.Second {
		t.Fatalf("options %+v", o)
	}
	// A flag beats the environment.
	o, err = parseFlags([]string{"-admin-password", "from-flag"}, env(map[string]string{"ADMIN_PHONE": "+620000000001", "ADMIN_PASSWORD": "from-env"}), &stderr)
	if err != nil || o.adminPassword != "from-flag" || o.baseURL != "http://127.0.0.1:8080" || o.mitras != 1000 || o.concurrency != 32 {
		t.Fatalf("defaults: %+v, %v", o, err)
	}
	if _, err := parseFlags([]string{"-url", "http://10.1.2.3:8080", "-allow-remote"}, env(map[string]string{"ADMIN_PHONE": "p", "ADMIN_PASSWORD": "x"}), &stderr); err != nil {
		t.Fatalf("-allow-remote: %v", err)
	}
}

func TestBadFlagsExitTwo(t *testing.T) {
	admin := []string{"-admin-phone", "+620000000001", "-admin-password", "secret-pw"}
	for _, args := range [][]string{
		{"-url", "http://10.1.2.3:8080"}, // not loopback
		{"-url", "http://example.com"},
		{"-url", "ftp://127.0.0.1"},
		{"-url", "127.0.0.1:8080"},
		{"-url", "http://127.0.0.1:8080/?x=1"},
		{"-url", "http://%zz"},
		{"-mitras", "0"},
		{"-mitras", "1000000"},
		{"-mitras", "many"},
		{"-concurrency", "0"},
		{"-setup-concurrency", "0"},
		{"-duration", "0s"},
		{"-duration", "-1s"},
		{"-warmup", "-1s"},
		{"-timeout", "0s"},
		{"-wait", "-1s"},
		{"-only", "("},
		{"-rate", "-1"},
		{"-wrk-threads", "0"},
		{"-floor-url", "http://10.1.2.3:9"},
		{"-no-such-flag"},
		{"stray-argument"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(append(args, admin...), env(nil), &stdout, &stderr); code != exitCannot {
			t.Errorf("run(%q) = %d, want %d\n%s", args, code, exitCannot, stderr.String())
		}
	}
	// No admin credentials at all.
	var stdout, stderr bytes.Buffer
	if code := run(nil, env(nil), &stdout, &stderr); code != exitCannot || !strings.Contains(stderr.String(), "admin credentials") {
		t.Errorf("no credentials: %d\n%s", code, stderr.String())
	}
	// -h prints the usage and never the password from the environment.
	stderr.Reset()
	code := run([]string{"-h"}, env(map[string]string{"ADMIN_PASSWORD": "do-not-print-me"}), &stdout, &stderr)
	if code != exitPass || !strings.Contains(stderr.String(), "-concurrency") || strings.Contains(stderr.String(), "do-not-print-me") {
		t.Errorf("-h: %d\n%s", code, stderr.String())
	}
}

// A server that never answers: the run cannot start, exit 2.
func TestUnreachableServerExitsTwo(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run([]string{"-url", "http://127.0.0.1:1", "-admin-phone", "+620000000001", "-admin-password", "secret-pw", "-wait", "300ms"},
		env(nil), &stdout, &stderr)
	if code != exitCannot || !strings.Contains(stderr.String(), "not ready") {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
}

func TestMeasureCountsNon2xxAndTransportErrors(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		if n.Add(1)%2 == 0 {
			http.Error(w, `{"error":{"code":"unavailable"}}`, http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	hc := newHTTPClient(4, 2*time.Second)
	defer hc.CloseIdleConnections()
	tg := target{name: "x", method: http.MethodPost, req: func(uint64) (string, string) { return "/x", "tok" }}

	r := measure(context.Background(), hc, srv.URL, tg, 4, 20*time.Millisecond, 200*time.Millisecond, &cpuMeter{})
	if r.Requests == 0 || r.Non2xx == 0 || r.Non2xx == r.Requests || r.TransportErrors != 0 || !r.Failed() {
		t.Fatalf("half 503s: %+v", r)
	}
	if !strings.Contains(r.FirstError, "HTTP 503") || !strings.Contains(r.FirstError, "unavailable") {
		t.Fatalf("first error %q", r.FirstError)
	}
	if r.RPS <= 0 || r.P50Ms <= 0 || r.P50Ms > r.P95Ms || r.P95Ms > r.P99Ms || r.Seconds < 0.2 {
		t.Fatalf("rate and latency %+v", r)
	}

	// Every request answered 2xx: no failure.
	ok := target{name: "ok", method: http.MethodGet, req: func(uint64) (string, string) { return "/ok", "tok" }}
	n.Store(0)
	okSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("{}")) }))
	defer okSrv.Close()
	if r := measure(context.Background(), hc, okSrv.URL, ok, 4, 0, 100*time.Millisecond, &cpuMeter{}); r.Failed() || r.Requests == 0 {
		t.Fatalf("all 2xx: %+v", r)
	}

	// A closed server: transport errors, no answered requests.
	srv.Close()
	r = measure(context.Background(), hc, srv.URL, tg, 2, 0, 50*time.Millisecond, &cpuMeter{})
	if r.TransportErrors == 0 || r.Requests != 0 || !r.Failed() || r.FirstError == "" {
		t.Fatalf("closed server: %+v", r)
	}
}

// An interrupt stops the workers at once and counts nothing cut off.
func TestMeasureStopsOnCancel(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	hc := newHTTPClient(4, time.Minute)
	defer hc.CloseIdleConnections()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	tg := target{name: "slow", method: http.MethodGet, req: func(uint64) (string, string) { return "/", "" }}
	start := time.Now()
	r := measure(ctx, hc, srv.URL, tg, 4, 0, time.Minute, &cpuMeter{})
	if time.Since(start) > 10*time.Second {
		t.Fatalf("measure ran %s after the cancel", time.Since(start))
	}
	if r.TransportErrors != 0 || r.Requests != 0 {
		t.Fatalf("requests cut off by the cancel were counted: %+v", r)
	}
}

func TestParallel(t *testing.T) {
	var mu sync.Mutex
	seen := map[int]int{}
	err := parallel(context.Background(), 100, 7, func(_ context.Context, i int) error {
		mu.Lock()
		seen[i]++
		mu.Unlock()
		return nil
	})
	if err != nil || len(seen) != 100 {
		t.Fatalf("err %v, %d indices", err, len(seen))
	}
	for i, c := range seen {
		if c != 1 || i < 0 || i >= 100 {
			t.Fatalf("index %d called %d times", i, c)
		}
	}

	boom := errors.New("boom")
	var calls atomic.Int64
	err = parallel(context.Background(), 10_000, 4, func(ctx context.Context, i int) error {
		calls.Add(1)
		if i == 3 {
			return boom
		}
		<-ctx.Done() // the others block until the failure cancels them
		return ctx.Err()
	})
	if !errors.Is(err, boom) || calls.Load() > 8 {
		t.Fatalf("first error: %v after %d calls", err, calls.Load())
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := parallel(ctx, 10, 2, func(context.Context, int) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: %v", err)
	}
}

func TestWriteText(t *testing.T) {
	rep := &Report{Label: "memory", URL: "http://127.0.0.1:1", Mitras: 3, Concurrency: 2, Duration: "1s", Warmup: "0s",
		Results: []Result{
			{Target: baselineName, Requests: 100, RPS: 100, RatioToHealthz: 1},
			{Target: "GET /api/mitra/status", Requests: 50, RPS: 50, RatioToHealthz: 0.5, Non2xx: 1, FirstError: "HTTP 500"},
		}}
	var b bytes.Buffer
	if err := writeText(&b, rep); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"memory at http://127.0.0.1:1", "GET /healthz ", "1.00x", "0.50x", "first failure of GET /api/mitra/status: HTTP 500", "FAIL"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	rep.Pass = true
	path := filepath.Join(t.TempDir(), "r.json")
	if err := writeJSON(path, rep); err != nil {
		t.Fatal(err)
	}
	var back Report
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &back); err != nil || !back.Pass || len(back.Results) != 2 || back.Results[1].Non2xx != 1 {
		t.Fatalf("JSON round trip: %v %+v", err, back)
	}
}

// fakeServer answers the setup requests as the service does and every
// measured request with 200, except /api/mitra/status with failStatus.
func fakeServer(t *testing.T, failStatus int) *httptest.Server {
	t.Helper()
	writeJSON := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/auth/login", func(w http.ResponseWriter, r *http.Request) {
		var in struct{ Phone string }
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Phone == "" {
			writeJSON(w, http.StatusBadRequest, nil)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"access_token": "t" + in.Phone, "user": map[string]string{"id": in.Phone}})
	})
	mux.HandleFunc("POST /api/admin/mitras", func(w http.ResponseWriter, r *http.Request) {
		var in struct{ Phone string }
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			writeJSON(w, http.StatusBadRequest, nil)
			return
		}
		writeJSON(w, http.StatusCreated, map[string]string{"id": in.Phone})
	})
	mux.HandleFunc("POST /api/customers", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusCreated, map[string]string{}) })
	mux.HandleFunc("POST /api/mitra/status/heartbeat", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("GET /api/mitra/status", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, failStatus, map[string]string{}) })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, map[string]string{}) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// The whole run against a fake server: exit 0 when every answer is 2xx, 1
// when one target answers 500.
func TestRunExitCodes(t *testing.T) {
	for _, c := range []struct {
		status int
		want   int
	}{{http.StatusOK, exitPass}, {http.StatusInternalServerError, exitFail}} {
		srv := fakeServer(t, c.status)
		jsonPath := filepath.Join(t.TempDir(), "r.json")
		var stdout, stderr bytes.Buffer
		code := run([]string{"-url", srv.URL, "-admin-phone", "+620000000001", "-admin-password", "pw-pw-pw-pw",
			"-mitras", "5", "-concurrency", "2", "-duration", "100ms", "-warmup", "10ms", "-json", jsonPath,
			"-rate", "0", "-sessions=false", "-wrk", "off"}, env(nil), &stdout, &stderr)
		if code != c.want {
			t.Fatalf("status %d: exit %d, want %d\n%s\n%s", c.status, code, c.want, stdout.String(), stderr.String())
		}
		data, err := os.ReadFile(jsonPath)
		if err != nil {
			t.Fatal(err)
		}
		var rep Report
		if err := json.Unmarshal(data, &rep); err != nil {
			t.Fatal(err)
		}
		if len(rep.Results) != 5 || rep.Pass != (c.want == exitPass) {
			t.Fatalf("report %+v", rep)
		}
		if last := rep.Results[4]; last.Target != "GET /api/mitra/status" || (last.Non2xx > 0) != (c.want == exitFail) {
			t.Fatalf("status target %+v", last)
		}
	}
}

func TestGroup(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 7: "7", 999: "999", 1000: "1 000", 12345: "12 345", 1234567: "1 234 567", -4500: "-4 500"} {
		if got := group(n); got != want {
			t.Errorf("group(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestCompare(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, rep Report) string {
		path := filepath.Join(dir, name)
		if err := writeJSON(path, &rep); err != nil {
			t.Fatal(err)
		}
		return path
	}
	a := write("a.json", Report{Label: "pg+valkey", Pass: true, Results: []Result{
		{Target: baselineName, RPS: 10000, RatioToHealthz: 1, RatioToFloor: 0.5, P50Ms: 1, P99Ms: 4, CPUPerRequestUs: 20},
		{Target: "GET /api/mitra/status", RPS: 4000, Requests: 4000, RatioToHealthz: 0.4, RatioToFloor: 0.2, P50Ms: 2, P99Ms: 9.5,
			Valkey: &ValkeyStats{Calls: map[string]int64{"evalsha": 4000, "exec": 400}, CommandsPerRequest: 1.1, RequestsPerRead: 3.5, CPUPerRequestUs: 6.25, ServiceConnections: 2}},
		{Target: "GET /api/mitra/status at 2 000/s", Rate: 2000, RPS: 1990, P50Ms: 1, P99Ms: 3},
	}, Generator: "go+wrk"})
	b := write("b.json", Report{Label: "pg", Pass: false, Results: []Result{
		{Target: baselineName, RPS: 9000, RatioToHealthz: 1},
		{Target: "GET /api/mitra/status", RPS: 2000, RatioToHealthz: 2000.0 / 9000},
	}})
	c := write("c.json", Report{Pass: true, Results: []Result{{Target: baselineName, RPS: 20000, RatioToHealthz: 1}}}) // no label, one target missing

	var stdout, stderr bytes.Buffer
	if code := run([]string{"-compare", a + "," + b + ", " + c}, env(nil), &stdout, &stderr); code != exitPass {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{
		"| target | pg+valkey req/s | vs floor | vs /healthz | CPU µs/req | pg req/s | vs floor | vs /healthz | CPU µs/req | c.json req/s | vs floor | vs /healthz | CPU µs/req | pg+valkey vs pg |",
		"| `GET /healthz` | 10 000 | 0.50× | 1.00× | 20.0 | 9 000 | — | 1.00× | — | 20 000 | — | 1.00× | — | 1.11× |",
		"| `GET /api/mitra/status` | 4 000 | 0.20× | 0.40× | — | 2 000 | — | 0.22× | — | — | — | — | — | 2.00× |",
		"| `GET /api/mitra/status at 2 000/s` | 1 990 | — | — | — | — | — | — | — | — | — | — | — | — |",
		"| `GET /api/mitra/status` | 2.00 / 9.50 |",
		"| pg+valkey | `GET /api/mitra/status` | 1.10 | evalsha 1.00, exec 0.10 | 3.50 | 6.2 | 2 |",
		"pg+valkey: go+wrk",
		"**pg: FAIL**",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	if strings.Contains(out, "pg+valkey: FAIL") {
		t.Errorf("a passing report marked as failed:\n%s", out)
	}

	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := write("empty.json", Report{Label: "x"})
	for _, arg := range []string{bad, empty, filepath.Join(dir, "missing.json"), ","} {
		stderr.Reset()
		if code := run([]string{"-compare", arg}, env(nil), &stdout, &stderr); code != exitCannot {
			t.Errorf("-compare %q: exit %d, want %d", arg, code, exitCannot)
		}
	}
}

func TestParseProcStat(t *testing.T) {
	// The command name may hold spaces and parentheses.
	line := "4242 (my (odd) srv) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 12 0 100 0 0"
	got, err := parseProcStat(line)
	if err != nil || got != 3.25 {
		t.Fatalf("parseProcStat = %v, %v; want 3.25 s", got, err)
	}
	for _, bad := range []string{"", "4242 no parens S 1", "4242 (x) S 1 2 3", "4242 (x) S 1 2 3 4 5 6 7 8 9 10 u s"} {
		if _, err := parseProcStat(bad); err == nil {
			t.Errorf("parseProcStat(%q) accepted", bad)
		}
	}
	// This process: its CPU time only grows.
	a, err := processCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(50 * time.Millisecond); time.Now().Before(deadline); {
	}
	if b, err := processCPU(os.Getpid()); err != nil || b < a {
		t.Fatalf("CPU time went from %v to %v (%v)", a, b, err)
	}
}

// A fixed-rate target sends at its rate, however fast the server answers,
// and counts the latency from each request's due time.
func TestMeasureAtFixedRate(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	hc := newHTTPClient(8, 2*time.Second)
	defer hc.CloseIdleConnections()
	tg := target{name: "rated", method: http.MethodGet, rate: 200, req: func(uint64) (string, string) { return "/", "" }}
	r := measure(context.Background(), hc, srv.URL, tg, 8, 100*time.Millisecond, time.Second, &cpuMeter{})
	if r.Failed() || r.Rate != 200 || r.Tool != "go" {
		t.Fatalf("result %+v", r)
	}
	// 200/s for 1 s: about 200 measured (not the thousands a closed loop sends).
	if r.Requests < 150 || r.Requests > 230 || n.Load() > 260 {
		t.Fatalf("%d measured, %d served: want about 200 and 220", r.Requests, n.Load())
	}

	// A server slower than the rate: the latency grows with the queue, from the due times.
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer slow.Close()
	r = measure(context.Background(), hc, slow.URL, tg, 1, 0, 500*time.Millisecond, &cpuMeter{})
	if r.P99Ms < 100 {
		t.Fatalf("one worker at 20 ms per request offered 200/s: p99 %v ms, want the queueing counted", r.P99Ms)
	}
}

// The floor server answers 204 to anything and stops with its context.
func TestServeFloor(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	done := make(chan error, 1)
	pr, pw := io.Pipe()
	go func() { done <- serveFloor(ctx, "127.0.0.1:0", pw); pw.Close() }()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	go io.Copy(&out, pr)
	addr := strings.TrimSpace(strings.TrimPrefix(line, "listening on "))
	for _, path := range []string{"/", "/anything?x=1"} {
		resp, err := http.Post("http://"+addr+path, "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serveFloor: %v", err)
	}
	// A taken address fails at once.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := serveFloor(context.Background(), l.Addr().String(), io.Discard); err == nil {
		t.Fatal("serveFloor on a taken address succeeded")
	}
}

func TestParseCommandStats(t *testing.T) {
	cs := "# Commandstats\r\ncmdstat_evalsha:calls=120,usec=900,usec_per_call=7.50,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_exec:calls=7,usec=80\r\ncmdstat_ping:calls=3,usec=1\r\n"
	got := parseCommandStats(cs)
	if got["evalsha"] != 120 || got["exec"] != 7 || got["ping"] != 3 || len(got) != 3 {
		t.Fatalf("parseCommandStats = %v", got)
	}
	a := valkeyCounters{calls: map[string]int64{"evalsha": 20, "ping": 3}, processed: 100, reads: 50}
	b := valkeyCounters{calls: got, processed: 330, reads: 100}
	d := a.delta(b, 100)
	if d.Calls["evalsha"] != 100 || d.Calls["exec"] != 7 || len(d.Calls) != 2 || d.CommandsPerRequest != 2.3 || d.RequestsPerRead != 2 {
		t.Fatalf("delta = %+v", d)
	}
	cpu := parseCPU("# CPU\r\nused_cpu_sys:1.250000\r\nused_cpu_user:0.750000\r\nused_cpu_sys_children:9.0\r\n")
	if cpu != 2 {
		t.Fatalf("parseCPU = %v, want 2", cpu)
	}
	a.cpu, b.cpu = 1, cpu
	if d := a.delta(b, 100); d.CPUPerRequestUs != 10000 {
		t.Fatalf("CPU per request = %v µs, want 10000", d.CPUPerRequestUs)
	}
}
