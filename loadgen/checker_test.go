package loadgen

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/client"
)

// fakeStore and fakeMirror are the memory inputs of the checker.
type fakeStore struct {
	mu       sync.Mutex
	mitras   []MitraRecord
	sessions []SessionRecord
	err      error
}

func (f *fakeStore) Mitras(context.Context) ([]MitraRecord, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]MitraRecord(nil), f.mitras...), f.err
}

func (f *fakeStore) OpenSessions(context.Context) ([]SessionRecord, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []SessionRecord
	for _, s := range f.sessions {
		if s.Status == StatusSearching || s.Status == StatusPendingPayment || s.Status == StatusActive {
			out = append(out, s)
		}
	}
	return out, f.err
}

func (f *fakeStore) Sessions(_ context.Context, since time.Time) ([]SessionRecord, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []SessionRecord
	for _, s := range f.sessions {
		if !s.CreatedAt.Before(since) {
			out = append(out, s)
		}
	}
	return out, f.err
}

type fakeMirror struct {
	mu sync.Mutex
	st MirrorState
}

func (f *fakeMirror) MirrorState(context.Context) (MirrorState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st, nil
}

func (f *fakeMirror) set(st MirrorState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st = st
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func ptr[T any](v T) *T { return &v }

func newTestChecker(t *testing.T, cfg CheckerConfig) (*Checker, *fakeClock) {
	t.Helper()
	clk := &fakeClock{t: t0}
	cfg.Now = clk.Now
	if cfg.Since.IsZero() {
		cfg.Since = t0.Add(-time.Hour)
	}
	if cfg.MirrorFinalWait == 0 {
		cfg.MirrorFinalWait = -1 // no real-time waiting in unit tests
	}
	c, err := NewChecker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, clk
}

// kinds returns "invariant/kind" of every violation.
func kinds(vs []Violation) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.Invariant + "/" + v.Kind
	}
	return out
}

func wantViolations(t *testing.T, got []Violation, want ...string) {
	t.Helper()
	g := kinds(got)
	if strings.Join(g, ",") != strings.Join(want, ",") {
		t.Fatalf("violations = %v, want %v\n%+v", g, want, got)
	}
}

func final(t *testing.T, c *Checker) Result {
	t.Helper()
	res, err := c.Final(context.Background())
	if err != nil {
		t.Fatalf("Final: %v", err)
	}
	return res
}

// --- (a) mirror ---

func agreeing() ([]MitraRecord, MirrorState) {
	store := []MitraRecord{
		{ID: "m1", IsActive: true, IsOnline: true, Capacity: 2, Open: 1},      // free
		{ID: "m2", IsActive: true, IsOnline: true, Capacity: 1, Open: 1},      // full
		{ID: "m3", IsActive: true, IsOnline: false, Capacity: 1},              // offline
		{ID: "m4", IsActive: false, IsOnline: false, Capacity: 1},             // deactivated
		{ID: "m5", IsActive: true, IsOnline: true, Capacity: 0},               // capacity 0: full
		{ID: "m6", IsActive: true, IsOnline: true, Capacity: 100, Open: 3},    // free
		{ID: "m7", IsActive: true, IsOnline: true, IsAway: true, Capacity: 2}, // away: full
	}
	m := MirrorState{
		Seeded:      true,
		Free:        map[string]MirrorEntry{"m1": {Open: 1, Capacity: 2}, "m6": {Open: 3, Capacity: 100}},
		Full:        map[string]MirrorEntry{"m2": {Open: 1, Capacity: 1}, "m5": {Open: 0, Capacity: 0}, "m7": {Capacity: 2}},
		Deactivated: map[string]bool{"m4": true},
		Away:        map[string]bool{"m7": true},
	}
	return store, m
}

func TestCompareMirrorAgrees(t *testing.T) {
	store, m := agreeing()
	if d := CompareMirror(store, m); len(d) != 0 {
		t.Fatalf("drift on agreeing data: %+v", d)
	}
}

