package memory

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/halobestie/mitra-availability/ports"
)

// CreateMitra implements ports.MitraStore; the user and the mitra are created together or not at all.
func (s *Store) CreateMitra(_ context.Context, u ports.NewUser, capacity int) (ports.Mitra, error) {
	if capacity < 0 {
		return ports.Mitra{}, fmt.Errorf("memory: create mitra: capacity %d: %w", capacity, errCheckViolation)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u.Role = ports.RoleMitra
	user, err := s.createUserLocked(u)
	if err != nil {
		return ports.Mitra{}, fmt.Errorf("memory: create mitra: %w", err)
	}
	now := s.wallClock()
	s.mitras[user.ID] = mitraRow{isActive: true, capacity: capacity, createdAt: now, updatedAt: now}
	return s.mitraLocked(user.ID), nil
}

// Mitra implements ports.MitraStore.
func (s *Store) Mitra(_ context.Context, id string) (ports.Mitra, error) {
	key, ok := parseID(id)
	if !ok {
		return ports.Mitra{}, notFound("mitra", id)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.mitras[key]; !ok {
		return ports.Mitra{}, notFound("mitra", id)
	}
	return s.mitraLocked(key), nil
}

// PatchMitra implements ports.MitraStore. Deactivating also takes the mitra
// offline; reactivating leaves it offline.
func (s *Store) PatchMitra(_ context.Context, id string, p ports.MitraPatch) (ports.Mitra, error) {
	key, ok := parseID(id)
	if !ok {
		return ports.Mitra{}, notFound("mitra", id)
	}
	if p.Capacity != nil && *p.Capacity < 0 {
		return ports.Mitra{}, fmt.Errorf("memory: patch mitra: capacity %d: %w", *p.Capacity, errCheckViolation)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.mitras[key]
	if !ok {
		return ports.Mitra{}, notFound("mitra", id)
	}
	if p.IsActive == nil && p.Capacity == nil {
		return s.mitraLocked(key), nil
	}
	if p.Capacity != nil {
		m.capacity = *p.Capacity
	}
	if p.IsActive != nil {
		m.isActive = *p.IsActive
	}
	if !m.isActive {
		m.isOnline = false
		m.isAway = false
		m.onlineSince = nil
	}
	m.updatedAt = s.wallClock()
	s.mitras[key] = m
	return s.mitraLocked(key), nil
}

// SetOnline implements ports.MitraStore. Going online records at as the
// heartbeat (never moving it backwards) and, when the mitra was offline, as
// online_since; either way the mitra is no longer away. A deactivated mitra
// cannot go online: it is returned offline and unchanged, and the caller
// decides what to answer.
func (s *Store) SetOnline(ctx context.Context, id string, online bool, at time.Time) (ports.Mitra, error) {
	return s.setPresence(id, online, false, at)
}

// SetAway implements ports.MitraStore: SetOnline(true) that leaves the mitra away.
func (s *Store) SetAway(ctx context.Context, id string, at time.Time) (ports.Mitra, error) {
	return s.setPresence(id, true, true, at)
}

func (s *Store) setPresence(id string, online, away bool, at time.Time) (ports.Mitra, error) {
	key, ok := parseID(id)
	if !ok {
		return ports.Mitra{}, notFound("mitra", id)
	}
	at = ts(at)
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.mitras[key]
	if !ok {
		return ports.Mitra{}, notFound("mitra", id)
	}
	if online && m.isActive {
		if !m.isOnline || m.onlineSince == nil {
			m.onlineSince = &at
		}
		m.isOnline = true
		m.isAway = away
		m.lastHeartbeatAt = later(m.lastHeartbeatAt, at)
	} else {
		m.isOnline = false
		m.isAway = false
		m.onlineSince = nil
	}
	m.updatedAt = s.wallClock()
	s.mitras[key] = m
	return s.mitraLocked(key), nil
}

// TouchHeartbeat implements ports.MitraStore. Only an online mitra's heartbeat
// moves, and only forwards; an offline mitra is returned unchanged.
func (s *Store) TouchHeartbeat(_ context.Context, id string, at time.Time) (ports.Mitra, error) {
	key, ok := parseID(id)
	if !ok {
		return ports.Mitra{}, notFound("mitra", id)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.mitras[key]
	if !ok {
		return ports.Mitra{}, notFound("mitra", id)
	}
	if m.isOnline && m.isActive {
		m.lastHeartbeatAt = later(m.lastHeartbeatAt, ts(at))
		s.mitras[key] = m
	}
	return s.mitraLocked(key), nil
}

// MitraState implements ports.MitraStore.
func (s *Store) MitraState(ctx context.Context, id string) (ports.MitraState, error) {
	m, err := s.Mitra(ctx, id)
	if err != nil {
		return ports.MitraState{}, err
	}
	return ports.MitraState{IsActive: m.IsActive, IsOnline: m.IsOnline}, nil
}

// TouchHeartbeatState implements ports.MitraStore.
func (s *Store) TouchHeartbeatState(ctx context.Context, id string, at time.Time) (ports.MitraState, error) {
	m, err := s.TouchHeartbeat(ctx, id, at)
	if err != nil {
		return ports.MitraState{}, err
	}
	return ports.MitraState{IsActive: m.IsActive, IsOnline: m.IsOnline}, nil
}

// AvailableMitras implements ports.MitraQueries.
func (s *Store) AvailableMitras(_ context.Context, freshSince time.Time) ([]ports.Mitra, error) {
	freshSince = ts(freshSince)
	s.mu.Lock()
	defer s.mu.Unlock()
	open := s.openSessionsByMitraLocked()
	out := []ports.Mitra{}
	for id, m := range s.mitras {
		if reachable(m, freshSince) && !m.isAway && open[id] < m.capacity {
			out = append(out, s.mitraLocked(id))
		}
	}
	slices.SortFunc(out, func(a, b ports.Mitra) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// CountMitras implements ports.MitraQueries.
func (s *Store) CountMitras(_ context.Context, freshSince time.Time) (ports.MitraCounts, error) {
	freshSince = ts(freshSince)
	s.mu.Lock()
	defer s.mu.Unlock()
	open := s.openSessionsByMitraLocked()
	var c ports.MitraCounts
	for id, m := range s.mitras {
		if !m.isActive {
			c.Deactivated++
			continue
		}
		if m.isOnline {
			c.Online++
		}
		if reachable(m, freshSince) && !m.isAway && open[id] < m.capacity {
			c.Available++
		}
	}
	return c, nil
}

// idleSinceLocked derives when an online mitra became idle: the later of
// when it went online and when its last session ended; nil while offline.
// s.mu must be held.
func (s *Store) idleSinceLocked(id string, m mitraRow) *time.Time {
	if !m.isOnline || m.onlineSince == nil {
		return nil
	}
	idle := *m.onlineSince
	for _, cs := range s.chatSessions {
		if cs.MitraID != nil && *cs.MitraID == id && cs.EndedAt != nil && cs.EndedAt.After(idle) {
			idle = *cs.EndedAt
		}
	}
	return &idle
}

// Candidates implements ports.MitraQueries.
func (s *Store) Candidates(_ context.Context, q ports.CandidateQuery) ([]ports.Candidate, error) {
	switch q.Order {
	case ports.OrderRandom, ports.OrderLongestIdle, ports.OrderLeastLoaded:
	default:
		return nil, fmt.Errorf("memory: candidates: unknown order %d", q.Order)
	}
	if q.Limit <= 0 {
		return []ports.Candidate{}, nil
	}
	freshSince := ts(q.FreshSince)
	exclude := make(map[string]bool, len(q.Exclude))
	for _, id := range q.Exclude {
		if key, ok := parseID(id); ok {
			exclude[key] = true
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	open := s.openSessionsByMitraLocked()
	out := []ports.Candidate{}
	for id, m := range s.mitras {
		if exclude[id] || !reachable(m, freshSince) || m.isAway || open[id] >= m.capacity {
			continue
		}
		c := ports.Candidate{ID: id, OpenSessions: open[id]}
		if idle := s.idleSinceLocked(id, m); idle != nil {
			c.IdleSince = *idle
		}
		out = append(out, c)
	}
	if q.Order == ports.OrderRandom {
		rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	} else {
		slices.SortFunc(out, q.Order.Compare)
	}
	if len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out, nil
}

// reachable: active, online, and a heartbeat not older than freshSince.
func reachable(m mitraRow, freshSince time.Time) bool {
	return m.isActive && m.isOnline && m.lastHeartbeatAt != nil && !m.lastHeartbeatAt.Before(freshSince)
}

// later returns a pointer to the later of *cur and at (at when cur is nil).
func later(cur *time.Time, at time.Time) *time.Time {
	if cur != nil && cur.After(at) {
		return copyTime(cur)
	}
	return &at
}

// mitraLocked builds the mitra view of an existing mitra. s.mu must be held.
func (s *Store) mitraLocked(id string) ports.Mitra {
	m := s.mitras[id]
	u := s.users[id]
	return ports.Mitra{
		ID:              id,
		Phone:           u.Phone,
		DisplayName:     u.DisplayName,
		IsActive:        m.isActive,
		IsOnline:        m.isOnline,
		IsAway:          m.isAway,
		Capacity:        m.capacity,
		ActiveSessions:  s.openSessionsOfLocked(id),
		LastHeartbeatAt: copyTime(m.lastHeartbeatAt),
		IdleSince:       s.idleSinceLocked(id, m),
		CreatedAt:       m.createdAt,
		UpdatedAt:       m.updatedAt,
	}
}

// holdsMitra reports whether cs occupies a place of mitra id.
func holdsMitra(cs ports.Session, id string) bool {
	return cs.MitraID != nil && *cs.MitraID == id && cs.Status.HoldsMitra()
}

// openSessionsOfLocked counts the sessions in pending_payment or active with mitra id.
func (s *Store) openSessionsOfLocked(id string) int {
	n := 0
	for _, cs := range s.chatSessions {
		if holdsMitra(cs, id) {
			n++
		}
	}
	return n
}

// openSessionsByMitraLocked counts, per mitra, the sessions in pending_payment or active.
func (s *Store) openSessionsByMitraLocked() map[string]int {
	out := make(map[string]int)
	for _, cs := range s.chatSessions {
		if cs.MitraID != nil && cs.Status.HoldsMitra() {
			out[*cs.MitraID]++
		}
	}
	return out
}
