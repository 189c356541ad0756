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
	s.health.seeded(epoch)
	s.metrics.MirrorSeeded(reason)
	if reason != ReasonStart && reason != ReasonLostData {
		s.metrics.DriftHealed(rep.Total())
	}
	s.log.InfoContext(ctx, "mirror seeded", "reason", reason, "online", len(online), "deactivated", len(deactivated),
		"added", rep.Added, "removed", rep.Removed, "updated", rep.Updated, "deactivated_corrected", rep.Deactivated,
		"took", time.Since(start).String())
	return rep, nil
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
