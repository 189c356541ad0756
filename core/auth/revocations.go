package auth

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/halobestie/mitra-availability/ports"
)

// ErrRevoked: the access token was issued for an auth session that was
// revoked (logout, deactivation, a replayed refresh token). It is wrapped
// with core.ErrUnauthenticated.
var ErrRevoked = errors.New("the auth session of this access token was revoked")

// Timings of Revocations.
const (
	// RevocationPoll is how often an instance asks what other instances revoked.
	RevocationPoll = 250 * time.Millisecond
	// revocationLookback is how far before its previous poll each poll reads
	// again, for the clock skew between instances and for revocations that
	// committed late (a slow transaction, a cache write retried).
	revocationLookback = 5 * time.Second
	// revocationPage bounds one read of the store.
	revocationPage = 10000
)

// CacheStatus is what Revocations asks of the cache's health (implemented by
// *mirror.Health).
type CacheStatus interface {
	Healthy(ctx context.Context) bool
}

// Revocations is this instance's set of revoked auth sessions whose access
// tokens may not have expired yet (revoked within the access-token lifetime
// and a margin). Authenticate consults it on every request: a map lookup, no
// I/O, so the heartbeat's hot path costs no statement.
//
// An instance learns of its own revocations at once (Record). It learns of
// the other instances' ones by polling every RevocationPoll: the shared
// cache (ports.RevocationCache) while it answers, the store, which is the
// truth, while it does not. A revocation reaches the cache from the
// instance that made it, in the background (a hung cache never slows a
// logout), and is retried there until the cache takes it; the cache orders
// entries by the time they were added, so a late write is still found by the
// next poll of every instance.
//
// Without a cache (CACHE_BACKEND=none) every poll reads the store; with the
// in-process cache of a single instance (CACHE_BACKEND=memory) no poll is
// needed and Tick does nothing but forget expired entries.
type Revocations struct {
	store  ports.AuthStore
	cache  ports.RevocationCache // nil: poll the store
	health CacheStatus           // nil: the cache is trusted
	poll   bool                  // false: this instance is alone
	clock  ports.Clock
	keep   time.Duration
	log    *slog.Logger

	mu        sync.RWMutex
	revoked   map[string]time.Time // session id → revoked at
	pending   []ports.Revocation   // recorded here, not yet in the cache
	polledAt  time.Time            // start of the last successful poll
	listeners []func([]ports.Revocation)
	wake      func()
}

// RevocationsConfig configures NewRevocations.
type RevocationsConfig struct {
	// Store is the truth, read at start and whenever the cache does not answer.
	Store ports.AuthStore
	// Cache shares revocations between instances; nil polls the store.
	Cache ports.RevocationCache
	// Health says whether the cache answers; nil trusts it.
	Health CacheStatus
	// Poll is false for a single instance (nothing to learn from others).
	Poll bool
	// AccessTTL is the access-token lifetime: a revocation older than it
	// (plus a margin for clock skew) concerns no token that still works.
	AccessTTL time.Duration
	Clock     ports.Clock
	Log       *slog.Logger
}

