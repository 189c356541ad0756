package auth_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/adapters/clock"
	"github.com/halobestie/mitra-availability/adapters/token"
	"github.com/halobestie/mitra-availability/core"
	"github.com/halobestie/mitra-availability/core/auth"
	"github.com/halobestie/mitra-availability/ports"
)

// fakeCache is a ports.RevocationCache in memory that can be made to fail,
// ordered by the (manual) time of adding, as the Valkey one is.
type fakeCache struct {
	clock *clock.Manual
	mu    sync.Mutex
	fail  error
	added []struct {
		at time.Time
		r  ports.Revocation
	}
}

func (c *fakeCache) AddRevocations(_ context.Context, revs []ports.Revocation) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		return c.fail
	}
	for _, r := range revs {
		c.added = append(c.added, struct {
			at time.Time
			r  ports.Revocation
		}{c.clock.Now(), r})
	}
	return nil
}

func (c *fakeCache) RevocationsSince(_ context.Context, since time.Time) ([]ports.Revocation, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		return nil, c.fail
	}
	var out []ports.Revocation
	for _, a := range c.added {
		if !a.at.Before(since) {
			out = append(out, a.r)
		}
	}
	return out, nil
}

func (c *fakeCache) setFail(err error) {
	c.mu.Lock()
	c.fail = err
	c.mu.Unlock()
}

// fakeHealth is an auth.CacheStatus.
type fakeHealth struct {
	mu       sync.Mutex
	healthy  bool
	reported []error
}

func (h *fakeHealth) Healthy(context.Context) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.healthy
}
func (h *fakeHealth) ReportError(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reported = append(h.reported, err)
	h.healthy = false
}
func (h *fakeHealth) set(ok bool) { h.mu.Lock(); h.healthy = ok; h.mu.Unlock() }

// instance is one service instance: its own auth service and revocations,
// over the store and cache all instances share.
type instance struct {
	svc    *auth.Service
	rev    *auth.Revocations
	health *fakeHealth
	closed *[]ports.Revocation
}

