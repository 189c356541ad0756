package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/halobestie/mitra-availability/client"
)

// target is one endpoint to measure. req returns the path and bearer token
// of the n-th request (n counts from 0 across all workers).
type target struct {
	name   string
	method string
	req    func(n uint64) (path, token string)
	// distinct is how many different requests req makes (wrk formats them
	// once); 1 when every request is the same.
	distinct int
	// prepare, when set, runs (unmeasured) before the target's warm-up.
	prepare func(ctx context.Context) error
	// floor: the target is the plain net/http server, not the service.
	floor bool
	// rate, when positive, makes the target open-loop: requests are sent at
	// this rate whatever the answers' latency, which is counted from the
	// moment each request was due.
	rate float64
	// cycle, when set, replaces req: worker w sends a sequence of requests
	// (a session's create, accept and end) and reports each.
	cycle func(ctx context.Context, s *sender, w int) []outcome
	// before, when set, runs at the start of the measured window (after the
	// warm-up); the Valkey counters are read there.
	before func()
}

// Target names. The ratios are taken against the floor (a plain net/http
// server) and the service's own floor, GET /healthz.
const (
	baselineName   = "GET /healthz"
	heartbeatName  = "POST /api/mitra/status/heartbeat"
	sessionName    = "session create+accept+end"
	statusName     = "GET /api/mitra/status"
	mitraAvailName = "GET /api/mitras/{id}/availability"
)

// targets are the endpoints of a run, the floors first. With a rate, the
// status and one mitra's availability are measured once more at that fixed
// rate. With sessions, the session cycle is measured last (worker w is
// customer w and offers to mitra w).
func targets(f *fixtures, a *api, o options) []target {
	n := uint64(len(f.mitras))
	online := func(ctx context.Context) error {
		return parallel(ctx, len(f.mitras), o.setupConcurrency, func(ctx context.Context, i int) error {
			return a.online(ctx, f.mitras[i].token)
		})
	}
	availability := func(i uint64) (string, string) {
		return "/api/mitras/" + f.mitras[i%n].id + "/availability", f.customers[0]
	}
	status := func(i uint64) (string, string) { return "/api/mitra/status", f.mitras[i%n].token }
	var ts []target
	if o.floorURL != "" {
		ts = append(ts,
			target{name: floorName, method: http.MethodGet, floor: true, distinct: 1,
				req: func(uint64) (string, string) { return "/", "" }},
			target{name: answerFloorName, method: http.MethodGet, floor: true, distinct: 1,
				req: func(uint64) (string, string) { return "/healthz", "" }})
	}
	ts = append(ts,
		target{name: baselineName, method: http.MethodGet, distinct: 1,
			req: func(uint64) (string, string) { return "/healthz", "" }},
		target{name: "GET /api/availability", method: http.MethodGet, distinct: 1,
			req: func(uint64) (string, string) { return "/api/availability", "" }},
		// Every mitra goes online again first (not measured), so that no
		// auto-offline sweep in between turns heartbeats into 409s.
		target{name: heartbeatName, method: http.MethodPost, distinct: int(n), prepare: online,
			req: func(i uint64) (string, string) { return "/api/mitra/status/heartbeat", f.mitras[i%n].token }},
		target{name: mitraAvailName, method: http.MethodGet, distinct: int(n), req: availability},
		target{name: statusName, method: http.MethodGet, distinct: int(n), req: status},
	)
	if o.rate > 0 {
		suffix := fmt.Sprintf(" at %s/s", group(int64(o.rate)))
		ts = append(ts,
			target{name: mitraAvailName + suffix, method: http.MethodGet, rate: o.rate, distinct: int(n), req: availability},
			target{name: statusName + suffix, method: http.MethodGet, rate: o.rate, distinct: int(n), req: status},
		)
	}
	if o.sessions && len(f.customers) >= o.concurrency && len(f.mitras) >= o.concurrency {
		ts = append(ts, target{name: sessionName, method: http.MethodPost, prepare: online,
			cycle: func(ctx context.Context, s *sender, w int) []outcome {
				return sessionCycle(ctx, s, f.customers[w], f.mitras[w])
			}})
	}
	return ts
}

