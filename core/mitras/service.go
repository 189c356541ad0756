// Package mitras holds the mitra rules: admin management, going online and
// offline, heartbeats, and the availability reads (one mitra, the list used
// for pairing, the beacon, the dashboard).
//
// A mitra is reachable when it is active, online and its last heartbeat is at
// most HeartbeatStale old; available when reachable and its open sessions
// (pending_payment or active) are below its capacity.
//
// Writes go to the store first, then, best-effort, to the availability
// mirror: a mirror failure is logged, counted and reported to the mirror's
// Health (which schedules a reseed), never returned to the caller. Reads ask
// the mirror first and fall back to the store on any mirror error, with the
// same answer either way. The heartbeat, the hot path, costs one mirror round
// trip and no store statement while the mirror answers.
//
// Deactivation commits to the store first (which also sets the mitra
// offline), then revokes every auth session of the mitra, so its refresh
// tokens fail at once, and puts it in the mirror's deactivated set, which the
// heartbeat checks; every other mitra endpoint checks the store.
package mitras

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/halobestie/mitra-availability/core"
	"github.com/halobestie/mitra-availability/core/auth"
	"github.com/halobestie/mitra-availability/core/mirror"
	"github.com/halobestie/mitra-availability/core/validate"
	"github.com/halobestie/mitra-availability/ports"
)

// Config holds the availability parameters.
type Config struct {
	DefaultCapacity int
	HeartbeatStale  time.Duration
	SnapshotTTL     time.Duration
}

// Service implements the mitra use cases.
type Service struct {
	store   ports.MitraStore
	queries ports.MitraQueries
	authDB  ports.AuthStore
	stats   ports.SessionStats
	mirror  ports.AvailabilityMirror
	health  *mirror.Health
	metrics ports.Metrics
	hasher  ports.PasswordHasher
	clock   ports.Clock
	log     *slog.Logger
	cfg     Config

	beacon    *snapshotCache[Beacon]
	dashboard *snapshotCache[ports.SessionCounts]
	profiles  profiles
	revoked   func([]ports.Revocation) // nil: nobody to tell
	capacity  func()                   // nil: nobody to tell
}

// SetCapacityHook installs the function told that capacity may have
// appeared (a mitra went online or back from away, a capacity was raised,
// a mitra was reactivated): the waiting queue's dispatcher (sessions.Service.Kick).
func (s *Service) SetCapacityHook(f func()) { s.capacity = f }

func (s *Service) capacityMayHaveAppeared() {
	if s.capacity != nil {
		s.capacity()
	}
}

// SetRevoked installs the function told of the auth sessions a deactivation
// revoked (auth.Service.RecordRevoked), so that their access tokens stop on
// every instance.
func (s *Service) SetRevoked(f func([]ports.Revocation)) { s.revoked = f }

// Deps are the ports the service needs.
type Deps struct {
	Store   ports.MitraStore
	Queries ports.MitraQueries
	AuthDB  ports.AuthStore
	Stats   ports.SessionStats
	Mirror  ports.AvailabilityMirror
	Health  *mirror.Health
	Metrics ports.Metrics
	Hasher  ports.PasswordHasher
	Clock   ports.Clock
	Log     *slog.Logger
}

// NewService builds the mitra service.
func NewService(d Deps, cfg Config) (*Service, error) {
	if d.Store == nil || d.Queries == nil || d.AuthDB == nil || d.Stats == nil || d.Mirror == nil ||
		d.Health == nil || d.Metrics == nil || d.Hasher == nil || d.Clock == nil {
		return nil, errors.New("mitras: missing dependency")
	}
	if err := validate.Capacity("DEFAULT_MITRA_CAPACITY", cfg.DefaultCapacity); err != nil {
		return nil, err
	}
	if cfg.HeartbeatStale <= 0 || cfg.SnapshotTTL <= 0 {
		return nil, errors.New("mitras: HeartbeatStale and SnapshotTTL must be positive")
	}
	log := d.Log
	if log == nil {
		log = slog.Default()
	}
	return &Service{store: d.Store, queries: d.Queries, authDB: d.AuthDB, stats: d.Stats,
		mirror: d.Mirror, health: d.Health, metrics: d.Metrics,
		hasher: d.Hasher, clock: d.Clock, log: log, cfg: cfg,
		beacon: newSnapshotCache[Beacon](), dashboard: newSnapshotCache[ports.SessionCounts](),
	}, nil
}

