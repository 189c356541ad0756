package memory

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/halobestie/mitra-availability/ports"
)

// Mirror is the in-process ports.AvailabilityMirror, the default of a single
// instance. It has the semantics of the Valkey mirror (adapters/valkey),
// proven by the same contract suite (ports/mirrortest): heartbeats are kept
// with a precision of 100 ms and compared at that precision, open sessions
// and capacity are clamped to 0..127, reads answer ErrMirrorNotSeeded until
// the first Reseed (and after Flush). Unlike the Valkey mirror it may walk
// all its mitras: it lives in the process that asks.
type Mirror struct {
	mu          sync.Mutex
	online      map[string]mirrorEntry
	deactivated map[string]struct{}
	seeded      bool
	snapshot    ports.Snapshot
	snapExpires time.Time // zero: no snapshot
	locks       map[string]mirrorLock
	lockSeq     uint64
	now         func() time.Time // wall clock of the TTLs
}

var _ ports.AvailabilityMirror = (*Mirror)(nil)

// mirrorEntry is one online mitra: its heartbeat in deciseconds since
// mirrorEpoch and its clamped load.
type mirrorEntry struct {
	ds             int64
	open, capacity int
	away           bool
	idle           int64 // idle since, in deciseconds since mirrorEpoch
}

type mirrorLock struct {
	token   uint64
	expires time.Time
}

const (
	mirrorMaxLoad = 127
	mirrorMaxDS   = 1 << 38
)

// mirrorEpoch is the origin of the deciseconds, as in the Valkey mirror.
var mirrorEpoch = time.Date(2025, time.January, 1, 0, 0, 0, 0, time.UTC)

// NewMirror returns an empty, unseeded mirror.
func NewMirror() *Mirror {
	return &Mirror{
		online:      make(map[string]mirrorEntry),
		deactivated: make(map[string]struct{}),
		locks:       make(map[string]mirrorLock),
		now:         time.Now,
	}
}

// Flush forgets everything, the seeded marker included, as a flushed or
// restarted-empty Valkey would: for tests of data loss.
func (m *Mirror) Flush() {
	m.mu.Lock()
	defer m.mu.Unlock()
	clear(m.online)
	clear(m.deactivated)
	clear(m.locks)
	m.seeded = false
	m.snapExpires = time.Time{}
}

// mirrorDS is the heartbeat t in deciseconds since mirrorEpoch, floored and clamped.
func mirrorDS(t time.Time) int64 {
	ms := t.UnixMilli() - mirrorEpoch.UnixMilli()
	ds := ms / 100
	if ms%100 < 0 {
		ds--
	}
	return min(max(ds, -mirrorMaxDS), mirrorMaxDS)
}

func mirrorClamp(n int) int { return min(max(n, 0), mirrorMaxLoad) }

func newMirrorEntry(m ports.MirrorMitra) mirrorEntry {
	e := mirrorEntry{ds: mirrorDS(m.LastHeartbeat), open: mirrorClamp(m.OpenSessions), capacity: mirrorClamp(m.Capacity), away: m.Away}
	e.idle = e.ds
	if !m.IdleSince.IsZero() {
		e.idle = mirrorDS(m.IdleSince)
	}
	return e
}

// fromMirrorDS is the time of ds, in UTC.
func fromMirrorDS(ds int64) time.Time {
	return time.UnixMilli(mirrorEpoch.UnixMilli() + ds*100).UTC() // a Duration would overflow past 292 years
}

// offerable: not away and with room (the Valkey mirror's free set).
func (e mirrorEntry) offerable() bool { return !e.away && e.open < e.capacity }

func (e mirrorEntry) mitra(id string) ports.MirrorMitra {
	return ports.MirrorMitra{
		ID:            id,
		LastHeartbeat: fromMirrorDS(e.ds),
		OpenSessions:  e.open,
		Capacity:      e.capacity,
		Away:          e.away,
	}
}

func mirrorSortByID(ms []ports.MirrorMitra) {
	slices.SortFunc(ms, func(a, b ports.MirrorMitra) int { return strings.Compare(a.ID, b.ID) })
}

// begin checks ctx and takes the lock; the caller unlocks.
func (m *Mirror) begin(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory mirror: %s: %w", op, err)
	}
	m.mu.Lock()
	return nil
}

