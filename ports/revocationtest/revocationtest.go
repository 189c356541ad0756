// Package revocationtest is the contract test suite of
// ports.RevocationCache. Each adapter's tests call Run (Valkey over
// miniredis and over a real server).
package revocationtest

import (
	"slices"
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/ports"
)

// Factory returns a fresh, empty cache that keeps its entries for keep; it
// registers any cleanup with t.
type Factory func(t *testing.T, keep time.Duration) ports.RevocationCache

// Run runs the suite.
func Run(t *testing.T, f Factory) {
	t.Run("ReadsByTimeOfAdding", func(t *testing.T) { testReadsByTimeOfAdding(t, f(t, time.Hour)) })
	t.Run("KeepsTheFields", func(t *testing.T) { testKeepsTheFields(t, f(t, time.Hour)) })
	t.Run("ForgetsOldEntries", func(t *testing.T) { testForgetsOldEntries(t, f(t, 300*time.Millisecond)) })
	t.Run("Empty", func(t *testing.T) {
		c := f(t, time.Hour)
		if err := c.AddRevocations(t.Context(), nil); err != nil {
			t.Fatalf("adding nothing: %v", err)
		}
		got, err := c.RevocationsSince(t.Context(), time.Now().Add(-time.Hour))
		if err != nil || len(got) != 0 {
			t.Fatalf("RevocationsSince on an empty cache = %v, %v; want none", got, err)
		}
	})
}

func rev(id string, at time.Time) ports.Revocation {
	return ports.Revocation{SessionID: id, UserID: "u-" + id, RevokedAt: at.UTC().Truncate(time.Millisecond)}
}

func ids(revs []ports.Revocation) []string {
	out := []string{}
	for _, r := range revs {
		out = append(out, r.SessionID)
	}
	slices.Sort(out)
	return out
}

func add(t *testing.T, c ports.RevocationCache, revs ...ports.Revocation) {
	t.Helper()
	if err := c.AddRevocations(t.Context(), revs); err != nil {
		t.Fatalf("AddRevocations: %v", err)
	}
}

func since(t *testing.T, c ports.RevocationCache, at time.Time) []string {
	t.Helper()
	got, err := c.RevocationsSince(t.Context(), at)
	if err != nil {
		t.Fatalf("RevocationsSince: %v", err)
	}
	return ids(got)
}

// A revocation made long ago but added now (a write retried after an
// outage) is found by a reader asking for what was added since its last poll.
func testReadsByTimeOfAdding(t *testing.T, c ports.RevocationCache) {
	old := time.Now().Add(-10 * time.Minute)
	add(t, c, rev("a", old), rev("b", old))
	time.Sleep(20 * time.Millisecond)
	mid := time.Now()
	time.Sleep(20 * time.Millisecond)
	add(t, c, rev("c", old))
	if got, want := since(t, c, mid), []string{"c"}; !slices.Equal(got, want) {
		t.Errorf("added since the middle = %v, want %v (entries are read by the time they were added)", got, want)
	}
	if got, want := since(t, c, mid.Add(-time.Minute)), []string{"a", "b", "c"}; !slices.Equal(got, want) {
		t.Errorf("added since a minute ago = %v, want %v", got, want)
	}
	if got := since(t, c, time.Now().Add(time.Minute)); len(got) != 0 {
		t.Errorf("added in the future = %v, want none", got)
	}
	// Adding one again is harmless.
	add(t, c, rev("c", old))
	if got, want := since(t, c, mid.Add(-time.Minute)), []string{"a", "b", "c"}; !slices.Equal(got, want) {
		t.Errorf("after adding c again = %v, want %v", got, want)
	}
}

func testKeepsTheFields(t *testing.T, c ports.RevocationCache) {
	at := time.Date(2031, 3, 4, 5, 6, 7, 891_000_000, time.UTC)
	want := ports.Revocation{SessionID: "0b9c6f52-1d7e-4c1f-9e9a-3f1f7f0e2a11", UserID: "7d3c2b1a-0000-4000-8000-000000000001", RevokedAt: at}
	add(t, c, want)
	got, err := c.RevocationsSince(t.Context(), time.Now().Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].SessionID != want.SessionID || got[0].UserID != want.UserID || !got[0].RevokedAt.Equal(want.RevokedAt) {
		t.Errorf("got %+v, want [%+v]", got, want)
	}
}

func testForgetsOldEntries(t *testing.T, c ports.RevocationCache) {
	add(t, c, rev("old", time.Now()))
	time.Sleep(500 * time.Millisecond)
	add(t, c, rev("new", time.Now()))
	if got, want := since(t, c, time.Now().Add(-time.Hour)), []string{"new"}; !slices.Equal(got, want) {
		t.Errorf("after the keep time = %v, want %v (older entries dropped)", got, want)
	}
}
