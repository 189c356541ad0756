package mitras

import (
	"context"
	"fmt"
	"time"

	"github.com/halobestie/mitra-availability/ports"
)

// Availability is the answer for one mitra.
type Availability struct {
	MitraID   string
	Reachable bool
	Available bool
}

// AvailabilityOf answers whether one mitra is reachable and available. An
// online mitra is answered by the mirror alone; for any other the store says
// whether it exists (ports.ErrNotFound when not), so both paths agree.
func (s *Service) AvailabilityOf(ctx context.Context, id string) (Availability, error) {
	if s.useMirror(ctx, "mitra_availability") {
		st, err := s.mirror.Status(ctx, id)
		if err == nil && st.Online && !st.Deactivated {
			now := s.clock.Now()
			reachable := !st.Mitra.LastHeartbeat.Before(now.Add(-s.cfg.HeartbeatStale))
			return Availability{MitraID: id, Reachable: reachable, Available: reachable && st.Mitra.Offerable()}, nil
		}
		if err != nil {
			s.fallback(ctx, "mitra_availability", err)
		}
	}
	m, err := s.store.Mitra(ctx, id)
	if err != nil {
		return Availability{}, fmt.Errorf("mitra availability: %w", err)
	}
	v := s.view(ctx, m)
	return Availability{MitraID: id, Reachable: v.Reachable, Available: v.Available}, nil
}

// AvailableMitras lists the ids of the mitras a session can be offered to
// now, in no particular order.
func (s *Service) AvailableMitras(ctx context.Context) ([]string, error) {
	fresh := s.clock.Now().Add(-s.cfg.HeartbeatStale)
	if s.useMirror(ctx, "available_mitras") {
		ids, err := s.mirror.AvailableMitraIDs(ctx, fresh)
		if err == nil {
			return ids, nil
		}
		s.fallback(ctx, "available_mitras", err)
	}
	ms, err := s.queries.AvailableMitras(ctx, fresh)
	if err != nil {
		return nil, fmt.Errorf("available mitras: %w", err)
	}
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
	}
	return ids, nil
}

// Candidates returns up to limit available mitras a session may be offered
// to, none of exclude, in order (docs/contract.md §11): the routing
// strategies' read. The mirror answers while it is trusted, without walking
// the online mitras; the store answers otherwise (its cost grows with the
// online mitras).
func (s *Service) Candidates(ctx context.Context, order ports.CandidateOrder, limit int, exclude []string) ([]ports.Candidate, error) {
	q := ports.CandidateQuery{FreshSince: s.clock.Now().Add(-s.cfg.HeartbeatStale), Order: order, Limit: limit, Exclude: exclude}
	if s.useMirror(ctx, "candidates") {
		cands, err := s.mirror.Candidates(ctx, q)
		if err == nil {
			return cands, nil
		}
		s.fallback(ctx, "candidates", err)
	}
	cands, err := s.queries.Candidates(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("candidates: %w", err)
	}
	return cands, nil
}

// countMitras answers the mitra counts, mirror first.
func (s *Service) countMitras(ctx context.Context, op string) (ports.MitraCounts, error) {
	fresh := s.clock.Now().Add(-s.cfg.HeartbeatStale)
	if s.useMirror(ctx, op) {
		c, err := s.mirror.CountMitras(ctx, fresh)
		if err == nil {
			return c, nil
		}
		s.fallback(ctx, op, err)
	}
	c, err := s.queries.CountMitras(ctx, fresh)
	if err != nil {
		return ports.MitraCounts{}, fmt.Errorf("counting mitras: %w", err)
	}
	return c, nil
}

// Beacon is the public count of available mitras.
type Beacon struct {
	AvailableMitras int
	AsOf            time.Time
}

// snapshotLock is the name of the cross-instance lock around a beacon refresh.
const snapshotLock = "beacon"

