package porttest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/ports"
)

// queueEntry is a queue entry of priority 0 queued at at(d), expiring an hour later.
func queueEntry(d time.Duration) *ports.QueueEntry {
	return &ports.QueueEntry{QueuedAt: at(d), ExpiresAt: at(d + time.Hour)}
}

// queuedSession creates a waiting session (no offer) of a new customer, queued at at(d).
func queuedSession(t *testing.T, st Stores, d time.Duration, edit func(*ports.Session)) ports.Session {
	t.Helper()
	return createSession(t, st, newCustomer(t, st).ID, func(s *ports.Session) {
		s.OfferExpiresAt = nil
		s.Queue = queueEntry(d)
		if edit != nil {
			edit(s)
		}
	})
}

func sessionIDs(ss []ports.Session) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.ID
	}
	return out
}

// waitingIDs reads the queue's head in a pass that changes nothing.
func waitingIDs(t *testing.T, st Stores, limit int) []string {
	t.Helper()
	var ids []string
	err := st.Sessions.QueuePass(t.Context(), func(ctx context.Context, tx ports.QueueTx) error {
		w, err := tx.Waiting(ctx, limit)
		ids = sessionIDs(w)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func freeSlots(t *testing.T, st Stores, ids ...string) int {
	t.Helper()
	var n int
	err := st.Sessions.QueuePass(t.Context(), func(ctx context.Context, tx ports.QueueTx) error {
		var err error
		n, err = tx.FreeSlots(ctx, ids)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// dispatchPass does what core's dispatcher does in one pass: count the free
// slots among mitraIDs, offer that many waiting sessions in the queue's
// order (to every one of mitraIDs), and log an offer event for each. It
// returns the sessions it offered.
func dispatchPass(ctx context.Context, st Stores, mitraIDs []string, now time.Time) ([]string, error) {
	var offered []string
	err := st.Sessions.QueuePass(ctx, func(ctx context.Context, tx ports.QueueTx) error {
		offered = nil
		slots, err := tx.FreeSlots(ctx, mitraIDs)
		if err != nil || slots <= 0 {
			return err
		}
		waiting, err := tx.Waiting(ctx, slots)
		if err != nil {
			return err
		}
		for _, s := range waiting {
			s.OfferedMitraIDs = slices.Clone(mitraIDs)
			s.OfferExpiresAt = ptr(now.Add(time.Minute))
			if err := tx.Save(ctx, s); err != nil {
				return err
			}
			tx.Emit(&ports.Event{Type: ports.EventSessionOffer, UserIDs: mitraIDs, Payload: []byte(`{"type":"session_offer"}`), At: now})
			offered = append(offered, s.ID)
		}
		return nil
	})
	return offered, err
}

// RunQueueSuite checks the waiting queue of a ports.SessionStore
// (docs/contract.md §10): the entry and its key, the queue's order, the
// position count, the queue timer, the free slots, the pass's atomicity,
// and passes racing with capacity arrivals.
func RunQueueSuite(t *testing.T, f Factory) {
	parallel(t, "EntryRoundTripAndSequence", f, func(t *testing.T, st Stores) {
		a := queuedSession(t, st, 0, nil)
		b := queuedSession(t, st, 0, nil)
		if a.Queue == nil || b.Queue == nil || a.Queue.Seq <= 0 || b.Queue.Seq <= a.Queue.Seq {
			t.Fatalf("sequences: %+v then %+v; want positive and increasing", a.Queue, b.Queue)
		}
		want := a
		want.Queue = &ports.QueueEntry{QueuedAt: at(0), ExpiresAt: at(time.Hour), Seq: a.Queue.Seq}
		checkSession(t, "read back", getSession(t, st, a.ID), want)

		// A write keeps the sequence, and may set the other fields.
		got := updateSession(t, st, a.ID, func(s *ports.Session) {
			s.Queue.Seq = 999999
			s.Queue.Priority = 3
			s.Queue.MatchedAt = ptr(at(time.Second))
			s.Queue.NotifiedPosition, s.Queue.NotifiedAt = ptr(7), ptr(at(2*time.Second))
		})
		want.Queue.Priority, want.Queue.MatchedAt = 3, ptr(at(time.Second))
		want.Queue.NotifiedPosition, want.Queue.NotifiedAt = ptr(7), ptr(at(2*time.Second))
		checkSession(t, "after update", got, want)
		checkSession(t, "read after update", getSession(t, st, a.ID), want)

		// An entry cannot be added to a session created without one, nor dropped.
		plain := createSession(t, st, newCustomer(t, st).ID, nil)
		if _, err := st.Sessions.UpdateSession(t.Context(), plain.ID, func(_ context.Context, _ ports.SessionTx, s *ports.Session) error {
			s.Queue = queueEntry(0)
			return nil
		}); err == nil {
			t.Error("adding a queue entry in an update succeeded")
		}
		if _, err := st.Sessions.UpdateSession(t.Context(), b.ID, func(_ context.Context, _ ports.SessionTx, s *ports.Session) error {
			s.Queue = nil
			return nil
		}); err == nil {
			t.Error("dropping a queue entry in an update succeeded")
		}
		if getSession(t, st, b.ID).Queue == nil {
			t.Error("a refused update dropped the entry")
		}
	})

	parallel(t, "OrderPositionStatsAndTimer", f, func(t *testing.T, st Stores) {
		ctx := t.Context()
		if ok, err := st.Sessions.HasWaiting(ctx); err != nil || ok {
			t.Fatalf("HasWaiting on an empty store = %v, %v", ok, err)
		}
		late := queuedSession(t, st, 2*time.Second, nil)
		first := queuedSession(t, st, time.Second, nil)
		sameInstant := queuedSession(t, st, time.Second, nil) // same queued_at: after first by sequence
		urgent := queuedSession(t, st, 5*time.Second, func(s *ports.Session) { s.Queue.Priority = 1 })
		// Not waiting: offered, matched, ended, not queued.
		offered := queuedSession(t, st, 0, func(s *ports.Session) { s.OfferExpiresAt = ptr(at(time.Minute)) })
		queuedSession(t, st, 0, func(s *ports.Session) { s.Queue.MatchedAt = ptr(at(0)) })
		queuedSession(t, st, 0, func(s *ports.Session) {
			s.Status, s.EndReason, s.EndedAt = ports.StatusCancelled, ptr(ports.EndCancelledByCustomer), ptr(at(0))
		})
		plain := createSession(t, st, newCustomer(t, st).ID, nil)

		order := []string{urgent.ID, first.ID, sameInstant.ID, late.ID}
		if got := waitingIDs(t, st, 10); !slices.Equal(got, order) {
			t.Fatalf("Waiting = %v, want %v (priority, queued_at, sequence)", got, order)
		}
		if got := waitingIDs(t, st, 2); !slices.Equal(got, order[:2]) {
			t.Fatalf("Waiting(2) = %v, want %v", got, order[:2])
		}
		for i, id := range order {
			n, err := st.Sessions.QueueAhead(ctx, *getSession(t, st, id).Queue)
			if err != nil || n != i {
				t.Errorf("QueueAhead of #%d = %d, %v; want %d", i, n, err, i)
			}
		}
		if ok, err := st.Sessions.HasWaiting(ctx); err != nil || !ok {
			t.Fatalf("HasWaiting = %v, %v; want true", ok, err)
		}
		stats, err := st.Sessions.QueueStats(ctx, at(-time.Second))
		if err != nil || stats.Waiting != 4 || stats.OldestQueuedAt == nil || !stats.OldestQueuedAt.Equal(pgTime(at(time.Second))) || stats.MatchedSince != 1 {
			t.Fatalf("QueueStats = %+v, %v; want 4 waiting, the oldest queued at +1s, 1 matched", stats, err)
		}
		if stats, _ := st.Sessions.QueueStats(ctx, at(time.Second)); stats.MatchedSince != 0 {
			t.Errorf("QueueStats since after the match: %d matched, want 0", stats.MatchedSince)
		}

		// The queue timer: each waiting session at its ExpiresAt; none for
		// the offered one (its pairing deadline instead).
		byID := func(kind ports.TimerKind, when time.Time, ids ...string) []ports.DueTimer {
			slices.Sort(ids)
			out := []ports.DueTimer{}
			for _, id := range ids {
				out = append(out, ports.DueTimer{SessionID: id, Kind: kind, At: when})
			}
			return out
		}
		checkDue(t, st, at(time.Hour+time.Second), 10, append(
			byID(ports.TimerPairing, at(time.Minute), offered.ID, plain.ID),
			byID(ports.TimerQueue, at(time.Hour+time.Second), first.ID, sameInstant.ID)...))
		checkNext(t, st, at(time.Minute), true)
	})

	parallel(t, "BusyOfferedAndAhead", f, func(t *testing.T, st Stores) {
		ctx := t.Context()
		busy := func(want bool) {
			t.Helper()
			if got, err := st.Sessions.QueueBusy(ctx); err != nil || got != want {
				t.Fatalf("QueueBusy = %v, %v; want %v", got, err, want)
			}
		}
		busy(false)
		offered := func(notified *int, d time.Duration) ports.Session {
			return queuedSession(t, st, d, func(s *ports.Session) {
				s.OfferExpiresAt = ptr(at(time.Minute))
				s.Queue.NotifiedPosition = notified
			})
		}
		offered(nil, 0)    // never told a position: owed nothing
		offered(ptr(0), 0) // already told it left the queue
		busy(false)
		late := offered(ptr(3), 2*time.Second)
		early := offered(ptr(1), time.Second)
		queuedSession(t, st, 0, func(s *ports.Session) { // matched: history
			s.OfferExpiresAt = ptr(at(time.Minute))
			s.Queue.NotifiedPosition, s.Queue.MatchedAt = ptr(2), ptr(at(0))
		})
		busy(true)
		w1 := queuedSession(t, st, 5*time.Second, nil)
		w2 := queuedSession(t, st, 6*time.Second, nil)
		err := st.Sessions.QueuePass(ctx, func(ctx context.Context, tx ports.QueueTx) error {
			got, err := tx.Offered(ctx, 10)
			if err != nil {
				return err
			}
			if ids := sessionIDs(got); !slices.Equal(ids, []string{early.ID, late.ID}) {
				t.Errorf("Offered = %v, want %v (owed a notice, in the queue's order)", ids, []string{early.ID, late.ID})
			}
			for _, x := range got { // told: owed nothing more
				x.Queue.NotifiedPosition = ptr(0)
				if err := tx.Save(ctx, x); err != nil {
					return err
				}
			}
			if n, err := tx.Ahead(ctx, *w2.Queue); err != nil || n != 1 {
				t.Errorf("Ahead of the second waiting = %d, %v; want 1", n, err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		busy(true) // two wait
		for _, w := range []ports.Session{w1, w2} {
			updateSession(t, st, w.ID, func(s *ports.Session) {
				s.Status, s.EndReason, s.EndedAt = ports.StatusCancelled, ptr(ports.EndCancelledByCustomer), ptr(at(0))
			})
		}
		busy(false)
	})

	parallel(t, "QueueTimerAlone", f, func(t *testing.T, st Stores) {
		s := queuedSession(t, st, 0, nil)
		checkNext(t, st, at(time.Hour), true)
		checkDue(t, st, at(time.Hour-time.Microsecond), 10, []ports.DueTimer{})
		checkDue(t, st, at(time.Hour), 10, []ports.DueTimer{{SessionID: s.ID, Kind: ports.TimerQueue, At: at(time.Hour)}})
		// Offered: the pairing deadline replaces the queue timer.
		updateSession(t, st, s.ID, func(s *ports.Session) { s.OfferExpiresAt = ptr(at(2 * time.Hour)) })
		checkDue(t, st, at(time.Hour), 10, []ports.DueTimer{})
		checkNext(t, st, at(2*time.Hour), true)
	})

	parallel(t, "FreeSlots", f, func(t *testing.T, st Stores) {
		hb := at(0)
		m1 := onlineMitra(t, st, 3, hb)
		m2 := onlineMitra(t, st, 1, hb)
		away := onlineMitra(t, st, 5, hb)
		if _, err := st.Mitras.SetAway(t.Context(), away.ID, hb); err != nil {
			t.Fatal(err)
		}
		offline := newMitra(t, st, 5)
		all := []string{m1.ID, m2.ID, away.ID, offline.ID, randomUUID(t), "not-a-uuid", m1.ID}
		if n := freeSlots(t, st, all...); n != 4 {
			t.Fatalf("FreeSlots = %d, want 4 (3 + 1; away, offline, unknown and repeated ids count nothing)", n)
		}
		if n := freeSlots(t, st); n != 0 {
			t.Fatalf("FreeSlots of no mitra = %d, want 0", n)
		}
		seedSession(t, st, m1.ID, ports.StatusActive)
		seedSession(t, st, m2.ID, ports.StatusPendingPayment)
		seedSession(t, st, m2.ID, ports.StatusActive) // over capacity: counts 0, not -1
		if n := freeSlots(t, st, all...); n != 2 {
			t.Fatalf("FreeSlots with open sessions = %d, want 2", n)
		}
		// A standing offer holds a slot, queued or not; one every offered mitra declined does not.
		createSession(t, st, newCustomer(t, st).ID, func(s *ports.Session) { s.OfferedMitraIDs = []string{m1.ID, m2.ID} })
		queuedSession(t, st, 0, func(s *ports.Session) {
			s.OfferedMitraIDs = []string{m1.ID}
			s.OfferExpiresAt = ptr(at(time.Minute))
		})
		createSession(t, st, newCustomer(t, st).ID, func(s *ports.Session) {
			s.OfferedMitraIDs, s.ExcludedMitraIDs = []string{m1.ID}, []string{m1.ID}
		})
		createSession(t, st, newCustomer(t, st).ID, func(s *ports.Session) { s.OfferedMitraIDs = []string{} })
		queuedSession(t, st, 0, nil) // waiting: no offer
		if n := freeSlots(t, st, all...); n != 0 {
			t.Fatalf("FreeSlots with two standing offers = %d, want 0", n)
		}
		createSession(t, st, newCustomer(t, st).ID, func(s *ports.Session) { s.OfferedMitraIDs = []string{m2.ID} })
		if n := freeSlots(t, st, all...); n != -1 {
			t.Fatalf("FreeSlots with more offers than places = %d, want -1", n)
		}
	})

	parallel(t, "PassIsAtomic", f, func(t *testing.T, st Stores) {
		ctx := t.Context()
		w := queuedSession(t, st, 0, nil)
		c := newCustomer(t, st)
		boom := errors.New("porttest: boom")
		err := st.Sessions.QueuePass(ctx, func(ctx context.Context, tx ports.QueueTx) error {
			ws, err := tx.Waiting(ctx, 5)
			if err != nil || len(ws) != 1 {
				t.Errorf("Waiting = %v, %v", ws, err)
				return boom
			}
			ws[0].OfferExpiresAt = ptr(at(time.Minute))
			if err := tx.Save(ctx, ws[0]); err != nil {
				t.Errorf("Save: %v", err)
			}
			if _, err := tx.Create(ctx, ports.Session{CustomerID: c.ID, Status: ports.StatusSearching, DurationMinutes: 5,
				SearchingSince: t0, Queue: queueEntry(time.Second)}); err != nil {
				t.Errorf("Create: %v", err)
			}
			tx.Emit(&ports.Event{Type: "t", UserIDs: []string{c.ID}, Payload: []byte(`{}`), At: t0})
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("QueuePass = %v, want fn's error", err)
		}
		if got := getSession(t, st, w.ID); !got.Waiting() {
			t.Errorf("a failed pass's save stayed: %+v", got)
		}
		if list, _ := st.Sessions.SessionsOf(ctx, c.ID, 10); len(list) != 0 {
			t.Errorf("a failed pass's create stayed: %v", list)
		}
		if evs := eventsAfter(t, st, c.ID, 0, 10); len(evs) != 0 {
			t.Errorf("a failed pass's event was logged: %v", evs)
		}

		// A pass commits its saves, creates and events together; a refused
		// create (open session) leaves the rest of the pass intact.
		busy := createSession(t, st, newCustomer(t, st).ID, nil)
		var created ports.Session
		err = st.Sessions.QueuePass(ctx, func(ctx context.Context, tx ports.QueueTx) error {
			ws, err := tx.Waiting(ctx, 5)
			if err != nil {
				return err
			}
			ws[0].OfferExpiresAt = ptr(at(time.Minute))
			if err := tx.Save(ctx, ws[0]); err != nil {
				return err
			}
			if _, err := tx.Create(ctx, ports.Session{CustomerID: busy.CustomerID, Status: ports.StatusSearching,
				DurationMinutes: 5, SearchingSince: t0}); !errors.Is(err, ports.ErrOpenSessionExists) {
				t.Errorf("Create for a customer with an open session: %v, want ErrOpenSessionExists", err)
			}
			created, err = tx.Create(ctx, ports.Session{CustomerID: c.ID, Status: ports.StatusSearching, DurationMinutes: 5,
				SearchingSince: t0, Queue: queueEntry(time.Second)})
			if err != nil {
				return err
			}
			if created.Queue == nil || created.Queue.Seq <= w.Queue.Seq {
				t.Errorf("created in a pass: queue %+v, want a sequence after %d", created.Queue, w.Queue.Seq)
			}
			created.Queue.Priority = 2
			if err := tx.Save(ctx, created); err != nil {
				return err
			}
			tx.Emit(&ports.Event{Type: "t", UserIDs: []string{c.ID}, Payload: []byte(`{}`), At: t0})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := getSession(t, st, w.ID); got.Waiting() || got.OfferExpiresAt == nil {
			t.Errorf("a committed pass's save was lost: %+v", got)
		}
		if got := getSession(t, st, created.ID); got.Queue == nil || got.Queue.Priority != 2 || !got.Waiting() {
			t.Errorf("the session created and saved in the pass: %+v", got)
		}
		if evs := eventsAfter(t, st, c.ID, 0, 10); len(evs) != 1 {
			t.Errorf("a committed pass logged %d events, want 1", len(evs))
		}
		// A save of a session the pass did not read is refused.
		other := queuedSession(t, st, time.Hour, nil)
		err = st.Sessions.QueuePass(ctx, func(ctx context.Context, tx ports.QueueTx) error {
			return tx.Save(ctx, other)
		})
		if err == nil {
			t.Error("saving a session the pass did not read succeeded")
		}
	})

	// Capacity arrives on many goroutines (and, in Postgres, connections)
	// at once, each followed by a pass, with more passes and new queued
	// sessions racing them: the queue never offers more sessions than there
	// are places, and the sessions offered are always the oldest.
	parallel(t, "RaceOfCapacityArrivals", f, func(t *testing.T, st Stores) {
		ctx := t.Context()
		const waiting, arrivals, passers, latecomers = 30, 12, 6, 4
		var order []string
		for i := range waiting {
			// Pairs queued at the same instant: the sequence orders them.
			order = append(order, queuedSession(t, st, time.Duration(i/2)*time.Second, nil).ID)
		}
		mitras := make([]ports.Mitra, arrivals)
		ids := make([]string, arrivals)
		for i := range mitras {
			mitras[i] = newMitra(t, st, 1+i%2)
			ids[i] = mitras[i].ID
		}
		places := 0
		for _, m := range mitras {
			places += m.Capacity
		}
		latecomerCustomers := make([]string, latecomers)
		for i := range latecomerCustomers {
			latecomerCustomers[i] = newCustomer(t, st).ID
		}
		offeredBy := make([][]string, arrivals+passers+latecomers)
		errs := race(arrivals+passers+latecomers, func(i int) error {
			switch {
			case i < arrivals:
				if _, err := st.Mitras.SetOnline(ctx, ids[i], true, t0); err != nil {
					return err
				}
			case i >= arrivals+passers:
				c := latecomerCustomers[i-arrivals-passers]
				if _, err := st.Sessions.CreateSession(ctx, ports.Session{CustomerID: c, Status: ports.StatusSearching,
					DurationMinutes: 5, SearchingSince: t0, Queue: queueEntry(time.Hour)}, nil); err != nil {
					return err
				}
			}
			var err error
			offeredBy[i], err = dispatchPass(ctx, st, ids, t0)
			return err
		})
		for i, err := range errs {
			if err != nil {
				t.Fatalf("racer %d: %v", i, err)
			}
		}
		// The periodic pass after the race: the last capacity arrivals served.
		last, err := dispatchPass(ctx, st, ids, t0)
		if err != nil {
			t.Fatal(err)
		}
		var all []string
		for _, o := range offeredBy {
			all = append(all, o...)
		}
		all = append(all, last...)
		if len(all) != places {
			t.Fatalf("%d sessions offered for %d places", len(all), places)
		}
		if len(slices.Compact(slices.Sorted(slices.Values(all)))) != len(all) {
			t.Fatalf("a session was offered twice: %v", all)
		}
		slices.Sort(all)
		want := slices.Sorted(slices.Values(order[:places]))
		if !slices.Equal(all, want) {
			t.Fatalf("offered sessions are not the %d oldest:\n\tgot  %v\n\twant %v", places, all, want)
		}
		if n := freeSlots(t, st, ids...); n != 0 {
			t.Errorf("FreeSlots after the race = %d, want 0", n)
		}
		if got := waitingIDs(t, st, 1); len(got) != 1 || got[0] != order[places] {
			t.Errorf("queue head after the race = %v, want %s", got, order[places])
		}
	})
}
