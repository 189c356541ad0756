package mirror

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/halobestie/mitra-availability/ports"
)

// Seed reasons, as counted in metrics.
const (
	ReasonStart     = "start"
	ReasonReconnect = "reconnect"
	ReasonLostData  = "lost_data"
	ReasonPeriodic  = "periodic"
)

// Seeder copies the store's truth into the mirror.
type Seeder struct {
	mirror  ports.AvailabilityMirror
	truth   ports.AvailabilityTruth
	health  *Health
	metrics ports.Metrics
	log     *slog.Logger
	queue   *queueSeed // nil: no queue mirror
}

// queueSeed is what the queue mirror is reseeded from.
type queueSeed struct {
	mirror ports.QueueMirror
	truth  ports.QueueTruthSource
	window time.Duration
	now    func() time.Time
}

// SetQueue makes every seed also reseed the queue mirror m from truth, with
// the matches of the last window before now (the estimated wait's window).
// The mirror is trusted (not dirty) only once both were seeded.
func (s *Seeder) SetQueue(m ports.QueueMirror, truth ports.QueueTruthSource, window time.Duration, now func() time.Time) {
	s.queue = &queueSeed{mirror: m, truth: truth, window: window, now: now}
}

// NewSeeder builds a seeder.
func NewSeeder(m ports.AvailabilityMirror, truth ports.AvailabilityTruth, h *Health, metrics ports.Metrics, log *slog.Logger) *Seeder {
	return &Seeder{mirror: m, truth: truth, health: h, metrics: metrics, log: log}
}

// Seed makes the mirror equal to the store's truth and reports what it corrected.
func (s *Seeder) Seed(ctx context.Context, reason string) (ports.ReseedReport, error) {
	if !s.health.Enabled() {
		return ports.ReseedReport{}, nil
	}
	start := time.Now()
	epoch := s.health.Epoch()
	online, deactivated, err := s.truth.MirrorTruth(ctx)
	if err != nil {
		return ports.ReseedReport{}, fmt.Errorf("reading mirror truth: %w", err)
	}
	rep, err := s.mirror.Reseed(ctx, online, deactivated)
	if err != nil {
		s.health.ReportError(err)
		return ports.ReseedReport{}, fmt.Errorf("reseeding mirror: %w", err)
	}
	// A write may have committed to the store after MirrorTruth read it and
	// reached the mirror before Reseed overwrote it. A second pass over the
	// truth, read now, corrects exactly those (Reseed writes only what
	// differs), in one batch however many mitras the first pass changed.
	if len(rep.IDs) > 0 {
		online2, deactivated2, err := s.truth.MirrorTruth(ctx)
		if err != nil {
			return rep, fmt.Errorf("re-reading mirror truth: %w", err)
		}
		if _, err := s.mirror.Reseed(ctx, online2, deactivated2); err != nil {
			s.health.ReportError(err)
			return rep, fmt.Errorf("re-checking the reseed: %w", err)
		}
	}
	waiting, queueFixed, err := s.seedQueue(ctx)
	if err != nil {
		return rep, err
	}
	s.health.seeded(epoch)
	s.metrics.MirrorSeeded(reason)
	if reason != ReasonStart && reason != ReasonLostData {
		s.metrics.DriftHealed(rep.Total() + queueFixed)
	}
	s.log.InfoContext(ctx, "mirror seeded", "reason", reason, "online", len(online), "deactivated", len(deactivated),
		"added", rep.Added, "removed", rep.Removed, "updated", rep.Updated, "deactivated_corrected", rep.Deactivated,
		"queue_waiting", waiting, "queue_corrected", queueFixed, "took", time.Since(start).String())
	return rep, nil
}

// seedQueue reseeds the queue mirror, when there is one, and returns how
// many sessions wait and how many members it corrected. Like the
// availability mirror's, a reseed that corrected anything runs once more
// on the truth read again, closing the race with a write that committed
// while the first ran.
func (s *Seeder) seedQueue(ctx context.Context) (waiting, fixed int, err error) {
	if s.queue == nil {
		return 0, 0, nil
	}
	q := s.queue
	for pass := 0; pass < 2; pass++ {
		t, err := q.truth.QueueTruth(ctx, q.now().Add(-q.window))
		if err != nil {
			return 0, fixed, fmt.Errorf("reading the queue's truth: %w", err)
		}
		n, err := q.mirror.QueueReseed(ctx, t)
		if err != nil {
			s.health.ReportError(err)
			return 0, fixed, fmt.Errorf("reseeding the queue mirror: %w", err)
		}
		if pass == 0 {
			fixed = n
		}
		waiting = len(t.Waiting)
		if n == 0 {
			break
		}
	}
	return waiting, fixed, nil
}

// ToMirror converts a store mitra to its mirror entry.
func ToMirror(m ports.Mitra) ports.MirrorMitra {
	mm := ports.MirrorMitra{ID: m.ID, OpenSessions: m.ActiveSessions, Capacity: m.Capacity, Away: m.IsAway}
	if m.LastHeartbeatAt != nil {
		mm.LastHeartbeat = *m.LastHeartbeatAt
	}
	if m.IdleSince != nil {
		mm.IdleSince = *m.IdleSince
	}
	return mm
}
