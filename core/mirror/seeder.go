package mirror

import (
	"context"
	"errors"
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
	store   ports.MitraStore
	health  *Health
	metrics ports.Metrics
	log     *slog.Logger
}

// NewSeeder builds a seeder.
func NewSeeder(m ports.AvailabilityMirror, truth ports.AvailabilityTruth, store ports.MitraStore, h *Health, metrics ports.Metrics, log *slog.Logger) *Seeder {
	return &Seeder{mirror: m, truth: truth, store: store, health: h, metrics: metrics, log: log}
}

// Seed makes the mirror equal to the store's truth and reports what it corrected.
func (s *Seeder) Seed(ctx context.Context, reason string) (ports.ReseedReport, error) {
	if !s.health.Enabled() {
		return ports.ReseedReport{}, nil
	}
	start := time.Now()
	epoch := s.health.currentEpoch()
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
	// reached the mirror before Reseed overwrote it: re-apply the store's
	// current state of every mitra the reseed changed.
	for _, id := range rep.IDs {
		if err := s.reapply(ctx, id); err != nil {
			s.health.ReportError(err)
			return rep, fmt.Errorf("re-checking mitra %s after reseed: %w", id, err)
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

func (s *Seeder) reapply(ctx context.Context, id string) error {
	m, err := s.store.Mitra(ctx, id)
	if errors.Is(err, ports.ErrNotFound) {
		return s.mirror.PutOffline(ctx, id)
	}
	if err != nil {
		return nil // the store hiccuped: the next periodic reseed re-checks this mitra
	}
	return apply(ctx, s.mirror, m)
}

// apply writes one mitra's store state to the mirror.
func apply(ctx context.Context, mr ports.AvailabilityMirror, m ports.Mitra) error {
	if !m.IsActive {
		return mr.Deactivate(ctx, m.ID)
	}
	if err := mr.Reactivate(ctx, m.ID); err != nil {
		return err
	}
	if !m.IsOnline {
		return mr.PutOffline(ctx, m.ID)
	}
	return mr.PutOnline(ctx, ToMirror(m))
}

// ToMirror converts a store mitra to its mirror entry.
func ToMirror(m ports.Mitra) ports.MirrorMitra {
	mm := ports.MirrorMitra{ID: m.ID, OpenSessions: m.ActiveSessions, Capacity: m.Capacity}
	if m.LastHeartbeatAt != nil {
		mm.LastHeartbeat = *m.LastHeartbeatAt
	}
	return mm
}
