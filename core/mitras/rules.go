package mitras

import (
	"time"

	"github.com/halobestie/mitra-availability/ports"
)

// Reachable: active, online, and a heartbeat at most stale old (docs/contract.md §5).
func Reachable(m ports.Mitra, now time.Time, stale time.Duration) bool {
	return m.IsActive && m.IsOnline && m.LastHeartbeatAt != nil && !m.LastHeartbeatAt.Before(now.Add(-stale))
}

// Available: reachable, not away, and holding fewer open sessions than its capacity.
func Available(m ports.Mitra, now time.Time, stale time.Duration) bool {
	return Reachable(m, now, stale) && !m.IsAway && m.ActiveSessions < m.Capacity
}

// Presence is what the mitra said of itself last (docs/contract.md §12).
type Presence string

const (
	PresenceOffline Presence = "offline"
	PresenceOnline  Presence = "online"
	PresenceAway    Presence = "away"
)

// PresenceOf derives a mitra's presence from its state.
func PresenceOf(m ports.Mitra) Presence {
	switch {
	case !m.IsActive || !m.IsOnline:
		return PresenceOffline
	case m.IsAway:
		return PresenceAway
	default:
		return PresenceOnline
	}
}

// View is a mitra with its derived availability, as the API shows it.
type View struct {
	ports.Mitra
	Presence  Presence
	Reachable bool
	Available bool
}

func viewOf(m ports.Mitra, now time.Time, stale time.Duration) View {
	return View{Mitra: m, Presence: PresenceOf(m), Reachable: Reachable(m, now, stale), Available: Available(m, now, stale)}
}
