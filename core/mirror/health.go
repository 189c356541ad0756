package mirror

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/halobestie/mitra-availability/ports"
)

// Health tracks whether the mirror answers and whether it needs a reseed.
// It implements ports.CacheHealth.
type Health struct {
	backend string
	enabled bool
	healthy atomic.Bool
	// epoch moves on every event that may have made the mirror drift; the
	// mirror is dirty until a seed that started at the current epoch succeeds.
	epoch       atomic.Uint64
	seededEpoch atomic.Uint64
	wake        func()
}

var _ ports.CacheHealth = (*Health)(nil)

// NewHealth starts unhealthy and dirty: nothing is trusted before the first seed.
// For the "none" backend (enabled false) it is always healthy and never dirty.
func NewHealth(backend string, enabled bool) *Health {
	h := &Health{backend: backend, enabled: enabled}
	h.healthy.Store(!enabled)
	h.epoch.Store(1)
	return h
}

// SetWake installs the function that wakes the watcher (called on errors and
// on new connections).
func (h *Health) SetWake(f func()) { h.wake = f }

// Backend is the CACHE_BACKEND name.
func (h *Health) Backend() string { return h.backend }

// Healthy is false while the cache is unreachable.
func (h *Health) Healthy(context.Context) bool { return h.healthy.Load() }

// Enabled is false for the "none" backend.
func (h *Health) Enabled() bool { return h.enabled }

// Dirty reports whether the mirror must be reseeded before it is trusted.
func (h *Health) Dirty() bool { return h.enabled && h.epoch.Load() != h.seededEpoch.Load() }

// ReportError records a mirror error: unhealthy unless the mirror only said it
// lost its data; dirty in both cases. ErrCacheDisabled is not an error.
func (h *Health) ReportError(err error) {
	if err == nil || errors.Is(err, ports.ErrCacheDisabled) || !h.enabled {
		return
	}
	h.epoch.Add(1)
	// Wake the watcher on the transition to unhealthy (or a lost marker), not
	// on every error of an outage: the watcher's own failing check would
	// otherwise wake it again at once.
	wake := errors.Is(err, ports.ErrMirrorNotSeeded)
	if !wake {
		wake = h.healthy.CompareAndSwap(true, false)
	}
	if wake && h.wake != nil {
		h.wake()
	}
}

// Reconnected records that the client dialed a new connection: whatever
// happened to the server meanwhile, the mirror is reseeded.
func (h *Health) Reconnected() {
	if !h.enabled {
		return
	}
	h.epoch.Add(1)
	if h.wake != nil {
		h.wake()
	}
}

// Epoch moves on every event that may have made the mirror drift (an error,
// a new connection); a seed that started at the current epoch makes the
// mirror clean. For observability and tests.
func (h *Health) Epoch() uint64 { return h.epoch.Load() }

// reportOK records that the mirror answered.
func (h *Health) reportOK() { h.healthy.Store(true) }

// seeded records a successful seed that started at epoch e; an event since
// then leaves the mirror dirty.
func (h *Health) seeded(e uint64) {
	h.healthy.Store(true)
	h.seededEpoch.Store(e)
}
