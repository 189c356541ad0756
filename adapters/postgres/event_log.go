package postgres

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/halobestie/mitra-availability/ports"
)

var _ ports.EventLog = (*Store)(nil)

// eventRow is a row of events.
type eventRow struct {
	bun.BaseModel `bun:"table:events"`

	UserID  string    `bun:"user_id"`
	Seq     int64     `bun:"seq"`
	Type    string    `bun:"type"`
	At      time.Time `bun:"at"`
	Payload string    `bun:"payload"`
}

func toLoggedEvent(r eventRow) ports.LoggedEvent {
	return ports.LoggedEvent{UserID: r.UserID, Seq: r.Seq, Type: r.Type, At: utc(r.At), Payload: []byte(r.Payload)}
}

// headRow is a row of event_heads.
type headRow struct {
	UserID  string `bun:"user_id"`
	LastSeq int64  `bun:"last_seq"`
}

// appendEvents writes events to the log inside tx (the session transaction
// that emitted them) and sets their ids. The recipients' heads are advanced
// by one statement that locks them in user-id order, whatever the events,
// so two transactions never wait on each other's streams in opposite orders.
func appendEvents(ctx context.Context, tx bun.Tx, events []*ports.Event) error {
	if len(events) == 0 {
		return nil
	}
	count := map[string]int64{}
	for _, e := range events {
		users, err := eventUsers(e.UserIDs)
		if err != nil {
			return err
		}
		e.UserIDs = users
		for _, u := range users {
			count[u]++
		}
	}
	users := make([]string, 0, len(count))
	for u := range count {
		users = append(users, u)
	}
	slices.Sort(users)
	adds := make([]int64, len(users))
	for i, u := range users {
		adds[i] = count[u]
	}
	var heads []headRow
	err := tx.NewRaw(`INSERT INTO event_heads AS h (user_id, last_seq)
		SELECT u, n FROM unnest(?::uuid[], ?::bigint[]) WITH ORDINALITY AS t(u, n, o) ORDER BY o
		ON CONFLICT (user_id) DO UPDATE SET last_seq = h.last_seq + EXCLUDED.last_seq
		RETURNING user_id, last_seq`, pgdialect.Array(users), pgdialect.Array(adds)).Scan(ctx, &heads)
	if err != nil {
		return fmt.Errorf("advancing event heads: %w", translate(err))
	}
	next := make(map[string]int64, len(heads))
	for _, h := range heads {
		next[h.UserID] = h.LastSeq - count[h.UserID] + 1
	}
	var rows []eventRow
	for _, e := range events {
		e.At = ts(e.At)
		e.Seqs = make([]int64, len(e.UserIDs))
		for i, u := range e.UserIDs {
			e.Seqs[i] = next[u]
			next[u]++
			rows = append(rows, eventRow{UserID: u, Seq: e.Seqs[i], Type: e.Type, At: e.At, Payload: string(e.Payload)})
		}
	}
	if _, err := tx.NewInsert().Model(&rows).Exec(ctx); err != nil {
		return fmt.Errorf("writing events: %w", translate(err))
	}
	return nil
}

// eventUsers returns ids deduped in order and canonical; a malformed id is an error.
func eventUsers(ids []string) ([]string, error) {
	out := make([]string, 0, len(ids))
	seen := make(map[string]struct{}, len(ids)) // a blast has a recipient per mitra: no quadratic scan
	for _, id := range ids {
		key, ok := parseID(id)
		if !ok {
			return nil, fmt.Errorf("event recipient %q is not a UUID", id)
		}
		if _, dup := seen[key]; !dup {
			seen[key] = struct{}{}
			out = append(out, key)
		}
	}
	return out, nil
}

// eventsAfterRow is one row of the EventsAfter query: the stream's head,
// and one event (all null when there is none after the id).
type eventsAfterRow struct {
	LastSeq int64      `bun:"last_seq"`
	Seq     *int64     `bun:"seq"`
	Type    *string    `bun:"type"`
	At      *time.Time `bun:"at"`
	Payload *string    `bun:"payload"`
}

// EventsAfter implements ports.EventLog in one statement: the head and the
// events after the id, read from the primary key.
func (s *Store) EventsAfter(ctx context.Context, userID string, after int64, limit int) ([]ports.LoggedEvent, error) {
	out := []ports.LoggedEvent{}
	key, ok := parseID(userID)
	if !ok || limit <= 0 {
		return out, nil
	}
	var rows []eventsAfterRow
	err := s.db.NewRaw(`SELECT h.last_seq, e.seq, e.type, e.at, e.payload
		FROM event_heads h
		LEFT JOIN LATERAL (
			SELECT seq, type, at, payload FROM events
			WHERE user_id = h.user_id AND seq > ?1 ORDER BY seq LIMIT ?2
		) e ON true
		WHERE h.user_id = ?0
		ORDER BY e.seq`, key, after, limit).Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: events of %s: %w", key, translate(err))
	}
	head := int64(0)
	if len(rows) > 0 {
		head = rows[0].LastSeq
	}
	gone := after > head ||
		(after > 0 && after < head && (len(rows) == 0 || rows[0].Seq == nil || *rows[0].Seq != after+1))
	if gone {
		return nil, fmt.Errorf("postgres: events of %s after %d: %w", key, after, ports.ErrEventsGone)
	}
	for _, r := range rows {
		if r.Seq == nil {
			continue
		}
		out = append(out, ports.LoggedEvent{UserID: key, Seq: *r.Seq, Type: *r.Type, At: utc(*r.At), Payload: []byte(*r.Payload)})
	}
	return out, nil
}

// Heads implements ports.EventLog.
func (s *Store) Heads(ctx context.Context, userIDs []string) (map[string]int64, error) {
	keys := make([]string, 0, len(userIDs))
	for _, id := range userIDs {
		if key, ok := parseID(id); ok {
			keys = append(keys, key)
		}
	}
	out := make(map[string]int64, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	var rows []headRow
	if err := s.db.NewRaw(`SELECT user_id, last_seq FROM event_heads WHERE user_id = ANY(?::uuid[])`,
		pgdialect.Array(keys)).Scan(ctx, &rows); err != nil {
		return nil, fmt.Errorf("postgres: event heads: %w", translate(err))
	}
	for _, r := range rows {
		out[r.UserID] = r.LastSeq
	}
	return out, nil
}

// PruneEvents implements ports.EventLog over events_at_idx.
func (s *Store) PruneEvents(ctx context.Context, before time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	res, err := s.db.NewRaw(`DELETE FROM events WHERE (user_id, seq) IN (
		SELECT user_id, seq FROM events WHERE at < ? ORDER BY at LIMIT ?)`, ts(before), limit).Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("postgres: pruning events: %w", translate(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("postgres: pruning events: %w", translate(err))
	}
	return int(n), nil
}
