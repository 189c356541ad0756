package mirror

import (
	"context"
	"log/slog"
)

// Watcher notices a lost, restarted or reconnected mirror and reseeds it. Its
// Tick runs every second in a worker loop, and at once when woken.
type Watcher struct {
	mirror interface {
		Seeded(ctx context.Context) (bool, error)
	}
	seeder *Seeder
	health *Health
	log    *slog.Logger
}

// NewWatcher builds a watcher over seeder's mirror.
func NewWatcher(s *Seeder, log *slog.Logger) *Watcher {
	return &Watcher{mirror: s.mirror, seeder: s, health: s.health, log: log}
}

// Tick checks the mirror once and reseeds it when needed.
func (w *Watcher) Tick(ctx context.Context) {
	if !w.health.Enabled() {
		return
	}
	seeded, err := w.mirror.Seeded(ctx)
	if err != nil {
		if w.health.Healthy(ctx) {
			w.log.WarnContext(ctx, "cache unreachable: reads fall back to the store", "err", err)
		}
		w.health.ReportError(err)
		return
	}
	wasHealthy := w.health.Healthy(ctx)
	w.health.reportOK()
	reason := ""
	switch {
	case !seeded:
		reason = ReasonLostData
	case w.health.Dirty():
		reason = ReasonReconnect
	default:
		return
	}
	if !wasHealthy {
		w.log.InfoContext(ctx, "cache answers again: reseeding", "reason", reason)
	}
	if _, err := w.seeder.Seed(ctx, reason); err != nil {
		w.log.WarnContext(ctx, "reseed failed; will retry", "reason", reason, "err", err)
	}
}
