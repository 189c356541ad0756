package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/halobestie/mitra-availability/ports"
)

// chatSessionRow is a row of chat_sessions.
type chatSessionRow struct {
	bun.BaseModel `bun:"table:chat_sessions,alias:cs"`

	ID               string     `bun:"id"`
	CustomerID       string     `bun:"customer_id"`
	MitraID          *string    `bun:"mitra_id"`
	Status           string     `bun:"status"`
	EndReason        *string    `bun:"end_reason"`
	DurationMinutes  int        `bun:"duration_minutes"`
	Paid             bool       `bun:"paid"`
	RemainingSeconds *int       `bun:"remaining_seconds"`
	CreatedAt        time.Time  `bun:"created_at"`
	SearchingSince   time.Time  `bun:"searching_since"`
	OfferExpiresAt   *time.Time `bun:"offer_expires_at"`
	PaymentDueAt     *time.Time `bun:"payment_due_at"`
	AcceptedAt       *time.Time `bun:"accepted_at"`
	StartedAt        *time.Time `bun:"started_at"`
	ExpiresAt        *time.Time `bun:"expires_at"`
	WarnAt           *time.Time `bun:"warn_at"`
	WarningSentAt    *time.Time `bun:"warning_sent_at"`
	EndedAt          *time.Time `bun:"ended_at"`
	OfferedMitraIDs  []string   `bun:"offered_mitra_ids,array"`
	ExcludedMitraIDs []string   `bun:"excluded_mitra_ids,array"`
	NextBatchAt      *time.Time `bun:"next_batch_at"`
	BatchStart       int        `bun:"batch_start"`
	QueuePriority    *int       `bun:"queue_priority"`
	QueuedAt         *time.Time `bun:"queued_at"`
	QueueSeq         *int64     `bun:"queue_seq"`
	QueueExpiresAt   *time.Time `bun:"queue_expires_at"`
	QueueMatchedAt   *time.Time `bun:"queue_matched_at"`
	QueueNotifiedPos *int       `bun:"queue_notified_position"`
	QueueNotifiedAt  *time.Time `bun:"queue_notified_at"`
	UpdatedAt        time.Time  `bun:"updated_at"`
}

// sessionMutableColumns are the columns UpdateSession writes: all but id,
// customer_id and created_at (which never change) and updated_at (set to now()).
var sessionMutableColumns = []string{
	"mitra_id", "status", "end_reason", "duration_minutes", "paid", "remaining_seconds",
	"searching_since", "offer_expires_at", "payment_due_at", "accepted_at", "started_at",
	"expires_at", "warn_at", "warning_sent_at", "ended_at", "offered_mitra_ids", "excluded_mitra_ids",
	"next_batch_at", "batch_start",
	"queue_priority", "queued_at", "queue_expires_at", "queue_matched_at",
	"queue_notified_position", "queue_notified_at",
}

// sessionInsertColumns are the columns CreateSession writes; created_at and
// updated_at take their default, now(), and queue_seq is drawn from its
// sequence for a queued session (insertSession).
var sessionInsertColumns = append([]string{"id", "customer_id", "queue_seq"}, sessionMutableColumns...)

// insertSession inserts row (a queued one takes the next queue_seq) and
// reads it back.
func insertSession(ctx context.Context, db bun.IDB, row *chatSessionRow) error {
	q := db.NewInsert().Model(row).Column(sessionInsertColumns...)
	if row.QueuedAt != nil {
		q = q.Value("queue_seq", "nextval('chat_sessions_queue_seq')")
	}
	_, err := q.Returning("*").Exec(ctx)
	return err
}

