package sessions

import (
	"time"

	"github.com/halobestie/mitra-availability/ports"
)

// View is the session as the API and the realtime events show it (docs/contract.md §7).
type View struct {
	ID               string     `json:"id"`
	Status           string     `json:"status"`
	CustomerID       string     `json:"customer_id"`
	MitraID          *string    `json:"mitra_id"`
	DurationMinutes  int        `json:"duration_minutes"`
	RemainingSeconds int        `json:"remaining_seconds"`
	CreatedAt        time.Time  `json:"created_at"`
	AcceptedAt       *time.Time `json:"accepted_at"`
	StartedAt        *time.Time `json:"started_at"`
	ExpiresAt        *time.Time `json:"expires_at"`
	EndedAt          *time.Time `json:"ended_at"`
	EndReason        *string    `json:"end_reason"`
	// QueuePosition is 1 for the next session the queue offers; nil when
	// the session does not wait in the queue (docs/contract.md §10).
	QueuePosition *int `json:"queue_position"`
	// EstimatedWaitSeconds is nil when not waiting or unknown.
	EstimatedWaitSeconds *int `json:"estimated_wait_seconds"`
}

// ViewOf converts a stored session to its view at now. remaining_seconds is
// the paid time left: counting down while active, frozen after a reroute,
// the whole duration before payment, and 0 once the session is over.
func ViewOf(s ports.Session, now time.Time) View {
	v := View{
		ID:              s.ID,
		Status:          string(s.Status),
		CustomerID:      s.CustomerID,
		MitraID:         s.MitraID,
		DurationMinutes: s.DurationMinutes,
		CreatedAt:       s.CreatedAt.UTC(),
		AcceptedAt:      utc(s.AcceptedAt),
		StartedAt:       utc(s.StartedAt),
		ExpiresAt:       utc(s.ExpiresAt),
		EndedAt:         utc(s.EndedAt),
	}
	if s.EndReason != nil {
		r := string(*s.EndReason)
		v.EndReason = &r
	}
	switch {
	case !s.Status.Open():
		v.RemainingSeconds = 0
	case s.Status == ports.StatusActive && s.ExpiresAt != nil:
		v.RemainingSeconds = max(0, int(s.ExpiresAt.Sub(now).Seconds()))
	case s.RemainingSeconds != nil:
		v.RemainingSeconds = *s.RemainingSeconds
	default:
		v.RemainingSeconds = s.DurationMinutes * 60
	}
	return v
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
