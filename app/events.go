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

// sequenceInterval is how often each instance sequences the events left in
// the outbox of an event log that sequences after the commit (a transition
// sequences its own events at once; this catches those of a failure).
const sequenceInterval = 250 * time.Millisecond

// runEventSequencer, for an event log that is a ports.EventSequencer, hands
// it the bus (the events it sequences for no waiting transition are
// published there) and sequences what is left in its outbox every
// sequenceInterval, from a worker owned by the lifecycle.
func runEventSequencer(lc fx.Lifecycle, s Stores, bus ports.EventBus, log *slog.Logger) error {
	sq, ok := s.Events.(ports.EventSequencer)
	if !ok {
		return nil
	}
	sq.SetPublisher(bus.Publish)
	failing := false // read and written by the worker only
	w, err := worker.New("event-sequencer", sequenceInterval, func(ctx context.Context) {
		err := sq.SequencePending(ctx)
		if err != nil && !failing && ctx.Err() == nil {
			log.WarnContext(ctx, "sequencing the event outbox failed; retried", "err", err)
		}
		failing = err != nil
	})
	if err != nil {
		return err
	}
	lc.Append(fx.Hook{OnStart: w.Start, OnStop: w.Stop})
	return nil
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