// Beacon returns the available-mitra count from the snapshot shared by every
// instance, at most SnapshotTTL old. On a miss one caller per process
// (singleflight) and, through a short lock, one instance computes it; the
// others wait briefly for its result. While the mirror is down the snapshot
// lives in the process.
//
// The process keeps the newest snapshot it read or computed, stamped with
// its own as_of, and answers from it until that is SnapshotTTL old: most
// beacon requests cost no I/O at all.
func (s *Service) Beacon(ctx context.Context) (Beacon, error) {
	now := s.clock.Now()
	if b, ok := s.beacon.peek(now, s.cfg.SnapshotTTL); ok {
		return b, nil
	}
	if !s.useMirror(ctx, "beacon") {
		return s.beacon.get(ctx, now, s.cfg.SnapshotTTL, s.computeBeacon)
	}
	snap, ok, err := s.mirror.LoadSnapshot(ctx)
	if err != nil {
		s.fallback(ctx, "beacon", err)
		return s.beacon.get(ctx, now, s.cfg.SnapshotTTL, s.computeBeacon)
	}
	if ok && now.Sub(snap.AsOf) < s.cfg.SnapshotTTL {
		s.beacon.keep(Beacon(snap), snap.AsOf)
		return Beacon(snap), nil
	}
	b, err := s.beacon.do(ctx, func(ctx context.Context) (Beacon, error) { return s.refreshSharedBeacon(ctx) })
	if err == nil {
		s.beacon.keep(b, b.AsOf)
	}
	return b, err
}

// refreshSharedBeacon computes the beacon under the cross-instance lock and
// stores it in the shared snapshot.
func (s *Service) refreshSharedBeacon(ctx context.Context) (Beacon, error) {
	lockTTL := 2 * time.Second
	release, ok, err := s.mirror.TryLock(ctx, snapshotLock, lockTTL)
	if err != nil {
		s.fallback(ctx, "beacon_lock", err)
		return s.computeBeacon(ctx)
	}
	if !ok {
		// Another instance is computing it: wait a little for its snapshot.
		for i := 0; i < 10; i++ {
			select {
			case <-ctx.Done():
				return Beacon{}, ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
			snap, found, err := s.mirror.LoadSnapshot(ctx)
			if err != nil {
				break
			}
			if found && s.clock.Now().Sub(snap.AsOf) < s.cfg.SnapshotTTL {
				return Beacon(snap), nil
			}
		}
		return s.computeBeacon(ctx)
	}
	defer func() { _ = release(context.WithoutCancel(ctx)) }()
	// Another caller may have saved a fresh snapshot between our miss and our
	// lock: use it rather than computing again.
	if snap, found, err := s.mirror.LoadSnapshot(ctx); err == nil && found && s.clock.Now().Sub(snap.AsOf) < s.cfg.SnapshotTTL {
		return Beacon(snap), nil
	}
	b, err := s.computeBeacon(ctx)
	if err != nil {
		return Beacon{}, err
	}
	s.mirrorWrite(ctx, "save_snapshot", func(ctx context.Context) error {
		return s.mirror.SaveSnapshot(ctx, ports.Snapshot(b), s.cfg.SnapshotTTL)
	})
	return b, nil
}

func (s *Service) computeBeacon(ctx context.Context) (Beacon, error) {
	now := s.clock.Now()
	c, err := s.countMitras(ctx, "beacon_count")
	if err != nil {
		return Beacon{}, fmt.Errorf("beacon: %w", err)
	}
	return Beacon{AvailableMitras: c.Available, AsOf: now}, nil
}

// Dashboard is the admin overview.
type Dashboard struct {
	Mitras       ports.MitraCounts
	Sessions     ports.SessionCounts
	CacheBackend string
	CacheHealthy bool
}

// Dashboard answers the admin counts: mitra counts from the mirror (store on
// fallback), session counts from the store at most SnapshotTTL old.
func (s *Service) Dashboard(ctx context.Context) (Dashboard, error) {
	c, err := s.countMitras(ctx, "dashboard")
	if err != nil {
		return Dashboard{}, fmt.Errorf("dashboard: %w", err)
	}
	sc, err := s.dashboard.get(ctx, s.clock.Now(), s.cfg.SnapshotTTL, func(ctx context.Context) (ports.SessionCounts, error) {
		return s.stats.CountOpenSessions(ctx)
	})
	if err != nil {
		return Dashboard{}, fmt.Errorf("dashboard: %w", err)
	}
	return Dashboard{Mitras: c, Sessions: sc, CacheBackend: s.health.Backend(), CacheHealthy: s.health.Healthy(ctx)}, nil
}
