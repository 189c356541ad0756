package sessions_test

import (
	"context"
	"errors"
	"testing"

	"github.com/halobestie/mitra-availability/core"
	"github.com/halobestie/mitra-availability/ports"
)

// docs/contract.md §11: an offered mitra declines; it is never offered the session
// again and cannot accept it; the other offers stand; 403 for a mitra never
// offered it, 409 invalid_state once the session is not searching.
func TestDeclineRules(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c := f.customer(t)
	m1 := f.onlineMitra(t, 1)
	m2 := f.onlineMitra(t, 1)
	v, err := f.svc.Request(ctx, c.UserID, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	late := f.onlineMitra(t, 1) // online after the request: never offered it

	if err := f.svc.Decline(ctx, m1.UserID, v.ID); err != nil {
		t.Fatalf("decline: %v", err)
	}
	if err := f.svc.Decline(ctx, m1.UserID, v.ID); err != nil {
		t.Fatalf("repeated decline: %v, want nil (nothing changes)", err)
	}
	if _, err := f.svc.Accept(ctx, m1.UserID, v.ID); !errors.Is(err, core.ErrForbidden) {
		t.Fatalf("accept after decline: %v, want ErrForbidden", err)
	}
	if err := f.svc.Decline(ctx, late.UserID, v.ID); !errors.Is(err, core.ErrForbidden) {
		t.Fatalf("decline by a mitra never offered: %v, want ErrForbidden", err)
	}
	if err := f.svc.Decline(ctx, m1.UserID, "00000000-0000-4000-8000-000000000000"); !errors.Is(err, ports.ErrNotFound) {
		t.Fatalf("decline of an unknown session: %v, want ErrNotFound", err)
	}
	got, err := f.svc.Get(ctx, c, v.ID)
	if err != nil || got.Status != "searching" {
		t.Fatalf("after the declines: %+v, %v; want still searching", got, err)
	}

	// The other offer stands.
	if _, err := f.svc.Accept(ctx, m2.UserID, v.ID); err != nil {
		t.Fatalf("accept by the other offered mitra: %v", err)
	}
	for _, m := range []string{m1.UserID, m2.UserID} {
		if err := f.svc.Decline(ctx, m, v.ID); !errors.Is(err, core.ErrInvalidState) {
			t.Fatalf("decline once not searching: %v, want ErrInvalidState", err)
		}
	}

	// A reroute searches again among the available mitras: never m1, which declined.
	if _, err := f.svc.Reroute(ctx, c.UserID, v.ID); err != nil {
		t.Fatal(err)
	}
	if n := len(f.bus.of(ports.EventSessionOffer, m1.UserID)); n != 1 {
		t.Fatalf("offers to the declining mitra: %d, want the first one only", n)
	}
	if n := len(f.bus.of(ports.EventSessionOffer, late.UserID)); n != 1 {
		t.Fatalf("offers to the mitra that came online later: %d, want 1 (the reroute)", n)
	}
	if _, err := f.svc.Accept(ctx, m1.UserID, v.ID); !errors.Is(err, core.ErrForbidden) {
		t.Fatalf("accept by the declining mitra after the reroute: %v, want ErrForbidden", err)
	}
	if _, err := f.svc.Accept(ctx, late.UserID, v.ID); err != nil {
		t.Fatalf("accept by the newly offered mitra: %v", err)
	}
}

// A declined search still ends as unmatched at its pairing timeout.
func TestDeclinedSearchTimesOut(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c := f.customer(t)
	m := f.onlineMitra(t, 1)
	v, err := f.svc.Request(ctx, c.UserID, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Decline(ctx, m.UserID, v.ID); err != nil {
		t.Fatal(err)
	}
	f.advance(t, pairing)
	got, err := f.svc.Get(ctx, c, v.ID)
	if err != nil || got.Status != "unmatched" || got.EndReason == nil || *got.EndReason != "unmatched" {
		t.Fatalf("after the pairing timeout: %+v, %v", got, err)
	}
	if err := f.svc.Decline(ctx, m.UserID, v.ID); !errors.Is(err, core.ErrInvalidState) {
		t.Fatalf("decline after the end: %v, want ErrInvalidState", err)
	}
}