// mirrorWrite runs a best-effort mirror write after the store committed. It
// outlives the request's cancellation (the adapter bounds it with its own
// deadline), so a client hanging up cannot leave the mirror behind.
func (s *Service) mirrorWrite(ctx context.Context, op string, write func(context.Context) error) {
	if !s.health.Healthy(ctx) {
		// Valkey is known to be unreachable: do not wait out another
		// deadline. The mirror is dirty already, and the reseed that follows
		// Valkey's return reads this write from the store, where it committed.
		s.metrics.CacheWriteFailed(op)
		return
	}
	err := write(context.WithoutCancel(ctx))
	if err == nil || errors.Is(err, ports.ErrCacheDisabled) {
		return
	}
	s.metrics.CacheWriteFailed(op)
	s.health.ReportError(err)
	s.log.WarnContext(ctx, "mirror write failed; the reseed heals it", "op", op, "err", err)
}

// useMirror reports whether reads may trust the mirror: it is enabled and was
// seeded since the last event that may have made it drift. While dirty, for
// the second or so until the watcher reseeds it, the store answers.
func (s *Service) useMirror(ctx context.Context, op string) bool {
	if !s.health.Enabled() {
		return false
	}
	if s.health.Dirty() {
		s.metrics.CacheFallback(op)
		return false
	}
	return true
}

// fallback records that a mirror read failed and the store answers instead.
func (s *Service) fallback(ctx context.Context, op string, err error) {
	if errors.Is(err, ports.ErrCacheDisabled) {
		return
	}
	s.metrics.CacheFallback(op)
	s.health.ReportError(err)
	s.log.DebugContext(ctx, "mirror read failed; falling back to the store", "op", op, "err", err)
}

// view derives reachable/available, taking the later of the store's and the
// mirror's heartbeat (the store learns mirror heartbeats only at write-back).
func (s *Service) view(ctx context.Context, m ports.Mitra) View {
	if m.IsActive && m.IsOnline && s.useMirror(ctx, "mitra_view") {
		st, err := s.mirror.Status(ctx, m.ID)
		if err != nil {
			s.fallback(ctx, "mitra_view", err)
		} else if st.Online && !st.Mitra.LastHeartbeat.IsZero() &&
			(m.LastHeartbeatAt == nil || st.Mitra.LastHeartbeat.After(*m.LastHeartbeatAt)) {
			hb := st.Mitra.LastHeartbeat
			m.LastHeartbeatAt = &hb
		}
	}
	return viewOf(m, s.clock.Now(), s.cfg.HeartbeatStale)
}

// Create registers a mitra (admin). A nil capacity takes the default.
func (s *Service) Create(ctx context.Context, a auth.NewAccount, capacity *int) (View, error) {
	c := s.cfg.DefaultCapacity
	if capacity != nil {
		if err := validate.Capacity("capacity", *capacity); err != nil {
			return View{}, err
		}
		c = *capacity
	}
	nu, err := auth.PrepareUser(s.hasher, ports.RoleMitra, a)
	if err != nil {
		return View{}, err
	}
	m, err := s.store.CreateMitra(ctx, nu, c)
	if err != nil {
		return View{}, fmt.Errorf("creating mitra: %w", err)
	}
	return viewOf(m, s.clock.Now(), s.cfg.HeartbeatStale), nil
}

// Get returns one mitra (admin).
func (s *Service) Get(ctx context.Context, id string) (View, error) {
	m, err := s.store.Mitra(ctx, id)
	if err != nil {
		return View{}, fmt.Errorf("getting mitra: %w", err)
	}
	return s.view(ctx, m), nil
}

