package postgres

import (
	"context"
	"fmt"
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

// headRow is one user's newest event id.
type headRow struct {
	UserID  string `bun:"user_id"`
	LastSeq *int64 `bun:"last_seq"`
}

// headOf is the SQL of the newest id of the stream of the user in column
// col: the newest event in the log or, when the pruner removed it, the id
// the pruner recorded in event_heads (NULL when the user has no stream).
func headOf(col string) string {
	return `GREATEST(
		(SELECT e.seq FROM events e WHERE e.user_id = ` + col + ` ORDER BY e.seq DESC LIMIT 1),
		(SELECT h.last_seq FROM event_heads h WHERE h.user_id = ` + col + `))`
}

// heads reads the newest id of each user's stream (users canonical); a user
// without a stream is left out.
func heads(ctx context.Context, db bun.IDB, users []string) (map[string]int64, error) {
	out := make(map[string]int64, len(users))
	if len(users) == 0 {
		return out, nil
	}
	var rows []headRow
	if err := db.NewRaw(`SELECT t.u AS user_id, `+headOf("t.u")+` AS last_seq
		FROM unnest(?::uuid[]) AS t(u)`, pgdialect.Array(users)).Scan(ctx, &rows); err != nil {
		return nil, err
	}
	for _, r := range rows {
		if r.LastSeq != nil {
			out[r.UserID] = *r.LastSeq
		}
	}
	return out, nil
}

// logEvents writes events to the log inside tx, in order, and sets their
// ids: each recipient's next ids after the newest of its stream. The caller
// holds the sequencing lock (outboxLockKey), so no other transaction writes
// a stream meanwhile: the streams are read, not locked. The rows go in with
// one statement that expands per-recipient arrays against per-event ones, so
// a payload is sent once per event, not once per recipient.
func logEvents(ctx context.Context, tx bun.Tx, events []*ports.Event) error {
	if len(events) == 0 {
		return nil
	}
	var users []string
	seen := map[string]struct{}{}
	for _, e := range events {
		us, err := eventUsers(e.UserIDs)
		if err != nil {
			return err
		}
		e.UserIDs = us
		for _, u := range us {
			if _, ok := seen[u]; !ok {
				seen[u] = struct{}{}
				users = append(users, u)
			}
		}
	}
	last, err := heads(ctx, tx, users)
	if err != nil {
		return fmt.Errorf("reading event heads: %w", translate(err))
	}
	var (
		rUsers []string
		rSeqs  []int64
		rIdx   []int64
		eTypes = make([]string, len(events))
		eAts   = make([]string, len(events))
		eBody  = make([]string, len(events))
	)
	for i, e := range events {
		e.At = ts(e.At)
		eTypes[i], eAts[i], eBody[i] = e.Type, e.At.Format(time.RFC3339Nano), string(e.Payload)
		e.Seqs = make([]int64, len(e.UserIDs))
		for k, u := range e.UserIDs {
			last[u]++
			e.Seqs[k] = last[u]
			rUsers, rSeqs, rIdx = append(rUsers, u), append(rSeqs, last[u]), append(rIdx, int64(i+1))
		}
	}
	_, err = tx.NewRaw(`INSERT INTO events (user_id, seq, type, at, payload)
		SELECT r.u, r.s, e.type, e.at, e.payload
		FROM unnest(?::uuid[], ?::bigint[], ?::bigint[]) AS r(u, s, i)
		JOIN unnest(?::text[], ?::timestamptz[], ?::text[]) WITH ORDINALITY AS e(type, at, payload, i) ON e.i = r.i`,
		pgdialect.Array(rUsers), pgdialect.Array(rSeqs), pgdialect.Array(rIdx),
		pgdialect.Array(eTypes), pgdialect.Array(eAts), pgdialect.Array(eBody)).Exec(ctx)
	if err != nil {
		return fmt.Errorf("writing events: %w", translate(err))
	}
	return nil
}

// eventUsers returns ids deduped in order and canonical; a malformed id is an error.
func eventUsers(ids []string) ([]string, error) { return ports.Recipients(ids, parseID) }

// eventsAfterRow is one row of the EventsAfter query: the stream's head,
// and one event (all null when there is none after the id).
type eventsAfterRow struct {
	LastSeq *int64     `bun:"last_seq"`
	Seq     *int64     `bun:"seq"`
	Type    *string    `bun:"type"`
	At      *time.Time `bun:"at"`
	Payload *string    `bun:"payload"`
}

// EventsAfter implements ports.EventLog in one statement (one snapshot): the
// head and the events after the id, read from the primary key.
func (s *Store) EventsAfter(ctx context.Context, userID string, after int64, limit int) ([]ports.LoggedEvent, error) {
	out := []ports.LoggedEvent{}
	key, ok := parseID(userID)
	if !ok || limit <= 0 {
		return out, nil
	}
	var rows []eventsAfterRow
	err := s.db.NewRaw(`SELECT h.last_seq, e.seq, e.type, e.at, e.payload
		FROM (SELECT `+headOf("?0::uuid")+` AS last_seq) h
		LEFT JOIN LATERAL (
			SELECT seq, type, at, payload FROM events
			WHERE user_id = ?0 AND seq > ?1 ORDER BY seq LIMIT ?2
		) e ON true
		ORDER BY e.seq`, key, after, limit).Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: events of %s: %w", key, translate(err))
	}
	head := int64(0)
	if len(rows) > 0 && rows[0].LastSeq != nil {
		head = *rows[0].LastSeq
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

// EventsAfterEach implements ports.EventLog in one statement: one primary-key
// range per user.
func (s *Store) EventsAfterEach(ctx context.Context, after map[string]int64, limit int) (map[string][]ports.LoggedEvent, error) {
	out := map[string][]ports.LoggedEvent{}
	if limit <= 0 {
		return out, nil
	}
	users := make([]string, 0, len(after))
	afters := make([]int64, 0, len(after))
	for id, a := range after {
		if key, ok := parseID(id); ok {
			users, afters = append(users, key), append(afters, a)
		}
	}
	if len(users) == 0 {
		return out, nil
	}
	var rows []eventRow
	err := s.db.NewRaw(`SELECT e.user_id, e.seq, e.type, e.at, e.payload
		FROM unnest(?::uuid[], ?::bigint[]) AS t(u, a)
		JOIN LATERAL (
			SELECT user_id, seq, type, at, payload FROM events
			WHERE user_id = t.u AND seq > t.a ORDER BY seq LIMIT ?
		) e ON true
		ORDER BY e.user_id, e.seq`, pgdialect.Array(users), pgdialect.Array(afters), limit).Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: events of %d users: %w", len(users), translate(err))
	}
	for _, r := range rows {
		out[r.UserID] = append(out[r.UserID], toLoggedEvent(r))
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
	out, err := heads(ctx, s.db, keys)
	if err != nil {
		return nil, fmt.Errorf("postgres: event heads: %w", translate(err))
	}
	return out, nil
}

// PruneEvents implements ports.EventLog over events_at_idx. It holds the
// sequencing lock (no stream grows meanwhile) and records in event_heads the
// newest id of each stream it cuts into, so that a stream whose events are
// all pruned goes on from where it was.
func (s *Store) PruneEvents(ctx context.Context, before time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	var n int64
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewRaw(`SELECT pg_advisory_xact_lock(?)`, int64(outboxLockKey)).Exec(ctx); err != nil {
			return err
		}
		// The heads are upserted in user-id order; a data-modifying WITH
		// runs whether or not the final SELECT reads it.
		return tx.NewRaw(`WITH doomed AS (
				DELETE FROM events WHERE (user_id, seq) IN (
					SELECT user_id, seq FROM events WHERE at < ? ORDER BY at LIMIT ?)
				RETURNING user_id, seq),
			newest AS (SELECT user_id, max(seq) AS seq, count(*) AS n FROM doomed GROUP BY user_id),
			recorded AS (
				INSERT INTO event_heads AS h (user_id, last_seq)
				SELECT user_id, seq FROM newest ORDER BY user_id
				ON CONFLICT (user_id) DO UPDATE SET last_seq = GREATEST(h.last_seq, EXCLUDED.last_seq))
			SELECT COALESCE(sum(n), 0) FROM newest`, ts(before), limit).Scan(ctx, &n)
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: pruning events: %w", translate(err))
	}
	return int(n), nil
}
