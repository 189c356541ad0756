package sessions_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/adapters/memory"
	"github.com/halobestie/mitra-availability/core"
	"github.com/halobestie/mitra-availability/core/sessions"
	"github.com/halobestie/mitra-availability/ports"
)

// gatedStore counts the queue passes and holds the first one until
// released, as a pass that waits on the queue lock would be held.
type gatedStore struct {
	*memory.Store
	passes  atomic.Int32
	entered chan struct{}
	release chan struct{}
}

func (g *gatedStore) QueuePass(ctx context.Context, fn func(ctx context.Context, tx ports.QueueTx) error) error {
	if g.passes.Add(1) == 1 {
		close(g.entered)
		<-g.release
	}
	return g.Store.QueuePass(ctx, fn)
}

// TestQueuePassesAreBatchedPerInstance: the requests that arrive while an
// instance's pass runs are served together by its next pass, each with its
// own answer, the queue's order kept.
func TestQueuePassesAreBatchedPerInstance(t *testing.T) {
	f := newFixture(t)
	m := f.onlineMitra(t, 1)
	g := &gatedStore{Store: f.store, entered: make(chan struct{}), release: make(chan struct{})}
	svc, err := sessions.NewService(g, f.mitras, f.bus, f.clock, slog.New(slog.DiscardHandler),
		sessions.Config{PairingTimeout: pairing, PaymentTimeout: payment, WarningLead: lead})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	first := f.customer(t)
	others := make([]string, 5)
	for i := range others {
		others[i] = f.customer(t).UserID
	}
	// The first request's pass is held: it offers the one free slot.
	firstDone := make(chan sessions.View, 1)
	go func() {
		v, err := svc.RequestQueue(ctx, first.UserID, 10)
		if err != nil {
			t.Error(err)
		}
		firstDone <- v
	}()
	<-g.entered

	// Five more arrive one after the other while it is held, and one
	// customer asks twice: they all wait for the next pass.
	views := make([]sessions.View, len(others))
	errs := make([]error, len(others)+1)
	var wg sync.WaitGroup
	for i, c := range others {
		wg.Go(func() { views[i], errs[i] = svc.RequestQueue(ctx, c, 10) })
		waitFor(t, func() bool { return svc.PendingJobs() == i+1 })
	}
	wg.Go(func() { _, errs[len(others)] = svc.RequestQueue(ctx, others[0], 10) })
	waitFor(t, func() bool { return svc.PendingJobs() == len(others)+1 })
	close(g.release)
	wg.Wait()
	v0 := <-firstDone

	if n := g.passes.Load(); n != 2 {
		t.Fatalf("%d queue passes for 7 requests arriving during one pass, want 2", n)
	}
	var offers []string
	for _, e := range f.bus.of(ports.EventSessionOffer, m.UserID) {
		offers = append(offers, e["session_id"].(string))
	}
	if len(offers) != 1 || offers[0] != v0.ID || v0.QueuePosition != nil {
		t.Fatalf("offers to the free mitra %v, first request %s at position %v; want the first offered at once, alone", offers, v0.ID, v0.QueuePosition)
	}
	for i, v := range views {
		if errs[i] != nil {
			t.Fatalf("request %d: %v", i, errs[i])
		}
		if v.QueuePosition == nil || *v.QueuePosition != i+1 {
			t.Fatalf("request %d: position %v; want %d, the arrival order", i, v.QueuePosition, i+1)
		}
	}
	if !errors.Is(errs[len(others)], core.ErrOpenSessionExists) {
		t.Fatalf("second request of one customer in the same pass: %v, want ErrOpenSessionExists", errs[len(others)])
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5 s")
		}
		time.Sleep(time.Millisecond)
	}
}
