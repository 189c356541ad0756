package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// wrkRunner drives wrk (https://github.com/wg/wrk) for the closed-loop
// targets that are one request each: wrk's own event loop in C costs the
// machine less than the Go generator, so more of it is left to the server.
type wrkRunner struct {
	path    string
	threads int
	dir     string // where the Lua scripts are written
}

// wrkSummary is what the script's done() prints.
type wrkSummary struct {
	Requests   int64 `json:"requests"`
	DurationUs int64 `json:"duration_us"`
	P50Us      int64 `json:"p50_us"`
	P95Us      int64 `json:"p95_us"`
	P99Us      int64 `json:"p99_us"`
	Status     int64 `json:"status"` // answers with a status above 399
	Connect    int64 `json:"connect"`
	Read       int64 `json:"read"`
	Write      int64 `json:"write"`
	Timeout    int64 `json:"timeout"`
}

// luaQuote quotes s as a Lua string literal.
func luaQuote(s string) string { return strconv.Quote(s) }

// script writes the Lua script of t: its requests (rotating over at most
// len(fixtures) distinct paths and tokens, formatted once in init) and a
// done() that prints the summary as one JSON line.
func (w *wrkRunner) script(t target, distinct int) (string, error) {
	var b strings.Builder
	b.WriteString("local reqs = {}\nlocal n = 0\nlocal i = 0\nlocal specs = {\n")
	for k := range max(distinct, 1) {
		path, token := t.req(uint64(k))
		fmt.Fprintf(&b, "  {%s, %s},\n", luaQuote(path), luaQuote(token))
	}
	fmt.Fprintf(&b, "}\nlocal method = %s\n", luaQuote(t.method))
	b.WriteString(`
function init(args)
  for k, s in ipairs(specs) do
    local headers = {}
    if s[2] ~= "" then headers["Authorization"] = "Bearer " .. s[2] end
    if method == "POST" then headers["Content-Length"] = "0" end
    reqs[k] = wrk.format(method, s[1], headers)
  end
  n = #reqs
end

function request()
  i = i + 1
  return reqs[(i % n) + 1]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p95_us":%d,"p99_us":%d,"status":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95), latency:percentile(99),
    e.status, e.connect, e.read, e.write, e.timeout))
end
`)
	f, err := os.CreateTemp(w.dir, "wrk-*.lua")
	if err != nil {
		return "", err
	}
	defer f.Close()
	if _, err := f.WriteString(b.String()); err != nil {
		return "", err
	}
	return f.Name(), nil
}

// wrkSeconds rounds d up to wrk's whole seconds.
func wrkSeconds(d time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(d.Seconds())))) + "s"
}

// run runs wrk with the script for d against base and returns its summary.
func (w *wrkRunner) run(ctx context.Context, base, script string, connections int, d, timeout time.Duration) (wrkSummary, error) {
	threads := min(w.threads, connections)
	cmd := exec.CommandContext(ctx, w.path, "-t", strconv.Itoa(threads), "-c", strconv.Itoa(connections),
		"-d", wrkSeconds(d), "--timeout", wrkSeconds(timeout), "-s", script, base)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return wrkSummary{}, fmt.Errorf("wrk: %w: %s", err, strings.TrimSpace(errOut.String()))
	}
	for line := range strings.SplitSeq(out.String(), "\n") {
		if js, ok := strings.CutPrefix(line, "WRKJSON "); ok {
			var s wrkSummary
			if err := json.Unmarshal([]byte(js), &s); err != nil {
				return wrkSummary{}, fmt.Errorf("wrk summary %q: %w", js, err)
			}
			return s, nil
		}
	}
	return wrkSummary{}, fmt.Errorf("wrk printed no summary: %s", strings.TrimSpace(out.String()))
}

// measureWrk measures t with wrk: warm-up (not counted), then the measured
// run, with the server's CPU read around the measured run.
func (w *wrkRunner) measure(ctx context.Context, base string, t target, distinct, connections int, warmup, duration, timeout time.Duration, cpu *cpuMeter) (Result, error) {
	script, err := w.script(t, distinct)
	if err != nil {
		return Result{}, err
	}
	defer os.Remove(script)
	if warmup > 0 {
		if _, err := w.run(ctx, base, script, connections, warmup, timeout); err != nil {
			return Result{}, err
		}
	}
	if t.before != nil {
		t.before()
	}
	cpu.begin()
	s, err := w.run(ctx, base, script, connections, duration, timeout)
	if err != nil {
		return Result{}, err
	}
	r := Result{Target: t.name, Tool: "wrk", Requests: s.Requests, Seconds: float64(s.DurationUs) / 1e6,
		P50Ms: float64(s.P50Us) / 1e3, P95Ms: float64(s.P95Us) / 1e3, P99Ms: float64(s.P99Us) / 1e3,
		Non2xx: s.Status, TransportErrors: s.Connect + s.Read + s.Write + s.Timeout}
	if cpuSec, ok := cpu.end(); ok {
		r.ServerCPUSeconds = cpuSec
	}
	if r.Seconds > 0 {
		r.RPS = float64(r.Requests) / r.Seconds
	}
	if r.Non2xx > 0 {
		r.FirstError = fmt.Sprintf("wrk counted %d answers with a status above 399", r.Non2xx)
	} else if r.TransportErrors > 0 {
		r.FirstError = fmt.Sprintf("wrk counted %d connect/read/write/timeout errors", r.TransportErrors)
	}
	return r, nil
}

// findWrk resolves the -wrk flag: "off" never uses wrk, "auto" uses it when
// it is on PATH, anything else is the path of the binary, which must exist.
func findWrk(flag string) (string, error) {
	switch flag {
	case "off", "":
		return "", nil
	case "auto":
		p, err := exec.LookPath("wrk")
		if err != nil {
			return "", nil
		}
		return p, nil
	}
	p, err := exec.LookPath(flag)
	if err != nil {
		return "", fmt.Errorf("-wrk %s: %w", filepath.Base(flag), err)
	}
	return p, nil
}
