package auth_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
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

// countingHasher counts the bcrypt comparisons, the cost that timing would show.
type countingHasher struct {
	ports.PasswordHasher
	compares atomic.Int32
}

func (h *countingHasher) Compare(hash, pw string) error {
	h.compares.Add(1)
	return h.PasswordHasher.Compare(hash, pw)
}

type throttleFixture struct {
	svc       *auth.Service
	clock     *clock.Manual
	hasher    *countingHasher
	mu        sync.Mutex
	throttled map[string]int
}

const window = 15 * time.Minute

func newThrottleFixture(t *testing.T, maxPerAddress int) *throttleFixture {
	t.Helper()
	st := memory.NewStore()
	b, err := password.NewBcrypt(4)
	if err != nil {
		t.Fatal(err)
	}
	sg, err := token.NewSigner([]byte("test-secret-test-secret-test-secret"))
	if err != nil {
		t.Fatal(err)
	}
	f := &throttleFixture{
		clock:     clock.NewManual(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)),
		hasher:    &countingHasher{PasswordHasher: b},
		throttled: map[string]int{},
	}
	f.svc, err = auth.NewService(st, st, st, f.hasher, sg, f.clock, auth.Config{
		AccessTTL: 15 * time.Minute, RefreshTTL: 24 * time.Hour,
		Throttle: auth.Throttle{
			Limiter: memory.NewLimiter(), MaxFailures: 5, MaxPerAddress: maxPerAddress, Window: window,
			Throttled: func(limit string) { f.mu.Lock(); f.throttled[limit]++; f.mu.Unlock() },
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.SignupCustomer(context.Background(), alice); err != nil {
		t.Fatal(err)
	}
	return f
}

// expectLimited checks a 429-bound error and returns its RetryAfter.
func expectLimited(t *testing.T, err error, limit string) time.Duration {
	t.Helper()
	var rl *core.RateLimitedError
	if !errors.As(err, &rl) || !errors.Is(err, core.ErrRateLimited) || rl.Limit != limit || rl.RetryAfter <= 0 {
		t.Fatalf("err = %v, want a RateLimitedError of the %s limit", err, limit)
	}
	return rl.RetryAfter
}

func TestLoginThrottlePerPhone(t *testing.T) {
	ctx := context.Background()
	for _, phone := range []string{alice.Phone, "+629999999999"} { // with and without an account
		t.Run(phone, func(t *testing.T) {
			f := newThrottleFixture(t, 0)
			for i := range 5 {
				if _, err := f.svc.Login(ctx, phone, "wrong password"); !errors.Is(err, core.ErrInvalidCredentials) {
					t.Fatalf("failure %d: err = %v, want invalid credentials", i+1, err)
				}
				f.clock.Advance(time.Minute)
			}
			// Now even the right password is refused, without a comparison.
			before := f.hasher.compares.Load()
			_, err := f.svc.Login(ctx, phone, alice.Password)
			if ra := expectLimited(t, err, "phone"); ra != window-5*time.Minute {
				t.Fatalf("RetryAfter = %v, want %v (until the first failure leaves the window)", ra, window-5*time.Minute)
			}
			if f.hasher.compares.Load() != before {
				t.Error("a refused attempt compared a password")
			}
			// Once the first failure left the window, one attempt is counted again.
			f.clock.Advance(window - 5*time.Minute)
			_, err = f.svc.Login(ctx, phone, alice.Password)
			if phone == alice.Phone && err != nil {
				t.Fatalf("login after the window slid: %v", err)
			}
			if phone != alice.Phone && !errors.Is(err, core.ErrInvalidCredentials) {
				t.Fatalf("unknown phone after the window slid: %v", err)
			}
			if f.throttled["phone"] != 1 {
				t.Errorf("throttled[phone] = %d, want 1", f.throttled["phone"])
			}
		})
	}
}

func TestLoginSuccessClearsTheCount(t *testing.T) {
	ctx := context.Background()
	f := newThrottleFixture(t, 0)
	for range 4 {
		_, _ = f.svc.Login(ctx, alice.Phone, "wrong password")
	}
	if _, err := f.svc.Login(ctx, alice.Phone, alice.Password); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := f.svc.Login(ctx, alice.Phone, "wrong password"); !errors.Is(err, core.ErrInvalidCredentials) {
			t.Fatalf("failure %d after the success: %v (the count was not cleared)", i+1, err)
		}
	}
	_, err := f.svc.Login(ctx, alice.Phone, alice.Password)
	expectLimited(t, err, "phone")
}

// No account enumeration by time: a wrong password and an unknown phone each
// cost one bcrypt comparison.
func TestLoginUnknownPhoneCostsAComparison(t *testing.T) {
	ctx := context.Background()
	f := newThrottleFixture(t, 0)
	before := f.hasher.compares.Load()
	_, errKnown := f.svc.Login(ctx, alice.Phone, "wrong password")
	known := f.hasher.compares.Load() - before
	_, errUnknown := f.svc.Login(ctx, "+629999999999", "wrong password")
	unknown := f.hasher.compares.Load() - before - known
	if known != 1 || unknown != 1 {
		t.Fatalf("comparisons: wrong password %d, unknown phone %d; want 1 each", known, unknown)
	}
	if errKnown.Error() != errUnknown.Error() {
		t.Fatalf("answers differ: %q vs %q", errKnown, errUnknown)
	}
}

func TestLoginThrottlePerAddress(t *testing.T) {
	ctx := context.Background()
	f := newThrottleFixture(t, 3)
	phones := []string{"+629100000001", "+629100000002", "+629100000003", alice.Phone}
	for i, p := range phones[:3] {
		if _, err := f.svc.LoginFrom(ctx, "203.0.113.7", p, "wrong password"); !errors.Is(err, core.ErrInvalidCredentials) {
			t.Fatalf("attempt %d: %v", i+1, err)
		}
	}
	_, err := f.svc.LoginFrom(ctx, "203.0.113.7", alice.Phone, alice.Password)
	if ra := expectLimited(t, err, "address"); ra != window {
		t.Fatalf("RetryAfter = %v, want %v", ra, window)
	}
	// Another address, and a call with no address, are not capped.
	if _, err := f.svc.LoginFrom(ctx, "203.0.113.8", alice.Phone, alice.Password); err != nil {
		t.Fatalf("other address: %v", err)
	}
	if _, err := f.svc.Login(ctx, alice.Phone, alice.Password); err != nil {
		t.Fatalf("no address: %v", err)
	}
	if f.throttled["address"] != 1 {
		t.Errorf("throttled[address] = %d, want 1", f.throttled["address"])
	}
}

// Any number of concurrent guesses gets at most MaxFailures comparisons.
func TestLoginThrottleConcurrentGuesses(t *testing.T) {
	ctx := context.Background()
	f := newThrottleFixture(t, 0)
	var wg sync.WaitGroup
	var limited atomic.Int32
	for range 30 {
		wg.Go(func() {
			if _, err := f.svc.Login(ctx, alice.Phone, "wrong password"); errors.Is(err, core.ErrRateLimited) {
				limited.Add(1)
			}
		})
	}
	wg.Wait()
	if n := limited.Load(); n != 25 {
		t.Fatalf("%d of 30 concurrent guesses refused, want 25", n)
	}
	if n := f.hasher.compares.Load(); n != 5 {
		t.Fatalf("%d comparisons, want 5", n)
	}
}
