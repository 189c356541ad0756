// Package metrics exports the domain's operational events to Prometheus.
package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/halobestie/mitra-availability/ports"
)

// Prometheus implements ports.Metrics with Prometheus counters.
type Prometheus struct {
	fallbacks     *prometheus.CounterVec
	writeFailures *prometheus.CounterVec
	sweeps        *prometheus.CounterVec
	drift         prometheus.Counter
	seeds         *prometheus.CounterVec
	throttled     *prometheus.CounterVec
}

var _ ports.Metrics = (*Prometheus)(nil)

// NewPrometheus registers the counters on reg.
func NewPrometheus(reg prometheus.Registerer) (*Prometheus, error) {
	p := &Prometheus{
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cache_fallbacks_total",
			Help: "Reads and heartbeats answered from the store because the cache failed, by operation.",
		}, []string{"op"}),
		writeFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cache_write_failures_total",
			Help: "Best-effort mirror writes that failed after the store committed, or were skipped while the cache was known to be unreachable, by operation.",
		}, []string{"op"}),
		sweeps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sweep_runs_total",
			Help: "Runs of the background sweeps, by sweep and outcome (ok, aborted, error).",
		}, []string{"sweep", "outcome"}),
		drift: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mirror_drift_healed_total",
			Help: "Mirror entries corrected by reseeds.",
		}),
		seeds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mirror_seeds_total",
			Help: "Reseeds of the mirror from the store, by reason (start, reconnect, lost_data, periodic).",
		}, []string{"reason"}),
		throttled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "login_throttled_total",
			Help: "Login attempts refused with 429 rate_limited, by the limit that refused them (phone, address).",
		}, []string{"limit"}),
	}
	for _, c := range []prometheus.Collector{p.fallbacks, p.writeFailures, p.sweeps, p.drift, p.seeds, p.throttled} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (p *Prometheus) CacheFallback(op string)        { p.fallbacks.WithLabelValues(op).Inc() }
func (p *Prometheus) CacheWriteFailed(op string)     { p.writeFailures.WithLabelValues(op).Inc() }
func (p *Prometheus) SweepRun(sweep, outcome string) { p.sweeps.WithLabelValues(sweep, outcome).Inc() }
func (p *Prometheus) DriftHealed(n int)              { p.drift.Add(float64(n)) }
func (p *Prometheus) MirrorSeeded(reason string)     { p.seeds.WithLabelValues(reason).Inc() }
func (p *Prometheus) LoginThrottled(limit string)    { p.throttled.WithLabelValues(limit).Inc() }

// SessionsCollector exports the number of chat sessions per open status,
// asked of the store at scrape time (bounded by a short deadline).
type SessionsCollector struct {
	stats ports.SessionStats
	desc  *prometheus.Desc
}

// NewSessionsCollector returns a collector over stats; register it on a registry.
func NewSessionsCollector(stats ports.SessionStats) *SessionsCollector {
	return &SessionsCollector{stats: stats, desc: prometheus.NewDesc("chat_sessions",
		"Chat sessions by open status (searching, pending_payment, active).", []string{"status"}, nil)}
}

// Describe implements prometheus.Collector.
func (c *SessionsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector; a store error exports nothing.
func (c *SessionsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	sc, err := c.stats.CountOpenSessions(ctx)
	if err != nil {
		return
	}
	for status, n := range map[string]int{"searching": sc.Searching, "pending_payment": sc.PendingPayment, "active": sc.Active} {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), status)
	}
}
