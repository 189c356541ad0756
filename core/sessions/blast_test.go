package sessions_test

import (
	"context"
	"log/slog"
	"slices"
	"testing"

	"github.com/halobestie/mitra-availability/core/sessions"
	"github.com/halobestie/mitra-availability/ports"
)

func cands(ids ...string) []ports.Candidate {
	out := make([]ports.Candidate, len(ids))
	for i, id := range ids {
		out[i] = ports.Candidate{ID: id}
	}
	return out
}

func TestBlastChoose(t *testing.T) {
	ids := []string{"a", "b", "c", "d", "e"}
	if got, batch := (sessions.Blast{}).Choose(cands(ids...)); !slices.Equal(got, ids) || batch != 0 {
		t.Errorf("no limit: %v batch %d, want all at once", got, batch)
	}
	if order, limit := (sessions.Blast{Limit: 7}).Read(); order != ports.OrderRandom || limit != 7 {
		t.Errorf("Read = %v, %d; want a random sample of 7", order, limit)
	}
	if got, _ := (sessions.Blast{Limit: 5}).Choose(cands(ids...)); len(got) != 5 {
		t.Errorf("limit = len: %v, want all", got)
	}
	seen := map[string]int{}
	for range 200 {
		got, _ := (sessions.Blast{Limit: 2}).Choose(cands(ids...))
		if len(got) != 2 || got[0] == got[1] || !slices.Contains(ids, got[0]) || !slices.Contains(ids, got[1]) {
			t.Fatalf("limit 2: %v, want two distinct of %v", got, ids)
		}
		for _, id := range got {
			seen[id]++
		}
	}
	// Chosen at random: each of the five is picked about 80 times in 200 draws of 2.
	for _, id := range ids {
		if seen[id] < 40 {
			t.Errorf("mitra %s chosen %d times in 200 draws of 2 of 5, want about 80: %v", id, seen[id], seen)
		}
	}
}

// BLAST_LIMIT (docs/contract.md §11): a request and a reroute are offered to at most
// that many available mitras, never to an excluded one.
func TestBlastLimitOffers(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	svc, err := sessions.NewService(f.store, f.mitras, f.bus, f.clock, slog.New(slog.DiscardHandler),
		sessions.Config{PairingTimeout: pairing, PaymentTimeout: payment, WarningLead: lead, Router: sessions.Blast{Limit: 2}})
	if err != nil {
		t.Fatal(err)
	}
	var mitraIDs []string
	for range 5 {
		mitraIDs = append(mitraIDs, f.onlineMitra(t, 1).UserID)
	}
	offeredTo := func(sessionID string) []string {
		var out []string
		for _, id := range mitraIDs {
			for _, e := range f.bus.of(ports.EventSessionOffer, id) {
				if e["session_id"] == sessionID {
					out = append(out, id)
				}
			}
		}
		return out
	}
	c := f.customer(t)
	v, err := svc.Request(ctx, c.UserID, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	first := offeredTo(v.ID)
	if len(first) != 2 {
		t.Fatalf("offered to %v, want 2 mitras", first)
	}
	// Accepted, then rerouted: two others, never the released one.
	if _, err := svc.Accept(ctx, first[0], v.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Reroute(ctx, c.UserID, v.ID); err != nil {
		t.Fatal(err)
	}
	// One entry per offer event: the first two, then two of the four others than the released one.
	if all := offeredTo(v.ID); len(all) != 4 {
		t.Fatalf("offers after the reroute: %v, want the first two plus two more", all)
	}
	if n := len(f.bus.of(ports.EventSessionOffer, first[0])); n != 1 {
		t.Fatalf("the released mitra got %d offers, want 1", n)
	}
}