// beginRead is begin for the reads that need the seeded marker.
func (m *Mirror) beginRead(ctx context.Context, op string) error {
	if err := m.begin(ctx, op); err != nil {
		return err
	}
	if !m.seeded {
		m.mu.Unlock()
		return fmt.Errorf("memory mirror: %s: %w", op, ports.ErrMirrorNotSeeded)
	}
	return nil
}

// PutOnline adds or updates an online mitra, keeping the later heartbeat.
func (m *Mirror) PutOnline(ctx context.Context, mm ports.MirrorMitra) error {
	if err := m.begin(ctx, "put online"); err != nil {
		return err
	}
	defer m.mu.Unlock()
	e := newMirrorEntry(mm)
	if old, ok := m.online[mm.ID]; ok {
		e.ds = max(e.ds, old.ds)
		if mm.IdleSince.IsZero() {
			e.idle = old.idle
		}
	}
	m.online[mm.ID] = e
	return nil
}

// PutOffline removes a mitra from the online set.
func (m *Mirror) PutOffline(ctx context.Context, id string) error {
	if err := m.begin(ctx, "put offline"); err != nil {
		return err
	}
	defer m.mu.Unlock()
	delete(m.online, id)
	return nil
}

// Deactivate adds the mitra to the deactivated set and takes it offline.
func (m *Mirror) Deactivate(ctx context.Context, id string) error {
	if err := m.begin(ctx, "deactivate"); err != nil {
		return err
	}
	defer m.mu.Unlock()
	m.deactivated[id] = struct{}{}
	delete(m.online, id)
	return nil
}

// Reactivate removes the mitra from the deactivated set; it stays offline.
func (m *Mirror) Reactivate(ctx context.Context, id string) error {
	if err := m.begin(ctx, "reactivate"); err != nil {
		return err
	}
	defer m.mu.Unlock()
	delete(m.deactivated, id)
	return nil
}

// SetLoad updates the load of an online mitra; others are left alone.
func (m *Mirror) SetLoad(ctx context.Context, id string, openSessions, capacity int, idleSince time.Time) error {
	if err := m.begin(ctx, "set load"); err != nil {
		return err
	}
	defer m.mu.Unlock()
	if e, ok := m.online[id]; ok {
		e.open, e.capacity = mirrorClamp(openSessions), mirrorClamp(capacity)
		if !idleSince.IsZero() {
			e.idle = mirrorDS(idleSince)
		}
		m.online[id] = e
	}
	return nil
}

// Heartbeat records at for an online, active mitra, never moving backwards.
func (m *Mirror) Heartbeat(ctx context.Context, id string, at time.Time) (ports.HeartbeatOutcome, error) {
	if err := m.beginRead(ctx, "heartbeat"); err != nil {
		return 0, err
	}
	defer m.mu.Unlock()
	if _, ok := m.deactivated[id]; ok {
		return ports.HeartbeatDeactivated, nil
	}
	e, ok := m.online[id]
	if !ok {
		return ports.HeartbeatNotOnline, nil
	}
	e.ds = max(e.ds, mirrorDS(at))
	m.online[id] = e
	return ports.HeartbeatRecorded, nil
}

// Status answers what the mirror knows of one mitra.
func (m *Mirror) Status(ctx context.Context, id string) (ports.MirrorStatus, error) {
	if err := m.beginRead(ctx, "status"); err != nil {
		return ports.MirrorStatus{}, err
	}
	defer m.mu.Unlock()
	var st ports.MirrorStatus
	_, st.Deactivated = m.deactivated[id]
	if e, ok := m.online[id]; ok {
		st.Online = true
		st.Mitra = e.mitra(id)
	}
	return st, nil
}

// AvailableMitraIDs returns the ids of the online mitras that are not away
// and have room whose heartbeat is not before freshSince (at 100 ms
// precision), unordered.
func (m *Mirror) AvailableMitraIDs(ctx context.Context, freshSince time.Time) ([]string, error) {
	if err := m.beginRead(ctx, "available mitra ids"); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	lo := mirrorDS(freshSince)
	var out []string
	for id, e := range m.online {
		if e.ds >= lo && e.offerable() {
			out = append(out, id)
		}
	}
	return out, nil
}