func toPortsSession(r chatSessionRow) ports.Session {
	s := ports.Session{
		ID:               r.ID,
		CustomerID:       r.CustomerID,
		MitraID:          r.MitraID,
		Status:           ports.SessionStatus(r.Status),
		DurationMinutes:  r.DurationMinutes,
		Paid:             r.Paid,
		RemainingSeconds: r.RemainingSeconds,
		CreatedAt:        utc(r.CreatedAt),
		SearchingSince:   utc(r.SearchingSince),
		OfferExpiresAt:   utcPtr(r.OfferExpiresAt),
		PaymentDueAt:     utcPtr(r.PaymentDueAt),
		AcceptedAt:       utcPtr(r.AcceptedAt),
		StartedAt:        utcPtr(r.StartedAt),
		ExpiresAt:        utcPtr(r.ExpiresAt),
		WarnAt:           utcPtr(r.WarnAt),
		WarningSentAt:    utcPtr(r.WarningSentAt),
		EndedAt:          utcPtr(r.EndedAt),
		OfferedMitraIDs:  nonNil(r.OfferedMitraIDs),
		ExcludedMitraIDs: nonNil(r.ExcludedMitraIDs),
		NextBatchAt:      utcPtr(r.NextBatchAt),
		BatchStart:       r.BatchStart,
		UpdatedAt:        utc(r.UpdatedAt),
	}
	if r.EndReason != nil {
		reason := ports.EndReason(*r.EndReason)
		s.EndReason = &reason
	}
	if r.QueuedAt != nil && r.QueueSeq != nil && r.QueuePriority != nil && r.QueueExpiresAt != nil {
		s.Queue = &ports.QueueEntry{
			Priority:         *r.QueuePriority,
			QueuedAt:         utc(*r.QueuedAt),
			Seq:              *r.QueueSeq,
			ExpiresAt:        utc(*r.QueueExpiresAt),
			MatchedAt:        utcPtr(r.QueueMatchedAt),
			NotifiedPosition: r.QueueNotifiedPos,
			NotifiedAt:       utcPtr(r.QueueNotifiedAt),
		}
	}
	return s
}

// toSessionRow converts s for writing: times truncated to microseconds in UTC,
// mitra ids in canonical form. A malformed MitraID is ErrNotFound (no mitra has
// it); a malformed id in the id arrays is a plain error.
func toSessionRow(s ports.Session) (chatSessionRow, error) {
	r := chatSessionRow{
		ID:               s.ID,
		CustomerID:       s.CustomerID,
		Status:           string(s.Status),
		DurationMinutes:  s.DurationMinutes,
		Paid:             s.Paid,
		RemainingSeconds: s.RemainingSeconds,
		SearchingSince:   ts(s.SearchingSince),
		OfferExpiresAt:   tsPtr(s.OfferExpiresAt),
		PaymentDueAt:     tsPtr(s.PaymentDueAt),
		AcceptedAt:       tsPtr(s.AcceptedAt),
		StartedAt:        tsPtr(s.StartedAt),
		ExpiresAt:        tsPtr(s.ExpiresAt),
		WarnAt:           tsPtr(s.WarnAt),
		WarningSentAt:    tsPtr(s.WarningSentAt),
		EndedAt:          tsPtr(s.EndedAt),
		NextBatchAt:      tsPtr(s.NextBatchAt),
		BatchStart:       s.BatchStart,
	}
	if q := s.Queue; q != nil {
		prio := q.Priority
		r.QueuePriority = &prio
		r.QueuedAt = tsPtr(&q.QueuedAt)
		r.QueueExpiresAt = tsPtr(&q.ExpiresAt)
		r.QueueMatchedAt = tsPtr(q.MatchedAt)
		r.QueueNotifiedPos = q.NotifiedPosition
		r.QueueNotifiedAt = tsPtr(q.NotifiedAt)
	}
	if s.MitraID != nil {
		key, ok := parseID(*s.MitraID)
		if !ok {
			return chatSessionRow{}, fmt.Errorf("mitra %q: %w", *s.MitraID, ports.ErrNotFound)
		}
		r.MitraID = &key
	}
	if s.EndReason != nil {
		reason := string(*s.EndReason)
		r.EndReason = &reason
	}
	var err error
	if r.OfferedMitraIDs, err = canonicalIDs("offered", s.OfferedMitraIDs); err != nil {
		return chatSessionRow{}, err
	}
	if r.ExcludedMitraIDs, err = canonicalIDs("excluded", s.ExcludedMitraIDs); err != nil {
		return chatSessionRow{}, err
	}
	return r, nil
}

// canonicalIDs returns ids in canonical UUID form, never nil; a malformed id is an error.
func canonicalIDs(what string, ids []string) ([]string, error) {
	out := make([]string, len(ids))
	for i, id := range ids {
		key, ok := parseID(id)
		if !ok {
			return nil, fmt.Errorf("%s mitra id %q is not a UUID", what, id)
		}
		out[i] = key
	}
	return out, nil
}

func nonNil(ids []string) []string {
	if ids == nil {
		return []string{}
	}
	return ids
}

// tsPtr returns a pointer to ts(*t), or nil.
func tsPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := ts(*t)
	return &v
}