// Result is what one target measured.
type Result struct {
	Target string `json:"target"`
	// Tool is the load generator: "wrk", or "go" (this program's own).
	Tool string `json:"tool"`
	// Rate is the offered rate of an open-loop target (0: closed loop).
	Rate            float64 `json:"rate,omitempty"`
	Requests        int64   `json:"requests"` // answered (any status) within the measurement
	Seconds         float64 `json:"seconds"`  // from the end of the warm-up until the last worker stopped
	RPS             float64 `json:"rps"`
	P50Ms           float64 `json:"p50_ms"`
	P95Ms           float64 `json:"p95_ms"`
	P99Ms           float64 `json:"p99_ms"`
	Non2xx          int64   `json:"non_2xx"`
	TransportErrors int64   `json:"transport_errors"`
	// ServerCPUSeconds is the user+system CPU time of the server process
	// (the floor's for the floor) over the measurement, from /proc; 0 when
	// no pid was given.
	ServerCPUSeconds float64 `json:"server_cpu_seconds"`
	// CPUPerRequestUs is ServerCPUSeconds ÷ Requests, in microseconds.
	CPUPerRequestUs float64 `json:"server_cpu_us_per_request"`
	// RatioToHealthz is RPS ÷ the RPS of GET /healthz in the same run;
	// RatioToFloor ÷ that of the plain net/http server. 0 for open-loop
	// targets, whose rate is chosen.
	RatioToHealthz float64 `json:"ratio_to_healthz"`
	RatioToFloor   float64 `json:"ratio_to_floor"`
	// Valkey is what the server's Valkey processed meanwhile (with -valkey-url).
	Valkey *ValkeyStats `json:"valkey,omitempty"`
	// FirstError describes the first failed request, when one failed.
	FirstError string `json:"first_error,omitempty"`
}

// Failed reports whether a measured request got a non-2xx answer or none.
func (r Result) Failed() bool { return r.Non2xx > 0 || r.TransportErrors > 0 }

// Report is the outcome of a run.
type Report struct {
	Label       string    `json:"label,omitempty"`
	URL         string    `json:"url"`
	Mitras      int       `json:"mitras"`
	Concurrency int       `json:"concurrency"`
	Duration    string    `json:"duration"`
	Warmup      string    `json:"warmup"`
	Started     time.Time `json:"started"`
	// Generator names the load generators used: "wrk" and/or "go".
	Generator string   `json:"generator"`
	Results   []Result `json:"results"`
	Pass      bool     `json:"pass"`
}

// newHTTPClient returns a client for closed-loop load on one host: enough
// idle connections for every worker (the default keeps 2 per host, so the
// others would reconnect on every request), no proxy, no compression.
func newHTTPClient(concurrency int, timeout time.Duration) *http.Client {
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          2 * concurrency,
		MaxIdleConnsPerHost:   2 * concurrency,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
		ResponseHeaderTimeout: timeout,
	}
	return &http.Client{Transport: tr, Timeout: timeout}
}

