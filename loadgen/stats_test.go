package loadgen

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/core/validate"
)

func durations(ms ...int) []time.Duration {
	out := make([]time.Duration, len(ms))
	for i, m := range ms {
		out[i] = time.Duration(m) * time.Millisecond
	}
	return out
}

func TestPercentileNearestRank(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one sample", durations(7), 99, 7 * time.Millisecond},
		{"1..100 p50", hundred, 50, 50 * time.Millisecond},
		{"1..100 p95", hundred, 95, 95 * time.Millisecond},
		{"1..100 p99", hundred, 99, 99 * time.Millisecond},
		{"1..100 p100", hundred, 100, 100 * time.Millisecond},
		{"1..100 p99.5 rounds up", hundred, 99.5, 100 * time.Millisecond},
		{"three p50", durations(10, 20, 30), 50, 20 * time.Millisecond},
		{"three p34 is the second", durations(10, 20, 30), 34, 20 * time.Millisecond},
		{"three p33 is the first", durations(10, 20, 30), 33, 10 * time.Millisecond},
		{"three p95", durations(10, 20, 30), 95, 30 * time.Millisecond},
		{"p0 is the minimum", durations(10, 20, 30), 0, 10 * time.Millisecond},
		{"above 100 is the maximum", durations(10, 20, 30), 150, 30 * time.Millisecond},
		{"ties", durations(5, 5, 5, 5, 9), 80, 5 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percentile(tt.sorted, tt.p); got != tt.want {
				t.Fatalf("Percentile(%v, %v) = %v, want %v", tt.sorted, tt.p, got, tt.want)
			}
		})
	}
}

func TestSummariseLatency(t *testing.T) {
	s := make([]time.Duration, 0, 1000)
	for i := range 1000 {
		s = append(s, time.Duration(i+1)*time.Microsecond*100) // 0.1 ms .. 100 ms
	}
	got := SummariseLatency(s)
	want := Latency{P50: 50, P95: 95, P99: 99, Max: 100}
	if got != want {
		t.Fatalf("SummariseLatency = %+v, want %+v", got, want)
	}
	if (SummariseLatency(nil) != Latency{}) {
		t.Fatal("SummariseLatency(nil) is not zero")
	}
}

func TestReservoirExactBelowItsSize(t *testing.T) {
	r := NewReservoir(10)
	in := durations(9, 3, 7, 1, 5)
	for _, d := range in {
		r.Add(d)
	}
	want := slices.Clone(in)
	slices.Sort(want)
	if got := r.Sorted(); !slices.Equal(got, want) {
		t.Fatalf("Sorted = %v, want %v", got, want)
	}
	if r.Seen() != 5 {
		t.Fatalf("Seen = %d, want 5", r.Seen())
	}
	r.Reset()
	if r.Seen() != 0 || len(r.Sorted()) != 0 {
		t.Fatal("Reset left samples")
	}
}

// A full reservoir keeps a uniform sample: its percentiles stay close to
// those of the whole stream, whatever the stream's order.
func TestReservoirBoundedAndUniform(t *testing.T) {
	const size, n = 2000, 200_000
	r := NewReservoir(size)
	stream := make([]time.Duration, n)
	for i := range stream {
		stream[i] = time.Duration(i) * time.Microsecond
	}
	rand.Shuffle(len(stream), func(i, j int) { stream[i], stream[j] = stream[j], stream[i] })
	for _, d := range stream {
		r.Add(d)
	}
	got := r.Sorted()
	if len(got) != size {
		t.Fatalf("kept %d samples, want %d", len(got), size)
	}
	if r.Seen() != n {
		t.Fatalf("Seen = %d, want %d", r.Seen(), n)
	}
	// The median of a uniform sample of 2000 is within ±5% of the range
	// with overwhelming probability (its standard error is about 1.1%).
	med := Percentile(got, 50)
	lo, hi := time.Duration(n*45/100)*time.Microsecond, time.Duration(n*55/100)*time.Microsecond
	if med < lo || med > hi {
		t.Fatalf("sample median %v outside [%v, %v]", med, lo, hi)
	}
	p95 := Percentile(got, 95)
	if lo, hi := time.Duration(n*92/100)*time.Microsecond, time.Duration(n*98/100)*time.Microsecond; p95 < lo || p95 > hi {
		t.Fatalf("sample p95 %v outside [%v, %v]", p95, lo, hi)
	}
}

