package auth_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/adapters/clock"
	"github.com/halobestie/mitra-availability/adapters/memory"
	"github.com/halobestie/mitra-availability/adapters/password"
	"github.com/halobestie/mitra-availability/adapters/token"
	"github.com/halobestie/mitra-availability/core"
	"github.com/halobestie/mitra-availability/core/auth"
	"github.com/halobestie/mitra-availability/ports"
)

type fixture struct {
	svc   *auth.Service
	store *memory.Store
	clock *clock.Manual
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	st := memory.NewStore()
	h, err := password.NewBcrypt(4)
	if err != nil {
		t.Fatal(err)
	}
	sg, err := token.NewSigner([]byte("test-secret-test-secret-test-secret"))
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.NewManual(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	svc, err := auth.NewService(st, st, st, h, sg, clk, auth.Config{AccessTTL: 15 * time.Minute, RefreshTTL: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return fixture{svc: svc, store: st, clock: clk}
}

var alice = auth.NewAccount{Phone: "+628111111111", Password: "correct horse", DisplayName: " Alice "}

func TestSignupValidatesAndTrims(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	u, err := f.svc.SignupCustomer(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	if u.Role != ports.RoleCustomer || u.DisplayName != "Alice" || u.Phone != alice.Phone || u.ID == "" {
		t.Fatalf("user = %+v", u)
	}
	if _, err := f.svc.SignupCustomer(ctx, alice); !errors.Is(err, ports.ErrPhoneTaken) {
		t.Fatalf("duplicate: err = %v, want ErrPhoneTaken", err)
	}
	bad := []struct {
		field string
		a     auth.NewAccount
	}{
		{"phone", auth.NewAccount{Phone: "0811", Password: "password1", DisplayName: "x"}},
		{"phone", auth.NewAccount{Phone: "+0811111111", Password: "password1", DisplayName: "x"}},
		{"password", auth.NewAccount{Phone: "+628122222222", Password: "short", DisplayName: "x"}},
		{"display_name", auth.NewAccount{Phone: "+628122222222", Password: "password1", DisplayName: "   "}},
	}
	for _, b := range bad {
		var ve *core.ValidationError
		if _, err := f.svc.SignupCustomer(ctx, b.a); !errors.As(err, &ve) || ve.Field != b.field {
			t.Errorf("%+v: err = %v, want validation error on %s", b.a, err, b.field)
		}
	}
}

func TestLoginRefreshRotationAndReuse(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.svc.SignupCustomer(ctx, alice); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Login(ctx, alice.Phone, "wrong password"); !errors.Is(err, core.ErrInvalidCredentials) {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := f.svc.Login(ctx, "+629999999999", "whatever1"); !errors.Is(err, core.ErrInvalidCredentials) {
		t.Fatalf("unknown phone: %v", err)
	}
	t1, err := f.svc.Login(ctx, alice.Phone, alice.Password)
	if err != nil {
		t.Fatal(err)
	}
	p, err := f.svc.Authenticate(t1.AccessToken)
	if err != nil || p.Role != ports.RoleCustomer || p.UserID != t1.User.ID {
		t.Fatalf("authenticate: %+v %v", p, err)
	}
	if _, err := f.svc.Authenticate(t1.RefreshToken); !errors.Is(err, core.ErrUnauthenticated) {
		t.Fatalf("refresh token as access token: %v", err)
	}
	if _, err := f.svc.Refresh(ctx, t1.AccessToken); !errors.Is(err, core.ErrUnauthenticated) {
		t.Fatalf("access token as refresh token: %v", err)
	}

	f.clock.Advance(time.Minute)
	t2, err := f.svc.Refresh(ctx, t1.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if t2.RefreshToken == t1.RefreshToken {
		t.Fatal("refresh token was not rotated")
	}
	// Reusing the rotated token revokes the whole auth session: t2's token dies too.
	if _, err := f.svc.Refresh(ctx, t1.RefreshToken); !errors.Is(err, core.ErrUnauthenticated) {
		t.Fatalf("reuse: %v", err)
	}
	if _, err := f.svc.Refresh(ctx, t2.RefreshToken); !errors.Is(err, core.ErrUnauthenticated) {
		t.Fatalf("after reuse, newest token: %v", err)
	}
}

func TestAccessTokenExpiresAndRefreshExpires(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.svc.SignupCustomer(ctx, alice); err != nil {
		t.Fatal(err)
	}
	tk, err := f.svc.Login(ctx, alice.Phone, alice.Password)
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(16 * time.Minute)
	if _, err := f.svc.Authenticate(tk.AccessToken); !errors.Is(err, core.ErrUnauthenticated) {
		t.Fatalf("expired access token: %v", err)
	}
	f.clock.Advance(24 * time.Hour)
	if _, err := f.svc.Refresh(ctx, tk.RefreshToken); !errors.Is(err, core.ErrUnauthenticated) {
		t.Fatalf("expired refresh token: %v", err)
	}
}

func TestLogoutRevokesOnlyThatSession(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.svc.SignupCustomer(ctx, alice); err != nil {
		t.Fatal(err)
	}
	a, _ := f.svc.Login(ctx, alice.Phone, alice.Password)
	b, _ := f.svc.Login(ctx, alice.Phone, alice.Password)
	pa, err := f.svc.Authenticate(a.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Logout(ctx, pa); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Refresh(ctx, a.RefreshToken); !errors.Is(err, core.ErrUnauthenticated) {
		t.Fatalf("logged-out session refresh: %v", err)
	}
	if _, err := f.svc.Refresh(ctx, b.RefreshToken); err != nil {
		t.Fatalf("other session refresh: %v", err)
	}
}

func TestLoginRefusesDeactivatedMitra(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	nu, err := auth.PrepareUser(mustHasher(t), ports.RoleMitra, auth.NewAccount{Phone: "+628133333333", Password: "password1", DisplayName: "M"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := f.store.CreateMitra(ctx, nu, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Login(ctx, m.Phone, "password1"); err != nil {
		t.Fatalf("active mitra login: %v", err)
	}
	off := false
	if _, err := f.store.PatchMitra(ctx, m.ID, ports.MitraPatch{IsActive: &off}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Login(ctx, m.Phone, "password1"); !errors.Is(err, core.ErrAccountDeactivated) {
		t.Fatalf("deactivated mitra login: %v", err)
	}
}

func TestEnsureAdminIsIdempotent(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a := auth.NewAccount{Phone: "+628100000001", Password: "admin-pass", DisplayName: "Admin"}
	u1, created, err := f.svc.EnsureAdmin(ctx, a)
	if err != nil || !created || u1.Role != ports.RoleAdmin {
		t.Fatalf("first ensure: %+v %v %v", u1, created, err)
	}
	u2, created, err := f.svc.EnsureAdmin(ctx, a)
	if err != nil || created || u2.ID != u1.ID {
		t.Fatalf("second ensure: %+v %v %v", u2, created, err)
	}
	if _, err := f.svc.SignupCustomer(ctx, alice); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.svc.EnsureAdmin(ctx, auth.NewAccount{Phone: alice.Phone, Password: "admin-pass", DisplayName: "A"}); err == nil {
		t.Fatal("ensuring an admin over a customer's phone must fail")
	}
}

func mustHasher(t *testing.T) ports.PasswordHasher {
	h, err := password.NewBcrypt(4)
	if err != nil {
		t.Fatal(err)
	}
	return h
}