// translateSessionWrite translates the error of a statement that writes a
// chat session: a foreign key violation means an unknown customer or mitra.
// The open-session unique violation is translated by translate.
func translateSessionWrite(err error) error {
	if isForeignKeyViolation(err) {
		return fmt.Errorf("%w: %w", ports.ErrNotFound, err)
	}
	return translate(err)
}

// CreateSession implements ports.SessionStore. The store assigns ID, CreatedAt
// and UpdatedAt; a customer or mitra that does not exist is ErrNotFound, and a
// second open session of a customer (chat_sessions_one_open_per_customer_idx)
// is ports.ErrOpenSessionExists.
func (s *Store) CreateSession(ctx context.Context, in ports.Session, fn func(ctx context.Context, tx ports.SessionTx, s ports.Session) error) (ports.Session, error) {
	customer, ok := parseID(in.CustomerID)
	if !ok {
		return ports.Session{}, fmt.Errorf("postgres: create session: customer %q: %w", in.CustomerID, ports.ErrNotFound)
	}
	row, err := toSessionRow(in)
	if err != nil {
		return ports.Session{}, fmt.Errorf("postgres: create session: %w", err)
	}
	row.ID = uuid.NewString()
	row.CustomerID = customer
	if fn == nil { // nothing else to do in the transaction: one statement
		if err := insertSession(ctx, s.db, &row); err != nil {
			return ports.Session{}, fmt.Errorf("postgres: create session: %w", translateSessionWrite(err))
		}
		return toPortsSession(row), nil
	}
	var (
		fnErr  error
		stx    *sessionTx
		outbox []int64
	)
	err = s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if err := insertSession(ctx, tx, &row); err != nil {
			return translateSessionWrite(err)
		}
		stx = &sessionTx{tx: tx}
		if err := fn(ctx, stx, toPortsSession(row)); err != nil {
			fnErr = err
			return err
		}
		var err error
		outbox, err = s.emitted(ctx, tx, stx.events)
		return err
	})
	if err != nil {
		s.collect(outbox, nil)
	}
	if fnErr != nil {
		return ports.Session{}, fnErr
	}
	if err != nil {
		return ports.Session{}, fmt.Errorf("postgres: create session: %w", translateSessionWrite(err))
	}
	s.sequenceCommitted(ctx, outbox, stx.events)
	return toPortsSession(row), nil
}

// Session implements ports.SessionStore.
func (s *Store) Session(ctx context.Context, id string) (ports.Session, error) {
	key, ok := parseID(id)
	if !ok {
		return ports.Session{}, fmt.Errorf("postgres: session %q: %w", id, ports.ErrNotFound)
	}
	var row chatSessionRow
	if err := s.db.NewSelect().Model(&row).Where("id = ?", key).Scan(ctx); err != nil {
		return ports.Session{}, fmt.Errorf("postgres: session %s: %w", key, translate(err))
	}
	return toPortsSession(row), nil
}

// SessionsOf implements ports.SessionStore, newest first (ties broken by ID,
// descending). It is the same as WHERE customer_id = $1 OR mitra_id = $1, but
// each side reads at most limit rows from its own history index
// (chat_sessions_customer_created_idx, chat_sessions_mitra_created_idx) and the
// two are merged, so a mitra with a long history costs no more than a new one
// (the OR form bitmap-scans and sorts the whole history).
func (s *Store) SessionsOf(ctx context.Context, userID string, limit int) ([]ports.Session, error) {
	key, ok := parseID(userID)
	if !ok || limit <= 0 {
		return []ports.Session{}, nil
	}
	var rows []chatSessionRow
	err := s.db.NewRaw(`
		SELECT * FROM (
			(SELECT * FROM chat_sessions WHERE customer_id = ?0
				ORDER BY created_at DESC, id DESC LIMIT ?1)
			UNION ALL
			(SELECT * FROM chat_sessions WHERE mitra_id = ?0 AND customer_id <> ?0
				ORDER BY created_at DESC, id DESC LIMIT ?1)
		) cs
		ORDER BY created_at DESC, id DESC LIMIT ?1`,
		key, limit,
	).Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: sessions of %s: %w", key, translate(err))
	}
	out := make([]ports.Session, len(rows))
	for i, r := range rows {
		out[i] = toPortsSession(r)
	}
	return out, nil
}

