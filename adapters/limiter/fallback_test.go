package limiter_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/adapters/limiter"
	"github.com/halobestie/mitra-availability/adapters/memory"
	"github.com/halobestie/mitra-availability/ports"
	"github.com/halobestie/mitra-availability/ports/limitertest"
)

// broken is a shared limiter that is down while down is true.
type broken struct {
	ports.Limiter
	down bool
}

func (b *broken) Take(ctx context.Context, key string, now time.Time, limit int, window time.Duration) (time.Duration, error) {
	if b.down {
		return 0, errors.New("valkey: connection refused")
	}
	return b.Limiter.Take(ctx, key, now, limit, window)
}

func (b *broken) Reset(ctx context.Context, key string) error {
	if b.down {
		return errors.New("valkey: connection refused")
	}
	return b.Limiter.Reset(ctx, key)
}

// The composition is a limiter like any other, whether the shared one answers or not.
func TestFallbackContract(t *testing.T) {
	t.Run("SharedUp", func(t *testing.T) {
		limitertest.Run(t, func(*testing.T) ports.Limiter {
			return limiter.NewFallback(memory.NewLimiter(), memory.NewLimiter(), nil, nil)
		})
	})
	t.Run("SharedDown", func(t *testing.T) {
		limitertest.Run(t, func(*testing.T) ports.Limiter {
			return limiter.NewFallback(&broken{Limiter: memory.NewLimiter(), down: true}, memory.NewLimiter(), nil, nil)
		})
	})
}

// A limit never disappears with the cache: during an outage the local limiter
// counts, and the attempts the shared one counted before it are back after.
func TestFallbackOutage(t *testing.T) {
	shared := &broken{Limiter: memory.NewLimiter()}
	m := memory.NewMetrics()
	f := limiter.NewFallback(shared, memory.NewLimiter(), m, nil)
	ctx, t0 := t.Context(), time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	take := func(d time.Duration) time.Duration {
		t.Helper()
		ra, err := f.Take(ctx, "k", t0.Add(d), 2, time.Hour)
		if err != nil {
			t.Fatalf("Take: %v", err)
		}
		return ra
	}
	if take(0) != 0 {
		t.Fatal("first attempt refused")
	}
	shared.down = true
	if take(time.Second) != 0 || take(2*time.Second) != 0 {
		t.Fatal("the local limiter refused its first two attempts")
	}
	if ra := take(3 * time.Second); ra != time.Hour-2*time.Second {
		t.Fatalf("third attempt during the outage: retryAfter %v, want %v", ra, time.Hour-2*time.Second)
	}
	if n := m.Fallbacks("login_limit"); n != 3 {
		t.Errorf("fallbacks recorded = %d, want 3", n)
	}
	shared.down = false
	if take(4*time.Second) != 0 {
		t.Fatal("second attempt on the shared limiter refused")
	}
	if ra := take(5 * time.Second); ra != time.Hour-5*time.Second {
		t.Fatalf("third attempt on the shared limiter: retryAfter %v, want 59m55s (its count from before the outage survived)", ra)
	}
}
