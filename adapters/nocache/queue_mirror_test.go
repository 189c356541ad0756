package nocache_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/adapters/nocache"
	"github.com/halobestie/mitra-availability/ports"
)

func TestEveryQueueCallIsDisabled(t *testing.T) {
	var q ports.QueueMirror = nocache.NewQueueMirror()
	ctx := context.Background()
	now := time.Now()
	x := ports.QueueMember{ID: "a", QueuedAt: now, Seq: 1}
	calls := map[string]func() error{
		"QueueJoin":    func() error { return q.QueueJoin(ctx, x) },
		"QueueLeave":   func() error { return q.QueueLeave(ctx, x) },
		"QueueMatched": func() error { return q.QueueMatched(ctx, "a", now, now) },
		"QueueFigures": func() error { _, err := q.QueueFigures(ctx, &x, now); return err },
		"QueueReseed":  func() error { _, err := q.QueueReseed(ctx, ports.QueueTruth{}); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, ports.ErrCacheDisabled) {
			t.Errorf("%s = %v, want ErrCacheDisabled", name, err)
		}
	}
}
