package mitras

import (
	"time"

	"github.com/halobestie/mitra-availability/ports"
)

// Reachable: active, online, and a heartbeat at most stale old (docs/contract.md §5).
func Reachable(m ports.Mitra, now time.Time, stale time.Duration) bool {
	return m.IsActive && m.IsOnline && m.LastHeartbeatAt != nil && !m.LastHeartbeatAt.Before(now.Add(-stale))
}

// Available: reachable and holding fewer open sessions than its capacity.
func Available(m ports.Mitra, now time.Time, stale time.Duration) bool {
	return Reachable(m, now, stale) && m.ActiveSessions < m.Capacity
}

// View is a mitra with its derived availability, as the API shows it.
type View struct {
	ports.Mitra
	Reachable bool
	Available bool
}

func viewOf(m ports.Mitra, now time.Time, stale time.Duration) View {
	return View{Mitra: m, Reachable: Reachable(m, now, stale), Available: Available(m, now, stale)}
}
