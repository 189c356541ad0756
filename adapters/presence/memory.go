// Package presence holds the implementations of ports.Presence: Memory, for a
// single process (CACHE_BACKEND memory or none), and Valkey, shared by every
// instance of a deployment.
package presence

import (
	"context"
	"sync"

	"github.com/halobestie/mitra-availability/ports"
)

// Memory counts the open connections of each user in this process. It is
// safe for concurrent use; the zero value is not usable, call NewMemory.
type Memory struct {
	mu    sync.Mutex
	conns map[string]int // by user id; no entry for zero
}

var _ ports.Presence = (*Memory)(nil)

// NewMemory returns a presence with nobody connected.
func NewMemory() *Memory {
	return &Memory{conns: make(map[string]int)}
}

// Connected implements ports.Presence.
func (m *Memory) Connected(_ context.Context, userID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.conns[userID]++
	return nil
}

// Disconnected implements ports.Presence. A user with no connection left
// stays at zero.
func (m *Memory) Disconnected(_ context.Context, userID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch n := m.conns[userID]; {
	case n > 1:
		m.conns[userID] = n - 1
	case n == 1:
		delete(m.conns, userID)
	}
	return nil
}

// Online implements ports.Presence; it never fails.
func (m *Memory) Online(_ context.Context, userIDs []string) (map[string]bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]bool)
	for _, id := range userIDs {
		if m.conns[id] > 0 {
			out[id] = true
		}
	}
	return out, nil
}