func TestCompareMirrorFindsEachDrift(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(store []MitraRecord, m *MirrorState)
		want   []Drift
	}{
		{"not seeded", func(_ []MitraRecord, m *MirrorState) { m.Seeded = false },
			[]Drift{{Kind: DriftNotSeeded}}},
		{"online missing", func(_ []MitraRecord, m *MirrorState) { delete(m.Free, "m1") },
			[]Drift{{Kind: DriftMissingOnline, MitraID: "m1"}}},
		{"offline still online", func(_ []MitraRecord, m *MirrorState) { m.Free["m3"] = MirrorEntry{Capacity: 1} },
			[]Drift{{Kind: DriftExtraOnline, MitraID: "m3"}}},
		{"deactivated still online", func(_ []MitraRecord, m *MirrorState) { m.Full["m4"] = MirrorEntry{Capacity: 0} },
			[]Drift{{Kind: DriftExtraOnline, MitraID: "m4"}}},
		{"unknown mitra online", func(_ []MitraRecord, m *MirrorState) { m.Free["ghost"] = MirrorEntry{Capacity: 1} },
			[]Drift{{Kind: DriftExtraOnline, MitraID: "ghost"}}},
		{"load differs", func(_ []MitraRecord, m *MirrorState) { m.Free["m6"] = MirrorEntry{Open: 4, Capacity: 100} },
			[]Drift{{Kind: DriftLoad, MitraID: "m6"}}},
		{"capacity differs", func(_ []MitraRecord, m *MirrorState) { m.Free["m6"] = MirrorEntry{Open: 3, Capacity: 50} },
			[]Drift{{Kind: DriftCapacity, MitraID: "m6"}}},
		{"full mitra in free set", func(_ []MitraRecord, m *MirrorState) {
			delete(m.Full, "m2")
			m.Free["m2"] = MirrorEntry{Open: 1, Capacity: 1}
		}, []Drift{{Kind: DriftWrongSet, MitraID: "m2"}}},
		{"stale load puts it in the wrong set", func(store []MitraRecord, _ *MirrorState) { store[1].Open = 0 },
			[]Drift{{Kind: DriftLoad, MitraID: "m2"}, {Kind: DriftWrongSet, MitraID: "m2"}}},
		{"away mitra in the free set", func(_ []MitraRecord, m *MirrorState) {
			delete(m.Full, "m7")
			m.Free["m7"] = MirrorEntry{Capacity: 2}
		}, []Drift{{Kind: DriftWrongSet, MitraID: "m7"}}},
		{"away missing from the away set", func(_ []MitraRecord, m *MirrorState) { delete(m.Away, "m7") },
			[]Drift{{Kind: DriftAway, MitraID: "m7"}}},
		{"in both sets", func(_ []MitraRecord, m *MirrorState) { m.Full["m1"] = MirrorEntry{Open: 1, Capacity: 2} },
			[]Drift{{Kind: DriftInBothSets, MitraID: "m1"}}},
		{"deactivated missing", func(_ []MitraRecord, m *MirrorState) { delete(m.Deactivated, "m4") },
			[]Drift{{Kind: DriftDeactivatedMissing, MitraID: "m4"}}},
		{"active in deactivated set", func(_ []MitraRecord, m *MirrorState) { m.Deactivated["m3"] = true },
			[]Drift{{Kind: DriftDeactivatedExtra, MitraID: "m3"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store, m := agreeing()
			tt.mutate(store, &m)
			got := CompareMirror(store, m)
			if len(got) != len(tt.want) {
				t.Fatalf("drift = %+v, want %+v", got, tt.want)
			}
			for i := range got {
				if got[i].Kind != tt.want[i].Kind || got[i].MitraID != tt.want[i].MitraID {
					t.Fatalf("drift = %+v, want %+v", got, tt.want)
				}
			}
		})
	}
}

// The mirror stores load and capacity clamped to 127; that is no drift.
func TestCompareMirrorClampsLoad(t *testing.T) {
	store := []MitraRecord{{ID: "m", IsActive: true, IsOnline: true, Capacity: 100, Open: 200}}
	m := MirrorState{Seeded: true, Full: map[string]MirrorEntry{"m": {Open: 127, Capacity: 100}}}
	if d := CompareMirror(store, m); len(d) != 0 {
		t.Fatalf("drift: %+v", d)
	}
}

func TestDecodeScore(t *testing.T) {
	// docs/valkey-keys.md: score = ds*16384 + open*128 + capacity.
	at := scoreEpoch.Add(123456 * 100 * time.Millisecond)
	e := DecodeScore(123456*16384 + 3*128 + 5)
	if e.Open != 3 || e.Capacity != 5 || !e.Heartbeat.Equal(at) {
		t.Fatalf("DecodeScore = %+v", e)
	}
	before := DecodeScore(-1*16384 + 2*128 + 1) // 100 ms before the epoch
	if before.Open != 2 || before.Capacity != 1 || !before.Heartbeat.Equal(scoreEpoch.Add(-100*time.Millisecond)) {
		t.Fatalf("DecodeScore before the epoch = %+v", before)
	}
}

