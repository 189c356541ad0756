package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/halobestie/mitra-availability/ports"
)

// queueLockSpace and queueLockKey name the advisory transaction lock every
// queue pass holds (two int4 keys, apart from every other advisory lock of
// the database): one pass at a time across all instances.
const (
	queueLockSpace = 0x71756531 // "que1"
	queueLockKey   = 1
)

// queueOrder is the queue's order (ports.QueueEntry.Before), the order of
// chat_sessions_waiting_idx.
const queueOrder = `queue_priority DESC, queued_at, queue_seq`

// HasWaiting implements ports.SessionStore: one probe of chat_sessions_waiting_idx.
func (s *Store) HasWaiting(ctx context.Context) (bool, error) {
	var ok bool
	if err := s.db.NewRaw(`SELECT EXISTS (SELECT 1 FROM chat_sessions WHERE `+waitingCond+`)`).Scan(ctx, &ok); err != nil {
		return false, fmt.Errorf("postgres: has waiting: %w", translate(err))
	}
	return ok, nil
}

// owedNoticeCond selects the dispatched queued sessions whose customer was
// last told a position (the predicate of chat_sessions_queue_offered_notice_idx).
const owedNoticeCond = `status = 'searching' AND queue_seq IS NOT NULL AND queue_matched_at IS NULL
	AND offer_expires_at IS NOT NULL AND queue_notified_position > 0`

// QueueBusy implements ports.SessionStore: two index probes.
func (s *Store) QueueBusy(ctx context.Context) (bool, error) {
	var ok bool
	if err := s.db.NewRaw(`SELECT EXISTS (SELECT 1 FROM chat_sessions WHERE `+waitingCond+`)
		OR EXISTS (SELECT 1 FROM chat_sessions WHERE `+owedNoticeCond+`)`).Scan(ctx, &ok); err != nil {
		return false, fmt.Errorf("postgres: queue busy: %w", translate(err))
	}
	return ok, nil
}

// QueueAhead implements ports.SessionStore: a count over chat_sessions_waiting_idx
// up to e's key.
func (s *Store) QueueAhead(ctx context.Context, e ports.QueueEntry) (int, error) {
	return queueAhead(ctx, s.db, e)
}

func queueAhead(ctx context.Context, db bun.IDB, e ports.QueueEntry) (int, error) {
	var n int
	err := db.NewRaw(`SELECT count(*)::int FROM chat_sessions WHERE `+waitingCond+`
		AND (queue_priority > ?0 OR (queue_priority = ?0 AND (queued_at, queue_seq) < (?1::timestamptz, ?2::bigint)))`,
		e.Priority, ts(e.QueuedAt), e.Seq,
	).Scan(ctx, &n)
	if err != nil {
		return 0, fmt.Errorf("postgres: queue ahead: %w", translate(err))
	}
	return n, nil
}

// queueStatsRow is the result of the queue figures query.
type queueStatsRow struct {
	Waiting int        `bun:"waiting"`
	Oldest  *time.Time `bun:"oldest"`
	Matched int        `bun:"matched"`
}

// QueueStats implements ports.SessionStore.
func (s *Store) QueueStats(ctx context.Context, matchedSince time.Time) (ports.QueueStats, error) {
	var row queueStatsRow
	err := s.db.NewRaw(`SELECT
		(SELECT count(*)::int FROM chat_sessions WHERE `+waitingCond+`) AS waiting,
		(SELECT min(queued_at) FROM chat_sessions WHERE `+waitingCond+`) AS oldest,
		(SELECT count(*)::int FROM chat_sessions WHERE queue_matched_at >= ?0::timestamptz) AS matched`,
		ts(matchedSince),
	).Scan(ctx, &row)
	if err != nil {
		return ports.QueueStats{}, fmt.Errorf("postgres: queue stats: %w", translate(err))
	}
	return ports.QueueStats{Waiting: row.Waiting, OldestQueuedAt: utcPtr(row.Oldest), MatchedSince: row.Matched}, nil
}

// QueuePass implements ports.SessionStore: one transaction that first takes
// the queue's advisory lock, so passes on every instance run one at a time.
func (s *Store) QueuePass(ctx context.Context, fn func(ctx context.Context, tx ports.QueueTx) error) error {
	var (
		fnErr  error
		qtx    *queueTx
		outbox []int64
	)
	// The passes wait on the advisory lock in Postgres. An instance runs
	// one pass at a time (core/sessions/pass.go batches the requests that
	// come meanwhile into its next pass), so at most one pool connection
	// per instance waits here.
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewRaw(`SELECT pg_advisory_xact_lock(?0, ?1)`, queueLockSpace, queueLockKey).Exec(ctx); err != nil {
			return translate(err)
		}
		qtx = &queueTx{sessionTx: sessionTx{tx: tx}}
		if err := fn(ctx, qtx); err != nil {
			fnErr = err
			return err
		}
		var err error
		outbox, err = s.emitted(ctx, tx, qtx.events) // sequenced after the commit (event_outbox.go)
		return err
	})
	if err != nil {
		s.collect(outbox, nil)
	}
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return fmt.Errorf("postgres: queue pass: %w", translate(err))
	}
	s.sequenceCommitted(ctx, outbox, qtx.events)
	return nil
}

// queueTx is the ports.QueueTx of a queue pass.
type queueTx struct {
	sessionTx
	read map[string]bool // the sessions Waiting returned or Create made
}

func (t *queueTx) mark(id string) {
	if t.read == nil {
		t.read = map[string]bool{}
	}
	t.read[id] = true
}