// bench runs the whole benchmark: wait, fixtures, every target, teardown.
func bench(ctx context.Context, o options, progress io.Writer) (*Report, error) {
	hc := newHTTPClient(max(o.concurrency, o.setupConcurrency), o.timeout)
	defer hc.CloseIdleConnections()
	a, err := newAPI(hc, o.baseURL)
	if err != nil {
		return nil, err
	}

	wrkPath, err := findWrk(o.wrk)
	if err != nil {
		return nil, err
	}
	var wr *wrkRunner
	if wrkPath != "" {
		dir, err := os.MkdirTemp("", "httpbench-wrk")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		wr = &wrkRunner{path: wrkPath, threads: o.wrkThreads, dir: dir}
		fmt.Fprintf(progress, "httpbench: load generator: wrk (%s, %d thread(s)) for the closed-loop targets, its own Go generator for the fixed-rate and session targets\n", wrkPath, o.wrkThreads)
	} else {
		fmt.Fprintln(progress, "httpbench: load generator: its own Go generator for every target (wrk not used: -wrk off, or not installed)")
	}
	var probe *valkeyProbe
	if o.valkeyURL != "" {
		if probe, err = newValkeyProbe(ctx, o.valkeyURL); err != nil {
			return nil, err
		}
		defer probe.close()
	}

	if err := a.waitReady(ctx, o.wait); err != nil {
		return nil, err
	}
	if o.floorURL != "" {
		fa := &api{hc: hc, base: o.floorURL}
		if err := fa.waitStatus(ctx, o.wait, "/", http.StatusNoContent); err != nil {
			return nil, fmt.Errorf("the floor server: %w", err)
		}
	}
	customers := 1
	if o.sessions {
		customers = max(1, o.concurrency)
	}
	fmt.Fprintf(progress, "httpbench: setting up %d mitras and %d customer(s)\n", o.mitras, customers)
	f, err := setup(ctx, a, o.mitras, customers, o.setupConcurrency, o.adminPhone, o.adminPassword)
	if err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	rep := &Report{
		Label: o.label, URL: o.baseURL, Mitras: o.mitras, Concurrency: o.concurrency,
		Duration: o.duration.String(), Warmup: o.warmup.String(), Started: time.Now().UTC(), Pass: true,
	}
	tools := map[string]bool{}
	for _, t := range targets(f, a, o) {
		if o.only != nil && !o.only.MatchString(t.name) {
			continue
		}
		if t.prepare != nil {
			if err := t.prepare(ctx); err != nil {
				return nil, fmt.Errorf("before %s: %w", t.name, err)
			}
		}
		base, pid := o.baseURL, o.serverPID
		if t.floor {
			base, pid = o.floorURL, o.floorPID
		}
		var v0 valkeyCounters
		var v0err error
		if probe != nil && !t.floor {
			t.before = func() { v0, v0err = probe.read(ctx) }
		}
		cpu := &cpuMeter{pid: pid}
		var r Result
		if wr != nil && t.rate == 0 && t.cycle == nil {
			fmt.Fprintf(progress, "httpbench: %s for %s after %s of warm-up (wrk)\n", t.name, wrkSeconds(o.duration), wrkSeconds(o.warmup))
			if r, err = wr.measure(ctx, base, t, t.distinct, o.concurrency, o.warmup, o.duration, o.timeout, cpu); err != nil {
				return nil, fmt.Errorf("%s: %w", t.name, err)
			}
		} else {
			fmt.Fprintf(progress, "httpbench: %s for %s after %s of warm-up\n", t.name, o.duration, o.warmup)
			r = measure(ctx, hc, base, t, o.concurrency, o.warmup, o.duration, cpu)
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("interrupted during %s", t.name)
		}
		if r.Requests > 0 && r.ServerCPUSeconds > 0 {
			r.CPUPerRequestUs = r.ServerCPUSeconds / float64(r.Requests) * 1e6
		}
		if probe != nil && !t.floor && v0err == nil && v0.calls != nil {
			if v1, err := probe.read(ctx); err == nil {
				r.Valkey = v0.delta(v1, r.Requests)
				r.Valkey.ServiceConnections = probe.serviceConnections(ctx)
			}
		}
		tools[r.Tool] = true
		rep.Results = append(rep.Results, r)
	}
	rep.Generator = strings.Join(slices.Sorted(maps.Keys(tools)), "+")
	setRatios(rep.Results)
	for _, r := range rep.Results {
		if r.Failed() {
			rep.Pass = false
		}
	}
	// Leave the server as found: the mitras go offline. Best effort.
	if err := teardown(ctx, a, f, o.setupConcurrency); err != nil {
		fmt.Fprintf(progress, "httpbench: warning: taking the mitras offline: %v\n", err)
	}
	return rep, nil
}