// A drift counts only once it outlived a reseed cycle plus the grace; a
// transient one is healed and never reported.
func TestMirrorDriftNeedsAReseedCycle(t *testing.T) {
	store, m := agreeing()
	fs := &fakeStore{mitras: store}
	fm := &fakeMirror{}
	drifted := m
	drifted.Free = map[string]MirrorEntry{"m6": m.Free["m6"]} // m1 missing
	fm.set(drifted)
	c, clk := newTestChecker(t, CheckerConfig{Store: fs, Mirror: fm, Grace: 5 * time.Second, ReseedInterval: 30 * time.Second})
	ctx := context.Background()

	if err := c.Sample(ctx); err != nil {
		t.Fatal(err)
	}
	clk.Advance(30 * time.Second)
	if err := c.Sample(ctx); err != nil {
		t.Fatal(err)
	}
	wantViolations(t, c.Violations()) // 30 s ≤ 35 s: not yet

	// Healed in time: forgotten.
	fm.set(m)
	clk.Advance(time.Second)
	if err := c.Sample(ctx); err != nil {
		t.Fatal(err)
	}
	// It comes back and stays: its age starts again.
	fm.set(drifted)
	for range 7 {
		clk.Advance(5 * time.Second)
		if err := c.Sample(ctx); err != nil {
			t.Fatal(err)
		}
	}
	wantViolations(t, c.Violations()) // 30 s since it came back
	clk.Advance(6 * time.Second)
	if err := c.Sample(ctx); err != nil {
		t.Fatal(err)
	}
	wantViolations(t, c.Violations(), InvariantMirror+"/"+DriftMissingOnline)
	if v := c.Violations()[0]; v.Subject != "m1" || v.Source != SourceValkey {
		t.Fatalf("violation = %+v", v)
	}
	res := final(t, c)
	if res.Stats.MirrorDriftSeen != 2 || res.Stats.MirrorDriftResolved != 1 || len(res.Stats.UnresolvedDrift) != 1 {
		t.Fatalf("stats = %+v", res.Stats)
	}
}

// A drift seen before the mirror became unreadable (an outage) and again
// after it is aged from after the gap: only continuous observation counts.
func TestMirrorDriftAgeRestartsAfterAnUnreadableMirror(t *testing.T) {
	store, m := agreeing()
	fs := &fakeStore{mitras: store}
	drifted := m
	drifted.Free = map[string]MirrorEntry{"m6": m.Free["m6"]} // m1 missing
	fm := &flakyMirror{fakeMirror: fakeMirror{st: drifted}}
	c, clk := newTestChecker(t, CheckerConfig{Store: fs, Mirror: fm, Grace: 5 * time.Second, ReseedInterval: 30 * time.Second})
	ctx := context.Background()

	if err := c.Sample(ctx); err != nil {
		t.Fatal(err)
	}
	fm.err = errors.New("i/o timeout")
	clk.Advance(30 * time.Second)
	if err := c.Sample(ctx); err == nil {
		t.Fatal("Sample hid the mirror error")
	}
	fm.err = nil
	clk.Advance(10 * time.Second) // 40 s after it was first seen
	if err := c.Sample(ctx); err != nil {
		t.Fatal(err)
	}
	wantViolations(t, c.Violations())
	clk.Advance(36 * time.Second) // observed for 36 s without a gap
	if err := c.Sample(ctx); err != nil {
		t.Fatal(err)
	}
	wantViolations(t, c.Violations(), InvariantMirror+"/"+DriftMissingOnline)
}

// flakyMirror fails its reads while err is set.
type flakyMirror struct {
	fakeMirror
	err error
}

func (f *flakyMirror) MirrorState(ctx context.Context) (MirrorState, error) {
	if f.err != nil {
		return MirrorState{}, f.err
	}
	return f.fakeMirror.MirrorState(ctx)
}

