package sessions_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/adapters/clock"
	"github.com/halobestie/mitra-availability/adapters/memory"
	"github.com/halobestie/mitra-availability/adapters/password"
	"github.com/halobestie/mitra-availability/core"
	"github.com/halobestie/mitra-availability/core/auth"
	"github.com/halobestie/mitra-availability/core/mirror"
	"github.com/halobestie/mitra-availability/core/mitras"
	"github.com/halobestie/mitra-availability/core/sessions"
	"github.com/halobestie/mitra-availability/ports"
)

// recorder is an event bus that keeps what was published.
type recorder struct {
	mu     sync.Mutex
	events []ports.Event
}

func (r *recorder) Publish(_ context.Context, e ports.Event) error {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
	return nil
}

func (r *recorder) Subscribe(func(ports.Event)) func() { return func() {} }

// of returns the payloads of the events of type typ sent to user.
func (r *recorder) of(typ, user string) []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []map[string]any
	for _, e := range r.events {
		if e.Type != typ {
			continue
		}
		for _, u := range e.UserIDs {
			if u == user {
				var m map[string]any
				_ = json.Unmarshal(e.Payload, &m)
				out = append(out, m)
			}
		}
	}
	return out
}

type fixture struct {
	svc    *sessions.Service
	mitras *mitras.Service
	store  *memory.Store
	mirror *memory.Mirror
	bus    *recorder
	clock  *clock.Manual
	n      int
}

const (
	pairing = 60 * time.Second
	payment = 600 * time.Second
	lead    = 180 * time.Second
)

func newFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureWith(t, nil)
}