// Patch changes is_active and/or capacity (admin). Deactivating forces the
// mitra offline, revokes every auth session it has and puts it in the
// mirror's deactivated set.
func (s *Service) Patch(ctx context.Context, id string, p ports.MitraPatch) (View, error) {
	if p.Capacity != nil {
		if err := validate.Capacity("capacity", *p.Capacity); err != nil {
			return View{}, err
		}
	}
	m, err := s.store.PatchMitra(ctx, id, p)
	if err != nil {
		return View{}, fmt.Errorf("patching mitra: %w", err)
	}
	switch {
	case p.IsActive != nil && !*p.IsActive:
		revs, err := s.authDB.RevokeUserAuthSessions(ctx, id, s.clock.Now())
		if err != nil {
			return View{}, fmt.Errorf("revoking auth sessions of deactivated mitra: %w", err)
		}
		s.mirrorWrite(ctx, "deactivate", func(ctx context.Context) error { return s.mirror.Deactivate(ctx, id) })
		if s.revoked != nil {
			s.revoked(revs)
		}
		s.log.InfoContext(ctx, "mitra deactivated", "mitra_id", id, "auth_sessions_revoked", len(revs))
	case p.IsActive != nil && *p.IsActive:
		s.mirrorWrite(ctx, "reactivate", func(ctx context.Context) error { return s.mirror.Reactivate(ctx, id) })
	}
	if p.Capacity != nil && m.IsActive && m.IsOnline {
		s.mirrorWrite(ctx, "set_load", func(ctx context.Context) error {
			return s.mirror.SetLoad(ctx, id, m.ActiveSessions, m.Capacity, idleOf(m))
		})
	}
	if p.Capacity != nil || (p.IsActive != nil && *p.IsActive) {
		s.capacityMayHaveAppeared()
	}
	return s.view(ctx, m), nil
}

// RecomputeLoad re-reads a mitra's open sessions, capacity and idle time
// from the store (derived from truth, never counted up and down) and mirrors
// them. The
// session lifecycle calls it after every transition that touches the mitra.
func (s *Service) RecomputeLoad(ctx context.Context, id string) {
	m, err := s.store.Mitra(ctx, id)
	if err != nil {
		s.log.WarnContext(ctx, "recomputing mitra load: store read failed; the reseed heals it", "mitra_id", id, "err", err)
		return
	}
	if !m.IsActive || !m.IsOnline {
		return
	}
	s.mirrorWrite(ctx, "set_load", func(ctx context.Context) error {
		return s.mirror.SetLoad(ctx, id, m.ActiveSessions, m.Capacity, idleOf(m))
	})
}

// idleOf is m's idle time for the mirror (zero when the store has none).
func idleOf(m ports.Mitra) time.Time {
	if m.IdleSince == nil {
		return time.Time{}
	}
	return *m.IdleSince
}

// active loads the calling mitra from the store and refuses a deactivated one.
func (s *Service) active(ctx context.Context, id string) (ports.Mitra, error) {
	m, err := s.store.Mitra(ctx, id)
	if errors.Is(err, ports.ErrNotFound) {
		return ports.Mitra{}, fmt.Errorf("%w: no mitra account behind this token", core.ErrUnauthenticated)
	}
	if err != nil {
		return ports.Mitra{}, err
	}
	if !m.IsActive {
		return ports.Mitra{}, core.ErrAccountDeactivated
	}
	return m, nil
}

// Status returns the calling mitra's own view. While the cache is trusted an
// online mitra's view comes from the mirror and this instance's copy of its
// profile (statusFromMirror): the route costs no store statement, like the
// heartbeat the app polls it next to. Otherwise the store answers, and its
// read fills the profile copy.
func (s *Service) Status(ctx context.Context, id string) (View, error) {
	if v, ok := s.statusFromMirror(ctx, id); ok {
		return v, nil
	}
	m, err := s.active(ctx, id)
	if err != nil {
		return View{}, err
	}
	s.profiles.put(m)
	return s.view(ctx, m), nil
}