// Final re-checks a remaining drift until it heals.
func TestFinalWaitsForDriftToHeal(t *testing.T) {
	store, m := agreeing()
	fs := &fakeStore{mitras: store}
	drifted := m
	drifted.Deactivated = map[string]bool{}
	fm := &fakeMirror{st: drifted}
	c, err := NewChecker(CheckerConfig{Store: fs, Mirror: fm, ReseedInterval: time.Hour, MirrorFinalWait: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(1500*time.Millisecond, func() { fm.set(m) })
	start := time.Now()
	res, err := c.Final(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < time.Second || took > 8*time.Second {
		t.Fatalf("Final took %v", took)
	}
	wantViolations(t, res.Violations)
	if len(res.Stats.UnresolvedDrift) != 0 || res.Stats.MirrorDriftResolved != 1 {
		t.Fatalf("stats = %+v", res.Stats)
	}
}

func TestSampleCountsReadErrors(t *testing.T) {
	fs := &fakeStore{err: errors.New("connection refused")}
	c, _ := newTestChecker(t, CheckerConfig{Store: fs})
	if err := c.Sample(context.Background()); err == nil {
		t.Fatal("Sample hid the store error")
	}
	res, _ := c.Final(context.Background())
	if res.Stats.StoreErrors < 1 || len(res.Violations) != 0 {
		t.Fatalf("result = %+v", res)
	}
}

// --- (b) capacity ---

func TestStoreOverCapacity(t *testing.T) {
	fs := &fakeStore{mitras: []MitraRecord{
		{ID: "ok", IsActive: true, IsOnline: true, Capacity: 2, Open: 2},
		{ID: "over", IsActive: true, IsOnline: true, Capacity: 1, Open: 2},
	}}
	c, _ := newTestChecker(t, CheckerConfig{Store: fs})
	for range 3 {
		if err := c.Sample(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	wantViolations(t, c.Violations(), InvariantCapacity+"/store_over_capacity") // once, not per pass
	if c.Violations()[0].Subject != "over" {
		t.Fatalf("subject = %s", c.Violations()[0].Subject)
	}
}

func TestMitraViewOverCapacity(t *testing.T) {
	c, _ := newTestChecker(t, CheckerConfig{})
	c.MitraView(MitraView{ID: "m", Capacity: 2, ActiveSessions: 2})
	wantViolations(t, c.Violations())
	c.MitraView(MitraView{ID: "m", Capacity: 2, ActiveSessions: 3})
	wantViolations(t, c.Violations(), InvariantCapacity+"/view_over_capacity")
}

// heldView is a view of session id held by mitra since accepted, made at madeAt.
func heldView(id, mitra string, accepted, madeAt time.Time, expires time.Time) SessionView {
	return SessionView{
		ID: id, Status: client.SessionStatusActive, CustomerID: "c-" + id, MitraID: ptr(mitra),
		AcceptedAt: ptr(accepted), StartedAt: ptr(accepted.Add(time.Second)), ExpiresAt: ptr(expires),
		RemainingSeconds: int(expires.Sub(madeAt) / time.Second), CreatedAt: accepted.Add(-time.Second),
	}
}

func TestObservedHoldsOverCapacity(t *testing.T) {
	c, _ := newTestChecker(t, CheckerConfig{})
	c.MitraView(MitraView{ID: "m", Capacity: 1})
	exp := t0.Add(3 * time.Minute)
	// s1 held from t0 and still seen held at t0+60s; s2 accepted at t0+30s
	// and seen held at t0+40s: two at once with capacity 1.
	c.SessionView(heldView("s1", "m", t0, t0.Add(60*time.Second), exp))
	c.SessionView(heldView("s2", "m", t0.Add(30*time.Second), t0.Add(40*time.Second), exp.Add(30*time.Second)))
	res := final(t, c)
	wantViolations(t, res.Violations, InvariantCapacity+"/observed_over_capacity")
	if !strings.Contains(res.Violations[0].Detail, "[s1 s2]") {
		t.Fatalf("detail = %s", res.Violations[0].Detail)
	}
}

func TestObservedHoldsWithinCapacity(t *testing.T) {
	c, _ := newTestChecker(t, CheckerConfig{})
	exp := t0.Add(3 * time.Minute)
	c.MitraView(MitraView{ID: "m", Capacity: 1})
	c.MitraView(MitraView{ID: "wide", Capacity: 2})
	// One after the other.
	c.SessionView(heldView("a1", "m", t0, t0.Add(20*time.Second), exp))
	c.SessionView(heldView("a2", "m", t0.Add(25*time.Second), t0.Add(50*time.Second), exp))
	// Overlapping by less than the hold tolerance (a view made just before
	// the end committed, an accept whose clock read preceded its commit):
	// a2 is certainly held until t0+49s (its view's remaining_seconds, less
	// the server's flooring), a3 from t0+48.5s.
	c.SessionView(heldView("a3", "m", t0.Add(48500*time.Millisecond), t0.Add(80*time.Second), exp))
	// Two at once within a capacity of 2.
	c.SessionView(heldView("b1", "wide", t0, t0.Add(60*time.Second), exp))
	c.SessionView(heldView("b2", "wide", t0.Add(10*time.Second), t0.Add(60*time.Second), exp))
	// Unknown capacity: not judged.
	c.SessionView(heldView("x1", "unknown", t0, t0.Add(60*time.Second), exp))
	c.SessionView(heldView("x2", "unknown", t0, t0.Add(60*time.Second), exp))
	res := final(t, c)
	wantViolations(t, res.Violations)
	if res.Stats.HoldsObserved != 7 {
		t.Fatalf("holds = %d", res.Stats.HoldsObserved)
	}
}

// Holds are learnt from session_update frames too.
func TestHoldsFromFrames(t *testing.T) {
	c, _ := newTestChecker(t, CheckerConfig{})
	c.MitraView(MitraView{ID: "m", Capacity: 1})
	conn := c.ConnOpened("m", "mitra", t0)
	exp := t0.Add(3 * time.Minute)
	for _, v := range []SessionView{
		heldView("s1", "m", t0, t0.Add(60*time.Second), exp),
		heldView("s2", "m", t0.Add(10*time.Second), t0.Add(20*time.Second), exp),
	} {
		c.Frame(conn, Frame{Type: EventSessionUpdate, Session: &v}, t0.Add(time.Minute))
	}
	wantViolations(t, final(t, c).Violations, InvariantCapacity+"/observed_over_capacity")
}

// --- (c) one warning ---

func TestSecondWarningOnOneConnection(t *testing.T) {
	c, _ := newTestChecker(t, CheckerConfig{})
	conn := c.ConnOpened("cust", "customer", t0)
	w := Frame{Type: EventSessionWarning, SessionID: "s1", Kind: "three_minutes_left"}
	c.Frame(conn, w, t0.Add(time.Second))
	wantViolations(t, c.Violations())
	c.Frame(conn, Frame{Type: EventSessionWarning, SessionID: "s2"}, t0.Add(2*time.Second)) // another session
	wantViolations(t, c.Violations())
	c.Frame(conn, w, t0.Add(70*time.Second)) // after an extension, say
	wantViolations(t, c.Violations(), InvariantOneWarning+"/second_warning")
}

func TestWarningAcrossConnections(t *testing.T) {
	c, _ := newTestChecker(t, CheckerConfig{})
	// Two connections open at once get one event each: fine.
	a := c.ConnOpened("cust", "customer", t0)
	b := c.ConnOpened("cust", "customer", t0)
	w := Frame{Type: EventSessionWarning, SessionID: "s1"}
	c.Frame(a, w, t0.Add(time.Second))
	c.Frame(b, w, t0.Add(time.Second))
	wantViolations(t, c.Violations())
	// A connection opened after the first warning arrived gets another: a second event.
	c.ConnClosed(a, t0.Add(2*time.Second))
	later := c.ConnOpened("cust", "customer", t0.Add(3*time.Second))
	c.Frame(later, w, t0.Add(4*time.Second))
	wantViolations(t, c.Violations(), InvariantOneWarning+"/second_warning")
}

// --- (d) ended once, on time ---

func TestSessionEndedTwice(t *testing.T) {
	c, _ := newTestChecker(t, CheckerConfig{})
	cust := c.ConnOpened("cust", "customer", t0)
	mitra := c.ConnOpened("m", "mitra", t0)
	e := Frame{Type: EventSessionEnded, SessionID: "s1", Reason: EndReasonExpired}
	c.Frame(cust, e, t0.Add(time.Second))
	c.Frame(mitra, e, t0.Add(time.Second)) // the mitra's own copy
	wantViolations(t, c.Violations())
	c.Frame(mitra, e, t0.Add(2*time.Second))
	wantViolations(t, c.Violations(), InvariantEndedOnce+"/second_session_ended")
}

func TestExpiryRecords(t *testing.T) {
	exp := t0.Add(-time.Minute) // an hour of grace would hide nothing: grace is 5 s
	rec := func(id, status, reason string, ended *time.Time) SessionRecord {
		return SessionRecord{ID: id, Status: status, CustomerID: "c", MitraID: "m", EndReason: reason,
			CreatedAt: t0.Add(-10 * time.Minute), ExpiresAt: ptr(exp), EndedAt: ended}
	}
	fs := &fakeStore{sessions: []SessionRecord{
		rec("on-time", StatusEnded, EndReasonExpired, ptr(exp.Add(300*time.Millisecond))),
		rec("early-end-by-customer", StatusEnded, "ended_by_customer", ptr(exp.Add(-30*time.Second))),
		rec("still-active", StatusActive, "", nil),
		rec("expired-late", StatusEnded, EndReasonExpired, ptr(exp.Add(20*time.Second))),
		rec("expired-early", StatusEnded, EndReasonExpired, ptr(exp.Add(-time.Second))),
		rec("ended-after-expiry", StatusEnded, "ended_by_mitra", ptr(exp.Add(30*time.Second))),
		// Before Since: not this run's.
		{ID: "old", Status: StatusActive, CreatedAt: t0.Add(-2 * time.Hour), ExpiresAt: ptr(exp)},
		// Active, not yet expired.
		{ID: "running", Status: StatusActive, CreatedAt: t0, ExpiresAt: ptr(t0.Add(time.Minute))},
	}}
	c, _ := newTestChecker(t, CheckerConfig{Store: fs, Since: t0.Add(-time.Hour)})
	res := final(t, c)
	got := map[string]string{}
	for _, v := range res.Violations {
		if v.Invariant != InvariantEndedOnce {
			t.Fatalf("unexpected %+v", v)
		}
		got[v.Subject] = v.Kind
	}
	want := map[string]string{
		"still-active":       "not_ended_at_expiry",
		"expired-late":       "expired_late",
		"expired-early":      "expired_early",
		"ended-after-expiry": "not_ended_as_expired",
	}
	if len(got) != len(want) {
		t.Fatalf("violations %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("violations %v, want %v", got, want)
		}
	}
}

// The same checks run on the customers' final views when there is no store.
func TestExpiryFromFinalViews(t *testing.T) {
	c, _ := newTestChecker(t, CheckerConfig{})
	c.FinalViews([]SessionView{
		{ID: "stuck", Status: client.SessionStatusActive, CustomerID: "c", MitraID: ptr("m"), CreatedAt: t0.Add(-5 * time.Minute),
			AcceptedAt: ptr(t0.Add(-4 * time.Minute)), ExpiresAt: ptr(t0.Add(-time.Minute))},
		{ID: "fine", Status: client.SessionStatusEnded, CustomerID: "c", MitraID: ptr("m"), CreatedAt: t0.Add(-5 * time.Minute),
			ExpiresAt: ptr(t0.Add(-time.Minute)), EndedAt: ptr(t0.Add(-time.Minute)), EndReason: ptr(client.SessionEndReasonExpired)},
	})
	res := final(t, c)
	wantViolations(t, res.Violations, InvariantEndedOnce+"/not_ended_at_expiry")
	if res.Violations[0].Source != SourceHTTP || res.Violations[0].Subject != "stuck" {
		t.Fatalf("violation = %+v", res.Violations[0])
	}
}

func TestSessionEndedDelivery(t *testing.T) {
	end := t0.Add(-time.Minute)
	views := []SessionView{
		{ID: "delivered", Status: client.SessionStatusEnded, CustomerID: "c1", CreatedAt: t0.Add(-3 * time.Minute), EndedAt: ptr(end), EndReason: ptr(client.SessionEndReason("ended_by_mitra"))},
		{ID: "lost", Status: client.SessionStatusUnmatched, CustomerID: "c2", CreatedAt: t0.Add(-3 * time.Minute), EndedAt: ptr(end), EndReason: ptr(client.SessionEndReason("unmatched"))},
		{ID: "not-covered", Status: client.SessionStatusEnded, CustomerID: "c3", CreatedAt: t0.Add(-3 * time.Minute), EndedAt: ptr(end), EndReason: ptr(client.SessionEndReasonExpired)},
		{ID: "too-recent", Status: client.SessionStatusEnded, CustomerID: "c4", CreatedAt: t0.Add(-3 * time.Minute), EndedAt: ptr(t0.Add(-time.Second)), EndReason: ptr(client.SessionEndReasonExpired)},
	}
	c, _ := newTestChecker(t, CheckerConfig{})
	c1 := c.ConnOpened("c1", "customer", t0.Add(-10*time.Minute))
	c.ConnOpened("c2", "customer", t0.Add(-10*time.Minute))
	// c3's connection dropped right at the end and came back later: no judgement.
	c3 := c.ConnOpened("c3", "customer", t0.Add(-10*time.Minute))
	c.ConnClosed(c3, end)
	c.ConnOpened("c3", "customer", end.Add(10*time.Second))
	c.ConnOpened("c4", "customer", t0.Add(-10*time.Minute))
	c.Frame(c1, Frame{Type: EventSessionEnded, SessionID: "delivered", Reason: "ended_by_mitra"}, end.Add(5*time.Millisecond))
	c.FinalViews(views)
	res := final(t, c)
	wantViolations(t, res.Violations, InvariantEndedOnce+"/session_ended_not_delivered")
	if res.Violations[0].Subject != "lost" {
		t.Fatalf("violation = %+v", res.Violations[0])
	}
	if res.Stats.EndedDelivered != 1 {
		t.Fatalf("deliveries verified = %d", res.Stats.EndedDelivered)
	}
}

// --- (e) deactivated mitras ---

func TestOfferAfterDeactivation(t *testing.T) {
	c, _ := newTestChecker(t, CheckerConfig{Grace: 2 * time.Second})
	conn := c.ConnOpened("m", "mitra", t0)
	offer := func(id string, at time.Time) {
		c.Frame(conn, Frame{Type: EventSessionOffer, SessionID: id, DurationMinutes: 2}, at)
	}
	offer("before", t0.Add(time.Second))
	c.Deactivated("m", t0.Add(10*time.Second))
	offer("in-flight", t0.Add(11*time.Second))
	wantViolations(t, c.Violations())
	offer("late", t0.Add(13*time.Second))
	wantViolations(t, c.Violations(), InvariantDeactivated+"/offer_received")
	res := final(t, c)
	if res.Stats.OffersToDeactivated != 1 || res.Stats.OffersSeen != 3 {
		t.Fatalf("stats = %+v", res.Stats)
	}
	// Reactivated: offers are fine again.
	c.Reactivated("m")
	offer("after-reactivation", t0.Add(time.Minute))
	if len(c.Violations()) != 1 {
		t.Fatalf("violations = %v", kinds(c.Violations()))
	}
}

func TestOfferToAwayOrAfterDecline(t *testing.T) {
	c, _ := newTestChecker(t, CheckerConfig{Grace: 2 * time.Second})
	conn := c.ConnOpened("m", "mitra", t0)
	offer := func(id string, at time.Time) {
		c.Frame(conn, Frame{Type: EventSessionOffer, SessionID: id, DurationMinutes: 2}, at)
	}
	offer("s1", t0.Add(time.Second))
	c.Declined("m", "s1", t0.Add(2*time.Second))
	offer("s2", t0.Add(3*time.Second)) // another session: fine
	offer("s1", t0.Add(3*time.Second)) // within the grace: in flight
	wantViolations(t, c.Violations())
	offer("s1", t0.Add(10*time.Second)) // offered again after the decline
	wantViolations(t, c.Violations(), InvariantDeclined+"/offer_received")

	c.Away("m", t0.Add(20*time.Second))
	offer("s3", t0.Add(21*time.Second)) // in flight
	if n := len(c.Violations()); n != 1 {
		t.Fatalf("violations = %v", kinds(c.Violations()))
	}
	offer("s4", t0.Add(30*time.Second))
	wantViolations(t, c.Violations(), InvariantDeclined+"/offer_received", InvariantAway+"/offer_received")
	c.Back("m")
	offer("s5", t0.Add(40*time.Second)) // back online: fine
	if n := len(c.Violations()); n != 2 {
		t.Fatalf("violations = %v", kinds(c.Violations()))
	}
	// Judged by when the server made it: an offer made before the decline
	// and delivered late is a late delivery, not a violation; one made
	// after it is a violation however fast it came.
	conn2 := c.ConnOpened("m2", "mitra", t0)
	made := func(id string, madeAt, at time.Time) {
		c.Frame(conn2, Frame{Type: EventSessionOffer, SessionID: id, DurationMinutes: 2, At: madeAt}, at)
	}
	c.Declined("m2", "s6", t0.Add(50*time.Second))
	made("s6", t0.Add(49*time.Second), t0.Add(59*time.Second))
	if n := len(c.Violations()); n != 2 {
		t.Fatalf("an offer made before the decline, delivered late: violations = %v", kinds(c.Violations()))
	}
	made("s6", t0.Add(53*time.Second), t0.Add(53*time.Second))
	wantViolations(t, c.Violations(), InvariantDeclined+"/offer_received", InvariantAway+"/offer_received", InvariantDeclined+"/offer_received")
	res := final(t, c)
	if res.Stats.OffersLate != 1 || res.Stats.OfferLagMax != 10000 {
		t.Fatalf("late offers %d, longest lag %v ms; want 1 and 10000", res.Stats.OffersLate, res.Stats.OfferLagMax)
	}
	if res.Stats.Aways != 1 || res.Stats.Declines != 2 {
		t.Fatalf("stats = %+v", res.Stats)
	}
}

func TestOfferedInStoreAfterDeactivation(t *testing.T) {
	d := t0.Add(-time.Minute)
	fs := &fakeStore{sessions: []SessionRecord{
		{ID: "before", Status: StatusUnmatched, CreatedAt: d.Add(-time.Second), SearchingSince: d.Add(-time.Second), OfferedMitraIDs: []string{"m", "x"}},
		{ID: "racing", Status: StatusSearching, CreatedAt: d.Add(time.Second), SearchingSince: d.Add(time.Second), OfferedMitraIDs: []string{"m"}},
		{ID: "after", Status: StatusSearching, CreatedAt: d.Add(30 * time.Second), SearchingSince: d.Add(30 * time.Second), OfferedMitraIDs: []string{"x", "m"}},
		{ID: "others", Status: StatusSearching, CreatedAt: d.Add(30 * time.Second), SearchingSince: d.Add(30 * time.Second), OfferedMitraIDs: []string{"x"}},
	}}
	c, _ := newTestChecker(t, CheckerConfig{Store: fs, Grace: 5 * time.Second})
	c.Deactivated("m", d)
	if err := c.Sample(context.Background()); err != nil { // the live pass sees the open ones
		t.Fatal(err)
	}
	wantViolations(t, c.Violations(), InvariantDeactivated+"/offered_in_store")
	v := c.Violations()[0]
	if v.Subject != "m" || !strings.Contains(v.Detail, "after") || v.Source != SourcePostgres {
		t.Fatalf("violation = %+v", v)
	}
}

func TestNewCheckerRefusesNegativeDurations(t *testing.T) {
	if _, err := NewChecker(CheckerConfig{Grace: -time.Second}); err == nil {
		t.Fatal("accepted a negative grace")
	}
}

// --- (f) every event once, in order, none lost, across resumes ---

func TestEventStreams(t *testing.T) {
	c, _ := newTestChecker(t, CheckerConfig{})
	first := c.ConnOpened("u", "customer", t0)
	upd := func(id string) Frame { return Frame{EventID: id, Type: EventSessionUpdate} }
	c.Frame(first, upd("7"), t0.Add(time.Second)) // the stream starts wherever the first connection does
	c.Frame(first, upd("8"), t0.Add(2*time.Second))
	c.ConnClosed(first, t0.Add(3*time.Second))
	resumed := c.ConnOpened("u", "customer", t0.Add(4*time.Second)) // ?after=8
	c.Frame(resumed, upd("9"), t0.Add(5*time.Second))
	wantViolations(t, c.Violations())

	c.Frame(resumed, upd("9"), t0.Add(6*time.Second)) // again
	wantViolations(t, c.Violations(), InvariantNoLoss+"/event_duplicated")
	c.Frame(resumed, upd("12"), t0.Add(7*time.Second)) // 10 and 11 never came
	wantViolations(t, c.Violations(), InvariantNoLoss+"/event_duplicated", InvariantNoLoss+"/events_lost")
	if got, lost, dups := c.EventCounts(); got != 5 || lost != 2 || dups != 1 {
		t.Fatalf("EventCounts = %d received, %d lost, %d duplicated; want 5, 2, 1", got, lost, dups)
	}

	// A resume refused as gone starts the stream afresh: no loss counted across it.
	c.StreamRestarted("u")
	c.Frame(resumed, upd("40"), t0.Add(8*time.Second))
	c.Frame(resumed, Frame{Type: EventSessionUpdate}, t0.Add(9*time.Second)) // no event_id
	if _, lost, _ := c.EventCounts(); lost != 2 {
		t.Errorf("lost after a restart = %d, want still 2", lost)
	}
	res, err := c.Final(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if res.Stats.StreamRestarts != 1 || res.Stats.FramesWithoutEventID != 1 {
		t.Errorf("stats %+v", res.Stats)
	}
}
