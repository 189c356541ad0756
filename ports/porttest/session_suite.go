package porttest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/ports"
)

// Sentinels the race tests' closures return, as core's rules would.
var (
	errTaken      = errors.New("porttest: session taken")
	errAtCapacity = errors.New("porttest: mitra at capacity")
	errRefused    = errors.New("porttest: refused")
)

// racers is how many goroutines each race test runs at once.
const racers = 20

// checkSession compares every field of got with want, but UpdatedAt, and
// CreatedAt when want's is zero. want's times are expected back in UTC
// truncated to microseconds.
func checkSession(t *testing.T, what string, got, want ports.Session) {
	t.Helper()
	var diffs []string
	add := func(format string, args ...any) { diffs = append(diffs, fmt.Sprintf(format, args...)) }
	eqTime := func(name string, g, w time.Time) {
		if !g.Equal(pgTime(w)) || g.Location() != time.UTC {
			add("%s = %v, want %v", name, g, pgTime(w))
		}
	}
	eqTimePtr := func(name string, g, w *time.Time) {
		switch {
		case g == nil && w == nil:
		case g == nil || w == nil:
			add("%s = %v, want %v", name, g, w)
		default:
			eqTime(name, *g, *w)
		}
	}
	eqPtr := func(name string, g, w any) {
		if fmt.Sprint(deref(g)) != fmt.Sprint(deref(w)) {
			add("%s = %v, want %v", name, deref(g), deref(w))
		}
	}
	if got.ID != want.ID {
		add("ID = %q, want %q", got.ID, want.ID)
	}
	if got.CustomerID != want.CustomerID {
		add("CustomerID = %q, want %q", got.CustomerID, want.CustomerID)
	}
	eqPtr("MitraID", got.MitraID, want.MitraID)
	if got.Status != want.Status {
		add("Status = %q, want %q", got.Status, want.Status)
	}
	eqPtr("EndReason", got.EndReason, want.EndReason)
	if got.DurationMinutes != want.DurationMinutes {
		add("DurationMinutes = %d, want %d", got.DurationMinutes, want.DurationMinutes)
	}
	if got.Paid != want.Paid {
		add("Paid = %v, want %v", got.Paid, want.Paid)
	}
	eqPtr("RemainingSeconds", got.RemainingSeconds, want.RemainingSeconds)
	if !want.CreatedAt.IsZero() {
		eqTime("CreatedAt", got.CreatedAt, want.CreatedAt)
	}
	eqTime("SearchingSince", got.SearchingSince, want.SearchingSince)
	eqTimePtr("OfferExpiresAt", got.OfferExpiresAt, want.OfferExpiresAt)
	eqTimePtr("PaymentDueAt", got.PaymentDueAt, want.PaymentDueAt)
	eqTimePtr("AcceptedAt", got.AcceptedAt, want.AcceptedAt)
	eqTimePtr("StartedAt", got.StartedAt, want.StartedAt)
	eqTimePtr("ExpiresAt", got.ExpiresAt, want.ExpiresAt)
	eqTimePtr("WarnAt", got.WarnAt, want.WarnAt)
	eqTimePtr("WarningSentAt", got.WarningSentAt, want.WarningSentAt)
	eqTimePtr("EndedAt", got.EndedAt, want.EndedAt)
	for _, a := range []struct {
		name      string
		got, want []string
	}{
		{"OfferedMitraIDs", got.OfferedMitraIDs, want.OfferedMitraIDs},
		{"ExcludedMitraIDs", got.ExcludedMitraIDs, want.ExcludedMitraIDs},
	} {
		if a.got == nil || !slices.Equal(a.got, a.want) {
			add("%s = %#v, want %#v (never nil)", a.name, a.got, a.want)
		}
	}
	switch {
	case got.Queue == nil && want.Queue == nil:
	case got.Queue == nil || want.Queue == nil:
		add("Queue = %+v, want %+v", got.Queue, want.Queue)
	default:
		g, w := got.Queue, want.Queue
		if g.Priority != w.Priority {
			add("Queue.Priority = %d, want %d", g.Priority, w.Priority)
		}
		eqTime("Queue.QueuedAt", g.QueuedAt, w.QueuedAt)
		eqTime("Queue.ExpiresAt", g.ExpiresAt, w.ExpiresAt)
		eqTimePtr("Queue.MatchedAt", g.MatchedAt, w.MatchedAt)
		eqPtr("Queue.NotifiedPosition", g.NotifiedPosition, w.NotifiedPosition)
		eqTimePtr("Queue.NotifiedAt", g.NotifiedAt, w.NotifiedAt)
		if g.Seq <= 0 || (w.Seq != 0 && g.Seq != w.Seq) {
			add("Queue.Seq = %d, want %d (positive, assigned by the store)", g.Seq, w.Seq)
		}
	}
	if len(diffs) > 0 {
		t.Errorf("%s:\n\t%s", what, strings.Join(diffs, "\n\t"))
	}
}

// deref returns *p for a non-nil pointer p, and "<nil>" for a nil one.
func deref(p any) any {
	switch v := p.(type) {
	case *string:
		if v != nil {
			return *v
		}
	case *ports.EndReason:
		if v != nil {
			return *v
		}
	case *int:
		if v != nil {
			return *v
		}
	}
	return "<nil>"
}

