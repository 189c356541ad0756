package ports

import (
	"context"
	"errors"
	"time"
)

// ErrCacheDisabled is returned by every call of the "none" mirror: callers go
// to the store, and it is not counted as a cache fault.
var ErrCacheDisabled = errors.New("cache disabled")

// ErrMirrorNotSeeded is returned by a read when the mirror holds no seeded
// data (a restarted-empty or flushed server): callers fall back to the store
// and the seeder reseeds.
var ErrMirrorNotSeeded = errors.New("mirror not seeded")

// MirrorMitra is what the mirror holds of one online mitra.
type MirrorMitra struct {
	ID            string
	LastHeartbeat time.Time
	OpenSessions  int // sessions in pending_payment or active with this mitra
	Capacity      int
	// Away: online but taking no new offers; an away mitra is never listed
	// as available, whatever its load. Status and Heartbeats report it;
	// RemoveStale's entries leave it unset.
	Away bool
	// IdleSince is when the mitra last became idle (docs/contract.md §11: the
	// later of going online and the end of its last session), at the
	// heartbeat's 100 ms precision. Zero in a write keeps what the mirror
	// holds (or, for a mitra new to it, takes its heartbeat). Only
	// Candidates reports it.
	IdleSince time.Time
}

// HasRoom reports whether the mitra can take one more session.
func (m MirrorMitra) HasRoom() bool { return m.OpenSessions < m.Capacity }

// Offerable reports whether the mitra may be offered a session: not away and with room.
func (m MirrorMitra) Offerable() bool { return !m.Away && m.HasRoom() }

// HeartbeatOutcome is the answer of the mirror's heartbeat.
type HeartbeatOutcome int

const (
	// HeartbeatRecorded: the mitra is online and active; its heartbeat time was recorded.
	HeartbeatRecorded HeartbeatOutcome = iota + 1
	// HeartbeatNotOnline: the mitra is not in the online set; nothing was recorded.
	HeartbeatNotOnline
	// HeartbeatDeactivated: the mitra is in the deactivated set; nothing was recorded.
	HeartbeatDeactivated
)

// MirrorStatus is what the mirror knows of one mitra.
type MirrorStatus struct {
	Online      bool
	Deactivated bool
	Mitra       MirrorMitra // set when Online
}

// Snapshot is the beacon value shared by every instance.
type Snapshot struct {
	AvailableMitras int
	AsOf            time.Time
}

// ReseedReport counts what a reseed corrected.
type ReseedReport struct {
	Added       int // online in the store, missing from the mirror
	Removed     int // in the mirror, offline or deactivated in the store
	Updated     int // load, away or heartbeat corrected
	Deactivated int // deactivated set corrected (added + removed)
	// IDs are the mitras whose entries the reseed changed, so the caller can
	// re-check them against the store and close the race with writes that
	// committed while the reseed ran.
	IDs []string
}

// Total is the number of corrections.
func (r ReseedReport) Total() int { return r.Added + r.Removed + r.Updated + r.Deactivated }

// AvailabilityMirror mirrors the availability state of Postgres into a cache
// (Valkey) so that the hot paths cost no store query. Postgres is the source
// of truth: writes reach the mirror after the store committed, best-effort.
// Every method honours ctx's deadline. Heartbeat timestamps have 100 ms
// precision (floored); a heartbeat never moves backwards.
type AvailabilityMirror interface {
	// PutOnline adds or updates an online mitra, away or not as m.Away says.
	// Its heartbeat becomes the later of the stored one and m.LastHeartbeat.
	PutOnline(ctx context.Context, m MirrorMitra) error
	// PutOffline removes a mitra from the online set.
	PutOffline(ctx context.Context, id string) error
	// Deactivate adds the mitra to the deactivated set and removes it from the
	// online set, atomically.
	Deactivate(ctx context.Context, id string) error
	// Reactivate removes the mitra from the deactivated set (it stays offline).
	Reactivate(ctx context.Context, id string) error
	// SetLoad updates the open-session count, capacity and (unless zero) idle
	// time of an online mitra, keeping it away if it is; it does nothing for
	// a mitra that is not online.
	SetLoad(ctx context.Context, id string, openSessions, capacity int, idleSince time.Time) error

	// Heartbeat checks deactivated and online and records `at`, in one round trip.
	// ErrMirrorNotSeeded when the mirror has lost its data.
	Heartbeat(ctx context.Context, id string, at time.Time) (HeartbeatOutcome, error)

	// Status answers what the mirror knows of one mitra.
	Status(ctx context.Context, id string) (MirrorStatus, error)
	// AvailableMitraIDs returns the ids of the online mitras that are not
	// away, have room and whose heartbeat is not before freshSince, in no
	// particular order, without walking the other online mitras and without
	// their entries: the pairing blast needs nothing more, and at 100k online
	// mitras reading and sorting the entries costs more than the lookup itself.
	AvailableMitraIDs(ctx context.Context, freshSince time.Time) ([]string, error)
	// Candidates answers the routing strategies' read (docs/contract.md
	// §11): up to q.Limit of the mitras AvailableMitraIDs would list, none of
	// q.Exclude, in q.Order (OrderRandom: a uniform random sample), with
	// their idle time and open sessions. Its cost grows with q.Limit and
	// q.Exclude, not with the online mitras.
	Candidates(ctx context.Context, q CandidateQuery) ([]Candidate, error)
	// CountMitras answers the dashboard counts (Online counts every online mitra,
	// fresh or not, as the store does).
	CountMitras(ctx context.Context, freshSince time.Time) (MitraCounts, error)

	// LoadSnapshot returns the shared beacon snapshot; ok false when there is none.
	LoadSnapshot(ctx context.Context) (s Snapshot, ok bool, err error)
	// SaveSnapshot stores the shared beacon snapshot for ttl.
	SaveSnapshot(ctx context.Context, s Snapshot, ttl time.Duration) error
	// TryLock takes a short cross-instance lock (SET NX PX); release frees it
	// only if it is still ours.
	TryLock(ctx context.Context, name string, ttl time.Duration) (release func(context.Context) error, ok bool, err error)

	// RemoveStale atomically removes up to limit online mitras whose heartbeat is
	// before staleBefore and returns them. Its cost grows with the stale mitras,
	// not the online ones.
	RemoveStale(ctx context.Context, staleBefore time.Time, limit int) ([]MirrorMitra, error)
	// Heartbeats returns the online mitras whose heartbeat is not before since.
	Heartbeats(ctx context.Context, since time.Time) ([]MirrorMitra, error)
	// Reseed makes the mirror equal to the store's truth: online are the active
	// online mitras (away or not), deactivated the inactive ones. A heartbeat in the mirror
	// that is later than the store's is kept. It marks the mirror seeded and
	// reports what it corrected.
	Reseed(ctx context.Context, online []MirrorMitra, deactivated []string) (ReseedReport, error)
	// Seeded reports whether the mirror holds seeded data (its marker exists).
	Seeded(ctx context.Context) (bool, error)
	// Ping checks that the cache answers.
	Ping(ctx context.Context) error
}