// workerStats is what one worker saw during the measurement.
type workerStats struct {
	latencies  []time.Duration // of answered requests
	non2xx     int64
	transport  int64
	firstError string
}

// outcome is one request a worker sent.
type outcome struct {
	method, path string
	status       int
	detail       string
	err          error
	latency      time.Duration
}

// add counts o.
func (s *workerStats) add(o outcome) {
	switch {
	case o.err != nil:
		s.transport++
		if s.firstError == "" {
			s.firstError = fmt.Sprintf("%s %s: %v", o.method, o.path, o.err)
		}
	case o.status < 200 || o.status > 299:
		s.non2xx++
		s.latencies = append(s.latencies, o.latency)
		if s.firstError == "" {
			s.firstError = fmt.Sprintf("%s %s: HTTP %d %s", o.method, o.path, o.status, o.detail)
		}
	default:
		s.latencies = append(s.latencies, o.latency)
	}
}

// sender sends the requests of one target.
type sender struct {
	hc   *http.Client
	base string
}

// do sends one request (body JSON-encoded when not nil), reads the whole
// answer and returns it with its outcome, the latency counted from start.
func (s *sender) do(ctx context.Context, start time.Time, method, path, token string, body any) (outcome, []byte) {
	o := outcome{method: method, path: path}
	var status int
	var data []byte
	status, data, o.err = send(ctx, s.hc, method, s.base+path, token, body)
	o.latency = time.Since(start)
	o.status = status
	if o.err == nil && (status < 200 || status > 299) {
		o.detail = string(data[:min(len(data), 200)])
	}
	return o, data
}

// measure runs t with concurrency workers for warmup and then duration:
// closed-loop workers that each send a request (or a cycle), wait for the
// whole answer and send the next; or, for a target with a rate, requests
// due at that rate handed to whichever worker is free. A request counts when
// it starts (is due) within the measurement; the rate is taken over the time
// from the end of the warm-up until the last worker stopped. Requests cut
// off by ctx are not counted. cpu is read at both ends of the measurement.
func measure(ctx context.Context, hc *http.Client, base string, t target, concurrency int, warmup, duration time.Duration, cpu *cpuMeter) Result {
	measureFrom := time.Now().Add(warmup)
	measureTo := measureFrom.Add(duration)
	// begun is closed once the measured window has started; end() below must
	// not read the meter before begin() has written it.
	begun := make(chan struct{})
	startMeasure := time.AfterFunc(warmup, func() {
		defer close(begun)
		if t.before != nil {
			t.before()
		}
		cpu.begin()
	})
	defer startMeasure.Stop()
	s := &sender{hc: hc, base: base}

	// due hands out the start time of each request: now for closed-loop
	// workers; the due time of the next slot for a target with a rate.
	var due chan time.Time
	if t.rate > 0 {
		due = make(chan time.Time, concurrency)
		go pace(ctx, due, t.rate, measureTo)
	}
	var seq atomic.Uint64
	stats := make([]workerStats, concurrency)
	var wg sync.WaitGroup
	for w := range stats {
		wg.Add(1)
		go func(w int, st *workerStats) {
			defer wg.Done()
			for ctx.Err() == nil {
				start := time.Now()
				if due != nil {
					var ok bool
					if start, ok = <-due; !ok {
						return
					}
				} else if !start.Before(measureTo) {
					return
				}
				var outs []outcome
				if t.cycle != nil {
					outs = t.cycle(ctx, s, w)
				} else {
					path, token := t.req(seq.Add(1) - 1)
					o, _ := s.do(ctx, start, t.method, path, token, nil)
					outs = []outcome{o}
				}
				if start.Before(measureFrom) || ctx.Err() != nil {
					continue // warm-up, or cut off by the interrupt
				}
				for _, o := range outs {
					st.add(o)
				}
			}
		}(w, &stats[w])
	}
	wg.Wait()
	elapsed := time.Since(measureFrom)

	r := Result{Target: t.name, Tool: "go", Rate: t.rate, Seconds: elapsed.Seconds()}
	if !startMeasure.Stop() { // the window started: wait for begin() to finish
		<-begun
		if c, ok := cpu.end(); ok {
			r.ServerCPUSeconds = c
		}
	}
	var all []time.Duration
	for _, s := range stats {
		all = append(all, s.latencies...)
		r.Non2xx += s.non2xx
		r.TransportErrors += s.transport
		if r.FirstError == "" {
			r.FirstError = s.firstError
		}
	}
	slices.Sort(all)
	r.Requests = int64(len(all))
	if elapsed > 0 {
		r.RPS = float64(r.Requests) / elapsed.Seconds()
	}
	r.P50Ms = ms(percentile(all, 50))
	r.P95Ms = ms(percentile(all, 95))
	r.P99Ms = ms(percentile(all, 99))
	return r
}