func newInstance(t *testing.T, f fixture, cache ports.RevocationCache) instance {
	t.Helper()
	svc, err := auth.NewService(f.store, f.store, f.store, mustHasher(t), mustSigner(t), f.clock,
		auth.Config{AccessTTL: 15 * time.Minute, RefreshTTL: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	h := &fakeHealth{healthy: true}
	rev, err := auth.NewRevocations(auth.RevocationsConfig{
		Store: f.store, Cache: cache, Health: h, Poll: true, AccessTTL: 15 * time.Minute, Clock: f.clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := rev.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	svc.SetRevocations(rev)
	var closed []ports.Revocation
	rev.OnRevoked(func(revs []ports.Revocation) { closed = append(closed, revs...) })
	return instance{svc: svc, rev: rev, health: h, closed: &closed}
}

func login(t *testing.T, svc *auth.Service, a auth.NewAccount) (auth.Tokens, auth.Principal) {
	t.Helper()
	tok, err := svc.Login(t.Context(), a.Phone, a.Password)
	if err != nil {
		t.Fatal(err)
	}
	p, err := svc.Authenticate(tok.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	return tok, p
}

func mustSigner(t *testing.T) ports.TokenSigner {
	t.Helper()
	sg, err := token.NewSigner([]byte("test-secret-test-secret-test-secret"))
	if err != nil {
		t.Fatal(err)
	}
	return sg
}

func wantRevoked(t *testing.T, svc *auth.Service, token, who string) {
	t.Helper()
	if _, err := svc.Authenticate(token); !errors.Is(err, core.ErrUnauthenticated) || !errors.Is(err, auth.ErrRevoked) {
		t.Fatalf("%s: Authenticate = %v, want unauthenticated (revoked)", who, err)
	}
}

func wantValid(t *testing.T, svc *auth.Service, token, who string) {
	t.Helper()
	if _, err := svc.Authenticate(token); err != nil {
		t.Fatalf("%s: Authenticate = %v, want the token accepted", who, err)
	}
}

// A logout stops the access token of that auth session on the instance that
// served it at once, and on another one at its next poll, through the cache.
func TestLogoutRevokesAccessTokensEverywhere(t *testing.T) {
	f := newFixture(t)
	cache := &fakeCache{clock: f.clock}
	a, b := newInstance(t, f, cache), newInstance(t, f, cache)
	if _, err := a.svc.SignupCustomer(t.Context(), alice); err != nil {
		t.Fatal(err)
	}
	out, p := login(t, a.svc, alice)
	stay, _ := login(t, a.svc, alice)

	if err := a.svc.Logout(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	wantRevoked(t, a.svc, out.AccessToken, "instance a")
	wantValid(t, a.svc, stay.AccessToken, "the other session on a")
	wantValid(t, b.svc, out.AccessToken, "instance b before its poll") // b has not polled yet

	f.clock.Advance(time.Second)
	a.rev.Tick(t.Context()) // a writes it to the cache
	b.rev.Tick(t.Context()) // b reads it
	wantRevoked(t, b.svc, out.AccessToken, "instance b after its poll")
	wantValid(t, b.svc, stay.AccessToken, "the other session on b")
	if len(*b.closed) != 1 || (*b.closed)[0].SessionID != p.SessionID {
		t.Errorf("b's listeners got %+v, want the one revocation", *b.closed)
	}
	b.rev.Tick(t.Context())
	if len(*b.closed) != 1 {
		t.Errorf("a second poll told the listeners again: %+v", *b.closed)
	}
}

// partedCache is one instance's view of a shared cache, which may fail for
// this instance only (a network partition).
type partedCache struct {
	*fakeCache
	mu   sync.Mutex
	fail error
}

func (p *partedCache) setFail(err error) { p.mu.Lock(); p.fail = err; p.mu.Unlock() }
func (p *partedCache) err() error        { p.mu.Lock(); defer p.mu.Unlock(); return p.fail }

func (p *partedCache) AddRevocations(ctx context.Context, revs []ports.Revocation) error {
	if err := p.err(); err != nil {
		return err
	}
	return p.fakeCache.AddRevocations(ctx, revs)
}

func (p *partedCache) RevocationsSince(ctx context.Context, since time.Time) ([]ports.Revocation, error) {
	if err := p.err(); err != nil {
		return nil, err
	}
	return p.fakeCache.RevocationsSince(ctx, since)
}

// While the cache fails, a revocation is still learned from the store, and
// the revoking instance keeps the cache write until the cache takes it, so
// that an instance that never lost the cache learns it too.
func TestRevocationsWhileTheCacheIsDown(t *testing.T) {
	f := newFixture(t)
	shared := &fakeCache{clock: f.clock}
	aView, bView, cView := &partedCache{fakeCache: shared}, &partedCache{fakeCache: shared}, &partedCache{fakeCache: shared}
	a, b, c := newInstance(t, f, aView), newInstance(t, f, bView), newInstance(t, f, cView)
	if _, err := a.svc.SignupCustomer(t.Context(), alice); err != nil {
		t.Fatal(err)
	}
	out, p := login(t, a.svc, alice)

	down := errors.New("connection refused")
	aView.setFail(down)
	bView.setFail(down)
	if err := a.svc.Logout(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Second)
	a.health.set(false)     // the mirror found Valkey down too
	a.rev.Tick(t.Context()) // a reads the store; its write waits for the cache
	b.rev.Tick(t.Context()) // b's read fails: it reads the store in the same poll
	wantRevoked(t, b.svc, out.AccessToken, "instance b with the cache down")
	c.rev.Tick(t.Context()) // c reads the cache, which does not have it yet
	wantValid(t, c.svc, out.AccessToken, "instance c before the cache has it")

	f.clock.Advance(10 * time.Minute) // long after the revocation
	c.rev.Tick(t.Context())
	aView.setFail(nil)
	a.health.set(true)
	a.rev.Tick(t.Context()) // the retried write
	f.clock.Advance(time.Second)
	c.rev.Tick(t.Context())
	wantRevoked(t, c.svc, out.AccessToken, "instance c once a's late write went through")
}

// A replayed refresh token revokes the access tokens of its session too.
func TestRefreshReuseRevokesAccessTokens(t *testing.T) {
	f := newFixture(t)
	a := newInstance(t, f, nil)
	if _, err := a.svc.SignupCustomer(t.Context(), alice); err != nil {
		t.Fatal(err)
	}
	first, _ := login(t, a.svc, alice)
	second, err := a.svc.Refresh(t.Context(), first.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.svc.Refresh(t.Context(), first.RefreshToken); !errors.Is(err, core.ErrUnauthenticated) {
		t.Fatalf("replay = %v", err)
	}
	wantRevoked(t, a.svc, second.AccessToken, "the rotated session's access token")
}

// The token of a mitra revoked by its deactivation is 403
// account_deactivated; after a reactivation it is a plain 401.
func TestRevokedMitraTokenSaysDeactivated(t *testing.T) {
	f := newFixture(t)
	a := newInstance(t, f, nil)
	nu, err := auth.PrepareUser(mustHasher(t), ports.RoleMitra, auth.NewAccount{Phone: "+628133333333", Password: "password1", DisplayName: "M"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := f.store.CreateMitra(t.Context(), nu, 1)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := login(t, a.svc, auth.NewAccount{Phone: m.Phone, Password: "password1"})
	active := true
	a.svc.SetEnsureActive(func(_ context.Context, id string) error {
		if id == m.ID && !active {
			return core.ErrAccountDeactivated
		}
		return nil
	})
	active = false
	revs, err := f.store.RevokeUserAuthSessions(t.Context(), m.ID, f.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	a.svc.RecordRevoked(revs)
	if _, err := a.svc.Authenticate(tok.AccessToken); !errors.Is(err, core.ErrAccountDeactivated) {
		t.Fatalf("deactivated mitra's token = %v, want ErrAccountDeactivated", err)
	}
	active = true
	wantRevoked(t, a.svc, tok.AccessToken, "reactivated mitra's old token")
}

// A new instance loads the recent revocations from the store at start, and
// every instance forgets one once no token of it can be valid.
func TestRevocationsLoadAndForget(t *testing.T) {
	f := newFixture(t)
	a := newInstance(t, f, nil)
	if _, err := a.svc.SignupCustomer(t.Context(), alice); err != nil {
		t.Fatal(err)
	}
	_, p := login(t, a.svc, alice)
	if err := a.svc.Logout(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	late := newInstance(t, f, nil)
	if !late.rev.Revoked(p.SessionID) {
		t.Fatal("an instance started after the logout does not know it")
	}
	if got := slices.Collect(func(yield func(string) bool) {
		for _, r := range *late.closed {
			yield(r.SessionID)
		}
	}); len(got) != 0 {
		t.Errorf("listeners registered after Load got %v", got)
	}
	f.clock.Advance(17 * time.Minute) // past the access-token lifetime and the margin
	late.rev.Tick(t.Context())
	if late.rev.Revoked(p.SessionID) {
		t.Error("a revocation older than every valid token is still held")
	}
}
