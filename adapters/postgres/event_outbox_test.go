package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/halobestie/mitra-availability/adapters/postgres"
	"github.com/halobestie/mitra-availability/adapters/postgres/pgtest"
	"github.com/halobestie/mitra-availability/ports"
)

// publisher records what a store publishes.
type publisher struct {
	mu     sync.Mutex
	events []ports.Event
}

func (p *publisher) publish(_ context.Context, e ports.Event) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, e)
	return nil
}

func (p *publisher) all() []ports.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.events)
}

// TestOutboxTwoInstances runs transitions on two stores over one database
// (two instances) at once: every event gets, per recipient, the next id
// without a gap, and reaches exactly one of its transition's caller (its
// Seqs) or the publisher of the instance that sequenced it; the outbox ends
// empty.
func TestOutboxTwoInstances(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDB(t)
	stores := []*postgres.Store{newStore(t, db), newStore(t, db)}
	pubs := []*publisher{{}, {}}
	for i, s := range stores {
		s.SetPublisher(pubs[i].publish)
	}
	ctx := t.Context()
	customer, err := stores[0].CreateUser(ctx, ports.NewUser{Role: ports.RoleCustomer, Phone: "+6281100000001", DisplayName: "C", PasswordHash: "h"})
	if err != nil {
		t.Fatal(err)
	}
	users := []string{customer.ID, uuid.NewString(), uuid.NewString()} // recipients need not be users
	sess, err := stores[0].CreateSession(ctx, ports.Session{CustomerID: customer.ID, Status: ports.StatusSearching,
		DurationMinutes: 30, SearchingSince: time.Now()}, nil)
	if err != nil {
		t.Fatal(err)
	}

	const perWorker, workers = 15, 4
	var mu sync.Mutex
	var withSeqs []ports.Event
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			s := stores[w%2]
			for n := range perWorker {
				var emitted []*ports.Event
				_, err := s.UpdateSession(ctx, sess.ID, func(_ context.Context, tx ports.SessionTx, _ *ports.Session) error {
					e := &ports.Event{Type: "t", UserIDs: users, At: time.Now(),
						Payload: json.RawMessage(fmt.Sprintf(`{"type":"t","w":%d,"n":%d}`, w, n))}
					tx.Emit(e)
					emitted = append(emitted, e)
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, e := range emitted {
					if e.Logged() {
						withSeqs = append(withSeqs, *e)
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, s := range stores {
		if err := s.SequencePending(ctx); err != nil {
			t.Fatal(err)
		}
	}

	seen := map[string]int{}
	all := append(slices.Clone(withSeqs), append(pubs[0].all(), pubs[1].all()...)...)
	for _, e := range all {
		if !e.Logged() {
			t.Fatalf("published without ids: %+v", e)
		}
		seen[string(e.Payload)]++
	}
	if len(seen) != perWorker*workers {
		t.Errorf("%d distinct events reached a caller or a publisher, want %d", len(seen), perWorker*workers)
	}
	for p, n := range seen {
		if n != 1 {
			t.Errorf("event %s handed over %d times", p, n)
		}
	}
	for _, u := range users {
		evs, err := stores[1].EventsAfter(ctx, u, 0, 500)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != perWorker*workers {
			t.Fatalf("user %s has %d events, want %d", u, len(evs), perWorker*workers)
		}
		for i, e := range evs {
			if e.Seq != int64(i+1) {
				t.Fatalf("user %s: event %d has id %d", u, i, e.Seq)
			}
		}
	}
	var left int
	if err := db.NewRaw(`SELECT count(*) FROM event_outbox`).Scan(ctx, &left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Errorf("%d events left in the outbox", left)
	}
}

// TestOutboxLeftOver: an event committed to the outbox but not sequenced
// (its instance died after the commit) is sequenced by SequencePending and
// published with its ids.
func TestOutboxLeftOver(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDB(t)
	s := newStore(t, db)
	var pub publisher
	s.SetPublisher(pub.publish)
	ctx := t.Context()
	u := uuid.NewString()
	// A repeated recipient is deduped when sequenced.
	if _, err := db.NewRaw(`INSERT INTO event_outbox (type, at, payload, user_ids) VALUES ('t', now(), '{"type":"t"}', ARRAY[?::uuid, ?::uuid])`,
		u, u).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.SequencePending(ctx); err != nil {
		t.Fatal(err)
	}
	got := pub.all()
	if len(got) != 1 || !slices.Equal(got[0].UserIDs, []string{u}) || !slices.Equal(got[0].Seqs, []int64{1}) {
		t.Fatalf("published %+v, want one event for %s with id 1", got, u)
	}
	evs, err := s.EventsAfter(ctx, u, 0, 10)
	if err != nil || len(evs) != 1 || string(evs[0].Payload) != `{"type":"t"}` {
		t.Fatalf("log %+v, %v", evs, err)
	}
	if err := s.SequencePending(ctx); err != nil || len(pub.all()) != 1 {
		t.Fatalf("a second SequencePending published again (%v)", err)
	}
}
