package memory

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/halobestie/mitra-availability/ports"
)

var _ ports.EventLog = (*Store)(nil)

// appendEventsLocked gives each event its ids and appends it to the streams
// of its users (deduped in order, canonical). It runs with the mutex held,
// at the end of a successful session transaction.
func (s *Store) appendEventsLocked(events []*ports.Event) error {
	type prepared struct {
		e     *ports.Event
		users []string
	}
	all := make([]prepared, 0, len(events))
	for _, e := range events {
		users, err := eventUsers(e.UserIDs)
		if err != nil {
			return err
		}
		all = append(all, prepared{e, users})
	}
	for _, p := range all {
		p.e.UserIDs = p.users
		p.e.At = ts(p.e.At)
		p.e.Payload = bytes.Clone(p.e.Payload)
		p.e.Seqs = make([]int64, len(p.users))
		for i, u := range p.users {
			s.heads[u]++
			p.e.Seqs[i] = s.heads[u]
			s.events[u] = append(s.events[u], p.e.For(i))
		}
	}
	return nil
}

// eventUsers returns ids deduped in order and canonical; a malformed id is an error.
func eventUsers(ids []string) ([]string, error) { return ports.Recipients(ids, parseID) }

// EventsAfterEach implements ports.EventLog.
func (s *Store) EventsAfterEach(_ context.Context, after map[string]int64, limit int) (map[string][]ports.LoggedEvent, error) {
	out := map[string][]ports.LoggedEvent{}
	if limit <= 0 {
		return out, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for userID, a := range after {
		key, ok := parseID(userID)
		if !ok {
			continue
		}
		stream := s.events[key]
		i, _ := slices.BinarySearchFunc(stream, a+1, func(e ports.LoggedEvent, seq int64) int { return cmpInt(e.Seq, seq) })
		if i < len(stream) {
			out[key] = slices.Clone(stream[i:min(len(stream), i+limit)])
		}
	}
	return out, nil
}

// EventsAfter implements ports.EventLog.
func (s *Store) EventsAfter(_ context.Context, userID string, after int64, limit int) ([]ports.LoggedEvent, error) {
	out := []ports.LoggedEvent{}
	key, ok := parseID(userID)
	if !ok || limit <= 0 {
		return out, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	stream, head := s.events[key], s.heads[key]
	if after > head {
		return nil, fmt.Errorf("memory: events of %s after %d: %w", key, after, ports.ErrEventsGone)
	}
	i, _ := slices.BinarySearchFunc(stream, after+1, func(e ports.LoggedEvent, seq int64) int { return cmpInt(e.Seq, seq) })
	if after > 0 && after < head && (i == len(stream) || stream[i].Seq != after+1) {
		return nil, fmt.Errorf("memory: events of %s after %d: %w", key, after, ports.ErrEventsGone)
	}
	for ; i < len(stream) && len(out) < limit; i++ {
		e := stream[i]
		e.Payload = bytes.Clone(e.Payload)
		out = append(out, e)
	}
	return out, nil
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Heads implements ports.EventLog.
func (s *Store) Heads(_ context.Context, userIDs []string) (map[string]int64, error) {
	out := make(map[string]int64, len(userIDs))
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range userIDs {
		if key, ok := parseID(id); ok {
			if h, ok := s.heads[key]; ok {
				out[key] = h
			}
		}
	}
	return out, nil
}

// PruneEvents implements ports.EventLog.
func (s *Store) PruneEvents(_ context.Context, before time.Time, limit int) (int, error) {
	before = ts(before)
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for u, stream := range s.events {
		k := 0
		for k < len(stream) && n < limit && stream[k].At.Before(before) {
			k++
			n++
		}
		if k > 0 {
			s.events[u] = slices.Clone(stream[k:])
		}
		if n >= limit {
			break
		}
	}
	return n, nil
}
