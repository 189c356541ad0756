package sessions_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/core"
	"github.com/halobestie/mitra-availability/core/auth"
	"github.com/halobestie/mitra-availability/core/sessions"
	"github.com/halobestie/mitra-availability/ports"
)

const batchEvery = 15 * time.Second

// routed returns a fixture whose service routes with r, widening every batchEvery.
func routed(t *testing.T, r sessions.Router) *fixture {
	t.Helper()
	f := newFixture(t)
	f.svc = f.service(t, r)
	return f
}

// service builds another service over f's store, mitras and bus (another instance).
func (f *fixture) service(t *testing.T, r sessions.Router) *sessions.Service {
	t.Helper()
	svc, err := sessions.NewService(f.store, f.mitras, f.bus, f.clock, slog.New(slog.DiscardHandler), sessions.Config{
		PairingTimeout: pairing, PaymentTimeout: payment, WarningLead: lead, Router: r, BatchInterval: batchEvery,
	})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// offered returns, in order, the mitras of ms that got a session_offer of session id (one entry per offer).
func (f *fixture) offered(id string, ms []auth.Principal) []string {
	var out []string
	for _, m := range ms {
		for _, e := range f.bus.of(ports.EventSessionOffer, m.UserID) {
			if e["session_id"] == id {
				out = append(out, m.UserID)
			}
		}
	}
	return out
}

// stored returns the stored session.
func (f *fixture) stored(t *testing.T, id string) ports.Session {
	t.Helper()
	s, err := f.store.Session(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// heartbeatAll keeps ms fresh after the clock moved.
func (f *fixture) heartbeatAll(t *testing.T, ms []auth.Principal) {
	t.Helper()
	for _, m := range ms {
		if err := f.mitras.Heartbeat(context.Background(), m.UserID); err != nil {
			t.Fatal(err)
		}
	}
}

func ids(ms ...auth.Principal) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.UserID
	}
	return out
}

// docs/contract.md §11 longest_idle: the batch goes to the mitras idle
// longest, since they went online or since their last session ended.
func TestLongestIdleOffersToTheLongestIdle(t *testing.T) {
	f := routed(t, sessions.LongestIdle{Batch: 2})
	ctx := context.Background()
	var ms []auth.Principal
	for range 4 { // online one second apart: ms[0] idle longest
		ms = append(ms, f.onlineMitra(t, 1))
		f.clock.Advance(time.Second)
	}
	// ms[0] serves a session that ends now: it becomes the most recently idle.
	c0 := f.customer(t)
	v0, err := f.svc.Request(ctx, c0.UserID, 10, &ms[0].UserID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Accept(ctx, ms[0].UserID, v0.ID); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Second)
	if _, err := f.svc.End(ctx, c0, v0.ID); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Second)

	c := f.customer(t)
	v, err := f.svc.Request(ctx, c.UserID, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := f.stored(t, v.ID).OfferedMitraIDs, ids(ms[1], ms[2]); !slices.Equal(got, want) {
		t.Fatalf("first batch %v, want the two idle longest %v", got, want)
	}
	if got := f.offered(v.ID, ms); !slices.Equal(got, ids(ms[1], ms[2])) {
		t.Fatalf("session_offer to %v, want the batch only", got)
	}
	// The next batch, in order: ms[3] (online at +3s), then ms[0] (idle since its session ended at +5s).
	f.advance(t, batchEvery)
	if got, want := f.stored(t, v.ID).OfferedMitraIDs, ids(ms[1], ms[2], ms[3], ms[0]); !slices.Equal(got, want) {
		t.Fatalf("after one interval offered %v, want %v", got, want)
	}
}

// With the mirror's data lost (a flushed cache), the candidates come from
// the store, in the same order.
func TestBatchesFromTheStoreWhenTheMirrorIsLost(t *testing.T) {
	for _, r := range []sessions.Router{sessions.LongestIdle{Batch: 2}, sessions.LeastLoaded{Batch: 2}} {
		f := routed(t, r)
		ctx := context.Background()
		var ms []auth.Principal
		for range 3 {
			ms = append(ms, f.onlineMitra(t, 2))
			f.clock.Advance(time.Second)
		}
		f.mirror.Flush()
		c := f.customer(t)
		v, err := f.svc.Request(ctx, c.UserID, 10, nil)
		if err != nil {
			t.Fatalf("%T: request with the mirror lost: %v", r, err)
		}
		if got, want := f.stored(t, v.ID).OfferedMitraIDs, ids(ms[0], ms[1]); !slices.Equal(got, want) {
			t.Fatalf("%T with the mirror lost: first batch %v, want %v", r, got, want)
		}
	}
}

// docs/contract.md §11 least_loaded: fewest open sessions first, then idle longest.
func TestLeastLoadedOffersToTheLeastLoaded(t *testing.T) {
	f := routed(t, sessions.LeastLoaded{Batch: 2})
	ctx := context.Background()
	var ms []auth.Principal
	for range 4 {
		ms = append(ms, f.onlineMitra(t, 3))
		f.clock.Advance(time.Second)
	}
	// ms[0] and ms[1], idle longest, each hold one session.
	for _, m := range ms[:2] {
		c := f.customer(t)
		v, err := f.svc.Request(ctx, c.UserID, 10, &m.UserID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.Accept(ctx, m.UserID, v.ID); err != nil {
			t.Fatal(err)
		}
	}
	c := f.customer(t)
	v, err := f.svc.Request(ctx, c.UserID, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := f.stored(t, v.ID).OfferedMitraIDs, ids(ms[2], ms[3]); !slices.Equal(got, want) {
		t.Fatalf("first batch %v, want the two without a session %v", got, want)
	}
	f.advance(t, batchEvery)
	if got, want := f.stored(t, v.ID).OfferedMitraIDs, ids(ms[2], ms[3], ms[0], ms[1]); !slices.Equal(got, want) {
		t.Fatalf("after one interval offered %v, want %v", got, want)
	}
}

// A batch is added every interval, on the timer: the offers made stand,
// session_offer goes to the new batch only, session_taken reaches every
// offered mitra, and nothing is added once a mitra accepted.
func TestBatchesWidenOnTheTimer(t *testing.T) {
	f := routed(t, sessions.LongestIdle{Batch: 2})
	ctx := context.Background()
	var ms []auth.Principal
	for range 7 {
		ms = append(ms, f.onlineMitra(t, 1))
		f.clock.Advance(time.Second)
	}
	c := f.customer(t)
	v, err := f.svc.Request(ctx, c.UserID, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := f.stored(t, v.ID)
	if s.NextBatchAt == nil || !s.NextBatchAt.Equal(s.SearchingSince.Add(batchEvery)) {
		t.Fatalf("next batch at %v, want searching_since + %v", s.NextBatchAt, batchEvery)
	}
	f.advance(t, batchEvery-time.Millisecond)
	if got := f.offered(v.ID, ms); len(got) != 2 {
		t.Fatalf("before the interval: offers to %v, want the first batch only", got)
	}
	f.advance(t, time.Millisecond)
	if got := f.offered(v.ID, ms); !slices.Equal(got, ids(ms[:4]...)) {
		t.Fatalf("after one interval: offers to %v, want one each to the first four", got)
	}
	if s := f.stored(t, v.ID); s.BatchStart != 2 {
		t.Fatalf("batch start %d, want 2", s.BatchStart)
	}
	// The first batch's offers stand: ms[0] accepts after the widening.
	if _, err := f.svc.Accept(ctx, ms[0].UserID, v.ID); err != nil {
		t.Fatalf("accept by a mitra of the first batch: %v", err)
	}
	for _, m := range ms[1:4] {
		if got := f.bus.of(ports.EventSessionTaken, m.UserID); len(got) != 1 {
			t.Errorf("mitra %s offered the session got %d session_taken, want 1", m.UserID, len(got))
		}
	}
	if got := f.bus.of(ports.EventSessionTaken, ms[4].UserID); len(got) != 0 {
		t.Errorf("a mitra never offered got session_taken: %v", got)
	}
	if s := f.stored(t, v.ID); s.NextBatchAt != nil {
		t.Fatalf("accepted session keeps next batch at %v", s.NextBatchAt)
	}
	f.heartbeatAll(t, ms)
	f.advance(t, 2*batchEvery)
	if got := f.offered(v.ID, ms); len(got) != 4 {
		t.Fatalf("offers after the accept: %v, want no more", got)
	}
}

// A batch whose every mitra declined widens at once, not at the interval;
// a declined mitra is never offered the session again.
func TestDeclinedBatchWidensAtOnce(t *testing.T) {
	f := routed(t, sessions.LongestIdle{Batch: 2})
	ctx := context.Background()
	var ms []auth.Principal
	for range 5 {
		ms = append(ms, f.onlineMitra(t, 1))
		f.clock.Advance(time.Second)
	}
	c := f.customer(t)
	v, err := f.svc.Request(ctx, c.UserID, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Second)
	if err := f.svc.Decline(ctx, ms[0].UserID, v.ID); err != nil {
		t.Fatal(err)
	}
	f.advance(t, 0)
	if got := f.offered(v.ID, ms); len(got) != 2 {
		t.Fatalf("one of two declined: offers to %v, want still the first batch only", got)
	}
	if err := f.svc.Decline(ctx, ms[1].UserID, v.ID); err != nil {
		t.Fatal(err)
	}
	s := f.stored(t, v.ID)
	if s.NextBatchAt == nil || !s.NextBatchAt.Equal(f.clock.Now().UTC().Truncate(time.Microsecond)) {
		t.Fatalf("whole batch declined: next batch at %v, want now", s.NextBatchAt)
	}
	f.advance(t, 0)
	if got := f.offered(v.ID, ms); !slices.Equal(got, ids(ms[:4]...)) {
		t.Fatalf("after the batch declined: offers to %v, want the next two at once", got)
	}
	s = f.stored(t, v.ID)
	if want := f.clock.Now().UTC().Truncate(time.Microsecond).Add(batchEvery); s.NextBatchAt == nil || !s.NextBatchAt.Equal(want) {
		t.Fatalf("next batch at %v, want %v (an interval after the widening)", s.NextBatchAt, want)
	}
	// The second batch declines too: the last mitra, never a declined one.
	for _, m := range ms[2:4] {
		if err := f.svc.Decline(ctx, m.UserID, v.ID); err != nil {
			t.Fatal(err)
		}
	}
	f.advance(t, 0)
	if got := f.stored(t, v.ID).OfferedMitraIDs; !slices.Equal(got, ids(ms...)) {
		t.Fatalf("offered %v, want all five once", got)
	}
	for _, m := range ms[:4] {
		if n := len(f.bus.of(ports.EventSessionOffer, m.UserID)); n != 1 {
			t.Errorf("declined mitra %s got %d offers, want 1", m.UserID, n)
		}
	}
	if _, err := f.svc.Accept(ctx, ms[4].UserID, v.ID); err != nil {
		t.Fatalf("accept by the last batch: %v", err)
	}
}

// The pairing timeout ends a batched search as unmatched; no batch is added
// at or after it. A batch due with nobody new available tries again an
// interval later.
func TestBatchedSearchEndsAtThePairingTimeout(t *testing.T) {
	f := routed(t, sessions.LeastLoaded{Batch: 1})
	ctx := context.Background()
	ms := []auth.Principal{f.onlineMitra(t, 1)}
	c := f.customer(t)
	v, err := f.svc.Request(ctx, c.UserID, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 { // 45 s: three intervals with nobody new
		f.heartbeatAll(t, ms)
		f.advance(t, batchEvery)
	}
	if got := f.stored(t, v.ID); len(got.OfferedMitraIDs) != 1 || got.NextBatchAt == nil {
		t.Fatalf("nobody new: %+v, want one offer and a next batch", got)
	}
	late := f.onlineMitra(t, 1) // comes online at 45 s: the 60 s batch would be at the deadline
	ms = append(ms, late)
	f.heartbeatAll(t, ms)
	f.advance(t, batchEvery)
	got, err := f.svc.Get(ctx, c, v.ID)
	if err != nil || got.Status != "unmatched" {
		t.Fatalf("at the pairing timeout: %+v, %v; want unmatched", got, err)
	}
	if n := len(f.bus.of(ports.EventSessionOffer, late.UserID)); n != 0 {
		t.Fatalf("a batch was offered at the pairing deadline: %d offers", n)
	}
	if s := f.stored(t, v.ID); s.NextBatchAt != nil {
		t.Fatalf("ended session keeps next batch at %v", s.NextBatchAt)
	}
	if _, err := f.svc.Accept(ctx, ms[0].UserID, v.ID); err == nil {
		t.Fatal("accepted an unmatched session")
	}
}

// Several instances firing the same due batch add it once.
func TestBatchTimerFiresOnceAcrossInstances(t *testing.T) {
	f := routed(t, sessions.LongestIdle{Batch: 1})
	ctx := context.Background()
	var ms []auth.Principal
	for range 6 {
		ms = append(ms, f.onlineMitra(t, 1))
		f.clock.Advance(time.Second)
	}
	c := f.customer(t)
	v, err := f.svc.Request(ctx, c.UserID, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(batchEvery)
	instances := []*sessions.Service{f.svc}
	for range 4 {
		instances = append(instances, f.service(t, sessions.LongestIdle{Batch: 1}))
	}
	var wg sync.WaitGroup
	fired := make([]int, len(instances))
	for i, svc := range instances {
		wg.Go(func() {
			n, err := svc.FireDue(ctx)
			if err != nil {
				t.Error(err)
			}
			fired[i] = n
		})
	}
	wg.Wait()
	total := 0
	for _, n := range fired {
		total += n
	}
	if total != 1 {
		t.Fatalf("the batch fired %d times across %d instances, want 1", total, len(instances))
	}
	if got := f.offered(v.ID, ms); !slices.Equal(got, ids(ms[:2]...)) {
		t.Fatalf("offers %v, want the first two once each", got)
	}
}

// A reroute of a batched search starts over with a first batch, never the released mitra.
func TestRerouteStartsANewFirstBatch(t *testing.T) {
	f := routed(t, sessions.LongestIdle{Batch: 2})
	ctx := context.Background()
	var ms []auth.Principal
	for range 4 {
		ms = append(ms, f.onlineMitra(t, 1))
		f.clock.Advance(time.Second)
	}
	c := f.customer(t)
	v, err := f.svc.Request(ctx, c.UserID, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Accept(ctx, ms[0].UserID, v.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Reroute(ctx, c.UserID, v.ID); err != nil {
		t.Fatal(err)
	}
	s := f.stored(t, v.ID)
	if want := ids(ms[1], ms[2]); !slices.Equal(s.OfferedMitraIDs, want) || s.BatchStart != 0 || s.NextBatchAt == nil {
		t.Fatalf("after the reroute: offered %v batch start %d next %v; want %v, 0, set", s.OfferedMitraIDs, s.BatchStart, s.NextBatchAt, want)
	}
	if _, err := f.svc.Accept(ctx, ms[0].UserID, v.ID); err == nil || !isForbidden(err) {
		t.Fatalf("the released mitra accepts again: %v, want forbidden", err)
	}
}

func isForbidden(err error) bool { return errors.Is(err, core.ErrForbidden) }