// newFixtureWith is newFixture with the session service's store wrapped by
// wrap (nil: not wrapped).
func newFixtureWith(t *testing.T, wrap func(ports.SessionStore) ports.SessionStore) *fixture {
	t.Helper()
	st := memory.NewStore()
	h, err := password.NewBcrypt(4)
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.NewManual(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	log := slog.New(slog.DiscardHandler)
	mr := memory.NewMirror()
	health := mirror.NewHealth("memory", true)
	metrics := memory.NewMetrics()
	ms, err := mitras.NewService(mitras.Deps{Store: st, Queries: st, AuthDB: st, Stats: st, Mirror: mr, Health: health,
		Metrics: metrics, Hasher: h, Clock: clk, Log: log},
		mitras.Config{DefaultCapacity: 1, HeartbeatStale: 90 * time.Second, SnapshotTTL: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mirror.NewSeeder(mr, st, health, metrics, log).Seed(context.Background(), mirror.ReasonStart); err != nil {
		t.Fatal(err)
	}
	bus := &recorder{}
	var sst ports.SessionStore = st
	if wrap != nil {
		sst = wrap(st)
	}
	svc, err := sessions.NewService(sst, ms, bus, clk, log, sessions.Config{PairingTimeout: pairing, PaymentTimeout: payment, WarningLead: lead})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{svc: svc, mitras: ms, store: st, mirror: mr, bus: bus, clock: clk}
}

func (f *fixture) customer(t *testing.T) auth.Principal {
	t.Helper()
	f.n++
	nu, err := auth.PrepareUser(mustHasher(t), ports.RoleCustomer, auth.NewAccount{Phone: fmt.Sprintf("+62813%07d", f.n), Password: "password1", DisplayName: "C"})
	if err != nil {
		t.Fatal(err)
	}
	u, err := f.store.CreateUser(context.Background(), nu)
	if err != nil {
		t.Fatal(err)
	}
	return auth.Principal{UserID: u.ID, Role: ports.RoleCustomer}
}

func (f *fixture) onlineMitra(t *testing.T, capacity int) auth.Principal {
	t.Helper()
	f.n++
	v, err := f.mitras.Create(context.Background(), auth.NewAccount{Phone: fmt.Sprintf("+62814%07d", f.n), Password: "password1", DisplayName: "M"}, &capacity)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.mitras.GoOnline(context.Background(), v.ID); err != nil {
		t.Fatal(err)
	}
	return auth.Principal{UserID: v.ID, Role: ports.RoleMitra}
}

func mustHasher(t *testing.T) ports.PasswordHasher {
	h, err := password.NewBcrypt(4)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// availableNow heartbeats m (time moved on in the test) and asks whether it is available.
func (f *fixture) availableNow(t *testing.T, m auth.Principal) bool {
	t.Helper()
	ctx := context.Background()
	if err := f.mitras.Heartbeat(ctx, m.UserID); err != nil {
		t.Fatal(err)
	}
	a, err := f.mitras.AvailabilityOf(ctx, m.UserID)
	if err != nil {
		t.Fatal(err)
	}
	return a.Available
}

// advance moves the clock and fires what became due.
func (f *fixture) advance(t *testing.T, d time.Duration) {
	t.Helper()
	f.clock.Advance(d)
	if _, err := f.svc.FireDue(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// paidSession creates a session, has m accept it and the customer pay.
func (f *fixture) paidSession(t *testing.T, c, m auth.Principal, minutes int) sessions.View {
	t.Helper()
	ctx := context.Background()
	v, err := f.svc.Request(ctx, c.UserID, minutes, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Accept(ctx, m.UserID, v.ID); err != nil {
		t.Fatal(err)
	}
	v, err = f.svc.Pay(ctx, c.UserID, v.ID)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestWarningFiresOnceAtTheRightMomentAndNotAgainAfterExtension(t *testing.T) {
	f := newFixture(t)
	c, m := f.customer(t), f.onlineMitra(t, 1)
	v := f.paidSession(t, c, m, 5) // expires in 5 min: warning due at +2:00
	if v.Status != "active" || v.RemainingSeconds != 300 {
		t.Fatalf("after pay: %+v", v)
	}
	f.advance(t, 119*time.Second)
	if got := f.bus.of(ports.EventSessionWarning, c.UserID); len(got) != 0 {
		t.Fatalf("warning fired early at 1:59: %v", got)
	}
	f.advance(t, time.Second)
	got := f.bus.of(ports.EventSessionWarning, c.UserID)
	if len(got) != 1 || got[0]["kind"] != "three_minutes_left" || got[0]["session_id"] != v.ID {
		t.Fatalf("warning at 2:00: %v", got)
	}
	if len(f.bus.of(ports.EventSessionWarning, m.UserID)) != 0 {
		t.Fatal("the warning goes to the customer only")
	}
	// An extension gives a new window: the warning must not fire again.
	if _, err := f.svc.Extend(context.Background(), c.UserID, v.ID, 5); err != nil {
		t.Fatal(err)
	}
	f.advance(t, 5*time.Minute+time.Second)
	if got := f.bus.of(ports.EventSessionWarning, c.UserID); len(got) != 1 {
		t.Fatalf("warning fired again after the extension: %d", len(got))
	}
	// The session still expires, exactly once, at the extended time (2:00 + 3:00 + 5:00 = 10:00).
	if ended := f.bus.of(ports.EventSessionEnded, c.UserID); len(ended) != 0 {
		t.Fatalf("ended before expiry: %v", ended)
	}
	f.advance(t, 3*time.Minute)
	ended := f.bus.of(ports.EventSessionEnded, c.UserID)
	if len(ended) != 1 || ended[0]["reason"] != "expired" {
		t.Fatalf("expiry: %v", ended)
	}
	f.advance(t, time.Hour)
	if n := len(f.bus.of(ports.EventSessionEnded, c.UserID)); n != 1 {
		t.Fatalf("expiry fired %d times", n)
	}
	got2, _ := f.svc.Get(context.Background(), c, v.ID)
	if got2.Status != "ended" || *got2.EndReason != "expired" || got2.RemainingSeconds != 0 {
		t.Fatalf("expired session: %+v", got2)
	}
	if a := f.availableNow(t, m); !a {
		t.Fatal("the mitra must be available again after expiry (capacity recomputed)")
	}
}

func TestExtensionBeforeTheWarningMovesIt(t *testing.T) {
	f := newFixture(t)
	c, m := f.customer(t), f.onlineMitra(t, 1)
	v := f.paidSession(t, c, m, 10) // warning due at +7:00
	f.advance(t, 5*time.Minute)
	if _, err := f.svc.Extend(context.Background(), c.UserID, v.ID, 10); err != nil { // warning now due at +17:00
		t.Fatal(err)
	}
	f.advance(t, 11*time.Minute+59*time.Second)
	if n := len(f.bus.of(ports.EventSessionWarning, c.UserID)); n != 0 {
		t.Fatalf("warning fired before the moved deadline: %d", n)
	}
	f.advance(t, time.Second)
	if n := len(f.bus.of(ports.EventSessionWarning, c.UserID)); n != 1 {
		t.Fatalf("warning at the moved deadline: %d", n)
	}
}

func TestPairingAndPaymentTimeouts(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c, m := f.customer(t), f.onlineMitra(t, 1)
	v, err := f.svc.Request(ctx, c.UserID, 30, nil)
	if err != nil {
		t.Fatal(err)
	}
	offers := f.bus.of(ports.EventSessionOffer, m.UserID)
	if len(offers) != 1 || offers[0]["session_id"] != v.ID {
		t.Fatalf("offer: %v", offers)
	}
	f.advance(t, pairing-time.Second)
	if got, _ := f.svc.Get(ctx, c, v.ID); got.Status != "searching" {
		t.Fatalf("before the pairing timeout: %s", got.Status)
	}
	f.advance(t, time.Second)
	got, _ := f.svc.Get(ctx, c, v.ID)
	if got.Status != "unmatched" || *got.EndReason != "unmatched" {
		t.Fatalf("after the pairing timeout: %+v", got)
	}
	if _, err := f.svc.Accept(ctx, m.UserID, v.ID); !errors.Is(err, core.ErrInvalidState) {
		t.Fatalf("accepting an unmatched session: %v", err)
	}

	v, err = f.svc.Request(ctx, c.UserID, 30, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Accept(ctx, m.UserID, v.ID); err != nil {
		t.Fatal(err)
	}
	if a, _ := f.mitras.AvailabilityOf(ctx, m.UserID); a.Available {
		t.Fatal("a mitra at capacity is not available")
	}
	f.advance(t, payment)
	got, _ = f.svc.Get(ctx, c, v.ID)
	if got.Status != "cancelled" || *got.EndReason != "payment_timeout" {
		t.Fatalf("after the payment timeout: %+v", got)
	}
	if !f.availableNow(t, m) {
		t.Fatal("the mitra is released by the payment timeout")
	}
}

func TestRequestRules(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c := f.customer(t)
	if _, err := f.svc.Request(ctx, c.UserID, 30, nil); !errors.Is(err, core.ErrNoMitraAvailable) {
		t.Fatalf("nobody online: %v", err)
	}
	var ve *core.ValidationError
	for _, d := range []int{0, 241, -1} {
		if _, err := f.svc.Request(ctx, c.UserID, d, nil); !errors.As(err, &ve) || ve.Field != "duration_minutes" {
			t.Fatalf("duration %d: %v", d, err)
		}
	}
	m1, m2 := f.onlineMitra(t, 1), f.onlineMitra(t, 1)
	v, err := f.svc.Request(ctx, c.UserID, 30, &m2.UserID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Request(ctx, c.UserID, 30, nil); !errors.Is(err, core.ErrOpenSessionExists) {
		t.Fatalf("second open session: %v", err)
	}
	if _, err := f.svc.Accept(ctx, m1.UserID, v.ID); !errors.Is(err, core.ErrForbidden) {
		t.Fatalf("a mitra the session was not offered to: %v", err)
	}
	if len(f.bus.of(ports.EventSessionOffer, m1.UserID)) != 0 {
		t.Fatal("a targeted request is offered to its mitra only")
	}
	// End by a mitra that is not its participant: not found; by the customer: cancelled.
	if _, err := f.svc.End(ctx, m2, v.ID); !errors.Is(err, ports.ErrNotFound) {
		t.Fatalf("mitra ending a searching session: %v", err)
	}
	ended, err := f.svc.End(ctx, c, v.ID)
	if err != nil || ended.Status != "cancelled" || *ended.EndReason != "cancelled_by_customer" {
		t.Fatalf("cancel: %+v %v", ended, err)
	}
	if _, err := f.svc.End(ctx, c, v.ID); !errors.Is(err, core.ErrInvalidState) {
		t.Fatalf("ending twice: %v", err)
	}
	other := f.customer(t)
	if _, err := f.svc.Get(ctx, other, v.ID); !errors.Is(err, ports.ErrNotFound) {
		t.Fatalf("a stranger reading the session: %v", err)
	}
	// Targeting a mitra that is offline.
	if _, err := f.mitras.GoOffline(ctx, m1.UserID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Request(ctx, c.UserID, 30, &m1.UserID); !errors.Is(err, core.ErrNoMitraAvailable) {
		t.Fatalf("targeting an offline mitra: %v", err)
	}
}

func TestAcceptRaceAndTakenEvents(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c := f.customer(t)
	var ms []auth.Principal
	for i := 0; i < 5; i++ {
		ms = append(ms, f.onlineMitra(t, 1))
	}
	v, err := f.svc.Request(ctx, c.UserID, 30, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(ms))
	for i, m := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = f.svc.Accept(ctx, m.UserID, v.ID)
		}()
	}
	wg.Wait()
	winners := 0
	var winner auth.Principal
	for i, err := range errs {
		switch {
		case err == nil:
			winners++
			winner = ms[i]
		case !errors.Is(err, core.ErrSessionTaken):
			t.Fatalf("loser got %v, want ErrSessionTaken", err)
		}
	}
	if winners != 1 {
		t.Fatalf("%d winners", winners)
	}
	for _, m := range ms {
		taken := f.bus.of(ports.EventSessionTaken, m.UserID)
		if m == winner && len(taken) != 0 || m != winner && len(taken) != 1 {
			t.Fatalf("session_taken to %s: %v (winner %s)", m.UserID, taken, winner.UserID)
		}
	}
	if len(f.bus.of(ports.EventSessionUpdate, c.UserID)) != 1 || len(f.bus.of(ports.EventSessionUpdate, winner.UserID)) != 1 {
		t.Fatal("session_update goes to the customer and the winning mitra")
	}
}

// acceptStore counts the transactions on sessions and runs gate, when set,
// at the start of each.
type acceptStore struct {
	ports.SessionStore
	updates atomic.Int32
	gate    func()
}

func (g *acceptStore) UpdateSession(ctx context.Context, id string, fn func(context.Context, ports.SessionTx, *ports.Session) error) (ports.Session, error) {
	g.updates.Add(1)
	if g.gate != nil {
		g.gate()
	}
	return g.SessionStore.UpdateSession(ctx, id, fn)
}

// newAcceptFixture is a fixture whose session store is an acceptStore.
func newAcceptFixture(t *testing.T) (*fixture, *acceptStore) {
	t.Helper()
	var gs *acceptStore
	f := newFixtureWith(t, func(st ports.SessionStore) ports.SessionStore {
		gs = &acceptStore{SessionStore: st}
		return gs
	})
	return f, gs
}

// TestLosingAcceptsTakeNoTransaction: while the first accept of a blasted
// session is in its transaction, the others that read the session as still
// searching wait for their turn on the instance, not in transactions of
// their own; once it has taken the session each learns it lost from a plain
// read. Exactly one transaction for n accepts, one winner, n-1 session_taken.
func TestLosingAcceptsTakeNoTransaction(t *testing.T) {
	f, gs := newAcceptFixture(t)
	ctx := context.Background()
	c := f.customer(t)
	const n = 12
	var ms []auth.Principal
	for range n {
		ms = append(ms, f.onlineMitra(t, 1))
	}
	v, err := f.svc.Request(ctx, c.UserID, 30, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The first transaction goes on only once every other accept waits for
	// its turn: all of them read the session while it was searching.
	gs.gate = func() {
		if gs.updates.Load() != 1 {
			return
		}
		deadline := time.Now().Add(10 * time.Second)
		for f.svc.AcceptsWaiting(v.ID) < n {
			if time.Now().After(deadline) {
				t.Errorf("%d accepts at the turn, want %d", f.svc.AcceptsWaiting(v.ID), n)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, m := range ms {
		wg.Go(func() { _, errs[i] = f.svc.Accept(ctx, m.UserID, v.ID) })
	}
	wg.Wait()
	winners := 0
	for _, err := range errs {
		switch {
		case err == nil:
			winners++
		case !errors.Is(err, core.ErrSessionTaken):
			t.Fatalf("loser got %v, want ErrSessionTaken", err)
		}
	}
	if winners != 1 || gs.updates.Load() != 1 {
		t.Fatalf("%d winners in %d transactions, want 1 in 1", winners, gs.updates.Load())
	}
	if got := f.svc.AcceptsWaiting(v.ID); got != 0 {
		t.Errorf("%d accepts still at the turn", got)
	}
}

// TestAcceptAfterAFailedFirstGoesOn: when the accept that had the turn
// fails (its mitra is at capacity), the next one in line still takes the
// session.
func TestAcceptAfterAFailedFirstGoesOn(t *testing.T) {
	f, gs := newAcceptFixture(t)
	ctx := context.Background()
	busy, free := f.onlineMitra(t, 1), f.onlineMitra(t, 1)
	v, err := f.svc.Request(ctx, f.customer(t).UserID, 30, nil)
	if err != nil {
		t.Fatal(err)
	}
	// busy fills its capacity with a session offered to it alone.
	other, err := f.svc.Request(ctx, f.customer(t).UserID, 30, &busy.UserID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Accept(ctx, busy.UserID, other.ID); err != nil {
		t.Fatal(err)
	}
	gs.updates.Store(0)
	first := make(chan struct{})
	gs.gate = func() {
		if gs.updates.Load() == 1 {
			close(first)
			deadline := time.Now().Add(10 * time.Second)
			for f.svc.AcceptsWaiting(v.ID) < 2 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
		}
	}
	busyErr := make(chan error, 1)
	go func() { _, err := f.svc.Accept(ctx, busy.UserID, v.ID); busyErr <- err }()
	<-first
	if _, err := f.svc.Accept(ctx, free.UserID, v.ID); err != nil {
		t.Fatalf("the accept after a failed first: %v", err)
	}
	if err := <-busyErr; !errors.Is(err, core.ErrAtCapacity) {
		t.Fatalf("the first accept, its mitra at capacity: %v", err)
	}
	if gs.updates.Load() != 2 {
		t.Errorf("%d transactions, want 2", gs.updates.Load())
	}
}

func TestMitraCapacityAcrossSessions(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	m := f.onlineMitra(t, 2)
	var ids []string
	for i := 0; i < 3; i++ {
		v, err := f.svc.Request(ctx, f.customer(t).UserID, 30, nil)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, v.ID)
	}
	for i, id := range ids {
		_, err := f.svc.Accept(ctx, m.UserID, id)
		if i < 2 && err != nil {
			t.Fatalf("accept %d: %v", i, err)
		}
		if i == 2 && !errors.Is(err, core.ErrAtCapacity) {
			t.Fatalf("third accept at capacity 2: %v", err)
		}
	}
	st, _ := f.mitras.Status(ctx, m.UserID)
	if st.ActiveSessions != 2 || st.Available {
		t.Fatalf("mitra view: %+v", st)
	}
}

func TestRerouteKeepsPaidTimeAndExcludesThePreviousMitra(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c := f.customer(t)
	m1 := f.onlineMitra(t, 1)
	v := f.paidSession(t, c, m1, 10)
	f.advance(t, 4*time.Minute) // 6 minutes remain
	m2 := f.onlineMitra(t, 1)
	r, err := f.svc.Reroute(ctx, c.UserID, v.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != "searching" || r.MitraID != nil || r.RemainingSeconds != 360 {
		t.Fatalf("after reroute: %+v", r)
	}
	if len(f.bus.of(ports.EventSessionOffer, m1.UserID)) != 1 { // the first offer only
		t.Fatal("the previous mitra must not be offered the session again")
	}
	if _, err := f.svc.Accept(ctx, m1.UserID, v.ID); !errors.Is(err, core.ErrForbidden) {
		t.Fatalf("previous mitra accepting again: %v", err)
	}
	if !f.availableNow(t, m1) {
		t.Fatal("the previous mitra is released")
	}
	f.advance(t, 30*time.Second) // the clock is stopped while searching
	acc, err := f.svc.Accept(ctx, m2.UserID, v.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := f.clock.Now().Add(6 * time.Minute)
	if acc.Status != "active" || acc.ExpiresAt == nil || !acc.ExpiresAt.Equal(want) || acc.RemainingSeconds != 360 {
		t.Fatalf("accept after reroute: %+v, want active until %v", acc, want)
	}
	// The warning (not yet sent) fires once, three minutes before the new expiry.
	f.advance(t, 3*time.Minute)
	if n := len(f.bus.of(ports.EventSessionWarning, c.UserID)); n != 1 {
		t.Fatalf("warnings: %d", n)
	}
	f.advance(t, 3*time.Minute)
	if got, _ := f.svc.Get(ctx, c, v.ID); got.Status != "ended" || *got.EndReason != "expired" {
		t.Fatalf("after the remaining time: %+v", got)
	}
}

func TestWarningNotRepeatedAfterReroute(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c := f.customer(t)
	m1 := f.onlineMitra(t, 1)
	v := f.paidSession(t, c, m1, 5)
	f.advance(t, 2*time.Minute+time.Second) // warning sent
	m2 := f.onlineMitra(t, 1)
	if _, err := f.svc.Reroute(ctx, c.UserID, v.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Accept(ctx, m2.UserID, v.ID); err != nil {
		t.Fatal(err)
	}
	f.advance(t, 5*time.Minute)
	if n := len(f.bus.of(ports.EventSessionWarning, c.UserID)); n != 1 {
		t.Fatalf("warnings over the session's life: %d", n)
	}
}

func TestEndAndStateRules(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c, m := f.customer(t), f.onlineMitra(t, 1)
	v, _ := f.svc.Request(ctx, c.UserID, 30, nil)
	if _, err := f.svc.Pay(ctx, c.UserID, v.ID); !errors.Is(err, core.ErrInvalidState) {
		t.Fatalf("paying a searching session: %v", err)
	}
	if _, err := f.svc.Extend(ctx, c.UserID, v.ID, 5); !errors.Is(err, core.ErrInvalidState) {
		t.Fatalf("extending a searching session: %v", err)
	}
	if _, err := f.svc.Reroute(ctx, c.UserID, v.ID); !errors.Is(err, core.ErrInvalidState) {
		t.Fatalf("rerouting a searching session: %v", err)
	}
	if _, err := f.svc.Accept(ctx, m.UserID, v.ID); err != nil {
		t.Fatal(err)
	}
	var ve *core.ValidationError
	if _, err := f.svc.Extend(ctx, c.UserID, v.ID, 121); !errors.As(err, &ve) || ve.Field != "minutes" {
		t.Fatalf("extend 121: %v", err)
	}
	e, err := f.svc.End(ctx, m, v.ID)
	if err != nil || e.Status != "ended" || *e.EndReason != "ended_by_mitra" {
		t.Fatalf("mitra ends: %+v %v", e, err)
	}
	if n := len(f.bus.of(ports.EventSessionEnded, c.UserID)); n != 1 {
		t.Fatalf("session_ended to the customer: %d", n)
	}
	list, err := f.svc.List(ctx, m)
	if err != nil || len(list) != 1 || list[0].ID != v.ID {
		t.Fatalf("mitra's list: %+v %v", list, err)
	}
}

func TestSchedulerFiresWithoutBeingCalled(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c, _ := f.customer(t), f.onlineMitra(t, 1)
	sc := sessions.NewScheduler(f.svc)
	if err := sc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sc.Stop(ctx) }()
	v, err := f.svc.Request(ctx, c.UserID, 30, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(pairing)
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := f.svc.Get(ctx, c, v.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status == "unmatched" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the scheduler did not fire the pairing timeout: %s", got.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := len(f.bus.of(ports.EventSessionEnded, c.UserID)); n != 1 {
		t.Fatalf("session_ended sent %d times", n)
	}
}
