package porttest

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/ports"
)

// RunQueueTruthSuite checks ports.QueueTruthSource: what the queue mirror
// is reseeded from (the waiting sessions at their key and version, the
// recent matches).
func RunQueueTruthSuite(t *testing.T, f Factory) {
	parallel(t, "WaitingAndMatched", f, func(t *testing.T, st Stores) {
		ctx := t.Context()
		empty, err := st.QueueTruth.QueueTruth(ctx, at(-time.Minute))
		if err != nil || len(empty.Waiting) != 0 || len(empty.Matched) != 0 || !empty.MatchedSince.Equal(pgTime(at(-time.Minute))) {
			t.Fatalf("QueueTruth of an empty store = %+v, %v", empty, err)
		}
		const m1, m2 = "00000000-0000-4000-8000-0000000000a1", "00000000-0000-4000-8000-0000000000a2"
		first := queuedSession(t, st, time.Second, nil)
		requeued := queuedSession(t, st, 2*time.Second, func(s *ports.Session) {
			s.Queue.Priority = 2
			s.ExcludedMitraIDs = []string{m1, m2} // declined by two: back in the queue
		})
		queuedSession(t, st, 0, func(s *ports.Session) { s.OfferExpiresAt = ptr(at(time.Minute)) }) // offered
		queuedSession(t, st, 0, func(s *ports.Session) {                                            // ended
			s.Status, s.EndReason, s.EndedAt = ports.StatusUnmatched, ptr(ports.EndUnmatched), ptr(at(0))
		})
		createSession(t, st, newCustomer(t, st).ID, nil) // not queued
		recent := queuedSession(t, st, 0, func(s *ports.Session) { s.Queue.MatchedAt = ptr(at(30 * time.Second)) })
		queuedSession(t, st, 0, func(s *ports.Session) { s.Queue.MatchedAt = ptr(at(-2 * time.Minute)) }) // too old
		// Matched at the instant asked: counted.
		edge := queuedSession(t, st, 0, func(s *ports.Session) { s.Queue.MatchedAt = ptr(at(-time.Minute)) })

		got, err := st.QueueTruth.QueueTruth(ctx, at(-time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(got.Waiting, func(a, b ports.QueueMember) int { return strings.Compare(a.ID, b.ID) })
		want := []ports.QueueMember{
			{ID: first.ID, Priority: 0, QueuedAt: pgTime(at(time.Second)), Seq: first.Queue.Seq, Version: 0},
			{ID: requeued.ID, Priority: 2, QueuedAt: pgTime(at(2 * time.Second)), Seq: requeued.Queue.Seq, Version: 2},
		}
		slices.SortFunc(want, func(a, b ports.QueueMember) int { return strings.Compare(a.ID, b.ID) })
		if len(got.Waiting) != len(want) {
			t.Fatalf("QueueTruth waiting = %+v, want %+v", got.Waiting, want)
		}
		for i := range want {
			g := got.Waiting[i]
			if g.ID != want[i].ID || g.Priority != want[i].Priority || !g.QueuedAt.Equal(want[i].QueuedAt) ||
				g.QueuedAt.Location() != time.UTC || g.Seq != want[i].Seq || g.Version != want[i].Version {
				t.Errorf("QueueTruth waiting[%d] = %+v, want %+v", i, g, want[i])
			}
		}
		slices.SortFunc(got.Matched, func(a, b ports.QueueMatch) int { return strings.Compare(a.ID, b.ID) })
		wantM := []ports.QueueMatch{{ID: recent.ID, At: pgTime(at(30 * time.Second))}, {ID: edge.ID, At: pgTime(at(-time.Minute))}}
		slices.SortFunc(wantM, func(a, b ports.QueueMatch) int { return strings.Compare(a.ID, b.ID) })
		if len(got.Matched) != len(wantM) {
			t.Fatalf("QueueTruth matched = %+v, want %+v", got.Matched, wantM)
		}
		for i := range wantM {
			if got.Matched[i].ID != wantM[i].ID || !got.Matched[i].At.Equal(wantM[i].At) || got.Matched[i].At.Location() != time.UTC {
				t.Errorf("QueueTruth matched[%d] = %+v, want %+v", i, got.Matched[i], wantM[i])
			}
		}
		if !got.MatchedSince.Equal(pgTime(at(-time.Minute))) {
			t.Errorf("QueueTruth MatchedSince = %v, want %v", got.MatchedSince, pgTime(at(-time.Minute)))
		}
	})
}