// UpdateSession implements ports.SessionStore. In one transaction it locks the
// session row (SELECT … FOR UPDATE), runs fn on it, and writes every mutable
// column back. An error from fn rolls the transaction back and is returned
// wrapped, so errors.Is sees it. fn must not keep tx beyond its return.
func (s *Store) UpdateSession(ctx context.Context, id string, fn func(ctx context.Context, tx ports.SessionTx, s *ports.Session) error) (ports.Session, error) {
	key, ok := parseID(id)
	if !ok {
		return ports.Session{}, fmt.Errorf("postgres: update session %q: %w", id, ports.ErrNotFound)
	}
	var (
		out    chatSessionRow
		fnErr  error
		stx    *sessionTx
		outbox []int64
	)
	// This process's transactions on the row wait for their turn here, off
	// the pool, rather than each on the row lock holding a connection.
	turnDone, err := s.sessionTurns.wait(ctx, key)
	if err != nil {
		return ports.Session{}, fmt.Errorf("postgres: update session %s: %w", key, translate(err))
	}
	err = s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var row chatSessionRow
		if err := tx.NewSelect().Model(&row).Where("id = ?", key).For("UPDATE").Scan(ctx); err != nil {
			return translate(err)
		}
		sess := toPortsSession(row)
		stx = &sessionTx{tx: tx}
		if err := fn(ctx, stx, &sess); err != nil {
			fnErr = err
			return err
		}
		upd, err := toSessionRow(sess)
		if err != nil {
			return err
		}
		upd.ID = key
		_, err = tx.NewUpdate().Model(&upd).
			Column(sessionMutableColumns...).
			Set("updated_at = now()").
			Where("id = ?", key).
			Returning("*").
			Exec(ctx)
		if err != nil {
			return translateSessionWrite(err)
		}
		out = upd
		outbox, err = s.emitted(ctx, tx, stx.events)
		return err
	})
	turnDone()
	if err != nil {
		s.collect(outbox, nil)
	}
	if fnErr != nil {
		return ports.Session{}, fnErr // the caller's own error, unwrapped: its message reaches the client
	}
	if err != nil {
		return ports.Session{}, fmt.Errorf("postgres: update session %s: %w", key, translate(err))
	}
	s.sequenceCommitted(ctx, outbox, stx.events)
	return toPortsSession(out), nil
}

// sessionTx is the ports.SessionTx of a session transaction.
type sessionTx struct {
	tx     bun.Tx
	events []*ports.Event
}

// Emit implements ports.SessionTx: the events are written to the outbox at
// the end of the transaction, all in one go (writeOutbox), and sequenced
// once it has committed (event_outbox.go).
func (t *sessionTx) Emit(e *ports.Event) { t.events = append(t.events, e) }

// mitraLoadRow is the locked part of a mitra's load.
type mitraLoadRow struct {
	IsActive bool `bun:"is_active"`
	Capacity int  `bun:"capacity"`
}

// LockMitraLoad implements ports.SessionTx. It locks the mitra row with FOR NO
// KEY UPDATE, which conflicts with itself and with every UPDATE of mitras but
// not with the foreign key checks of chat_sessions inserts, and holds it to the
// end of the transaction. The open sessions are counted by a second statement
// on purpose: under READ COMMITTED a statement sees the rows committed before it
// started, so a count in the locking statement would miss the sessions that the
// previous holder of the lock committed while this one waited.
func (t *sessionTx) LockMitraLoad(ctx context.Context, mitraID string) (ports.MitraLoad, error) {
	key, ok := parseID(mitraID)
	if !ok {
		return ports.MitraLoad{}, fmt.Errorf("postgres: lock mitra %q: %w", mitraID, ports.ErrNotFound)
	}
	var row mitraLoadRow
	err := t.tx.NewRaw(`SELECT is_active, capacity FROM mitras WHERE id = ? FOR NO KEY UPDATE`, key).Scan(ctx, &row)
	if err != nil {
		return ports.MitraLoad{}, fmt.Errorf("postgres: lock mitra %s: %w", key, translate(err))
	}
	var open int
	err = t.tx.NewRaw(`SELECT count(*)::int FROM chat_sessions
		WHERE mitra_id = ? AND status IN ('pending_payment', 'active')`, key).Scan(ctx, &open)
	if err != nil {
		return ports.MitraLoad{}, fmt.Errorf("postgres: load of mitra %s: %w", key, translate(err))
	}
	return ports.MitraLoad{IsActive: row.IsActive, Capacity: row.Capacity, OpenSessions: open}, nil
}

