package porttest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/ports"
)

// emitIn runs one transaction on session id that emits events and returns
// them with their ids.
func emitIn(t *testing.T, st Stores, id string, events ...ports.Event) []ports.Event {
	t.Helper()
	ptrs := make([]*ports.Event, len(events))
	_, err := st.Sessions.UpdateSession(t.Context(), id, func(_ context.Context, tx ports.SessionTx, _ *ports.Session) error {
		for i := range events {
			ptrs[i] = &events[i]
			tx.Emit(ptrs[i])
		}
		return nil
	})
	if err != nil {
		t.Fatalf("emitting in session %s: %v", id, err)
	}
	return events
}

func ev(typ string, n int, at time.Time, users ...string) ports.Event {
	return ports.Event{Type: typ, UserIDs: users, At: at,
		Payload: json.RawMessage(fmt.Sprintf(`{"type":%q,"n":%d,"text":"<&>"}`, typ, n))}
}

func eventsAfter(t *testing.T, st Stores, user string, after int64, limit int) []ports.LoggedEvent {
	t.Helper()
	got, err := st.Events.EventsAfter(t.Context(), user, after, limit)
	if err != nil {
		t.Fatalf("EventsAfter(%s, %d): %v", user, after, err)
	}
	return got
}

func seqs(evs []ports.LoggedEvent) []int64 {
	out := []int64{}
	for _, e := range evs {
		out = append(out, e.Seq)
	}
	return out
}

