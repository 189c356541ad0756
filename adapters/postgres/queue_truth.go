package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/halobestie/mitra-availability/ports"
)

var _ ports.QueueTruthSource = (*Store)(nil)

// queueTruthRow is a waiting session (MatchedAt nil) or a recent match.
type queueTruthRow struct {
	ID        string     `bun:"id"`
	Priority  int        `bun:"priority"`
	QueuedAt  *time.Time `bun:"queued_at"`
	Seq       int64      `bun:"seq"`
	Version   int64      `bun:"version"`
	MatchedAt *time.Time `bun:"matched_at"`
}

// QueueTruth implements ports.QueueTruthSource in one statement: the waiting
// sessions over chat_sessions_waiting_idx, the matches over
// chat_sessions_queue_matched_idx.
func (s *Store) QueueTruth(ctx context.Context, matchedSince time.Time) (ports.QueueTruth, error) {
	var rows []queueTruthRow
	err := s.db.NewRaw(`SELECT id, queue_priority AS priority, queued_at, queue_seq AS seq,
			coalesce(cardinality(excluded_mitra_ids), 0)::bigint AS version, NULL::timestamptz AS matched_at
		FROM chat_sessions WHERE `+waitingCond+`
		UNION ALL
		SELECT id, 0, NULL, 0, 0, queue_matched_at
		FROM chat_sessions WHERE queue_matched_at >= ?0::timestamptz`,
		ts(matchedSince),
	).Scan(ctx, &rows)
	if err != nil {
		return ports.QueueTruth{}, fmt.Errorf("postgres: queue truth: %w", translate(err))
	}
	t := ports.QueueTruth{Waiting: []ports.QueueMember{}, Matched: []ports.QueueMatch{}, MatchedSince: ts(matchedSince)}
	for _, r := range rows {
		if r.MatchedAt != nil {
			t.Matched = append(t.Matched, ports.QueueMatch{ID: r.ID, At: utc(*r.MatchedAt)})
			continue
		}
		if r.QueuedAt == nil {
			continue
		}
		t.Waiting = append(t.Waiting, ports.QueueMember{ID: r.ID, Priority: r.Priority, QueuedAt: utc(*r.QueuedAt), Seq: r.Seq, Version: r.Version})
	}
	return t, nil
}
