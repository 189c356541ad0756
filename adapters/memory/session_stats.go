package memory

import (
	"context"

	"github.com/halobestie/mitra-availability/ports"
)

// CountOpenSessions implements ports.SessionStats.
func (s *Store) CountOpenSessions(context.Context) (ports.SessionCounts, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var c ports.SessionCounts
	for _, cs := range s.chatSessions {
		switch cs.Status {
		case ports.StatusSearching:
			c.Searching++
		case ports.StatusPendingPayment:
			c.PendingPayment++
		case ports.StatusActive:
			c.Active++
		}
	}
	return c, nil
}