// GoOnline marks the mitra online with a fresh heartbeat.
func (s *Service) GoOnline(ctx context.Context, id string) (View, error) {
	if _, err := s.active(ctx, id); err != nil {
		return View{}, err
	}
	m, err := s.store.SetOnline(ctx, id, true, s.clock.Now())
	if err != nil {
		return View{}, fmt.Errorf("going online: %w", err)
	}
	if !m.IsActive { // deactivated in between: the store refused to bring it online
		return View{}, core.ErrAccountDeactivated
	}
	s.mirrorWrite(ctx, "put_online", func(ctx context.Context) error { return s.mirror.PutOnline(ctx, mirror.ToMirror(m)) })
	s.capacityMayHaveAppeared()
	return viewOf(m, s.clock.Now(), s.cfg.HeartbeatStale), nil
}

// GoAway keeps the mitra online and heartbeating but takes it out of every
// new offer (docs/contract.md §12); an offline mitra goes online as away. Only the
// mitra itself ends it, by going online or offline.
func (s *Service) GoAway(ctx context.Context, id string) (View, error) {
	if _, err := s.active(ctx, id); err != nil {
		return View{}, err
	}
	m, err := s.store.SetAway(ctx, id, s.clock.Now())
	if err != nil {
		return View{}, fmt.Errorf("going away: %w", err)
	}
	if !m.IsActive {
		return View{}, core.ErrAccountDeactivated
	}
	s.mirrorWrite(ctx, "put_online", func(ctx context.Context) error { return s.mirror.PutOnline(ctx, mirror.ToMirror(m)) })
	return s.view(ctx, m), nil
}

// GoOffline marks the mitra offline.
func (s *Service) GoOffline(ctx context.Context, id string) (View, error) {
	if _, err := s.active(ctx, id); err != nil {
		return View{}, err
	}
	m, err := s.store.SetOnline(ctx, id, false, s.clock.Now())
	if err != nil {
		return View{}, fmt.Errorf("going offline: %w", err)
	}
	s.mirrorWrite(ctx, "put_offline", func(ctx context.Context) error { return s.mirror.PutOffline(ctx, id) })
	return s.view(ctx, m), nil
}

// Heartbeat records that an online mitra is alive: one mirror round trip and
// no store statement while the mirror answers. core.ErrNotOnline when the
// mitra is offline, core.ErrAccountDeactivated when it is deactivated.
func (s *Service) Heartbeat(ctx context.Context, id string) error {
	now := s.clock.Now()
	if s.useMirror(ctx, "heartbeat") {
		out, err := s.mirror.Heartbeat(ctx, id, now)
		if err == nil {
			switch out {
			case ports.HeartbeatRecorded:
				return nil
			case ports.HeartbeatDeactivated:
				return core.ErrAccountDeactivated
			default:
				return core.ErrNotOnline
			}
		}
		s.fallback(ctx, "heartbeat", err)
	}
	// The store path: a deactivated mitra is still refused, and the heartbeat
	// is recorded in the store so that the fallback readers see it fresh, in
	// one statement on the mitra's row (every heartbeat takes this path while
	// the cache is down).
	st, err := s.store.TouchHeartbeatState(ctx, id, now)
	if err := stateErr(st, err); err != nil {
		return err
	}
	if !st.IsOnline {
		return core.ErrNotOnline
	}
	return nil
}

// stateErr maps a MitraState read as active does: no mitra behind the token
// is unauthenticated, a deactivated one ErrAccountDeactivated.
func stateErr(st ports.MitraState, err error) error {
	if errors.Is(err, ports.ErrNotFound) {
		return fmt.Errorf("%w: no mitra account behind this token", core.ErrUnauthenticated)
	}
	if err != nil {
		return err
	}
	if !st.IsActive {
		return core.ErrAccountDeactivated
	}
	return nil
}

// EnsureActive returns core.ErrAccountDeactivated for a deactivated mitra.
// It asks the mirror's deactivated set when the mirror is trusted, the store
// otherwise, so a deactivated mitra is refused also while the cache is down.
func (s *Service) EnsureActive(ctx context.Context, id string) error {
	if s.useMirror(ctx, "ensure_active") {
		st, err := s.mirror.Status(ctx, id)
		if err == nil {
			if st.Deactivated {
				return core.ErrAccountDeactivated
			}
			return nil
		}
		s.fallback(ctx, "ensure_active", err)
	}
	// Every request of a mitra comes here while the cache is down: the
	// mitra's row alone, not its whole view.
	return stateErr(s.store.MitraState(ctx, id))
}