// dueTimerRow is one row of the due-timer query.
type dueTimerRow struct {
	SessionID string    `bun:"session_id"`
	Kind      string    `bun:"kind"`
	At        time.Time `bun:"at"`
}

// timerBranches are the six deadlines, one SELECT each over its partial index
// (chat_sessions_offer_expires_idx, _payment_due_idx, _warn_idx, _expires_idx,
// _next_batch_idx, _queue_expires_idx).
// ?0 is the limit; cond is appended to each deadline column ("<= ?1" or "").
func timerBranches(cond string) string {
	branch := func(kind, col, where string) string {
		return `(SELECT id AS session_id, '` + kind + `' AS kind, ` + col + ` AS at FROM chat_sessions
			WHERE ` + where + ` AND ` + col + cond + ` ORDER BY ` + col + `, id LIMIT ?0)`
	}
	return branch(string(ports.TimerPairing), "offer_expires_at", "status = 'searching'") +
		" UNION ALL " + branch(string(ports.TimerPayment), "payment_due_at", "status = 'pending_payment'") +
		" UNION ALL " + branch(string(ports.TimerWarning), "warn_at", "status = 'active' AND warning_sent_at IS NULL") +
		" UNION ALL " + branch(string(ports.TimerExpiry), "expires_at", "status = 'active'") +
		" UNION ALL " + branch(string(ports.TimerBatch), "next_batch_at", "status = 'searching' AND next_batch_at IS NOT NULL") +
		" UNION ALL " + branch(string(ports.TimerQueue), "queue_expires_at", waitingCond)
}

// waitingCond selects the sessions that wait in the queue (ports.Session.Waiting),
// the predicate of chat_sessions_waiting_idx and chat_sessions_queue_expires_idx.
const waitingCond = `status = 'searching' AND queue_seq IS NOT NULL AND queue_matched_at IS NULL AND offer_expires_at IS NULL`

// dueTimersQuery takes at most limit due deadlines of each kind from its index
// and merges them, ordered by time, then kind, then session id.
var dueTimersQuery = `SELECT session_id, kind, at FROM (` + timerBranches(" <= ?1::timestamptz") + `) t
	ORDER BY at, kind COLLATE "C", session_id LIMIT ?0`

// DueTimers implements ports.SessionStore, oldest first; deadlines at the
// same instant are ordered by kind, then session ID. A session can have
// several due timers (an active one both its warning and its expiry).
func (s *Store) DueTimers(ctx context.Context, now time.Time, limit int) ([]ports.DueTimer, error) {
	if limit <= 0 {
		return []ports.DueTimer{}, nil
	}
	var rows []dueTimerRow
	if err := s.db.NewRaw(dueTimersQuery, limit, ts(now)).Scan(ctx, &rows); err != nil {
		return nil, fmt.Errorf("postgres: due timers: %w", translate(err))
	}
	out := make([]ports.DueTimer, len(rows))
	for i, r := range rows {
		out[i] = ports.DueTimer{SessionID: r.SessionID, Kind: ports.TimerKind(r.Kind), At: utc(r.At)}
	}
	return out, nil
}

// nextTimerRow is the result of the next-timer query.
type nextTimerRow struct {
	At *time.Time `bun:"at"`
}

// NextTimer implements ports.SessionStore: the least of the six minimums, each
// read from the first entry of its partial index.
func (s *Store) NextTimer(ctx context.Context) (time.Time, bool, error) {
	var row nextTimerRow
	err := s.db.NewRaw(`SELECT least(
		(SELECT min(offer_expires_at) FROM chat_sessions WHERE status = 'searching'),
		(SELECT min(payment_due_at) FROM chat_sessions WHERE status = 'pending_payment'),
		(SELECT min(warn_at) FROM chat_sessions WHERE status = 'active' AND warning_sent_at IS NULL),
		(SELECT min(expires_at) FROM chat_sessions WHERE status = 'active'),
		(SELECT min(next_batch_at) FROM chat_sessions WHERE status = 'searching' AND next_batch_at IS NOT NULL),
		(SELECT min(queue_expires_at) FROM chat_sessions WHERE `+waitingCond+`)
	) AS at`).Scan(ctx, &row)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("postgres: next timer: %w", translate(err))
	}
	if row.At == nil {
		return time.Time{}, false, nil
	}
	return utc(*row.At), true, nil
}
