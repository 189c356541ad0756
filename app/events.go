package app

import (
	"context"
	"log/slog"
	"time"

	"go.uber.org/fx"

	"github.com/halobestie/mitra-availability/app/config"
	"github.com/halobestie/mitra-availability/core/worker"
	"github.com/halobestie/mitra-availability/ports"
)

// pruneBatch bounds one DELETE of the event pruner.
const pruneBatch = 10000

// pruneInterval is how often the log is pruned: a tenth of the retention,
// at most every 10 minutes and at least every second.
func pruneInterval(retention time.Duration) time.Duration {
	return min(max(retention/10, time.Second), 10*time.Minute)
}

// runEventPruner deletes the events older than EVENT_RETENTION, in batches,
// from a worker owned by the lifecycle. Every instance runs it; the deletes
// are idempotent.
func runEventPruner(lc fx.Lifecycle, s Stores, c ports.Clock, cfg config.Config, log *slog.Logger) error {
	w, err := worker.New("event-pruner", pruneInterval(cfg.EventRetention), func(ctx context.Context) {
		before := c.Now().Add(-cfg.EventRetention)
		total := 0
		for ctx.Err() == nil {
			n, err := s.Events.PruneEvents(ctx, before, pruneBatch)
			if err != nil {
				log.WarnContext(ctx, "pruning the event log failed; retried at the next run", "err", err)
				return
			}
			total += n
			if n < pruneBatch {
				break
			}
		}
		if total > 0 {
			log.InfoContext(ctx, "event log pruned", "events", total, "before", before)
		}
	})
	if err != nil {
		return err
	}
	lc.Append(fx.Hook{OnStart: w.Start, OnStop: w.Stop})
	return nil
}