// NewRevocations returns an empty set; Load fills it from the store.
func NewRevocations(cfg RevocationsConfig) (*Revocations, error) {
	if cfg.Store == nil || cfg.Clock == nil || cfg.AccessTTL <= 0 {
		return nil, errors.New("auth: revocations need a store, a clock and the access-token lifetime")
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Revocations{
		store: cfg.Store, cache: cfg.Cache, health: cfg.Health, poll: cfg.Poll, clock: cfg.Clock,
		keep: cfg.AccessTTL + time.Minute, log: log.With(slog.String("component", "revocations")),
		revoked: make(map[string]time.Time), wake: func() {},
	}, nil
}

// SetWake installs the function that runs the next Tick early (the poll
// loop's Wake), so that a revocation made here reaches the cache at once.
func (r *Revocations) SetWake(f func()) { r.wake = f }

// OnRevoked registers f, called with every revocation this instance learns
// of (its own and the others'), once each, to close what the revoked
// sessions hold open (WebSockets). f must not block.
func (r *Revocations) OnRevoked(f func([]ports.Revocation)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.listeners = append(r.listeners, f)
}

// Revoked reports whether the auth session was revoked.
func (r *Revocations) Revoked(sessionID string) bool {
	r.mu.RLock()
	_, ok := r.revoked[sessionID]
	r.mu.RUnlock()
	return ok
}

// Record adds revocations this instance made (after the store committed
// them) and queues them for the cache.
func (r *Revocations) Record(revs []ports.Revocation) {
	if len(revs) == 0 {
		return
	}
	r.mu.Lock()
	fresh := r.addLocked(revs)
	if r.poll && r.cache != nil {
		r.pending = append(r.pending, revs...)
	}
	listeners := r.listeners
	r.mu.Unlock()
	notify(listeners, fresh)
	r.wake()
}

// Load reads the revocations of the last access-token lifetime from the store.
func (r *Revocations) Load(ctx context.Context) error {
	start := r.clock.Now()
	revs, err := r.readStore(ctx, start.Add(-r.keep))
	if err != nil {
		return err
	}
	r.mu.Lock()
	fresh := r.addLocked(revs)
	r.polledAt = start
	listeners := r.listeners
	r.mu.Unlock()
	notify(listeners, fresh)
	return nil
}

// Tick writes the pending revocations to the cache, reads what the other
// instances revoked since the last poll, and forgets expired entries. It is
// the body of the poll loop.
func (r *Revocations) Tick(ctx context.Context) {
	start := r.clock.Now()
	r.forget(start)
	if !r.poll {
		return
	}
	r.mu.RLock()
	since := r.polledAt.Add(-revocationLookback)
	r.mu.RUnlock()

	var (
		revs []ports.Revocation
		err  error
	)
	if r.cacheUsable(ctx) {
		r.flush(ctx)
		revs, err = r.cache.RevocationsSince(ctx, since)
		if err != nil {
			r.reportCacheError(err)
			revs, err = r.readStore(ctx, since)
		}
	} else {
		revs, err = r.readStore(ctx, since)
	}
	if err != nil {
		if ctx.Err() == nil {
			r.log.WarnContext(ctx, "reading revocations failed; retried on the next poll", slog.Any("error", err))
		}
		return
	}
	r.mu.Lock()
	fresh := r.addLocked(revs)
	r.polledAt = start
	listeners := r.listeners
	r.mu.Unlock()
	notify(listeners, fresh)
}

// cacheUsable reports whether there is a cache and it answers.
func (r *Revocations) cacheUsable(ctx context.Context) bool {
	return r.cache != nil && (r.health == nil || r.health.Healthy(ctx))
}

// reportCacheError logs a failed cache call. It is not reported to the
// cache's health: the availability mirror judges Valkey by its own calls
// (and its watcher's), and a slow poll here must not send the hot paths to
// the store.
func (r *Revocations) reportCacheError(err error) {
	r.log.Debug("revocation cache failed; reading the store", slog.Any("error", err))
}

// flush writes the pending revocations to the cache, keeping them on failure.
func (r *Revocations) flush(ctx context.Context) {
	r.mu.Lock()
	pending := r.pending
	r.pending = nil
	r.mu.Unlock()
	if len(pending) == 0 {
		return
	}
	if err := r.cache.AddRevocations(ctx, pending); err != nil {
		r.reportCacheError(err)
		r.mu.Lock()
		r.pending = append(pending, r.pending...)
		r.mu.Unlock()
	}
}

// readStore reads every revocation since since, page by page.
func (r *Revocations) readStore(ctx context.Context, since time.Time) ([]ports.Revocation, error) {
	var out []ports.Revocation
	for {
		page, err := r.store.RevokedSince(ctx, since, revocationPage)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if len(page) < revocationPage || !page[len(page)-1].RevokedAt.After(since) {
			return out, nil
		}
		since = page[len(page)-1].RevokedAt
	}
}

// addLocked adds revs and returns those that were new. A revocation older
// than every valid token (read again by a poll after forget dropped it) is
// left out.
func (r *Revocations) addLocked(revs []ports.Revocation) []ports.Revocation {
	var fresh []ports.Revocation
	cutoff := r.clock.Now().Add(-r.keep)
	for _, v := range revs {
		if _, ok := r.revoked[v.SessionID]; ok || v.RevokedAt.Before(cutoff) {
			continue
		}
		r.revoked[v.SessionID] = v.RevokedAt
		fresh = append(fresh, v)
	}
	return fresh
}

// forget drops the revocations older than every access token still valid.
func (r *Revocations) forget(now time.Time) {
	cutoff := now.Add(-r.keep)
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, at := range r.revoked {
		if at.Before(cutoff) {
			delete(r.revoked, id)
		}
	}
}

func notify(listeners []func([]ports.Revocation), revs []ports.Revocation) {
	if len(revs) == 0 {
		return
	}
	for _, f := range listeners {
		f(revs)
	}
}