func getSession(t *testing.T, st Stores, id string) ports.Session {
	t.Helper()
	s, err := st.Sessions.Session(t.Context(), id)
	if err != nil {
		t.Fatalf("Session(%s): %v", id, err)
	}
	return s
}

func checkActiveSessions(t *testing.T, st Stores, mitraID string, want int) {
	t.Helper()
	m, err := st.Mitras.Mitra(t.Context(), mitraID)
	if err != nil {
		t.Fatal(err)
	}
	if m.ActiveSessions != want {
		t.Errorf("mitra %s ActiveSessions = %d, want %d", mitraID, m.ActiveSessions, want)
	}
}

func checkOpenCounts(t *testing.T, st Stores, want ports.SessionCounts) {
	t.Helper()
	got, err := st.SessionStats.CountOpenSessions(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("CountOpenSessions = %+v, want %+v", got, want)
	}
}

func checkDue(t *testing.T, st Stores, now time.Time, limit int, want []ports.DueTimer) {
	t.Helper()
	got, err := st.Sessions.DueTimers(t.Context(), now, limit)
	if err != nil {
		t.Fatal(err)
	}
	ok := got != nil && len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		ok = got[i].SessionID == want[i].SessionID && got[i].Kind == want[i].Kind &&
			got[i].At.Equal(pgTime(want[i].At)) && got[i].At.Location() == time.UTC
	}
	if !ok {
		t.Errorf("DueTimers(%v, %d) =\n\t%+v\nwant\n\t%+v", now, limit, got, want)
	}
}