// Candidates answers up to q.Limit available mitras, none of q.Exclude, in
// q.Order (a random sample for OrderRandom). It walks every online mitra: it
// lives in the process that asks.
func (m *Mirror) Candidates(ctx context.Context, q ports.CandidateQuery) ([]ports.Candidate, error) {
	switch q.Order {
	case ports.OrderRandom, ports.OrderLongestIdle, ports.OrderLeastLoaded:
	default:
		return nil, fmt.Errorf("memory mirror: candidates: unknown order %d", q.Order)
	}
	if err := m.beginRead(ctx, "candidates"); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	if q.Limit <= 0 {
		return []ports.Candidate{}, nil
	}
	lo := mirrorDS(q.FreshSince)
	out := []ports.Candidate{}
	for id, e := range m.online {
		if e.ds >= lo && e.offerable() && !slices.Contains(q.Exclude, id) {
			out = append(out, ports.Candidate{ID: id, IdleSince: fromMirrorDS(e.idle), OpenSessions: e.open})
		}
	}
	if q.Order == ports.OrderRandom {
		rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	} else {
		slices.SortFunc(out, q.Order.Compare)
	}
	if len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out, nil
}

// CountMitras answers the dashboard counts.
func (m *Mirror) CountMitras(ctx context.Context, freshSince time.Time) (ports.MitraCounts, error) {
	if err := m.beginRead(ctx, "count mitras"); err != nil {
		return ports.MitraCounts{}, err
	}
	defer m.mu.Unlock()
	lo := mirrorDS(freshSince)
	c := ports.MitraCounts{Online: len(m.online), Deactivated: len(m.deactivated)}
	for _, e := range m.online {
		if e.ds >= lo && e.offerable() {
			c.Available++
		}
	}
	return c, nil
}

// LoadSnapshot returns the beacon snapshot while its ttl runs.
func (m *Mirror) LoadSnapshot(ctx context.Context) (ports.Snapshot, bool, error) {
	if err := m.begin(ctx, "load snapshot"); err != nil {
		return ports.Snapshot{}, false, err
	}
	defer m.mu.Unlock()
	if m.snapExpires.IsZero() || !m.now().Before(m.snapExpires) {
		return ports.Snapshot{}, false, nil
	}
	return m.snapshot, true, nil
}

// SaveSnapshot stores the beacon snapshot for ttl (at least 1 ms).
func (m *Mirror) SaveSnapshot(ctx context.Context, s ports.Snapshot, ttl time.Duration) error {
	if ttl < time.Millisecond {
		return fmt.Errorf("memory mirror: save snapshot: ttl %v below 1ms", ttl)
	}
	if err := m.begin(ctx, "save snapshot"); err != nil {
		return err
	}
	defer m.mu.Unlock()
	m.snapshot = ports.Snapshot{AvailableMitras: s.AvailableMitras, AsOf: s.AsOf.UTC().Round(0)}
	m.snapExpires = m.now().Add(ttl)
	return nil
}

// TryLock takes the lock name for ttl (at least 1 ms); release frees it only
// while it is still ours.
func (m *Mirror) TryLock(ctx context.Context, name string, ttl time.Duration) (func(context.Context) error, bool, error) {
	if ttl < time.Millisecond {
		return nil, false, fmt.Errorf("memory mirror: lock: ttl %v below 1ms", ttl)
	}
	if err := m.begin(ctx, "lock"); err != nil {
		return nil, false, err
	}
	defer m.mu.Unlock()
	now := m.now()
	if l, ok := m.locks[name]; ok && now.Before(l.expires) {
		return nil, false, nil
	}
	m.lockSeq++
	token := m.lockSeq
	m.locks[name] = mirrorLock{token: token, expires: now.Add(ttl)}
	release := func(ctx context.Context) error {
		if err := m.begin(ctx, "unlock"); err != nil {
			return err
		}
		defer m.mu.Unlock()
		if l, ok := m.locks[name]; ok && l.token == token {
			delete(m.locks, name)
		}
		return nil
	}
	return release, true, nil
}

