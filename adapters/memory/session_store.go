package memory

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/halobestie/mitra-availability/ports"
)

// CreateSession implements ports.SessionStore. The store assigns ID, CreatedAt
// and UpdatedAt; a customer or mitra that does not exist is ErrNotFound, and a
// second open session of a customer is ports.ErrOpenSessionExists.
func (s *Store) CreateSession(ctx context.Context, in ports.Session, fn func(ctx context.Context, tx ports.SessionTx, s ports.Session) error) (ports.Session, error) {
	customer, ok := parseID(in.CustomerID)
	if !ok {
		return ports.Session{}, notFound("customer", in.CustomerID)
	}
	sess, err := normalizeSession(in)
	if err != nil {
		return ports.Session{}, fmt.Errorf("memory: create session: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[customer]; !ok {
		return ports.Session{}, notFound("customer", in.CustomerID)
	}
	sess.ID = uuid.NewString()
	sess.CustomerID = customer
	if err := s.checkSessionLocked(sess); err != nil {
		return ports.Session{}, fmt.Errorf("memory: create session: %w", err)
	}
	now := s.wallClock()
	sess.CreatedAt, sess.UpdatedAt = now, now
	if sess.Queue != nil {
		s.queueSeq++
		sess.Queue.Seq = s.queueSeq
	}
	tx := &sessionTx{s: s}
	if fn != nil {
		if err := fn(ctx, tx, copySession(sess)); err != nil {
			return ports.Session{}, err
		}
	}
	if err := s.appendEventsLocked(tx.events); err != nil {
		return ports.Session{}, fmt.Errorf("memory: create session: %w", err)
	}
	s.chatSessions[sess.ID] = sess
	return copySession(sess), nil
}

// Session implements ports.SessionStore.
func (s *Store) Session(_ context.Context, id string) (ports.Session, error) {
	key, ok := parseID(id)
	if !ok {
		return ports.Session{}, notFound("session", id)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.chatSessions[key]
	if !ok {
		return ports.Session{}, notFound("session", id)
	}
	return copySession(sess), nil
}

// SessionsOf implements ports.SessionStore, newest first (ties broken by ID,
// descending, as in Postgres).
func (s *Store) SessionsOf(_ context.Context, userID string, limit int) ([]ports.Session, error) {
	key, ok := parseID(userID)
	if !ok || limit <= 0 {
		return []ports.Session{}, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []ports.Session{}
	for _, cs := range s.chatSessions {
		if cs.CustomerID == key || (cs.MitraID != nil && *cs.MitraID == key) {
			out = append(out, cs)
		}
	}
	slices.SortFunc(out, func(a, b ports.Session) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	if len(out) > limit {
		out = out[:limit]
	}
	for i := range out {
		out[i] = copySession(out[i])
	}
	return out, nil
}

// UpdateSession implements ports.SessionStore. fn runs on a copy of the
// session while the store's mutex is held, so it is atomic with the save and
// with every other call; what fn changed is checked as Postgres's constraints
// would and saved only when fn returns nil. ID, CustomerID and CreatedAt never
// change. fn must not call the Store itself (the mutex is not reentrant): it
// reads through tx, and must not keep tx beyond its return.
func (s *Store) UpdateSession(ctx context.Context, id string, fn func(ctx context.Context, tx ports.SessionTx, s *ports.Session) error) (ports.Session, error) {
	key, ok := parseID(id)
	if !ok {
		return ports.Session{}, notFound("session", id)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.chatSessions[key]
	if !ok {
		return ports.Session{}, notFound("session", id)
	}
	work := copySession(cur)
	tx := &sessionTx{s: s}
	if err := fn(ctx, tx, &work); err != nil {
		return ports.Session{}, err // the caller's own error, unwrapped: its message reaches the client
	}
	sess, err := normalizeSession(work)
	if err != nil {
		return ports.Session{}, fmt.Errorf("memory: update session %s: %w", key, err)
	}
	sess.ID, sess.CustomerID, sess.CreatedAt = cur.ID, cur.CustomerID, cur.CreatedAt
	if err := keepSeq(&sess, cur); err != nil {
		return ports.Session{}, fmt.Errorf("memory: update session %s: %w", key, err)
	}
	if err := s.checkSessionLocked(sess); err != nil {
		return ports.Session{}, fmt.Errorf("memory: update session %s: %w", key, err)
	}
	if err := s.appendEventsLocked(tx.events); err != nil {
		return ports.Session{}, fmt.Errorf("memory: update session %s: %w", key, err)
	}
	sess.UpdatedAt = s.wallClock()
	s.chatSessions[key] = sess
	return copySession(sess), nil
}

// sessionTx is the ports.SessionTx of an UpdateSession call; it reads under
// the mutex that UpdateSession holds.
type sessionTx struct {
	s      *Store
	events []*ports.Event
}

// Emit implements ports.SessionTx: the event is appended to the log when
// the call succeeds.
func (t *sessionTx) Emit(e *ports.Event) { t.events = append(t.events, e) }

// LockMitraLoad implements ports.SessionTx. The store's mutex, held for the
// whole UpdateSession, already serialises every update, so it locks nothing more.
func (t *sessionTx) LockMitraLoad(_ context.Context, mitraID string) (ports.MitraLoad, error) {
	key, ok := parseID(mitraID)
	if !ok {
		return ports.MitraLoad{}, notFound("mitra", mitraID)
	}
	m, ok := t.s.mitras[key]
	if !ok {
		return ports.MitraLoad{}, notFound("mitra", mitraID)
	}
	return ports.MitraLoad{IsActive: m.isActive, Capacity: m.capacity, OpenSessions: t.s.openSessionsOfLocked(key)}, nil
}

// DueTimers implements ports.SessionStore, oldest first; deadlines at the
// same instant are ordered by kind, then session ID, as in Postgres.
func (s *Store) DueTimers(_ context.Context, now time.Time, limit int) ([]ports.DueTimer, error) {
	if limit <= 0 {
		return []ports.DueTimer{}, nil
	}
	now = ts(now)
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []ports.DueTimer{}
	for id, cs := range s.chatSessions {
		for _, tm := range timersOf(cs) {
			if !tm.At.After(now) {
				tm.SessionID = id
				out = append(out, tm)
			}
		}
	}
	slices.SortFunc(out, func(a, b ports.DueTimer) int {
		return cmp.Or(a.At.Compare(b.At), strings.Compare(string(a.Kind), string(b.Kind)), strings.Compare(a.SessionID, b.SessionID))
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// NextTimer implements ports.SessionStore.
func (s *Store) NextTimer(context.Context) (time.Time, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var (
		next  time.Time
		found bool
	)
	for _, cs := range s.chatSessions {
		for _, tm := range timersOf(cs) {
			if !found || tm.At.Before(next) {
				next, found = tm.At, true
			}
		}
	}
	return next, found, nil
}

// timersOf returns the pending deadlines of cs, due or not (SessionID unset).
func timersOf(cs ports.Session) []ports.DueTimer {
	var out []ports.DueTimer
	add := func(kind ports.TimerKind, at *time.Time) {
		if at != nil {
			out = append(out, ports.DueTimer{Kind: kind, At: *at})
		}
	}
	switch cs.Status {
	case ports.StatusSearching:
		add(ports.TimerPairing, cs.OfferExpiresAt)
		add(ports.TimerBatch, cs.NextBatchAt)
		if cs.Waiting() {
			add(ports.TimerQueue, &cs.Queue.ExpiresAt)
		}
	case ports.StatusPendingPayment:
		add(ports.TimerPayment, cs.PaymentDueAt)
	case ports.StatusActive:
		if cs.WarningSentAt == nil {
			add(ports.TimerWarning, cs.WarnAt)
		}
		add(ports.TimerExpiry, cs.ExpiresAt)
	}
	return out
}

// checkSessionLocked enforces what the chat_sessions table does, in the order
// Postgres checks it: the status, end reason and duration checks, one open
// session per customer, the mitra foreign key. s.mu must be held.
func (s *Store) checkSessionLocked(sess ports.Session) error {
	if !validStatus(sess.Status) {
		return fmt.Errorf("status %q: %w", sess.Status, errCheckViolation)
	}
	if sess.EndReason != nil && !validEndReason(*sess.EndReason) {
		return fmt.Errorf("end reason %q: %w", *sess.EndReason, errCheckViolation)
	}
	if sess.DurationMinutes < 1 || sess.DurationMinutes > 240 {
		return fmt.Errorf("duration %d minutes: %w", sess.DurationMinutes, errCheckViolation)
	}
	if sess.BatchStart < 0 {
		return fmt.Errorf("batch start %d: %w", sess.BatchStart, errCheckViolation)
	}
	if sess.Status.Open() {
		for id, other := range s.chatSessions {
			if id != sess.ID && other.CustomerID == sess.CustomerID && other.Status.Open() {
				return fmt.Errorf("customer %s: %w", sess.CustomerID, ports.ErrOpenSessionExists)
			}
		}
	}
	if sess.MitraID != nil {
		if _, ok := s.mitras[*sess.MitraID]; !ok {
			return notFound("mitra", *sess.MitraID)
		}
	}
	return nil
}

func validStatus(st ports.SessionStatus) bool {
	switch st {
	case ports.StatusSearching, ports.StatusPendingPayment, ports.StatusActive,
		ports.StatusEnded, ports.StatusUnmatched, ports.StatusCancelled:
		return true
	}
	return false
}

func validEndReason(r ports.EndReason) bool {
	switch r {
	case ports.EndUnmatched, ports.EndPaymentTimeout, ports.EndCancelledByCustomer,
		ports.EndEndedByCustomer, ports.EndEndedByMitra, ports.EndExpired:
		return true
	}
	return false
}

// normalizeSession returns a deep copy of in as the store keeps it: times in
// UTC truncated to microseconds, mitra ids in canonical form, id arrays never
// nil. A malformed MitraID is ErrNotFound (no mitra has it); a malformed id in
// the arrays is a constraint violation, as the uuid[] cast fails in Postgres.
func normalizeSession(in ports.Session) (ports.Session, error) {
	out := copySession(in)
	if in.MitraID != nil {
		key, ok := parseID(*in.MitraID)
		if !ok {
			return ports.Session{}, notFound("mitra", *in.MitraID)
		}
		out.MitraID = &key
	}
	out.SearchingSince = ts(in.SearchingSince)
	if out.Queue != nil {
		out.Queue.QueuedAt = ts(out.Queue.QueuedAt)
		out.Queue.ExpiresAt = ts(out.Queue.ExpiresAt)
		if out.Queue.MatchedAt != nil {
			out.Queue.MatchedAt = tsPtr(*out.Queue.MatchedAt)
		}
		if out.Queue.NotifiedAt != nil {
			out.Queue.NotifiedAt = tsPtr(*out.Queue.NotifiedAt)
		}
	}
	for _, p := range []**time.Time{
		&out.OfferExpiresAt, &out.PaymentDueAt, &out.AcceptedAt, &out.StartedAt,
		&out.ExpiresAt, &out.WarnAt, &out.WarningSentAt, &out.EndedAt, &out.NextBatchAt,
	} {
		if *p != nil {
			*p = tsPtr(**p)
		}
	}
	var err error
	if out.OfferedMitraIDs, err = canonicalIDs("offered", in.OfferedMitraIDs); err != nil {
		return ports.Session{}, err
	}
	if out.ExcludedMitraIDs, err = canonicalIDs("excluded", in.ExcludedMitraIDs); err != nil {
		return ports.Session{}, err
	}
	return out, nil
}

// canonicalIDs returns ids in canonical UUID form, never nil.
func canonicalIDs(what string, ids []string) ([]string, error) {
	out := make([]string, len(ids))
	for i, id := range ids {
		key, ok := parseID(id)
		if !ok {
			return nil, fmt.Errorf("%s mitra id %q is not a UUID: %w", what, id, errCheckViolation)
		}
		out[i] = key
	}
	return out, nil
}

// copySession returns a deep copy of s: no pointer or slice is shared, and the
// id arrays are never nil.
func copySession(s ports.Session) ports.Session {
	out := s
	if s.MitraID != nil {
		v := *s.MitraID
		out.MitraID = &v
	}
	if s.EndReason != nil {
		v := *s.EndReason
		out.EndReason = &v
	}
	if s.RemainingSeconds != nil {
		v := *s.RemainingSeconds
		out.RemainingSeconds = &v
	}
	out.OfferExpiresAt = copyTime(s.OfferExpiresAt)
	out.PaymentDueAt = copyTime(s.PaymentDueAt)
	out.AcceptedAt = copyTime(s.AcceptedAt)
	out.StartedAt = copyTime(s.StartedAt)
	out.ExpiresAt = copyTime(s.ExpiresAt)
	out.WarnAt = copyTime(s.WarnAt)
	out.NextBatchAt = copyTime(s.NextBatchAt)
	out.WarningSentAt = copyTime(s.WarningSentAt)
	out.EndedAt = copyTime(s.EndedAt)
	out.OfferedMitraIDs = append([]string{}, s.OfferedMitraIDs...)
	out.ExcludedMitraIDs = append([]string{}, s.ExcludedMitraIDs...)
	if s.Queue != nil {
		q := *s.Queue
		q.MatchedAt = copyTime(s.Queue.MatchedAt)
		q.NotifiedAt = copyTime(s.Queue.NotifiedAt)
		if s.Queue.NotifiedPosition != nil {
			v := *s.Queue.NotifiedPosition
			q.NotifiedPosition = &v
		}
		out.Queue = &q
	}
	return out
}

// keepSeq keeps the queue sequence the store assigned: a write cannot
// change it, nor add a queue entry to a session that had none or drop one
// (a constraint violation, as in Postgres).
func keepSeq(sess *ports.Session, cur ports.Session) error {
	if (sess.Queue == nil) != (cur.Queue == nil) {
		return fmt.Errorf("queue entry added or dropped: %w", errCheckViolation)
	}
	if sess.Queue != nil {
		sess.Queue.Seq = cur.Queue.Seq
	}
	return nil
}

// HasWaiting implements ports.SessionStore.
func (s *Store) HasWaiting(context.Context) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, cs := range s.chatSessions {
		if cs.Waiting() {
			return true, nil
		}
	}
	return false, nil
}

// QueueBusy implements ports.SessionStore.
func (s *Store) QueueBusy(context.Context) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, cs := range s.chatSessions {
		if cs.Waiting() || owedLeaveNotice(cs) {
			return true, nil
		}
	}
	return false, nil
}

// owedLeaveNotice reports whether cs is a dispatched queued session whose
// customer was last told a position.
func owedLeaveNotice(cs ports.Session) bool {
	return cs.Queued() && cs.OfferExpiresAt != nil && cs.Queue.NotifiedPosition != nil && *cs.Queue.NotifiedPosition > 0
}

// QueueAhead implements ports.SessionStore.
func (s *Store) QueueAhead(_ context.Context, e ports.QueueEntry) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.aheadLocked(e), nil
}

func (s *Store) aheadLocked(e ports.QueueEntry) int {
	e.QueuedAt = ts(e.QueuedAt)
	n := 0
	for _, cs := range s.chatSessions {
		if cs.Waiting() && cs.Queue.Before(e) {
			n++
		}
	}
	return n
}

// QueueStats implements ports.SessionStore.
func (s *Store) QueueStats(_ context.Context, matchedSince time.Time) (ports.QueueStats, error) {
	matchedSince = ts(matchedSince)
	s.mu.Lock()
	defer s.mu.Unlock()
	var st ports.QueueStats
	for _, cs := range s.chatSessions {
		if cs.Waiting() {
			st.Waiting++
			if st.OldestQueuedAt == nil || cs.Queue.QueuedAt.Before(*st.OldestQueuedAt) {
				st.OldestQueuedAt = tsPtr(cs.Queue.QueuedAt)
			}
		}
		if cs.Queue != nil && cs.Queue.MatchedAt != nil && !cs.Queue.MatchedAt.Before(matchedSince) {
			st.MatchedSince++
		}
	}
	return st, nil
}

// QueuePass implements ports.SessionStore. The store's mutex, held for the
// whole pass, is the queue lock; the pass writes straight into the maps and
// keeps what it overwrote, to put it back when fn fails.
func (s *Store) QueuePass(ctx context.Context, fn func(ctx context.Context, tx ports.QueueTx) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	tx := &queueTx{sessionTx: sessionTx{s: s}, undo: map[string]*ports.Session{}, seq: s.queueSeq}
	err := fn(ctx, tx)
	if err == nil {
		if err = s.appendEventsLocked(tx.events); err != nil {
			err = fmt.Errorf("memory: queue pass: %w", err)
		}
	}
	if err != nil {
		for id, prev := range tx.undo {
			if prev == nil {
				delete(s.chatSessions, id)
			} else {
				s.chatSessions[id] = *prev
			}
		}
		s.queueSeq = tx.seq
		return err
	}
	return nil
}

// queueTx is the ports.QueueTx of a QueuePass.
type queueTx struct {
	sessionTx
	undo map[string]*ports.Session // each session's state before the pass; nil: created by it
	read map[string]bool           // the sessions Waiting returned or Create made
	seq  int64                     // queueSeq before the pass
}

func (t *queueTx) remember(id string) {
	if _, ok := t.undo[id]; ok {
		return
	}
	if cur, ok := t.s.chatSessions[id]; ok {
		c := copySession(cur)
		t.undo[id] = &c
	} else {
		t.undo[id] = nil
	}
}

// Ahead implements ports.QueueTx.
func (t *queueTx) Ahead(_ context.Context, e ports.QueueEntry) (int, error) {
	return t.s.aheadLocked(e), nil
}

// Waiting implements ports.QueueTx.
func (t *queueTx) Waiting(_ context.Context, limit int) ([]ports.Session, error) {
	return t.inOrder(limit, ports.Session.Waiting), nil
}

// Offered implements ports.QueueTx.
func (t *queueTx) Offered(_ context.Context, limit int) ([]ports.Session, error) {
	return t.inOrder(limit, owedLeaveNotice), nil
}

// inOrder returns up to limit sessions that match, in the queue's order,
// and marks them read by the pass.
func (t *queueTx) inOrder(limit int, match func(ports.Session) bool) []ports.Session {
	out := []ports.Session{}
	for _, cs := range t.s.chatSessions {
		if match(cs) {
			out = append(out, cs)
		}
	}
	slices.SortFunc(out, func(a, b ports.Session) int {
		switch {
		case a.Queue.Before(*b.Queue):
			return -1
		case b.Queue.Before(*a.Queue):
			return 1
		}
		return 0
	})
	if len(out) > limit {
		out = out[:max(limit, 0)]
	}
	if t.read == nil {
		t.read = map[string]bool{}
	}
	for i := range out {
		t.read[out[i].ID] = true
		out[i] = copySession(out[i])
	}
	return out
}

// FreeSlots implements ports.QueueTx.
func (t *queueTx) FreeSlots(_ context.Context, mitraIDs []string) (int, error) {
	free := 0
	seen := map[string]bool{}
	for _, id := range mitraIDs {
		key, ok := parseID(id)
		if !ok || seen[key] {
			continue
		}
		seen[key] = true
		m, ok := t.s.mitras[key]
		if !ok || !m.isActive || !m.isOnline || m.isAway {
			continue
		}
		free += max(0, m.capacity-t.s.openSessionsOfLocked(key))
	}
	for _, cs := range t.s.chatSessions {
		if offerStands(cs) {
			free--
		}
	}
	return free, nil
}

// offerStands reports whether cs searches with an offer that a mitra may
// still accept: offered to at least one mitra that has not declined it.
func offerStands(cs ports.Session) bool {
	if cs.Status != ports.StatusSearching || cs.OfferExpiresAt == nil {
		return false
	}
	for _, id := range cs.OfferedMitraIDs {
		if !slices.Contains(cs.ExcludedMitraIDs, id) {
			return true
		}
	}
	return false
}

// Save implements ports.QueueTx.
func (t *queueTx) Save(_ context.Context, in ports.Session) error {
	key, ok := parseID(in.ID)
	if !ok || !t.read[key] {
		return fmt.Errorf("memory: queue pass: save of session %q not read by this pass", in.ID)
	}
	cur := t.s.chatSessions[key]
	sess, err := normalizeSession(in)
	if err != nil {
		return fmt.Errorf("memory: queue pass: save %s: %w", key, err)
	}
	sess.ID, sess.CustomerID, sess.CreatedAt = cur.ID, cur.CustomerID, cur.CreatedAt
	if err := keepSeq(&sess, cur); err != nil {
		return fmt.Errorf("memory: queue pass: save %s: %w", key, err)
	}
	if err := t.s.checkSessionLocked(sess); err != nil {
		return fmt.Errorf("memory: queue pass: save %s: %w", key, err)
	}
	t.remember(key)
	sess.UpdatedAt = t.s.wallClock()
	t.s.chatSessions[key] = sess
	return nil
}

// Create implements ports.QueueTx.
func (t *queueTx) Create(_ context.Context, in ports.Session) (ports.Session, error) {
	customer, ok := parseID(in.CustomerID)
	if !ok {
		return ports.Session{}, notFound("customer", in.CustomerID)
	}
	if _, ok := t.s.users[customer]; !ok {
		return ports.Session{}, notFound("customer", in.CustomerID)
	}
	sess, err := normalizeSession(in)
	if err != nil {
		return ports.Session{}, fmt.Errorf("memory: queue pass: create session: %w", err)
	}
	sess.ID = uuid.NewString()
	sess.CustomerID = customer
	if err := t.s.checkSessionLocked(sess); err != nil {
		return ports.Session{}, fmt.Errorf("memory: queue pass: create session: %w", err)
	}
	now := t.s.wallClock()
	sess.CreatedAt, sess.UpdatedAt = now, now
	if sess.Queue != nil {
		t.s.queueSeq++
		sess.Queue.Seq = t.s.queueSeq
	}
	t.remember(sess.ID)
	t.s.chatSessions[sess.ID] = sess
	if t.read == nil {
		t.read = map[string]bool{}
	}
	t.read[sess.ID] = true
	return copySession(sess), nil
}
