package ports

import (
	"context"
	"time"
)

// Limiter counts attempts per key in a sliding window (docs/contract.md §14: login
// throttling). Adapters: memory (per instance) and Valkey (shared by every
// instance).
type Limiter interface {
	// Take counts one attempt under key at now, unless limit attempts are
	// already counted within the window that ends at now. It returns 0 when
	// the attempt was counted, or else, without counting it, how long until
	// enough attempts leave the window for one more to be counted (> 0).
	Take(ctx context.Context, key string, now time.Time, limit int, window time.Duration) (retryAfter time.Duration, err error)
	// Reset forgets every attempt counted under key.
	Reset(ctx context.Context, key string) error
}
