package porttest

import (
	"bytes"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/ports"
)

const ttl = 720 * time.Hour

func newAuthSession(t *testing.T, st Stores, userID string, now time.Time) (ports.AuthSession, []byte) {
	t.Helper()
	h := newHash(t)
	s, err := st.Auth.CreateAuthSession(t.Context(), userID, h, now, now.Add(ttl))
	if err != nil {
		t.Fatalf("create auth session: %v", err)
	}
	return s, h
}

func authSession(t *testing.T, st Stores, id string) ports.AuthSession {
	t.Helper()
	s, err := st.Auth.AuthSession(t.Context(), id)
	if err != nil {
		t.Fatalf("AuthSession(%s): %v", id, err)
	}
	return s
}

func rotate(t *testing.T, st Stores, old []byte, now time.Time) ([]byte, ports.AuthSession, error) {
	t.Helper()
	h := newHash(t)
	s, err := st.Auth.RotateRefreshToken(t.Context(), old, h, now, now.Add(ttl))
	return h, s, err
}

// RunAuthStoreSuite checks a ports.AuthStore.
func RunAuthStoreSuite(t *testing.T, f Factory) {
	parallel(t, "CreateAndRead", f, func(t *testing.T, st Stores) {
		u := newCustomer(t, st)
		s, err := st.Auth.CreateAuthSession(t.Context(), u.ID, newHash(t), t0, at(ttl))
		if err != nil {
			t.Fatal(err)
		}
		if !isUUID(s.ID) {
			t.Errorf("ID %q is not a canonical UUID", s.ID)
		}
		if s.UserID != u.ID || s.RevokedAt != nil {
			t.Errorf("created %+v", s)
		}
		assertTime(t, "CreatedAt", s.CreatedAt, t0)
		assertTime(t, "ExpiresAt", s.ExpiresAt, at(ttl))
		got := authSession(t, st, s.ID)
		if got.ID != s.ID || got.UserID != s.UserID || !got.CreatedAt.Equal(s.CreatedAt) || !got.ExpiresAt.Equal(s.ExpiresAt) || got.RevokedAt != nil {
			t.Errorf("AuthSession = %+v, want %+v", got, s)
		}
		// A user may hold several sessions.
		s2, _ := newAuthSession(t, st, u.ID, t0)
		if s2.ID == s.ID {
			t.Error("two sessions share an ID")
		}
	})

	parallel(t, "NotFound", f, func(t *testing.T, st Stores) {
		for _, id := range []string{randomUUID(t), "bad"} {
			if _, err := st.Auth.CreateAuthSession(t.Context(), id, newHash(t), t0, at(ttl)); !errors.Is(err, ports.ErrNotFound) {
				t.Errorf("CreateAuthSession(user %q) = %v, want ErrNotFound", id, err)
			}
			if _, err := st.Auth.AuthSession(t.Context(), id); !errors.Is(err, ports.ErrNotFound) {
				t.Errorf("AuthSession(%q) = %v, want ErrNotFound", id, err)
			}
			if err := st.Auth.RevokeAuthSession(t.Context(), id, t0); !errors.Is(err, ports.ErrNotFound) {
				t.Errorf("RevokeAuthSession(%q) = %v, want ErrNotFound", id, err)
			}
			if revs, err := st.Auth.RevokeUserAuthSessions(t.Context(), id, t0); err != nil || len(revs) != 0 {
				t.Errorf("RevokeUserAuthSessions(%q) = %v, %v; want none, nil", id, revs, err)
			}
		}
		if _, _, err := rotate(t, st, newHash(t), t0); !errors.Is(err, ports.ErrNotFound) {
			t.Errorf("RotateRefreshToken(unknown) = %v, want ErrNotFound", err)
		}
	})

	parallel(t, "Rotate", f, func(t *testing.T, st Stores) {
		u := newCustomer(t, st)
		s, h0 := newAuthSession(t, st, u.ID, t0)
		h1, got, err := rotate(t, st, h0, at(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != s.ID || got.UserID != u.ID || got.RevokedAt != nil {
			t.Errorf("rotated session = %+v", got)
		}
		assertTime(t, "CreatedAt", got.CreatedAt, t0)
		assertTime(t, "ExpiresAt", got.ExpiresAt, at(time.Hour+ttl))
		reread := authSession(t, st, s.ID)
		assertTime(t, "reread ExpiresAt", reread.ExpiresAt, at(time.Hour+ttl))

		// The new token rotates in turn, past the first token's expiry.
		h2, got, err := rotate(t, st, h1, at(ttl+time.Minute))
		if err != nil {
			t.Fatalf("second rotation: %v", err)
		}
		assertTime(t, "ExpiresAt", got.ExpiresAt, at(2*ttl+time.Minute))
		if _, _, err := rotate(t, st, h2, at(ttl+2*time.Minute)); err != nil {
			t.Fatalf("third rotation: %v", err)
		}
	})

	parallel(t, "ReuseRevokesSession", f, func(t *testing.T, st Stores) {
		u := newCustomer(t, st)
		s, h0 := newAuthSession(t, st, u.ID, t0)
		other, otherHash := newAuthSession(t, st, u.ID, t0)
		h1, _, err := rotate(t, st, h0, at(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		// Replaying the retired token: reuse, and the session is revoked (committed).
		if _, _, err := rotate(t, st, h0, at(2*time.Minute)); !errors.Is(err, ports.ErrRefreshReused) {
			t.Fatalf("replay = %v, want ErrRefreshReused", err)
		}
		got := authSession(t, st, s.ID)
		assertTimePtr(t, "RevokedAt", got.RevokedAt, at(2*time.Minute))
		// The current token died with its session.
		if _, _, err := rotate(t, st, h1, at(3*time.Minute)); !errors.Is(err, ports.ErrNotFound) {
			t.Errorf("current token after reuse = %v, want ErrNotFound", err)
		}
		// Replaying again is still reuse, and keeps the first revocation time.
		if _, _, err := rotate(t, st, h0, at(4*time.Minute)); !errors.Is(err, ports.ErrRefreshReused) {
			t.Errorf("second replay = %v, want ErrRefreshReused", err)
		}
		assertTimePtr(t, "RevokedAt", authSession(t, st, s.ID).RevokedAt, at(2*time.Minute))
		// The user's other session is untouched.
		if got := authSession(t, st, other.ID); got.RevokedAt != nil {
			t.Errorf("other session revoked: %+v", got)
		}
		if _, _, err := rotate(t, st, otherHash, at(5*time.Minute)); err != nil {
			t.Errorf("other session's token: %v", err)
		}
	})

	parallel(t, "ExpiredSessionRejected", f, func(t *testing.T, st Stores) {
		u := newCustomer(t, st)
		s, h0 := newAuthSession(t, st, u.ID, t0)
		for _, when := range []time.Time{at(ttl), at(ttl + time.Microsecond), at(2 * ttl)} {
			if _, _, err := rotate(t, st, h0, when); !errors.Is(err, ports.ErrNotFound) {
				t.Errorf("rotate at %v (expiry %v) = %v, want ErrNotFound", when, at(ttl), err)
			}
		}
		// The failed attempts changed nothing: not revoked, the token still unused.
		if got := authSession(t, st, s.ID); got.RevokedAt != nil {
			t.Errorf("expired session revoked: %+v", got)
		}
		if _, _, err := rotate(t, st, h0, at(ttl-time.Microsecond)); err != nil {
			t.Errorf("rotate just before expiry = %v", err)
		}
	})

	parallel(t, "RevokedSessionRejected", f, func(t *testing.T, st Stores) {
		u := newCustomer(t, st)
		s, h0 := newAuthSession(t, st, u.ID, t0)
		if err := st.Auth.RevokeAuthSession(t.Context(), s.ID, at(time.Minute)); err != nil {
			t.Fatal(err)
		}
		assertTimePtr(t, "RevokedAt", authSession(t, st, s.ID).RevokedAt, at(time.Minute))
		if _, _, err := rotate(t, st, h0, at(2*time.Minute)); !errors.Is(err, ports.ErrNotFound) {
			t.Errorf("rotate on a revoked session = %v, want ErrNotFound", err)
		}
		// Revoking twice is fine and keeps the first time.
		if err := st.Auth.RevokeAuthSession(t.Context(), s.ID, at(3*time.Minute)); err != nil {
			t.Errorf("second revoke: %v", err)
		}
		assertTimePtr(t, "RevokedAt", authSession(t, st, s.ID).RevokedAt, at(time.Minute))
	})

	parallel(t, "RotateToExistingHashChangesNothing", f, func(t *testing.T, st Stores) {
		u := newCustomer(t, st)
		s, h0 := newAuthSession(t, st, u.ID, t0)
		_, taken := newAuthSession(t, st, u.ID, t0)
		if _, err := st.Auth.RotateRefreshToken(t.Context(), h0, taken, at(time.Minute), at(time.Minute+ttl)); err == nil ||
			errors.Is(err, ports.ErrRefreshReused) || errors.Is(err, ports.ErrNotFound) {
			t.Fatalf("rotate to a hash in use = %v, want a plain error", err)
		}
		got := authSession(t, st, s.ID)
		if got.RevokedAt != nil || !got.ExpiresAt.Equal(pgTime(at(ttl))) {
			t.Errorf("session changed by the failed rotation: %+v", got)
		}
		if _, _, err := rotate(t, st, h0, at(2*time.Minute)); err != nil {
			t.Errorf("old token after the failed rotation = %v, want it still valid", err)
		}
	})

	parallel(t, "ConcurrentRotationOneWins", f, func(t *testing.T, st Stores) {
		u := newCustomer(t, st)
		s, h0 := newAuthSession(t, st, u.ID, t0)
		const n = 20
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				_, errs[i] = st.Auth.RotateRefreshToken(t.Context(), h0, newHash(t), at(time.Minute), at(time.Minute+ttl))
			})
		}
		wg.Wait()
		won, reused := 0, 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case errors.Is(err, ports.ErrRefreshReused):
				reused++
			default:
				t.Errorf("unexpected error: %v", err)
			}
		}
		if won != 1 || reused != n-1 {
			t.Errorf("%d rotations won and %d were reuse; want 1 and %d", won, reused, n-1)
		}
		if got := authSession(t, st, s.ID); got.RevokedAt == nil {
			t.Error("the session survived a replayed token")
		}
	})

	parallel(t, "ReuseReturnsTheRevokedSession", f, func(t *testing.T, st Stores) {
		u := newCustomer(t, st)
		s, h0 := newAuthSession(t, st, u.ID, t0)
		if _, _, err := rotate(t, st, h0, at(time.Minute)); err != nil {
			t.Fatal(err)
		}
		_, got, err := rotate(t, st, h0, at(2*time.Minute))
		if !errors.Is(err, ports.ErrRefreshReused) {
			t.Fatalf("replay = %v, want ErrRefreshReused", err)
		}
		if got.ID != s.ID || got.UserID != u.ID {
			t.Errorf("replay returned session %+v, want %s of %s", got, s.ID, u.ID)
		}
		assertTimePtr(t, "RevokedAt", got.RevokedAt, at(2*time.Minute))
	})

	parallel(t, "RevokeUserSessions", f, func(t *testing.T, st Stores) {
		u := newCustomer(t, st)
		other := newCustomer(t, st)
		a, ha := newAuthSession(t, st, u.ID, t0)
		b, hb := newAuthSession(t, st, u.ID, t0)
		c, _ := newAuthSession(t, st, u.ID, t0)
		o, ho := newAuthSession(t, st, other.ID, t0)
		if err := st.Auth.RevokeAuthSession(t.Context(), c.ID, at(time.Second)); err != nil {
			t.Fatal(err)
		}
		revs, err := st.Auth.RevokeUserAuthSessions(t.Context(), u.ID, at(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		ids := []string{}
		for _, r := range revs {
			ids = append(ids, r.SessionID)
			if r.UserID != u.ID || !r.RevokedAt.Equal(pgTime(at(time.Minute))) {
				t.Errorf("revocation %+v, want user %s at %v", r, u.ID, pgTime(at(time.Minute)))
			}
		}
		if want := []string{a.ID, b.ID}; !slices.Equal(slices.Sorted(slices.Values(ids)), slices.Sorted(slices.Values(want))) {
			t.Errorf("revoked %v, want %v (c was already revoked)", ids, want)
		}
		assertTimePtr(t, "a.RevokedAt", authSession(t, st, a.ID).RevokedAt, at(time.Minute))
		assertTimePtr(t, "b.RevokedAt", authSession(t, st, b.ID).RevokedAt, at(time.Minute))
		assertTimePtr(t, "c.RevokedAt", authSession(t, st, c.ID).RevokedAt, at(time.Second))
		for _, h := range [][]byte{ha, hb} {
			if _, _, err := rotate(t, st, h, at(2*time.Minute)); !errors.Is(err, ports.ErrNotFound) {
				t.Errorf("token of a revoked session = %v, want ErrNotFound", err)
			}
		}
		if got := authSession(t, st, o.ID); got.RevokedAt != nil {
			t.Errorf("another user's session was revoked: %+v", got)
		}
		if _, _, err := rotate(t, st, ho, at(2*time.Minute)); err != nil {
			t.Errorf("another user's token: %v", err)
		}
		if revs, err := st.Auth.RevokeUserAuthSessions(t.Context(), u.ID, at(time.Hour)); err != nil || len(revs) != 0 {
			t.Errorf("second RevokeUserAuthSessions = %v, %v; want none", revs, err)
		}
	})

	parallel(t, "RevokedSince", f, func(t *testing.T, st Stores) {
		u := newCustomer(t, st)
		a, _ := newAuthSession(t, st, u.ID, t0)
		b, _ := newAuthSession(t, st, u.ID, t0)
		c, _ := newAuthSession(t, st, u.ID, t0)
		newAuthSession(t, st, u.ID, t0) // never revoked
		for _, r := range []struct {
			id string
			at time.Duration
		}{{b.ID, 2 * time.Second}, {a.ID, time.Second}, {c.ID, 3 * time.Second}} {
			if err := st.Auth.RevokeAuthSession(t.Context(), r.id, at(r.at)); err != nil {
				t.Fatal(err)
			}
		}
		ids := func(revs []ports.Revocation) []string {
			out := []string{}
			for _, r := range revs {
				out = append(out, r.SessionID)
			}
			return out
		}
		got, err := st.Auth.RevokedSince(t.Context(), at(time.Second), 10)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{a.ID, b.ID, c.ID}; !slices.Equal(ids(got), want) {
			t.Errorf("RevokedSince(1s) = %v, want %v (oldest first, the bound included)", ids(got), want)
		}
		if len(got) > 0 && (got[0].UserID != u.ID || !got[0].RevokedAt.Equal(pgTime(at(time.Second)))) {
			t.Errorf("first revocation %+v", got[0])
		}
		got, err = st.Auth.RevokedSince(t.Context(), at(1500*time.Millisecond), 1)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{b.ID}; !slices.Equal(ids(got), want) {
			t.Errorf("RevokedSince(1.5s, limit 1) = %v, want %v", ids(got), want)
		}
		if got, err := st.Auth.RevokedSince(t.Context(), at(time.Hour), 10); err != nil || len(got) != 0 {
			t.Errorf("RevokedSince(later) = %v, %v; want none", got, err)
		}
	})

	parallel(t, "TokenHashesAreBytes", f, func(t *testing.T, st Stores) {
		u := newCustomer(t, st)
		h := newHash(t)
		if _, err := st.Auth.CreateAuthSession(t.Context(), u.ID, h, t0, at(ttl)); err != nil {
			t.Fatal(err)
		}
		// A hash that differs in its last byte is another token.
		near := bytes.Clone(h)
		near[len(near)-1] ^= 1
		if _, _, err := rotate(t, st, near, at(time.Minute)); !errors.Is(err, ports.ErrNotFound) {
			t.Errorf("rotate(near hash) = %v, want ErrNotFound", err)
		}
		if _, _, err := rotate(t, st, h[:len(h)-1], at(time.Minute)); !errors.Is(err, ports.ErrNotFound) {
			t.Errorf("rotate(prefix of hash) = %v, want ErrNotFound", err)
		}
		if _, _, err := rotate(t, st, h, at(time.Minute)); err != nil {
			t.Errorf("rotate(hash) = %v", err)
		}
	})

	parallel(t, "ReturnsCopies", f, func(t *testing.T, st Stores) {
		u := newCustomer(t, st)
		s, _ := newAuthSession(t, st, u.ID, t0)
		if err := st.Auth.RevokeAuthSession(t.Context(), s.ID, at(time.Minute)); err != nil {
			t.Fatal(err)
		}
		got := authSession(t, st, s.ID)
		*got.RevokedAt = at(time.Hour)
		assertTimePtr(t, "RevokedAt", authSession(t, st, s.ID).RevokedAt, at(time.Minute))
	})
}