// pace sends the due time of every request at rate per second into due
// until the measurement ends, then closes it. It sends each slot when it is
// due and blocks while every worker is busy, so a slow server delays the
// sending but not the due times: the latencies count the queueing
// (no coordinated omission).
func pace(ctx context.Context, due chan<- time.Time, rate float64, until time.Time) {
	defer close(due)
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	for i := 0; ; i++ {
		at := start.Add(time.Duration(i) * interval)
		if !at.Before(until) {
			return
		}
		if d := time.Until(at); d > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(d):
			}
		}
		select {
		case <-ctx.Done():
			return
		case due <- at:
		}
	}
}

// sessionCycle is one customer's session with one mitra: the customer
// requests it from that mitra directly (no blast), the mitra accepts and the
// customer ends it, so that the next cycle finds both free again.
func sessionCycle(ctx context.Context, s *sender, customer string, m account) []outcome {
	created, data := s.do(ctx, time.Now(), http.MethodPost, "/api/sessions", customer,
		client.CreateSessionRequest{DurationMinutes: 30, MitraID: &m.id})
	outs := []outcome{created}
	if created.err != nil || created.status != http.StatusCreated {
		return outs
	}
	var v client.Session
	if err := json.Unmarshal(data, &v); err != nil || v.ID == "" {
		outs[0].status, outs[0].detail = 0, "no session id in the answer"
		outs[0].err = fmt.Errorf("no session id in the answer: %.100s", data)
		return outs
	}
	accepted, _ := s.do(ctx, time.Now(), http.MethodPost, "/api/sessions/"+v.ID+"/accept", m.token, nil)
	outs = append(outs, accepted)
	ended, _ := s.do(ctx, time.Now(), http.MethodPost, "/api/sessions/"+v.ID+"/end", customer, nil)
	return append(outs, ended)
}

// send sends one request and reads the whole answer (up to 1 MiB is kept).
func send(ctx context.Context, hc *http.Client, method, url, token string, body any) (status int, data []byte, err error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err == nil {
		// Drain the rest, so that the connection is reused.
		_, err = io.Copy(io.Discard, resp.Body)
	}
	if err != nil {
		return 0, nil, fmt.Errorf("reading the answer: %w", err)
	}
	return resp.StatusCode, data, nil
}

// percentile returns the p-th percentile (0 < p ≤ 100) of sorted by the
// nearest-rank method: the smallest value with at least p % of the values at
// or below it. 0 for no values.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// setRatios sets every closed-loop result's ratios to the rates of the
// baseline (GET /healthz) and the floor (0 when missing or measured nothing,
// and for open-loop targets, whose rate is chosen).
func setRatios(rs []Result) {
	var base, floor float64
	for _, r := range rs {
		switch r.Target {
		case baselineName:
			base = r.RPS
		case floorName:
			floor = r.RPS
		}
	}
	for i := range rs {
		rs[i].RatioToHealthz, rs[i].RatioToFloor = 0, 0
		if rs[i].Rate > 0 {
			continue
		}
		if base > 0 {
			rs[i].RatioToHealthz = rs[i].RPS / base
		}
		if floor > 0 {
			rs[i].RatioToFloor = rs[i].RPS / floor
		}
	}
}
