package mirror

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/halobestie/mitra-availability/ports"
)

// Sweep names and outcomes, as counted in metrics.
const (
	SweepAutoOffline = "auto_offline"
	SweepWriteBack   = "heartbeat_writeback"
	SweepReseed      = "reseed"

	OutcomeOK      = "ok"
	OutcomeAborted = "aborted"
	OutcomeError   = "error"
)

// removeBatch bounds one RemoveStale call, so a mass expiry is handled in
// slices that never block the cache for long.
const removeBatch = 1000

// Sweeps runs the three sweeps once each; the app calls them from worker loops.
type Sweeps struct {
	mirror  ports.AvailabilityMirror
	truth   ports.AvailabilityTruth
	seeder  *Seeder
	health  *Health
	metrics ports.Metrics
	clock   ports.Clock
	log     *slog.Logger
	stale   time.Duration

	mu            sync.Mutex
	writtenBackTo time.Time // heartbeats before this were written back already
}

// NewSweeps builds the sweeps. stale is HEARTBEAT_STALE_SECONDS.
func NewSweeps(s *Seeder, clock ports.Clock, stale time.Duration) *Sweeps {
	return &Sweeps{mirror: s.mirror, truth: s.truth, seeder: s, health: s.health, metrics: s.metrics,
		clock: clock, log: s.log, stale: stale}
}

// AutoOffline takes the mitras whose heartbeat is stale out of the mirror and
// sets them offline in the store. It returns the ids it set offline.
func (w *Sweeps) AutoOffline(ctx context.Context) []string {
	if !w.health.Enabled() {
		return nil
	}
	if w.health.Dirty() {
		w.metrics.SweepRun(SweepAutoOffline, OutcomeAborted)
		w.log.InfoContext(ctx, "auto-offline sweep skipped: the mirror awaits a reseed")
		return nil
	}
	staleBefore := w.clock.Now().Add(-w.stale)
	var offline []string
	for {
		removed, err := w.mirror.RemoveStale(ctx, staleBefore, removeBatch)
		if err != nil {
			w.health.ReportError(err)
			w.metrics.SweepRun(SweepAutoOffline, OutcomeAborted)
			w.log.WarnContext(ctx, "auto-offline sweep aborted: cache error", "err", err)
			return offline
		}
		if len(removed) == 0 {
			break
		}
		ids := make([]string, len(removed))
		for i, m := range removed {
			ids[i] = m.ID
		}
		done, err := w.truth.SetOfflineIfStale(ctx, ids, staleBefore)
		if err != nil {
			// The mirror already dropped them; the next reseed puts them back
			// (stale) and the next sweep retries the store.
			w.metrics.SweepRun(SweepAutoOffline, OutcomeError)
			w.log.WarnContext(ctx, "auto-offline sweep: store update failed", "err", err, "mitras", len(ids))
			return offline
		}
		offline = append(offline, done...)
		if len(removed) < removeBatch {
			break
		}
	}
	w.metrics.SweepRun(SweepAutoOffline, OutcomeOK)
	if len(offline) > 0 {
		w.log.InfoContext(ctx, "auto-offline sweep", "offline", len(offline))
	}
	return offline
}

// WriteBack copies the heartbeats recorded in the mirror since the previous
// run into the store, in one statement. It returns how many rows moved.
func (w *Sweeps) WriteBack(ctx context.Context) int {
	if !w.health.Enabled() {
		return 0
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	// Overlap the previous window by a second: the write is idempotent and
	// never moves a timestamp backwards, so overlap costs nothing.
	start := w.clock.Now()
	since := w.writtenBackTo.Add(-time.Second)
	beats, err := w.mirror.Heartbeats(ctx, since)
	if err != nil {
		w.health.ReportError(err)
		w.metrics.SweepRun(SweepWriteBack, OutcomeAborted)
		return 0
	}
	n := 0
	if len(beats) > 0 {
		n, err = w.truth.WriteBackHeartbeats(ctx, beats)
		if err != nil {
			w.metrics.SweepRun(SweepWriteBack, OutcomeError)
			w.log.WarnContext(ctx, "heartbeat write-back failed", "err", err, "heartbeats", len(beats))
			return 0
		}
	}
	w.writtenBackTo = start
	w.metrics.SweepRun(SweepWriteBack, OutcomeOK)
	return n
}

// Reseed runs a full reseed that heals any drift.
func (w *Sweeps) Reseed(ctx context.Context) {
	if !w.health.Enabled() {
		return
	}
	if _, err := w.seeder.Seed(ctx, ReasonPeriodic); err != nil {
		w.metrics.SweepRun(SweepReseed, OutcomeError)
		w.log.WarnContext(ctx, "periodic reseed failed", "err", err)
		return
	}
	w.metrics.SweepRun(SweepReseed, OutcomeOK)
}
