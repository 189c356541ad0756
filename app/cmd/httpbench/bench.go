package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// target is one endpoint to measure. req returns the path and bearer token
// of the n-th request (n counts from 0 across all workers).
type target struct {
	name   string
	method string
	req    func(n uint64) (path, token string)
	// prepare, when set, runs (unmeasured) before the target's warm-up.
	prepare func(ctx context.Context) error
}

// baselineName is the target the ratios are taken against.
const baselineName = "GET /healthz"

// targets are the endpoints of a run, the baseline first.
func targets(f *fixtures, a *api, setupConcurrency int) []target {
	n := uint64(len(f.mitras))
	return []target{
		{name: baselineName, method: http.MethodGet,
			req: func(uint64) (string, string) { return "/healthz", "" }},
		{name: "GET /api/availability", method: http.MethodGet,
			req: func(uint64) (string, string) { return "/api/availability", "" }},
		{name: "POST /api/mitra/status/heartbeat", method: http.MethodPost,
			req: func(i uint64) (string, string) { return "/api/mitra/status/heartbeat", f.mitras[i%n].token },
			prepare: func(ctx context.Context) error {
				return parallel(ctx, len(f.mitras), setupConcurrency, func(ctx context.Context, i int) error {
					return a.call(ctx, http.MethodPost, "/api/mitra/status/online", f.mitras[i].token, nil, nil, http.StatusOK)
				})
			}},
		{name: "GET /api/mitras/{id}/availability", method: http.MethodGet,
			req: func(i uint64) (string, string) {
				return "/api/mitras/" + f.mitras[i%n].id + "/availability", f.customer
			}},
		{name: "GET /api/mitra/status", method: http.MethodGet,
			req: func(i uint64) (string, string) { return "/api/mitra/status", f.mitras[i%n].token }},
	}
}

// Result is what one target measured.
type Result struct {
	Target          string  `json:"target"`
	Requests        int64   `json:"requests"` // answered (any status) within the measurement
	Seconds         float64 `json:"seconds"`  // from the end of the warm-up until the last worker stopped
	RPS             float64 `json:"rps"`
	P50Ms           float64 `json:"p50_ms"`
	P95Ms           float64 `json:"p95_ms"`
	P99Ms           float64 `json:"p99_ms"`
	Non2xx          int64   `json:"non_2xx"`
	TransportErrors int64   `json:"transport_errors"`
	// RatioToHealthz is RPS ÷ the RPS of GET /healthz in the same run.
	RatioToHealthz float64 `json:"ratio_to_healthz"`
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
	Results     []Result  `json:"results"`
	Pass        bool      `json:"pass"`
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
	a := &api{hc: hc, base: o.baseURL}

	if err := a.waitReady(ctx, o.wait); err != nil {
		return nil, err
	}
	fmt.Fprintf(progress, "httpbench: setting up %d mitras and a customer\n", o.mitras)
	f, err := setup(ctx, a, o.mitras, o.setupConcurrency, o.adminPhone, o.adminPassword)
	if err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	rep := &Report{
		Label: o.label, URL: o.baseURL, Mitras: o.mitras, Concurrency: o.concurrency,
		Duration: o.duration.String(), Warmup: o.warmup.String(), Started: time.Now().UTC(), Pass: true,
	}
	for _, t := range targets(f, a, o.setupConcurrency) {
		if t.prepare != nil {
			if err := t.prepare(ctx); err != nil {
				return nil, fmt.Errorf("before %s: %w", t.name, err)
			}
		}
		fmt.Fprintf(progress, "httpbench: %s for %s after %s of warm-up\n", t.name, o.duration, o.warmup)
		r := measure(ctx, hc, o.baseURL, t, o.concurrency, o.warmup, o.duration)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("interrupted during %s", t.name)
		}
		rep.Results = append(rep.Results, r)
	}
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

// measure runs t with concurrency closed-loop workers for warmup and then
// duration. A request counts when it starts within the measurement; the rate
// is taken over the time from the end of the warm-up until the last worker
// stopped. Requests cut off by ctx are not counted.
func measure(ctx context.Context, hc *http.Client, base string, t target, concurrency int, warmup, duration time.Duration) Result {
	measureFrom := time.Now().Add(warmup)
	measureTo := measureFrom.Add(duration)
	var seq atomic.Uint64
	stats := make([]workerStats, concurrency)
	var wg sync.WaitGroup
	for w := range stats {
		wg.Add(1)
		go func(s *workerStats) {
			defer wg.Done()
			for ctx.Err() == nil {
				start := time.Now()
				if !start.Before(measureTo) {
					return
				}
				path, token := t.req(seq.Add(1) - 1)
				status, detail, err := send(ctx, hc, t.method, base+path, token)
				if start.Before(measureFrom) || ctx.Err() != nil {
					continue // warm-up, or cut off by the interrupt
				}
				switch {
				case err != nil:
					s.transport++
					if s.firstError == "" {
						s.firstError = err.Error()
					}
				case status < 200 || status > 299:
					s.non2xx++
					s.latencies = append(s.latencies, time.Since(start))
					if s.firstError == "" {
						s.firstError = fmt.Sprintf("%s %s: HTTP %d %s", t.method, path, status, detail)
					}
				default:
					s.latencies = append(s.latencies, time.Since(start))
				}
			}
		}(&stats[w])
	}
	wg.Wait()
	elapsed := time.Since(measureFrom)

	r := Result{Target: t.name, Seconds: elapsed.Seconds()}
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

// send sends one request and reads the whole answer. detail is the start of
// the body of a non-2xx answer.
func send(ctx context.Context, hc *http.Client, method, url, token string) (status int, detail string, err error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return 0, "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		detail = string(b)
	}
	// Drain it, so that the connection is reused.
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0, "", fmt.Errorf("reading the answer: %w", err)
	}
	return resp.StatusCode, detail, nil
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

// setRatios sets every result's ratio to the baseline's rate (0 when the
// baseline is missing or measured nothing).
func setRatios(rs []Result) {
	var base float64
	for _, r := range rs {
		if r.Target == baselineName {
			base = r.RPS
		}
	}
	for i := range rs {
		rs[i].RatioToHealthz = 0
		if base > 0 {
			rs[i].RatioToHealthz = rs[i].RPS / base
		}
	}
}
