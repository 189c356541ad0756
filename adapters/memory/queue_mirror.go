package memory

import (
	"context"
	"sync"
	"time"

	"github.com/halobestie/mitra-availability/ports"
)

// QueueMirror is the in-process ports.QueueMirror (CACHE_BACKEND=memory),
// with the semantics of the Valkey one (adapters/valkey), proven by the same
// contract suite (ports/queuemirrortest): queued_at at microsecond
// precision, match times compared in milliseconds, versions kept for
// ports.QueueVersionKeep, ErrMirrorNotSeeded until the first reseed and
// after Flush. It may walk its members: it lives in the process that asks.
type QueueMirror struct {
	mu       sync.Mutex
	members  map[string]ports.QueueMember // waiting, by session id
	versions map[string]queueVersion
	matched  map[string]int64 // session id → match time in ms
	seeded   bool
	now      func() time.Time
}

type queueVersion struct {
	v       int64
	expires time.Time
}

var _ ports.QueueMirror = (*QueueMirror)(nil)

// NewQueueMirror returns an empty, unseeded queue mirror.
func NewQueueMirror() *QueueMirror {
	return &QueueMirror{members: map[string]ports.QueueMember{}, versions: map[string]queueVersion{},
		matched: map[string]int64{}, now: time.Now}
}

// Flush forgets everything, the seeded marker included.
func (q *QueueMirror) Flush() {
	q.mu.Lock()
	defer q.mu.Unlock()
	clear(q.members)
	clear(q.versions)
	clear(q.matched)
	q.seeded = false
}

// queueKey is a member with its key at the mirror's precision.
func queueKey(m ports.QueueMember) ports.QueueMember {
	m.QueuedAt = m.QueuedAt.UTC().Truncate(time.Microsecond)
	return m
}

func sameKey(a, b ports.QueueMember) bool {
	return a.Priority == b.Priority && a.QueuedAt.Equal(b.QueuedAt) && a.Seq == b.Seq
}

func entryOf(m ports.QueueMember) ports.QueueEntry {
	return ports.QueueEntry{Priority: m.Priority, QueuedAt: m.QueuedAt, Seq: m.Seq}
}

// version returns the last version written for id, if it is still kept.
func (q *QueueMirror) version(id string) (int64, bool) {
	v, ok := q.versions[id]
	if !ok || !q.now().Before(v.expires) {
		return 0, false
	}
	return v.v, true
}

func (q *QueueMirror) setVersion(id string, v int64) {
	q.versions[id] = queueVersion{v: v, expires: q.now().Add(ports.QueueVersionKeep)}
}

// QueueJoin implements ports.QueueMirror.
func (q *QueueMirror) QueueJoin(ctx context.Context, m ports.QueueMember) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if v, ok := q.version(m.ID); ok && v >= m.Version {
		return nil
	}
	q.members[m.ID] = queueKey(m)
	q.setVersion(m.ID, m.Version)
	return nil
}

// QueueLeave implements ports.QueueMirror.
func (q *QueueMirror) QueueLeave(ctx context.Context, m ports.QueueMember) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if v, ok := q.version(m.ID); ok && v > m.Version {
		return nil
	}
	if cur, ok := q.members[m.ID]; ok && sameKey(cur, queueKey(m)) {
		delete(q.members, m.ID)
	}
	q.setVersion(m.ID, m.Version)
	return nil
}

// QueueMatched implements ports.QueueMirror.
func (q *QueueMirror) QueueMatched(ctx context.Context, id string, at, forgetBefore time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.matched[id] = at.UnixMilli()
	q.forgetLocked(forgetBefore)
	return nil
}

func (q *QueueMirror) forgetLocked(before time.Time) {
	ms := before.UnixMilli()
	for id, t := range q.matched {
		if t < ms {
			delete(q.matched, id)
		}
	}
}

// QueueFigures implements ports.QueueMirror.
func (q *QueueMirror) QueueFigures(ctx context.Context, of *ports.QueueMember, matchedSince time.Time) (ports.QueueFigures, error) {
	if err := ctx.Err(); err != nil {
		return ports.QueueFigures{}, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.seeded {
		return ports.QueueFigures{}, ports.ErrMirrorNotSeeded
	}
	var f ports.QueueFigures
	var key ports.QueueMember
	if of != nil {
		key = queueKey(*of)
		cur, ok := q.members[of.ID]
		f.Found = ok && sameKey(cur, key)
	}
	for _, m := range q.members {
		f.Waiting++
		if f.OldestQueuedAt == nil || m.QueuedAt.Before(*f.OldestQueuedAt) {
			t := m.QueuedAt
			f.OldestQueuedAt = &t
		}
		if f.Found && entryOf(m).Before(entryOf(key)) {
			f.Ahead++
		}
	}
	since := matchedSince.UnixMilli()
	for _, t := range q.matched {
		if t >= since {
			f.MatchedSince++
		}
	}
	return f, nil
}

// QueueReseed implements ports.QueueMirror.
func (q *QueueMirror) QueueReseed(ctx context.Context, t ports.QueueTruth) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	truth := make(map[string]ports.QueueMember, len(t.Waiting))
	for _, m := range t.Waiting {
		m = queueKey(m)
		truth[m.ID] = m
		if cur, ok := q.members[m.ID]; ok && sameKey(cur, m) {
			continue
		}
		if v, ok := q.version(m.ID); ok && v >= m.Version {
			continue // it left (or joined again) after the truth was read
		}
		q.members[m.ID] = m
		q.setVersion(m.ID, m.Version)
		n++
	}
	for id, cur := range q.members {
		if m, ok := truth[id]; !ok || !sameKey(cur, m) {
			delete(q.members, id)
			delete(q.versions, id)
			n++
		}
	}
	for _, x := range t.Matched {
		q.matched[x.ID] = x.At.UnixMilli()
	}
	q.forgetLocked(t.MatchedSince)
	q.seeded = true
	return n, nil
}