// Ahead implements ports.QueueTx.
func (t *queueTx) Ahead(ctx context.Context, e ports.QueueEntry) (int, error) {
	return queueAhead(ctx, t.tx, e)
}

// Waiting implements ports.QueueTx: the head of chat_sessions_waiting_idx,
// locked. A session that stopped waiting while the lock was awaited (a
// cancel) is re-checked by Postgres and left out.
func (t *queueTx) Waiting(ctx context.Context, limit int) ([]ports.Session, error) {
	return t.locked(ctx, "waiting sessions", waitingCond, limit, ports.Session.Waiting)
}

// Offered implements ports.QueueTx (chat_sessions_queue_offered_notice_idx).
func (t *queueTx) Offered(ctx context.Context, limit int) ([]ports.Session, error) {
	return t.locked(ctx, "offered queued sessions", owedNoticeCond, limit, func(s ports.Session) bool {
		return s.Queued() && s.OfferExpiresAt != nil && s.Queue.NotifiedPosition != nil && *s.Queue.NotifiedPosition > 0
	})
}

// locked reads up to limit sessions matching cond in the queue's order,
// locked FOR UPDATE; match re-checks each as it was locked.
func (t *queueTx) locked(ctx context.Context, what, cond string, limit int, match func(ports.Session) bool) ([]ports.Session, error) {
	if limit <= 0 {
		return []ports.Session{}, nil
	}
	var rows []chatSessionRow
	err := t.tx.NewRaw(`SELECT * FROM chat_sessions WHERE `+cond+`
		ORDER BY `+queueOrder+` LIMIT ?0 FOR UPDATE`, limit).Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: %s: %w", what, translate(err))
	}
	out := make([]ports.Session, 0, len(rows))
	for _, r := range rows {
		sess := toPortsSession(r)
		if !match(sess) { // changed between the scan and the lock
			continue
		}
		t.mark(sess.ID)
		out = append(out, sess)
	}
	return out, nil
}

// FreeSlots implements ports.QueueTx. One statement, so one snapshot: an
// accept that commits meanwhile moves a session from "offer stands" to
// "open" wholly or not at all.
func (t *queueTx) FreeSlots(ctx context.Context, mitraIDs []string) (int, error) {
	ids := make([]string, 0, len(mitraIDs))
	for _, id := range mitraIDs {
		if key, ok := parseID(id); ok {
			ids = append(ids, key)
		}
	}
	var free int
	err := t.tx.NewRaw(`SELECT
		coalesce((SELECT sum(greatest(m.capacity - `+activeSessionsExpr+`, 0))
			FROM mitras m WHERE m.id = ANY(?0::uuid[]) AND m.is_active AND m.is_online AND NOT m.is_away), 0)::int
		- (SELECT count(*) FROM chat_sessions
			WHERE status = 'searching' AND offer_expires_at IS NOT NULL
				AND NOT (offered_mitra_ids <@ excluded_mitra_ids))::int`,
		pgdialect.Array(ids),
	).Scan(ctx, &free)
	if err != nil {
		return 0, fmt.Errorf("postgres: free slots: %w", translate(err))
	}
	return free, nil
}

// Save implements ports.QueueTx.
func (t *queueTx) Save(ctx context.Context, s ports.Session) error {
	key, ok := parseID(s.ID)
	if !ok || !t.read[key] {
		return fmt.Errorf("postgres: queue pass: save of session %q not read by this pass", s.ID)
	}
	upd, err := toSessionRow(s)
	if err != nil {
		return fmt.Errorf("postgres: queue pass: save %s: %w", key, err)
	}
	upd.ID = key
	if _, err := t.tx.NewUpdate().Model(&upd).Column(sessionMutableColumns...).Set("updated_at = now()").
		Where("id = ?", key).Exec(ctx); err != nil {
		return fmt.Errorf("postgres: queue pass: save %s: %w", key, translateSessionWrite(err))
	}
	return nil
}

// Create implements ports.QueueTx. The insert runs under a savepoint, so a
// refused one (the customer's open session) leaves the pass intact.
func (t *queueTx) Create(ctx context.Context, in ports.Session) (ports.Session, error) {
	customer, ok := parseID(in.CustomerID)
	if !ok {
		return ports.Session{}, fmt.Errorf("postgres: queue pass: create session: customer %q: %w", in.CustomerID, ports.ErrNotFound)
	}
	row, err := toSessionRow(in)
	if err != nil {
		return ports.Session{}, fmt.Errorf("postgres: queue pass: create session: %w", err)
	}
	row.ID = uuid.NewString()
	row.CustomerID = customer
	if _, err := t.tx.ExecContext(ctx, `SAVEPOINT queue_create`); err != nil {
		return ports.Session{}, fmt.Errorf("postgres: queue pass: create session: %w", translate(err))
	}
	if err := insertSession(ctx, t.tx, &row); err != nil {
		if _, rbErr := t.tx.ExecContext(ctx, `ROLLBACK TO SAVEPOINT queue_create`); rbErr != nil {
			return ports.Session{}, fmt.Errorf("postgres: queue pass: create session: %w", errors.Join(translateSessionWrite(err), rbErr))
		}
		return ports.Session{}, fmt.Errorf("postgres: queue pass: create session: %w", translateSessionWrite(err))
	}
	if _, err := t.tx.ExecContext(ctx, `RELEASE SAVEPOINT queue_create`); err != nil {
		return ports.Session{}, fmt.Errorf("postgres: queue pass: create session: %w", translate(err))
	}
	t.mark(row.ID)
	return toPortsSession(row), nil
}