func checkNext(t *testing.T, st Stores, want time.Time, wantOK bool) {
	t.Helper()
	got, ok, err := st.Sessions.NextTimer(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if ok != wantOK || (ok && (!got.Equal(pgTime(want)) || got.Location() != time.UTC)) {
		t.Errorf("NextTimer = %v, %v; want %v, %v", got, ok, pgTime(want), wantOK)
	}
}

// fullSession is a session with every field set (times not in UTC, with nanoseconds).
func fullSession(customerID, mitraID string, offered, excluded []string) ports.Session {
	return ports.Session{
		CustomerID:       customerID,
		MitraID:          &mitraID,
		Status:           ports.StatusActive,
		EndReason:        ptr(ports.EndEndedByMitra),
		DurationMinutes:  45,
		Paid:             true,
		RemainingSeconds: ptr(125),
		SearchingSince:   at(time.Second),
		OfferExpiresAt:   ptr(at(2 * time.Second)),
		PaymentDueAt:     ptr(at(3 * time.Second)),
		AcceptedAt:       ptr(at(4 * time.Second)),
		StartedAt:        ptr(at(5 * time.Second)),
		ExpiresAt:        ptr(at(6 * time.Second)),
		WarnAt:           ptr(at(7 * time.Second)),
		WarningSentAt:    ptr(at(8 * time.Second)),
		EndedAt:          ptr(at(9 * time.Second)),
		OfferedMitraIDs:  offered,
		ExcludedMitraIDs: excluded,
	}
}

// RunSessionStoreSuite checks a ports.SessionStore, and that the mitra and
// session-statistics queries count the sessions it holds.
func RunSessionStoreSuite(t *testing.T, f Factory) {
	parallel(t, "CreateAndGet", f, func(t *testing.T, st Stores) {
		c := newCustomer(t, st)
		m1, m2, m3 := newMitra(t, st, 1), newMitra(t, st, 1), newMitra(t, st, 1)
		in := fullSession(c.ID, strings.ToUpper(m1.ID), []string{m1.ID, strings.ToUpper(m2.ID)}, []string{m3.ID})
		in.ID = "ignored"
		in.CreatedAt, in.UpdatedAt = at(-time.Hour), at(-time.Hour)
		got, err := st.Sessions.CreateSession(t.Context(), in, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !isUUID(got.ID) {
			t.Errorf("ID %q is not a canonical UUID", got.ID)
		}
		assertStoreTime(t, "CreatedAt", got.CreatedAt)
		assertStoreTime(t, "UpdatedAt", got.UpdatedAt)
		want := fullSession(c.ID, m1.ID, []string{m1.ID, m2.ID}, []string{m3.ID})
		want.ID = got.ID
		checkSession(t, "created", got, want)
		want.CreatedAt = got.CreatedAt
		checkSession(t, "Session", getSession(t, st, got.ID), want)

		// A minimal session: nil pointers and empty (not nil) arrays come back.
		minimal := ports.Session{CustomerID: newCustomer(t, st).ID, Status: ports.StatusSearching, DurationMinutes: 1, SearchingSince: t0}
		got, err = st.Sessions.CreateSession(t.Context(), minimal, nil)
		if err != nil {
			t.Fatal(err)
		}
		minimal.ID, minimal.OfferedMitraIDs, minimal.ExcludedMitraIDs = got.ID, []string{}, []string{}
		checkSession(t, "created minimal", got, minimal)
		checkSession(t, "Session minimal", getSession(t, st, got.ID), minimal)
	})

	parallel(t, "ReturnsCopies", f, func(t *testing.T, st Stores) {
		m := newMitra(t, st, 1)
		s := createSession(t, st, newCustomer(t, st).ID, func(s *ports.Session) {
			s.OfferedMitraIDs = []string{m.ID}
		})
		*s.OfferExpiresAt = at(time.Hour)
		s.OfferedMitraIDs[0] = "changed"
		got := getSession(t, st, s.ID)
		assertTimePtr(t, "OfferExpiresAt", got.OfferExpiresAt, at(time.Minute))
		if !slices.Equal(got.OfferedMitraIDs, []string{m.ID}) {
			t.Errorf("OfferedMitraIDs = %v", got.OfferedMitraIDs)
		}
	})

	parallel(t, "CreateErrors", f, func(t *testing.T, st Stores) {
		c := newCustomer(t, st)
		for name, in := range map[string]ports.Session{
			"unknown customer":   {CustomerID: randomUUID(t)},
			"malformed customer": {CustomerID: "nope"},
			"unknown mitra":      {CustomerID: c.ID, MitraID: ptr(randomUUID(t))},
			"malformed mitra":    {CustomerID: c.ID, MitraID: ptr("nope")},
		} {
			in.Status, in.DurationMinutes, in.SearchingSince = ports.StatusSearching, 30, t0
			if _, err := st.Sessions.CreateSession(t.Context(), in, nil); !errors.Is(err, ports.ErrNotFound) {
				t.Errorf("CreateSession(%s) = %v, want ErrNotFound", name, err)
			}
		}
		for name, edit := range map[string]func(*ports.Session){
			"duration 0":         func(s *ports.Session) { s.DurationMinutes = 0 },
			"duration 241":       func(s *ports.Session) { s.DurationMinutes = 241 },
			"unknown status":     func(s *ports.Session) { s.Status = "paused" },
			"unknown end reason": func(s *ports.Session) { s.EndReason = ptr(ports.EndReason("bored")) },
			"malformed offered":  func(s *ports.Session) { s.OfferedMitraIDs = []string{"nope"} },
			"malformed excluded": func(s *ports.Session) { s.ExcludedMitraIDs = []string{"nope"} },
		} {
			in := ports.Session{CustomerID: c.ID, Status: ports.StatusSearching, DurationMinutes: 30, SearchingSince: t0}
			edit(&in)
			if _, err := st.Sessions.CreateSession(t.Context(), in, nil); err == nil ||
				errors.Is(err, ports.ErrNotFound) || errors.Is(err, ports.ErrOpenSessionExists) {
				t.Errorf("CreateSession(%s) = %v, want a constraint error", name, err)
			}
		}
		// None of them was created.
		if got, err := st.Sessions.SessionsOf(t.Context(), c.ID, 10); err != nil || len(got) != 0 {
			t.Errorf("SessionsOf after failed creates = %v, %v", got, err)
		}
	})

	parallel(t, "OneOpenSessionPerCustomer", f, func(t *testing.T, st Stores) {
		m := newMitra(t, st, 5)
		c := newCustomer(t, st)
		s := createSession(t, st, c.ID, nil)
		tryCreate := func(status ports.SessionStatus) error {
			_, err := st.Sessions.CreateSession(t.Context(), ports.Session{
				CustomerID: c.ID, Status: status, DurationMinutes: 30, SearchingSince: t0,
			}, nil)
			return err
		}
		for _, open := range []ports.SessionStatus{ports.StatusSearching, ports.StatusPendingPayment, ports.StatusActive} {
			updateSession(t, st, s.ID, func(s *ports.Session) {
				s.Status = open
				if open.HoldsMitra() {
					s.MitraID = &m.ID
				}
			})
			for _, status := range []ports.SessionStatus{ports.StatusSearching, ports.StatusPendingPayment, ports.StatusActive} {
				if err := tryCreate(status); !errors.Is(err, ports.ErrOpenSessionExists) {
					t.Errorf("CreateSession(%s) while %s = %v, want ErrOpenSessionExists", status, open, err)
				}
			}
			// A closed session can always be recorded.
			if err := tryCreate(ports.StatusCancelled); err != nil {
				t.Errorf("CreateSession(cancelled) while %s: %v", open, err)
			}
		}
		// Another customer is not affected.
		createSession(t, st, newCustomer(t, st).ID, nil)

		// Once the session ended, a new one is allowed.
		updateSession(t, st, s.ID, func(s *ports.Session) { s.Status = ports.StatusEnded })
		next := createSession(t, st, c.ID, nil)

		// Reopening the old one now violates the rule; nothing is saved.
		_, err := st.Sessions.UpdateSession(t.Context(), s.ID, func(_ context.Context, _ ports.SessionTx, s *ports.Session) error {
			s.Status = ports.StatusSearching
			return nil
		})
		if !errors.Is(err, ports.ErrOpenSessionExists) {
			t.Errorf("reopening an ended session = %v, want ErrOpenSessionExists", err)
		}
		if got := getSession(t, st, s.ID); got.Status != ports.StatusEnded {
			t.Errorf("failed reopen saved status %s", got.Status)
		}
		// Updating the open one keeps it open without conflicting with itself.
		updateSession(t, st, next.ID, func(s *ports.Session) { s.Status = ports.StatusPendingPayment; s.MitraID = &m.ID })
	})

	parallel(t, "NotFound", f, func(t *testing.T, st Stores) {
		createSession(t, st, newCustomer(t, st).ID, nil)
		for _, id := range []string{randomUUID(t), "nope", ""} {
			if _, err := st.Sessions.Session(t.Context(), id); !errors.Is(err, ports.ErrNotFound) {
				t.Errorf("Session(%q) = %v, want ErrNotFound", id, err)
			}
			called := false
			_, err := st.Sessions.UpdateSession(t.Context(), id, func(context.Context, ports.SessionTx, *ports.Session) error {
				called = true
				return nil
			})
			if !errors.Is(err, ports.ErrNotFound) || called {
				t.Errorf("UpdateSession(%q) = %v (fn called: %v), want ErrNotFound", id, err, called)
			}
		}
	})

	parallel(t, "SessionsOf", f, func(t *testing.T, st Stores) {
		m := newMitra(t, st, 10)
		other := newMitra(t, st, 10)
		c := newCustomer(t, st)
		var ofCustomer, ofMitra []ports.Session
		for i := range 3 {
			s := createSession(t, st, c.ID, nil)
			mitra := other.ID
			if i == 1 {
				mitra = m.ID
			}
			// Every session but the last one ends, so the next one can start.
			s = updateSession(t, st, s.ID, func(s *ports.Session) {
				s.MitraID = &mitra
				s.Status = ports.StatusActive
				if i < 2 {
					s.Status = ports.StatusEnded
				}
			})
			ofCustomer = append(ofCustomer, s)
			if i == 1 {
				ofMitra = append(ofMitra, s)
			}
		}
		for range 4 {
			ofMitra = append(ofMitra, seedSession(t, st, m.ID, ports.StatusEnded))
		}
		// A mitra's account as its own customer: listed once.
		self := createSession(t, st, m.ID, func(s *ports.Session) { s.MitraID = &m.ID; s.Status = ports.StatusEnded })
		ofMitra = append(ofMitra, self)
		seedSession(t, st, "", ports.StatusSearching)    // nobody's
		seedSession(t, st, other.ID, ports.StatusActive) // the other mitra's

		newestFirst := func(ss []ports.Session) []string {
			ss = slices.Clone(ss)
			slices.SortFunc(ss, func(a, b ports.Session) int {
				return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), strings.Compare(b.ID, a.ID))
			})
			out := make([]string, len(ss))
			for i, s := range ss {
				out[i] = s.ID
			}
			return out
		}
		check := func(user string, limit int, want []string) {
			t.Helper()
			got, err := st.Sessions.SessionsOf(t.Context(), user, limit)
			if err != nil {
				t.Fatal(err)
			}
			gotIDs := make([]string, len(got))
			for i, s := range got {
				gotIDs[i] = s.ID
			}
			if got == nil || !slices.Equal(gotIDs, want) {
				t.Errorf("SessionsOf(%s, %d) = %v, want %v", user, limit, gotIDs, want)
			}
		}
		check(c.ID, 10, newestFirst(ofCustomer))
		check(strings.ToUpper(c.ID), 10, newestFirst(ofCustomer))
		check(c.ID, 2, newestFirst(ofCustomer)[:2])
		check(m.ID, 10, newestFirst(ofMitra))
		check(m.ID, 6, newestFirst(ofMitra)[:6])
		check(m.ID, 5, newestFirst(ofMitra)[:5])
		check(m.ID, 1, newestFirst(ofMitra)[:1])
		check(m.ID, 0, []string{})
		check(randomUUID(t), 10, []string{})
		check("nope", 10, []string{})

		// Newest first really is creation order reversed, up to equal timestamps.
		got, err := st.Sessions.SessionsOf(t.Context(), m.ID, 10)
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; i < len(got); i++ {
			if got[i].CreatedAt.After(got[i-1].CreatedAt) {
				t.Errorf("SessionsOf not newest first: %v after %v", got[i].CreatedAt, got[i-1].CreatedAt)
			}
		}
		// The full sessions are returned.
		if i := slices.IndexFunc(got, func(s ports.Session) bool { return s.ID == ofCustomer[1].ID }); i < 0 {
			t.Errorf("SessionsOf(mitra) lacks session %s", ofCustomer[1].ID)
		} else {
			checkSession(t, "SessionsOf(mitra) entry", got[i], ofCustomer[1])
		}
	})

	parallel(t, "UpdateSavesEveryField", f, func(t *testing.T, st Stores) {
		c := newCustomer(t, st)
		m1, m2, m3 := newMitra(t, st, 1), newMitra(t, st, 1), newMitra(t, st, 1)
		s := createSession(t, st, c.ID, nil)
		before := getSession(t, st, s.ID)
		stranger := newCustomer(t, st)

		want := fullSession(c.ID, m2.ID, []string{m1.ID, m2.ID, m3.ID}, []string{m1.ID})
		want.Status = ports.StatusCancelled // not open: no capacity involved
		got, err := st.Sessions.UpdateSession(t.Context(), s.ID, func(_ context.Context, _ ports.SessionTx, cur *ports.Session) error {
			checkSession(t, "fn's session", *cur, before)
			in := fullSession(c.ID, strings.ToUpper(m2.ID), []string{m1.ID, m2.ID, strings.ToUpper(m3.ID)}, []string{m1.ID})
			in.Status = ports.StatusCancelled
			// The identity and creation time cannot be changed.
			in.ID, in.CustomerID, in.CreatedAt = randomUUID(t), stranger.ID, at(-time.Hour)
			*cur = in
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		want.ID, want.CreatedAt = s.ID, s.CreatedAt
		checkSession(t, "updated", got, want)
		checkSession(t, "Session after update", getSession(t, st, s.ID), want)
		assertStoreTime(t, "UpdatedAt", got.UpdatedAt)
		if got.UpdatedAt.Before(s.UpdatedAt) {
			t.Errorf("UpdatedAt went back from %v to %v", s.UpdatedAt, got.UpdatedAt)
		}

		// Back to nil pointers and empty arrays (nil and empty alike).
		got = updateSession(t, st, s.ID, func(s *ports.Session) {
			*s = ports.Session{
				ID: s.ID, CustomerID: s.CustomerID, CreatedAt: s.CreatedAt,
				Status: ports.StatusSearching, DurationMinutes: 240, SearchingSince: at(time.Minute),
				OfferedMitraIDs: nil, ExcludedMitraIDs: []string{},
			}
		})
		want = ports.Session{
			ID: s.ID, CustomerID: c.ID, CreatedAt: s.CreatedAt,
			Status: ports.StatusSearching, DurationMinutes: 240, SearchingSince: at(time.Minute),
			OfferedMitraIDs: []string{}, ExcludedMitraIDs: []string{},
		}
		checkSession(t, "cleared", got, want)
		checkSession(t, "Session after clearing", getSession(t, st, s.ID), want)

		// fn changing nothing saves the session as it was.
		got = updateSession(t, st, s.ID, func(*ports.Session) {})
		checkSession(t, "unchanged", got, want)
	})

	parallel(t, "UpdateErrorRollsBack", f, func(t *testing.T, st Stores) {
		m := newMitra(t, st, 2)
		s := createSession(t, st, newCustomer(t, st).ID, nil)
		before := getSession(t, st, s.ID)

		_, err := st.Sessions.UpdateSession(t.Context(), s.ID, func(ctx context.Context, tx ports.SessionTx, cur *ports.Session) error {
			if _, err := tx.LockMitraLoad(ctx, m.ID); err != nil {
				return err
			}
			cur.Status = ports.StatusPendingPayment
			cur.MitraID = &m.ID
			cur.OfferedMitraIDs = []string{m.ID}
			cur.AcceptedAt = ptr(at(time.Second))
			return fmt.Errorf("core says no: %w", errRefused)
		})
		if !errors.Is(err, errRefused) {
			t.Fatalf("UpdateSession = %v, want errRefused", err)
		}
		got := getSession(t, st, s.ID)
		checkSession(t, "after a refused update", got, before)
		if !got.UpdatedAt.Equal(before.UpdatedAt) {
			t.Errorf("UpdatedAt moved from %v to %v", before.UpdatedAt, got.UpdatedAt)
		}
		checkActiveSessions(t, st, m.ID, 0)

		// The store's own errors roll back too: an unknown mitra, a bad status.
		for name, edit := range map[string]func(*ports.Session){
			"unknown mitra":   func(s *ports.Session) { s.Status = ports.StatusPendingPayment; s.MitraID = ptr(randomUUID(t)) },
			"malformed mitra": func(s *ports.Session) { s.Status = ports.StatusPendingPayment; s.MitraID = ptr("nope") },
		} {
			_, err := st.Sessions.UpdateSession(t.Context(), s.ID, func(_ context.Context, _ ports.SessionTx, s *ports.Session) error {
				edit(s)
				return nil
			})
			if !errors.Is(err, ports.ErrNotFound) {
				t.Errorf("UpdateSession(%s) = %v, want ErrNotFound", name, err)
			}
		}
		for name, edit := range map[string]func(*ports.Session){
			"unknown status":    func(s *ports.Session) { s.Status = "paused" },
			"duration 0":        func(s *ports.Session) { s.DurationMinutes = 0 },
			"malformed offered": func(s *ports.Session) { s.OfferedMitraIDs = []string{m.ID, "nope"} },
		} {
			_, err := st.Sessions.UpdateSession(t.Context(), s.ID, func(_ context.Context, _ ports.SessionTx, s *ports.Session) error {
				s.Paid = true
				edit(s)
				return nil
			})
			if err == nil {
				t.Errorf("UpdateSession(%s) succeeded", name)
			}
		}
		checkSession(t, "after failed updates", getSession(t, st, s.ID), before)

		// A LockMitraLoad error reaches fn, which passes it on.
		_, err = st.Sessions.UpdateSession(t.Context(), s.ID, func(ctx context.Context, tx ports.SessionTx, _ *ports.Session) error {
			_, err := tx.LockMitraLoad(ctx, randomUUID(t))
			return err
		})
		if !errors.Is(err, ports.ErrNotFound) {
			t.Errorf("UpdateSession(fn returning LockMitraLoad(unknown)) = %v, want ErrNotFound", err)
		}
	})

	parallel(t, "LockMitraLoad", f, func(t *testing.T, st Stores) {
		m := newMitra(t, st, 3)
		seedSession(t, st, m.ID, ports.StatusPendingPayment)
		seedSession(t, st, m.ID, ports.StatusActive)
		seedSession(t, st, m.ID, ports.StatusEnded)
		off := newMitra(t, st, 2)
		if _, err := st.Mitras.PatchMitra(t.Context(), off.ID, ports.MitraPatch{IsActive: ptr(false)}); err != nil {
			t.Fatal(err)
		}
		s := createSession(t, st, newCustomer(t, st).ID, nil)
		_, err := st.Sessions.UpdateSession(t.Context(), s.ID, func(ctx context.Context, tx ports.SessionTx, _ *ports.Session) error {
			for id, want := range map[string]ports.MitraLoad{
				m.ID:                    {IsActive: true, Capacity: 3, OpenSessions: 2},
				strings.ToUpper(off.ID): {IsActive: false, Capacity: 2, OpenSessions: 0},
			} {
				got, err := tx.LockMitraLoad(ctx, id)
				if err != nil {
					return err
				}
				if got != want {
					t.Errorf("LockMitraLoad(%s) = %+v, want %+v", id, got, want)
				}
			}
			for _, id := range []string{randomUUID(t), "nope"} {
				if _, err := tx.LockMitraLoad(ctx, id); !errors.Is(err, ports.ErrNotFound) {
					t.Errorf("LockMitraLoad(%q) = %v, want ErrNotFound", id, err)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})

	parallel(t, "LoadFollowsStatus", f, func(t *testing.T, st Stores) {
		m := onlineMitra(t, st, 1, t0)
		c := newCustomer(t, st)
		s := createSession(t, st, c.ID, func(s *ports.Session) { s.MitraID = &m.ID }) // directed, still searching
		checkActiveSessions(t, st, m.ID, 0)
		checkOpenCounts(t, st, ports.SessionCounts{Searching: 1})
		checkAvailable(t, st, t0, []string{m.ID})

		steps := []struct {
			status    ports.SessionStatus
			mitra     *string
			holds     int
			counts    ports.SessionCounts
			available []string
		}{
			{ports.StatusPendingPayment, &m.ID, 1, ports.SessionCounts{PendingPayment: 1}, []string{}},
			{ports.StatusActive, &m.ID, 1, ports.SessionCounts{Active: 1}, []string{}},
			{ports.StatusSearching, nil, 0, ports.SessionCounts{Searching: 1}, []string{m.ID}}, // rerouted
			{ports.StatusActive, &m.ID, 1, ports.SessionCounts{Active: 1}, []string{}},
			{ports.StatusEnded, &m.ID, 0, ports.SessionCounts{}, []string{m.ID}},
		}
		for _, step := range steps {
			updateSession(t, st, s.ID, func(s *ports.Session) { s.Status, s.MitraID = step.status, step.mitra })
			checkActiveSessions(t, st, m.ID, step.holds)
			checkOpenCounts(t, st, step.counts)
			checkAvailable(t, st, t0, step.available)
			checkMirrorTruth(t, st, []ports.MirrorMitra{{ID: m.ID, LastHeartbeat: t0, OpenSessions: step.holds, Capacity: 1}}, nil)
			_, err := st.Sessions.UpdateSession(t.Context(), s.ID, func(ctx context.Context, tx ports.SessionTx, _ *ports.Session) error {
				load, err := tx.LockMitraLoad(ctx, m.ID)
				if err == nil && load.OpenSessions != step.holds {
					t.Errorf("after %s: LockMitraLoad = %+v, want %d open", step.status, load, step.holds)
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	})

	parallel(t, "Timers", f, func(t *testing.T, st Stores) {
		now := at(5 * time.Minute)
		checkDue(t, st, now, 10, []ports.DueTimer{})
		checkNext(t, st, time.Time{}, false)

		m := newMitra(t, st, 100)
		create := func(status ports.SessionStatus, edit func(*ports.Session)) ports.Session {
			t.Helper()
			return createSession(t, st, newCustomer(t, st).ID, func(s *ports.Session) {
				*s = ports.Session{CustomerID: s.CustomerID, Status: status, DurationMinutes: 30, SearchingSince: t0}
				if status.HoldsMitra() {
					s.MitraID = &m.ID
				}
				edit(s)
			})
		}
		pairing := create(ports.StatusSearching, func(s *ports.Session) { s.OfferExpiresAt = ptr(at(time.Minute)) })
		create(ports.StatusSearching, func(s *ports.Session) { s.OfferExpiresAt = ptr(at(10 * time.Minute)) })
		create(ports.StatusSearching, func(*ports.Session) {}) // no deadline
		payment := create(ports.StatusPendingPayment, func(s *ports.Session) {
			s.PaymentDueAt = ptr(at(2 * time.Minute))
			s.OfferExpiresAt = ptr(at(-time.Hour)) // left over from its search: not a timer any more
		})
		create(ports.StatusPendingPayment, func(s *ports.Session) { s.PaymentDueAt = ptr(at(9 * time.Minute)) })
		warning := create(ports.StatusActive, func(s *ports.Session) {
			s.WarnAt = ptr(at(3 * time.Minute))
			s.ExpiresAt = ptr(at(6 * time.Minute))
			s.PaymentDueAt = ptr(at(-time.Hour))
		})
		warned := create(ports.StatusActive, func(s *ports.Session) {
			s.WarnAt = ptr(at(30 * time.Second)) // the earliest deadline, but already warned
			s.WarningSentAt = ptr(at(31 * time.Second))
			s.ExpiresAt = ptr(at(4 * time.Minute))
		})
		boundary := create(ports.StatusSearching, func(s *ports.Session) { s.OfferExpiresAt = ptr(now) })
		for _, status := range []ports.SessionStatus{ports.StatusEnded, ports.StatusCancelled, ports.StatusUnmatched} {
			create(status, func(s *ports.Session) { // closed: no timers at all
				s.OfferExpiresAt, s.PaymentDueAt, s.WarnAt, s.ExpiresAt = ptr(t0), ptr(t0), ptr(t0), ptr(t0)
			})
		}

		all := []ports.DueTimer{
			{SessionID: pairing.ID, Kind: ports.TimerPairing, At: at(time.Minute)},
			{SessionID: payment.ID, Kind: ports.TimerPayment, At: at(2 * time.Minute)},
			{SessionID: warning.ID, Kind: ports.TimerWarning, At: at(3 * time.Minute)},
			{SessionID: warned.ID, Kind: ports.TimerExpiry, At: at(4 * time.Minute)},
			{SessionID: boundary.ID, Kind: ports.TimerPairing, At: now},
		}
		checkDue(t, st, now, 10, all)
		checkDue(t, st, now, 5, all)
		checkDue(t, st, now, 2, all[:2])
		checkDue(t, st, now, 0, []ports.DueTimer{})
		checkDue(t, st, now.Add(-time.Microsecond), 10, all[:4])
		checkDue(t, st, at(time.Minute).Add(-time.Microsecond), 10, []ports.DueTimer{})
		checkNext(t, st, at(time.Minute), true)

		// The warning is due only until it is claimed; the expiry stays.
		updateSession(t, st, warning.ID, func(s *ports.Session) { s.WarningSentAt = ptr(now) })
		checkDue(t, st, at(6*time.Minute), 10, []ports.DueTimer{
			{SessionID: pairing.ID, Kind: ports.TimerPairing, At: at(time.Minute)},
			{SessionID: payment.ID, Kind: ports.TimerPayment, At: at(2 * time.Minute)},
			{SessionID: warned.ID, Kind: ports.TimerExpiry, At: at(4 * time.Minute)},
			{SessionID: boundary.ID, Kind: ports.TimerPairing, At: now},
			{SessionID: warning.ID, Kind: ports.TimerExpiry, At: at(6 * time.Minute)},
		})

		// Handling timers moves NextTimer on.
		updateSession(t, st, pairing.ID, func(s *ports.Session) { s.Status = ports.StatusUnmatched })
		checkNext(t, st, at(2*time.Minute), true)
		updateSession(t, st, payment.ID, func(s *ports.Session) { s.Status = ports.StatusCancelled })
		checkNext(t, st, at(4*time.Minute), true)
		// An active session's warning counts while unclaimed, and is earlier than its expiry.
		updateSession(t, st, warned.ID, func(s *ports.Session) { s.WarningSentAt = nil; s.WarnAt = ptr(at(time.Second)) })
		checkNext(t, st, at(time.Second), true)
		checkDue(t, st, at(time.Second), 10, []ports.DueTimer{{SessionID: warned.ID, Kind: ports.TimerWarning, At: at(time.Second)}})
	})

	parallel(t, "TimerTies", f, func(t *testing.T, st Stores) {
		// Deadlines at the same instant come by kind, then session ID.
		m := newMitra(t, st, 100)
		var due []ports.DueTimer
		for range 3 {
			s := createSession(t, st, newCustomer(t, st).ID, func(s *ports.Session) {
				s.Status, s.MitraID = ports.StatusActive, &m.ID
				s.WarnAt, s.ExpiresAt, s.OfferExpiresAt = ptr(t0), ptr(t0), nil
			})
			due = append(due,
				ports.DueTimer{SessionID: s.ID, Kind: ports.TimerExpiry, At: t0},
				ports.DueTimer{SessionID: s.ID, Kind: ports.TimerWarning, At: t0})
			s = createSession(t, st, newCustomer(t, st).ID, func(s *ports.Session) { s.OfferExpiresAt = ptr(t0) })
			due = append(due, ports.DueTimer{SessionID: s.ID, Kind: ports.TimerPairing, At: t0})
		}
		slices.SortFunc(due, func(a, b ports.DueTimer) int {
			return cmp.Or(strings.Compare(string(a.Kind), string(b.Kind)), strings.Compare(a.SessionID, b.SessionID))
		})
		checkDue(t, st, t0, 100, due)
		checkDue(t, st, t0, 4, due[:4])
		checkNext(t, st, t0, true)
	})

	// (a) Twenty mitras accept one session at once: exactly one wins.
	parallel(t, "RaceSameSession", f, func(t *testing.T, st Stores) {
		s := createSession(t, st, newCustomer(t, st).ID, nil)
		mitras := make([]ports.Mitra, racers)
		for i := range mitras {
			mitras[i] = newMitra(t, st, 1)
		}
		errs := race(racers, func(i int) error {
			_, err := st.Sessions.UpdateSession(t.Context(), s.ID, func(_ context.Context, _ ports.SessionTx, s *ports.Session) error {
				if s.Status != ports.StatusSearching {
					return errTaken
				}
				s.MitraID = &mitras[i].ID
				s.Status = ports.StatusPendingPayment
				return nil
			})
			return err
		})
		winners := checkRace(t, errs, 1, errTaken)
		got := getSession(t, st, s.ID)
		if got.Status != ports.StatusPendingPayment || got.MitraID == nil || len(winners) != 1 || *got.MitraID != mitras[winners[0]].ID {
			t.Errorf("after the race: status %s, mitra %v; winners %v", got.Status, got.MitraID, winners)
		}
		for i, m := range mitras {
			want := 0
			if len(winners) == 1 && i == winners[0] {
				want = 1
			}
			checkActiveSessions(t, st, m.ID, want)
		}
	})

	// (b), (c) Twenty sessions accepted at once by one mitra: its capacity holds.
	for _, capacity := range []int{1, 3} {
		parallel(t, fmt.Sprintf("RaceCapacity%d", capacity), f, func(t *testing.T, st Stores) {
			m := newMitra(t, st, capacity)
			sessions := make([]ports.Session, racers)
			for i := range sessions {
				sessions[i] = createSession(t, st, newCustomer(t, st).ID, nil)
			}
			errs := race(racers, func(i int) error {
				_, err := st.Sessions.UpdateSession(t.Context(), sessions[i].ID, func(ctx context.Context, tx ports.SessionTx, s *ports.Session) error {
					if s.Status != ports.StatusSearching {
						return errTaken
					}
					load, err := tx.LockMitraLoad(ctx, m.ID)
					if err != nil {
						return err
					}
					if load.OpenSessions >= load.Capacity {
						return errAtCapacity
					}
					s.MitraID = &m.ID
					s.Status = ports.StatusPendingPayment
					return nil
				})
				return err
			})
			winners := checkRace(t, errs, capacity, errAtCapacity)
			checkActiveSessions(t, st, m.ID, capacity)
			checkOpenCounts(t, st, ports.SessionCounts{Searching: racers - capacity, PendingPayment: capacity})
			for i, s := range sessions {
				got := getSession(t, st, s.ID)
				won := slices.Contains(winners, i)
				if won != (got.Status == ports.StatusPendingPayment) || won != (got.MitraID != nil) {
					t.Errorf("session %d (won %v): status %s, mitra %v", i, won, got.Status, got.MitraID)
				}
			}
		})
	}
	// docs/contract.md §11: the next batch of a search offered in batches is a
	// deadline like the others, only while searching; the batch start round-trips.
	parallel(t, "BatchTimer", f, func(t *testing.T, st Stores) {
		batched := createSession(t, st, newCustomer(t, st).ID, func(s *ports.Session) {
			s.OfferExpiresAt = ptr(at(time.Minute))
			s.NextBatchAt = ptr(at(15 * time.Second))
		})
		assertTimePtr(t, "next batch at", batched.NextBatchAt, at(15*time.Second))
		checkNext(t, st, at(15*time.Second), true)
		checkDue(t, st, at(15*time.Second).Add(-time.Microsecond), 10, []ports.DueTimer{})
		checkDue(t, st, at(15*time.Second), 10, []ports.DueTimer{
			{SessionID: batched.ID, Kind: ports.TimerBatch, At: at(15 * time.Second)},
		})
		m := newMitra(t, st, 1)
		taken := createSession(t, st, newCustomer(t, st).ID, func(s *ports.Session) {
			s.Status = ports.StatusPendingPayment
			s.MitraID = &m.ID
			s.PaymentDueAt = ptr(at(time.Hour))
			s.NextBatchAt = ptr(at(time.Second)) // left over: not a timer once the search is over
		})
		_ = taken
		upd := updateSession(t, st, batched.ID, func(s *ports.Session) {
			s.OfferedMitraIDs = []string{m.ID, randomUUID(t), randomUUID(t)}
			s.BatchStart = 1
			s.NextBatchAt = ptr(at(30 * time.Second))
		})
		if got := getSession(t, st, batched.ID); got.BatchStart != 1 || upd.BatchStart != 1 || len(got.OfferedMitraIDs) != 3 {
			t.Errorf("batch start %d (returned %d), offered %v; want 1 and three", got.BatchStart, upd.BatchStart, got.OfferedMitraIDs)
		}
		checkDue(t, st, at(time.Minute), 10, []ports.DueTimer{
			{SessionID: batched.ID, Kind: ports.TimerBatch, At: at(30 * time.Second)},
			{SessionID: batched.ID, Kind: ports.TimerPairing, At: at(time.Minute)},
		})
		checkNext(t, st, at(30*time.Second), true)
		updateSession(t, st, batched.ID, func(s *ports.Session) { s.NextBatchAt = nil })
		checkNext(t, st, at(time.Minute), true)
		if _, err := st.Sessions.UpdateSession(t.Context(), batched.ID, func(_ context.Context, _ ports.SessionTx, s *ports.Session) error {
			s.BatchStart = -1
			return nil
		}); err == nil {
			t.Error("a negative batch start was stored")
		}
	})
}

// race runs fn(0) … fn(n-1) in n goroutines released at the same moment and
// returns their errors by index.
func race(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = fn(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// checkRace asserts that exactly wantWins calls succeeded and every other one
// failed with loserErr; it returns the winners' indexes.
func checkRace(t *testing.T, errs []error, wantWins int, loserErr error) []int {
	t.Helper()
	var winners []int
	for i, err := range errs {
		switch {
		case err == nil:
			winners = append(winners, i)
		case !errors.Is(err, loserErr):
			t.Errorf("racer %d: %v, want nil or %v", i, err, loserErr)
		}
	}
	if len(winners) != wantWins {
		t.Errorf("%d racers won (%v), want exactly %d", len(winners), winners, wantWins)
	}
	return winners

}