// RemoveStale removes up to limit online mitras whose heartbeat is before
// staleBefore (at 100 ms precision), oldest first, and returns them.
func (m *Mirror) RemoveStale(ctx context.Context, staleBefore time.Time, limit int) ([]ports.MirrorMitra, error) {
	if err := m.beginRead(ctx, "remove stale"); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	if limit <= 0 {
		return nil, nil
	}
	before := mirrorDS(staleBefore)
	var stale []ports.MirrorMitra
	for id, e := range m.online {
		if e.ds < before {
			stale = append(stale, e.mitra(id))
		}
	}
	slices.SortFunc(stale, func(a, b ports.MirrorMitra) int {
		if c := a.LastHeartbeat.Compare(b.LastHeartbeat); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	if len(stale) > limit {
		stale = stale[:limit]
	}
	for _, s := range stale {
		delete(m.online, s.ID)
	}
	return stale, nil
}

// Heartbeats returns the online mitras whose heartbeat is not before since, ordered by ID.
func (m *Mirror) Heartbeats(ctx context.Context, since time.Time) ([]ports.MirrorMitra, error) {
	if err := m.beginRead(ctx, "heartbeats"); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	lo := mirrorDS(since)
	var out []ports.MirrorMitra
	for id, e := range m.online {
		if e.ds >= lo {
			out = append(out, e.mitra(id))
		}
	}
	mirrorSortByID(out)
	return out, nil
}

// Reseed makes the mirror equal to the truth, keeping a later heartbeat of
// its own, marks it seeded and reports what it corrected. A mitra listed both
// online and deactivated is taken as deactivated.
func (m *Mirror) Reseed(ctx context.Context, online []ports.MirrorMitra, deactivated []string) (ports.ReseedReport, error) {
	if err := m.begin(ctx, "reseed"); err != nil {
		return ports.ReseedReport{}, err
	}
	defer m.mu.Unlock()
	wantDeact := make(map[string]struct{}, len(deactivated))
	for _, id := range deactivated {
		wantDeact[id] = struct{}{}
	}
	want := make(map[string]mirrorEntry, len(online))
	wantIdle := make(map[string]time.Time, len(online))
	for _, mm := range online {
		if _, d := wantDeact[mm.ID]; !d {
			want[mm.ID] = newMirrorEntry(mm)
			wantIdle[mm.ID] = mm.IdleSince
		}
	}

	var rep ports.ReseedReport
	changed := make(map[string]struct{})
	for id, w := range want {
		h, ok := m.online[id]
		switch {
		case !ok:
			rep.Added++
		case h.open != w.open || h.capacity != w.capacity || h.away != w.away || w.ds > h.ds:
			rep.Updated++
			w.ds = max(w.ds, h.ds)
		default:
			if idle := wantIdle[id]; !idle.IsZero() && h.idle != mirrorDS(idle) {
				h.idle = mirrorDS(idle) // the idle time is corrected quietly: it changes no availability
				m.online[id] = h
			}
			continue
		}
		if wantIdle[id].IsZero() {
			w.idle = h.idle
		}
		m.online[id] = w
		changed[id] = struct{}{}
	}
	for id := range m.online {
		if _, ok := want[id]; !ok {
			rep.Removed++
			delete(m.online, id)
			changed[id] = struct{}{}
		}
	}
	for id := range wantDeact {
		if _, ok := m.deactivated[id]; !ok {
			rep.Deactivated++
			m.deactivated[id] = struct{}{}
			changed[id] = struct{}{}
		}
	}
	for id := range m.deactivated {
		if _, ok := wantDeact[id]; !ok {
			rep.Deactivated++
			delete(m.deactivated, id)
			changed[id] = struct{}{}
		}
	}
	m.seeded = true
	for id := range changed {
		rep.IDs = append(rep.IDs, id)
	}
	slices.Sort(rep.IDs)
	return rep, nil
}

// Seeded reports whether the mirror was seeded since it was made or flushed.
func (m *Mirror) Seeded(ctx context.Context) (bool, error) {
	if err := m.begin(ctx, "seeded"); err != nil {
		return false, err
	}
	defer m.mu.Unlock()
	return m.seeded, nil
}

// Ping answers nil while ctx is live: the mirror is in the process.
func (m *Mirror) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory mirror: ping: %w", err)
	}
	return nil
}
