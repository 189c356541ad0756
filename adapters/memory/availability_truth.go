package memory

import (
	"context"
	"time"

	"github.com/halobestie/mitra-availability/ports"
)

// MirrorTruth implements ports.AvailabilityTruth. Rows are in no particular order.
func (s *Store) MirrorTruth(context.Context) ([]ports.MirrorMitra, []string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	open := s.openSessionsByMitraLocked()
	online := []ports.MirrorMitra{}
	deactivated := []string{}
	for id, m := range s.mitras {
		switch {
		case !m.isActive:
			deactivated = append(deactivated, id)
		case m.isOnline:
			mm := ports.MirrorMitra{ID: id, OpenSessions: open[id], Capacity: m.capacity, Away: m.isAway}
			if m.lastHeartbeatAt != nil {
				mm.LastHeartbeat = *m.lastHeartbeatAt
			}
			if idle := s.idleSinceLocked(id, m); idle != nil {
				mm.IdleSince = *idle
			}
			online = append(online, mm)
		}
	}
	return online, deactivated, nil
}

// SetOfflineIfStale implements ports.AvailabilityTruth. Malformed and unknown
// ids are skipped.
func (s *Store) SetOfflineIfStale(_ context.Context, ids []string, staleBefore time.Time) ([]string, error) {
	staleBefore = ts(staleBefore)
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []string{}
	for _, id := range ids {
		key, ok := parseID(id)
		if !ok {
			continue
		}
		m, ok := s.mitras[key]
		if !ok || !m.isOnline || (m.lastHeartbeatAt != nil && !m.lastHeartbeatAt.Before(staleBefore)) {
			continue
		}
		m.isOnline = false
		m.isAway = false
		m.onlineSince = nil
		m.updatedAt = s.wallClock()
		s.mitras[key] = m
		out = append(out, key)
	}
	return out, nil
}

// WriteBackHeartbeats implements ports.AvailabilityTruth. A heartbeat only ever
// raises last_heartbeat_at; malformed ids, unknown mitras and zero heartbeats
// are skipped, and a mitra given several heartbeats counts once.
func (s *Store) WriteBackHeartbeats(_ context.Context, beats []ports.MirrorMitra) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	moved := make(map[string]bool)
	for _, b := range beats {
		key, ok := parseID(b.ID)
		if !ok || b.LastHeartbeat.IsZero() {
			continue
		}
		m, ok := s.mitras[key]
		if !ok {
			continue
		}
		hb := ts(b.LastHeartbeat)
		if m.lastHeartbeatAt == nil || m.lastHeartbeatAt.Before(hb) {
			m.lastHeartbeatAt = &hb
			s.mitras[key] = m
			moved[key] = true
		}
	}
	return len(moved), nil
}
