// Package clock provides the system clock and a manual clock for tests.
package clock

import (
	"sync"
	"time"

	"github.com/halobestie/mitra-availability/ports"
)

// System is the real clock, in UTC.
type System struct{}

var _ ports.Clock = System{}

// Now returns the current time in UTC.
func (System) Now() time.Time { return time.Now().UTC() }

// Manual is a clock that only moves when told to.
type Manual struct {
	mu  sync.Mutex
	now time.Time
}

var _ ports.Clock = (*Manual)(nil)

// NewManual starts a manual clock at t.
func NewManual(t time.Time) *Manual { return &Manual{now: t.UTC()} }

// Now returns the clock's time.
func (m *Manual) Now() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.now
}

// Advance moves the clock forward by d.
func (m *Manual) Advance(d time.Duration) {
	m.mu.Lock()
	m.now = m.now.Add(d)
	m.mu.Unlock()
}

// Set moves the clock to t.
func (m *Manual) Set(t time.Time) {
	m.mu.Lock()
	m.now = t.UTC()
	m.mu.Unlock()
}
