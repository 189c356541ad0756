package loadgen

import (
	"net/http"
	"testing"
	"time"
)

func newPhaseRunner(t *testing.T, urls ...string) *Runner {
	t.Helper()
	cfg := DefaultConfig()
	cfg.URLs = urls
	cfg.AdminPhone, cfg.AdminPassword = "+620000000001", "phase-test-admin"
	r, err := NewRunner(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.checker, err = NewChecker(CheckerConfig{}); err != nil {
		t.Fatal(err)
	}
	return r
}

func drawURLs(r *Runner, n int) map[string]int {
	seen := map[string]int{}
	for range n {
		seen[r.randomURL()]++
	}
	return seen
}

func TestSetDownTakesAnInstanceOutOfTheRotation(t *testing.T) {
	const a, b = "http://127.0.0.1:1", "http://127.0.0.1:2"
	r := newPhaseRunner(t, a, b+"/")
	if seen := drawURLs(r, 200); seen[a] == 0 || seen[b] == 0 || len(seen) != 2 {
		t.Fatalf("both up: drew %v", seen)
	}
	r.SetDown(b, true)
	if seen := drawURLs(r, 200); seen[a] != 200 {
		t.Fatalf("%s down: drew %v", b, seen)
	}
	r.SetDown(a, true)
	if seen := drawURLs(r, 200); seen[a] == 0 || seen[b] == 0 {
		t.Fatalf("every instance down: want both tried, drew %v", seen)
	}
	r.SetDown(a, false)
	r.SetDown(b, false)
	if seen := drawURLs(r, 200); seen[a] == 0 || seen[b] == 0 {
		t.Fatalf("both back: drew %v", seen)
	}
}

func TestPhasesCountRequestsByInstance(t *testing.T) {
	const a, b = "http://127.0.0.1:1", "http://127.0.0.1:2"
	r := newPhaseRunner(t, a, b)
	c := r.client
	c.record(a, http.MethodGet, routeAvailability, http.StatusOK, "", time.Millisecond) // before any phase
	r.StartPhase("steady")
	c.record(a, http.MethodGet, routeAvailability, http.StatusOK, "", 2*time.Millisecond)
	c.record(b+"/", http.MethodPost, routeHeartbeat, http.StatusNoContent, "", 3*time.Millisecond)
	r.StartPhase("instance_killed")
	c.record(b, http.MethodPost, routeHeartbeat, StatusTransportError, "", time.Second)
	c.record(a, http.MethodPost, routeAccept, http.StatusServiceUnavailable, "unavailable", time.Millisecond)
	r.checker.violate(Violation{Invariant: InvariantCapacity, Kind: "test", Subject: "m1"})
	final := NewRecorder(0)
	got := r.endPhases(time.Now(), final)

	if len(got) != 2 || got[0].Name != "steady" || got[1].Name != "instance_killed" {
		t.Fatalf("phases = %+v", got)
	}
	steady, killed := got[0], got[1]
	if steady.Requests != 2 || steady.Status5xx != 0 || steady.TransportErrors != 0 || steady.Violations != 0 {
		t.Fatalf("steady = %+v", steady)
	}
	if steady.ByURL[a].Requests != 1 || steady.ByURL[b].Requests != 1 {
		t.Fatalf("steady by URL = %+v", steady.ByURL)
	}
	if killed.Requests != 2 || killed.Status5xx != 1 || killed.TransportErrors != 1 || killed.Violations != 1 {
		t.Fatalf("instance_killed = %+v", killed)
	}
	if want := (URLCounts{Requests: 1, TransportErrors: 1}); killed.ByURL[b] != want {
		t.Fatalf("instance_killed %s = %+v, want %+v", b, killed.ByURL[b], want)
	}
	if want := (URLCounts{Requests: 1, Status5xx: 1}); killed.ByURL[a] != want {
		t.Fatalf("instance_killed %s = %+v, want %+v", a, killed.ByURL[a], want)
	}
	// After the last phase ended, requests go to the final recorder only.
	c.record(a, http.MethodGet, routeAvailability, http.StatusOK, "", time.Millisecond)
	if again := r.endPhases(time.Now(), final); len(again) != 2 || again[1].Requests != 2 {
		t.Fatalf("phases after the end = %+v", again)
	}
	if n, _, _ := final.Totals(); n != 1 {
		t.Fatalf("final recorder got %d requests, want the 1 after the end", n)
	}
}
