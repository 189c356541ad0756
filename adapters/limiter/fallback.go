// Package limiter composes ports.Limiter adapters.
package limiter

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/halobestie/mitra-availability/ports"
)

// Fallback counts in a shared limiter (Valkey) and, when a call of it fails
// (Valkey unreachable, hung past the call's deadline), in a local one (memory)
// instead: a limit never disappears with the cache (docs/contract.md §14). While the
// shared limiter fails each instance counts on its own; once it answers, the
// counts it kept are used again and the local ones are no longer consulted.
type Fallback struct {
	shared, local ports.Limiter
	metrics       ports.Metrics
	log           *slog.Logger
	failing       atomic.Bool // logs the transitions only
}

var _ ports.Limiter = (*Fallback)(nil)

// NewFallback returns the limiter; metrics (CacheFallback "login_limit") and
// log may be nil.
func NewFallback(shared, local ports.Limiter, metrics ports.Metrics, log *slog.Logger) *Fallback {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Fallback{shared: shared, local: local, metrics: metrics, log: log}
}

// Take implements ports.Limiter.
func (f *Fallback) Take(ctx context.Context, key string, now time.Time, limit int, window time.Duration) (time.Duration, error) {
	ra, err := f.shared.Take(ctx, key, now, limit, window)
	if err == nil {
		f.recovered()
		return ra, nil
	}
	f.failed(err)
	return f.local.Take(ctx, key, now, limit, window)
}

// Reset implements ports.Limiter: both, so that a count the local limiter
// kept during an outage does not come back at the next one.
func (f *Fallback) Reset(ctx context.Context, key string) error {
	_ = f.local.Reset(ctx, key)
	if err := f.shared.Reset(ctx, key); err != nil {
		f.failed(err)
	}
	return nil
}

func (f *Fallback) failed(err error) {
	if f.metrics != nil {
		f.metrics.CacheFallback("login_limit")
	}
	if !f.failing.Swap(true) {
		f.log.Warn("login limiter: the shared limiter failed, counting on this instance until it answers", "err", err)
	}
}

func (f *Fallback) recovered() {
	if f.failing.Load() && f.failing.Swap(false) {
		f.log.Info("login limiter: the shared limiter answers again")
	}
}