func TestRecorder(t *testing.T) {
	rec := NewRecorder(0)
	for i := 1; i <= 100; i++ {
		rec.Record("POST", "/api/mitra/status/heartbeat", 204, "", time.Duration(i)*time.Millisecond)
	}
	rec.Record("POST", "/api/sessions/:id/accept", 200, "", 3*time.Millisecond)
	rec.Record("POST", "/api/sessions/:id/accept", 409, "session_taken", 2*time.Millisecond)
	rec.Record("POST", "/api/sessions/:id/accept", 409, "session_taken", 2*time.Millisecond)
	rec.Record("POST", "/api/sessions/:id/accept", 503, "unavailable", time.Millisecond)
	rec.Record("GET", "/api/availability", StatusTransportError, "", time.Second)

	total, s5, transport := rec.Totals()
	if total != 105 || s5 != 1 || transport != 1 {
		t.Fatalf("Totals = %d, %d, %d; want 105, 1, 1", total, s5, transport)
	}
	routes := rec.Routes()
	if len(routes) != 3 {
		t.Fatalf("%d routes, want 3: %+v", len(routes), routes)
	}
	// Sorted by route.
	if routes[0].Route != "/api/availability" || routes[1].Route != "/api/mitra/status/heartbeat" || routes[2].Route != "/api/sessions/:id/accept" {
		t.Fatalf("routes not sorted: %v, %v, %v", routes[0].Route, routes[1].Route, routes[2].Route)
	}
	hb := routes[1]
	if hb.Count != 100 || hb.ByStatus["204"] != 100 {
		t.Fatalf("heartbeat = %+v", hb)
	}
	if hb.Latency != (Latency{P50: 50, P95: 95, P99: 99, Max: 100}) {
		t.Fatalf("heartbeat latency = %+v", hb.Latency)
	}
	acc := routes[2]
	if acc.Count != 4 || acc.ByStatus["200"] != 1 || acc.ByStatus["409"] != 2 || acc.ByStatus["503"] != 1 {
		t.Fatalf("accept statuses = %v", acc.ByStatus)
	}
	if acc.ByCode["session_taken"] != 2 || acc.ByCode["unavailable"] != 1 {
		t.Fatalf("accept codes = %v", acc.ByCode)
	}
	// A transport error has no latency: the route has a count but no samples.
	if routes[0].ByStatus["0"] != 1 || routes[0].Latency != (Latency{}) {
		t.Fatalf("availability = %+v", routes[0])
	}

	w := rec.Window()
	if w.Requests != 105 || w.Status5xx != 1 || w.P95 != 95*time.Millisecond {
		t.Fatalf("first window = %+v", w)
	}
	rec.Record("GET", "/api/availability", 200, "", 7*time.Millisecond)
	if w := rec.Window(); w.Requests != 1 || w.Status5xx != 0 || w.P95 != 7*time.Millisecond {
		t.Fatalf("second window = %+v", w)
	}
	if total, _, _ := rec.Totals(); total != 106 {
		t.Fatalf("Window reset the totals: %d", total)
	}
}

func TestCounters(t *testing.T) {
	var c Counters
	c.Inc("a")
	c.Add("a", 2)
	c.Inc("b")
	snap := c.Snapshot()
	if snap["a"] != 3 || snap["b"] != 1 || c.Get("c") != 0 {
		t.Fatalf("counters = %v", snap)
	}
	snap["a"] = 99
	if c.Get("a") != 3 {
		t.Fatal("Snapshot is not a copy")
	}
}

func TestParseRanges(t *testing.T) {
	ir, err := ParseIntRange("1-3")
	if err != nil || ir != (IntRange{1, 3}) {
		t.Fatalf("ParseIntRange(1-3) = %v, %v", ir, err)
	}
	if ir, err := ParseIntRange(" 5 "); err != nil || ir != (IntRange{5, 5}) {
		t.Fatalf("ParseIntRange(5) = %v, %v", ir, err)
	}
	for _, bad := range []string{"", "3-1", "a", "1-", "-2"} {
		if _, err := ParseIntRange(bad); err == nil {
			t.Errorf("ParseIntRange(%q) accepted", bad)
		}
	}
	dr, err := ParseDurationRange("200ms-2s")
	if err != nil || dr != (DurationRange{200 * time.Millisecond, 2 * time.Second}) {
		t.Fatalf("ParseDurationRange = %v, %v", dr, err)
	}
	for _, bad := range []string{"", "2s-1s", "x", "1s-"} {
		if _, err := ParseDurationRange(bad); err == nil {
			t.Errorf("ParseDurationRange(%q) accepted", bad)
		}
	}
	for range 1000 {
		if v := ir.Pick(); v < 1 || v > 3 {
			t.Fatalf("IntRange.Pick = %d", v)
		}
		if v := dr.Pick(); v < dr.Min || v > dr.Max {
			t.Fatalf("DurationRange.Pick = %v", v)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.URLs = []string{"http://127.0.0.1:8080", "http://localhost:8081", "http://[::1]:8082"}
	ok.AdminPhone, ok.AdminPassword = "+620000000001", "secret-password"
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	tests := map[string]func(*Config){
		"remote host":         func(c *Config) { c.URLs = []string{"http://example.com"} },
		"no scheme":           func(c *Config) { c.URLs = []string{"127.0.0.1:8080"} },
		"no URL":              func(c *Config) { c.URLs = nil },
		"no admin":            func(c *Config) { c.AdminPassword = "" },
		"no mitras":           func(c *Config) { c.Mitras = 0 },
		"run id":              func(c *Config) { c.RunID = 10000 },
		"session minutes":     func(c *Config) { c.SessionMinutes = IntRange{0, 3} },
		"probability":         func(c *Config) { c.AcceptProbability = 1.5 },
		"deactivate too many": func(c *Config) { c.Deactivate = c.Mitras + 1 },
		"valkey without pg":   func(c *Config) { c.ValkeyURL = "redis://127.0.0.1:6379" },
		"zero heartbeat":      func(c *Config) { c.Heartbeat = 0 },
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			c := ok
			c.URLs = slices.Clone(ok.URLs)
			mutate(&c)
			if err := c.Validate(); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	remote := ok
	remote.URLs = []string{"https://example.com"}
	remote.AllowRemote = true
	if err := remote.Validate(); err != nil {
		t.Fatalf("-allow-remote refused: %v", err)
	}
}

func TestPhonesAreE164AndDistinct(t *testing.T) {
	seen := map[string]bool{}
	for _, p := range []string{MitraPhone(1, 0), MitraPhone(1, 999_999), MitraPhone(9999, 5), CustomerPhone(1, 0), CustomerPhone(0, 999_999)} {
		if err := validate.Phone("phone", p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
		if seen[p] {
			t.Errorf("%s twice", p)
		}
		seen[p] = true
	}
	if MitraPhone(1, 7) == CustomerPhone(1, 7) {
		t.Fatal("mitra and customer phones collide")
	}
}