// RunEventLogSuite checks the event log: ids per recipient, the outbox
// (logged exactly when the transaction commits), reads, gone, pruning, and
// concurrent writers.
func RunEventLogSuite(t *testing.T, f Factory) {
	parallel(t, "IdsPerRecipient", f, func(t *testing.T, st Stores) {
		a, b := newCustomer(t, st), newCustomer(t, st)
		s := createSession(t, st, a.ID, nil)
		got := emitIn(t, st, s.ID,
			ev("one", 1, t0, a.ID, b.ID, a.ID), // a repeated user gets it once
			ev("two", 2, at(time.Second), b.ID))
		if !slices.Equal(got[0].UserIDs, []string{a.ID, b.ID}) || !slices.Equal(got[0].Seqs, []int64{1, 1}) {
			t.Errorf("first event: users %v ids %v, want [a b] [1 1]", got[0].UserIDs, got[0].Seqs)
		}
		if !slices.Equal(got[1].Seqs, []int64{2}) {
			t.Errorf("second event ids %v, want [2]", got[1].Seqs)
		}
		all := eventsAfter(t, st, b.ID, 0, 10)
		if !slices.Equal(seqs(all), []int64{1, 2}) {
			t.Fatalf("b's stream %v, want [1 2]", seqs(all))
		}
		e := all[0]
		if e.UserID != b.ID || e.Type != "one" || string(e.Payload) != `{"type":"one","n":1,"text":"<&>"}` || !e.At.Equal(pgTime(t0)) {
			t.Errorf("logged event %+v (payload %s)", e, e.Payload)
		}
		if got := eventsAfter(t, st, b.ID, 1, 10); !slices.Equal(seqs(got), []int64{2}) {
			t.Errorf("after 1: %v, want [2]", seqs(got))
		}
		if got := eventsAfter(t, st, b.ID, 0, 1); !slices.Equal(seqs(got), []int64{1}) {
			t.Errorf("limit 1: %v, want [1]", seqs(got))
		}
		if got := eventsAfter(t, st, b.ID, 2, 10); len(got) != 0 {
			t.Errorf("after the newest: %v, want none", seqs(got))
		}
		heads, err := st.Events.Heads(t.Context(), []string{a.ID, b.ID, randomUUID(t), "bad"})
		if err != nil {
			t.Fatal(err)
		}
		if len(heads) != 2 || heads[a.ID] != 1 || heads[b.ID] != 2 {
			t.Errorf("heads %v, want a:1 b:2", heads)
		}
	})

	parallel(t, "EventsAfterEach", f, func(t *testing.T, st Stores) {
		a, b, c := newCustomer(t, st), newCustomer(t, st), newCustomer(t, st)
		s := createSession(t, st, a.ID, nil)
		for i := range 3 {
			emitIn(t, st, s.ID, ev("e", i, at(time.Duration(i)*time.Second), a.ID, b.ID))
		}
		emitIn(t, st, s.ID, ev("b-only", 9, at(time.Minute), b.ID))
		got, err := st.Events.EventsAfterEach(t.Context(), map[string]int64{a.ID: 1, b.ID: 0, c.ID: 0, "bad": 0}, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || !slices.Equal(seqs(got[a.ID]), []int64{2, 3}) || !slices.Equal(seqs(got[b.ID]), []int64{1, 2, 3}) {
			t.Fatalf("EventsAfterEach = a %v b %v (%d users), want a [2 3], b [1 2 3] (limit 3), nobody else", seqs(got[a.ID]), seqs(got[b.ID]), len(got))
		}
		if e := got[a.ID][0]; e.UserID != a.ID || e.Type != "e" || string(e.Payload) != `{"type":"e","n":1,"text":"<&>"}` {
			t.Errorf("event %+v (payload %s)", e, e.Payload)
		}
		if got, err := st.Events.EventsAfterEach(t.Context(), map[string]int64{b.ID: 4}, 10); err != nil || len(got) != 0 {
			t.Errorf("after the newest = %v, %v; want none", got, err)
		}
	})

	parallel(t, "Outbox", f, func(t *testing.T, st Stores) {
		a := newCustomer(t, st)
		s := createSession(t, st, a.ID, nil)
		boom := errors.New("boom")
		_, err := st.Sessions.UpdateSession(t.Context(), s.ID, func(_ context.Context, tx ports.SessionTx, _ *ports.Session) error {
			e := ev("rolled-back", 1, t0, a.ID)
			tx.Emit(&e)
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("UpdateSession = %v", err)
		}
		var created ports.Event
		c := newCustomer(t, st)
		sess, err := st.Sessions.CreateSession(t.Context(), ports.Session{
			CustomerID: c.ID, Status: ports.StatusSearching, DurationMinutes: 30, SearchingSince: t0,
		}, func(_ context.Context, tx ports.SessionTx, x ports.Session) error {
			if x.ID == "" {
				t.Error("fn got a session without its id")
			}
			created = ev("created", 1, t0, a.ID)
			tx.Emit(&created)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(created.Seqs, []int64{1}) {
			t.Errorf("created event ids %v, want [1] (the rolled-back one took none)", created.Seqs)
		}
		if got := eventsAfter(t, st, a.ID, 0, 10); len(got) != 1 || got[0].Type != "created" {
			t.Errorf("a's stream %+v, want only the created event", got)
		}
		// A failed create logs nothing and creates nothing.
		d := newCustomer(t, st)
		_, err = st.Sessions.CreateSession(t.Context(), ports.Session{
			CustomerID: d.ID, Status: ports.StatusSearching, DurationMinutes: 30, SearchingSince: t0,
		}, func(_ context.Context, tx ports.SessionTx, _ ports.Session) error {
			e := ev("never", 2, t0, a.ID)
			tx.Emit(&e)
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("CreateSession with a failing fn = %v", err)
		}
		if got := eventsAfter(t, st, a.ID, 0, 10); len(got) != 1 {
			t.Errorf("a's stream after a failed create: %v", seqs(got))
		}
		if list, err := st.Sessions.SessionsOf(t.Context(), d.ID, 10); err != nil || len(list) != 0 {
			t.Errorf("sessions of d after a failed create: %v, %v", list, err)
		}
		if got, err := st.Sessions.Session(t.Context(), sess.ID); err != nil || got.CustomerID != c.ID {
			t.Errorf("the created session: %+v, %v", got, err)
		}
	})

	parallel(t, "Gone", f, func(t *testing.T, st Stores) {
		a := newCustomer(t, st)
		s := createSession(t, st, a.ID, nil)
		for i := range 5 {
			emitIn(t, st, s.ID, ev("e", i, at(time.Duration(i)*time.Hour), a.ID))
		}
		wantGone := func(after int64) {
			t.Helper()
			if _, err := st.Events.EventsAfter(t.Context(), a.ID, after, 10); !errors.Is(err, ports.ErrEventsGone) {
				t.Errorf("EventsAfter(%d) = %v, want ErrEventsGone", after, err)
			}
		}
		wantGone(6)                                                        // never issued
		n, err := st.Events.PruneEvents(t.Context(), at(2*time.Hour), 100) // removes 1 and 2
		if err != nil || n != 2 {
			t.Fatalf("PruneEvents = %d, %v; want 2", n, err)
		}
		wantGone(1)
		if got := eventsAfter(t, st, a.ID, 2, 10); !slices.Equal(seqs(got), []int64{3, 4, 5}) {
			t.Errorf("after 2 (its own event pruned, none after it) = %v, want [3 4 5]", seqs(got))
		}
		if got := eventsAfter(t, st, a.ID, 0, 10); !slices.Equal(seqs(got), []int64{3, 4, 5}) {
			t.Errorf("after 0 = %v, want the oldest kept on", seqs(got))
		}
		if n, err := st.Events.PruneEvents(t.Context(), at(time.Hour*10), 1); err != nil || n != 1 {
			t.Errorf("PruneEvents limit 1 = %d, %v", n, err)
		}
		if n, err := st.Events.PruneEvents(t.Context(), at(time.Hour*10), 100); err != nil || n != 2 {
			t.Errorf("PruneEvents rest = %d, %v", n, err)
		}
		if got := eventsAfter(t, st, a.ID, 5, 10); len(got) != 0 {
			t.Errorf("after the newest with everything pruned = %v, want none", seqs(got))
		}
		wantGone(4)
		// The ids go on from where they were.
		got := emitIn(t, st, s.ID, ev("e", 6, at(11*time.Hour), a.ID))
		if !slices.Equal(got[0].Seqs, []int64{6}) {
			t.Errorf("next id after pruning %v, want [6]", got[0].Seqs)
		}
	})

	parallel(t, "ConcurrentWritersNoGapNoDeadlock", f, func(t *testing.T, st Stores) {
		users := []string{newCustomer(t, st).ID, newCustomer(t, st).ID, newCustomer(t, st).ID}
		const n = 12
		sessions := make([]string, n)
		for i := range n {
			sessions[i] = createSession(t, st, newCustomer(t, st).ID, nil).ID
		}
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				// Each transaction emits two events whose users come in a
				// different order, the pattern that deadlocks without a
				// fixed lock order.
				_, errs[i] = st.Sessions.UpdateSession(context.Background(), sessions[i], func(_ context.Context, tx ports.SessionTx, _ *ports.Session) error {
					x := ev("x", i, t0, users[i%3], users[(i+1)%3])
					y := ev("y", i, t0, users[(i+2)%3], users[i%3])
					tx.Emit(&x)
					tx.Emit(&y)
					return nil
				})
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("writer %d: %v", i, err)
			}
		}
		for _, u := range users {
			got := seqs(eventsAfter(t, st, u, 0, 100))
			want := []int64{}
			for k := range int64(len(got)) {
				want = append(want, k+1)
			}
			if len(got) != 2*n*2/3 || !slices.Equal(got, want) {
				t.Errorf("stream of %s = %v, want 1..%d without a gap", u, got, 2*n*2/3)
			}
		}
	})
}
