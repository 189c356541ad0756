package memory

import (
	"context"
	"time"

	"github.com/halobestie/mitra-availability/ports"
)

var _ ports.QueueTruthSource = (*Store)(nil)

// QueueTruth implements ports.QueueTruthSource.
func (s *Store) QueueTruth(_ context.Context, matchedSince time.Time) (ports.QueueTruth, error) {
	matchedSince = ts(matchedSince)
	s.mu.Lock()
	defer s.mu.Unlock()
	t := ports.QueueTruth{Waiting: []ports.QueueMember{}, Matched: []ports.QueueMatch{}, MatchedSince: matchedSince}
	for _, cs := range s.chatSessions {
		if cs.Waiting() {
			m := ports.QueueMemberOf(cs, int64(len(cs.ExcludedMitraIDs)))
			m.QueuedAt = ts(m.QueuedAt)
			t.Waiting = append(t.Waiting, m)
		}
		if cs.Queue != nil && cs.Queue.MatchedAt != nil && !cs.Queue.MatchedAt.Before(matchedSince) {
			t.Matched = append(t.Matched, ports.QueueMatch{ID: cs.ID, At: ts(*cs.Queue.MatchedAt)})
		}
	}
	return t, nil
}
