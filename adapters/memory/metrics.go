package memory

import (
	"sync"

	"github.com/halobestie/mitra-availability/ports"
)

// Metrics records the domain's operational events in memory, for tests.
type Metrics struct {
	mu        sync.Mutex
	fallbacks map[string]int
	writes    map[string]int
	sweeps    map[string]int // "sweep/outcome"
	drift     int
	seeds     map[string]int
	throttled map[string]int
}

var _ ports.Metrics = (*Metrics)(nil)

// NewMetrics returns an empty recorder.
func NewMetrics() *Metrics {
	return &Metrics{fallbacks: map[string]int{}, writes: map[string]int{}, sweeps: map[string]int{}, seeds: map[string]int{}, throttled: map[string]int{}}
}

func (m *Metrics) CacheFallback(op string) { m.mu.Lock(); m.fallbacks[op]++; m.mu.Unlock() }

func (m *Metrics) CacheWriteFailed(op string) { m.mu.Lock(); m.writes[op]++; m.mu.Unlock() }

func (m *Metrics) SweepRun(sweep, outcome string) {
	m.mu.Lock()
	m.sweeps[sweep+"/"+outcome]++
	m.mu.Unlock()
}

func (m *Metrics) DriftHealed(n int) { m.mu.Lock(); m.drift += n; m.mu.Unlock() }

func (m *Metrics) MirrorSeeded(reason string) { m.mu.Lock(); m.seeds[reason]++; m.mu.Unlock() }

func (m *Metrics) LoginThrottled(limit string) { m.mu.Lock(); m.throttled[limit]++; m.mu.Unlock() }

// Throttled returns how many login attempts limit refused.
func (m *Metrics) Throttled(limit string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.throttled[limit]
}

// Fallbacks returns how many fallbacks op recorded ("" for all ops).
func (m *Metrics) Fallbacks(op string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if op != "" {
		return m.fallbacks[op]
	}
	n := 0
	for _, v := range m.fallbacks {
		n += v
	}
	return n
}

// WriteFailures returns how many mirror writes of op failed.
func (m *Metrics) WriteFailures(op string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.writes[op]
}

// Sweeps returns how many runs of sweep ended with outcome.
func (m *Metrics) Sweeps(sweep, outcome string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sweeps[sweep+"/"+outcome]
}

// Drift returns the total drift healed.
func (m *Metrics) Drift() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.drift
}

// Seeds returns how many seeds had reason.
func (m *Metrics) Seeds(reason string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.seeds[reason]
}
