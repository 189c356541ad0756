package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/halobestie/mitra-availability/ports"
)

// Push implements ports.PushMetrics with Prometheus counters.
type Push struct {
	outcomes *prometheus.CounterVec
	presence prometheus.Counter
}

var _ ports.PushMetrics = (*Push)(nil)

// NewPush registers the push counters on reg. Every outcome in outcomes is
// exported from the start, at zero.
func NewPush(reg prometheus.Registerer, outcomes []string) (*Push, error) {
	p := &Push{
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "push_notifications_total",
			Help: "Recipients of events handed to push, by outcome (sent, failed, unregistered, dropped, connected, no_device, lookup_failed).",
		}, []string{"outcome"}),
		presence: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "push_presence_failures_total",
			Help: "Presence lookups that failed (Valkey unreachable); the recipient was pushed as if not connected.",
		}),
	}
	for _, c := range []prometheus.Collector{p.outcomes, p.presence} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, o := range outcomes {
		p.outcomes.WithLabelValues(o)
	}
	return p, nil
}

func (p *Push) PushOutcome(outcome string) { p.outcomes.WithLabelValues(outcome).Inc() }
func (p *Push) PresenceFailed()            { p.presence.Inc() }
