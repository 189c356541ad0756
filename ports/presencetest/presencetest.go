// Package presencetest is the contract test suite of ports.Presence. Each
// adapter's tests call Run: the memory presence, and the Valkey presence over
// miniredis and over a real server.
//
// A factory hands the suite a function that makes instances sharing one
// registry, as the instances of one deployment do: what one instance records,
// every instance sees. (For the memory presence, which serves a single
// process, every "instance" is the same value.)
package presencetest

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"

	"github.com/halobestie/mitra-availability/ports"
)

// Factory returns, for one test, a function that makes instances over one
// fresh, empty registry; it registers any cleanup with t.
type Factory func(t *testing.T) (newInstance func() ports.Presence)

// Run runs the suite.
func Run(t *testing.T, f Factory) {
	t.Run("OneConnection", func(t *testing.T) { testOneConnection(t, f(t)()) })
	t.Run("SeveralConnections", func(t *testing.T) { testSeveralConnections(t, f(t)()) })
	t.Run("SharedAcrossInstances", func(t *testing.T) { testShared(t, f(t)) })
	t.Run("DisconnectedWithoutConnected", func(t *testing.T) { testUnbalanced(t, f(t)()) })
	t.Run("OnlineOfNone", func(t *testing.T) { testOnlineOfNone(t, f(t)()) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, f(t)()) })
}

// Users are the ids the suite uses; any string is a user id to the port.
const (
	alice = "00000000-0000-4000-8000-00000000000a"
	bob   = "00000000-0000-4000-8000-00000000000b"
	carol = "00000000-0000-4000-8000-00000000000c"
)

// Connect records a connection of user on p, failing the test on error.
func Connect(t *testing.T, p ports.Presence, user string) {
	t.Helper()
	if err := p.Connected(t.Context(), user); err != nil {
		t.Fatalf("Connected(%s): %v", user, err)
	}
}

// Disconnect records that a connection of user on p closed, failing the test on error.
func Disconnect(t *testing.T, p ports.Presence, user string) {
	t.Helper()
	if err := p.Disconnected(t.Context(), user); err != nil {
		t.Fatalf("Disconnected(%s): %v", user, err)
	}
}

// AssertOnline checks that, of users, p.Online reports exactly want.
func AssertOnline(t *testing.T, p ports.Presence, users []string, want ...string) {
	t.Helper()
	got, err := p.Online(t.Context(), users)
	if err != nil {
		t.Fatalf("Online(%v): %v", users, err)
	}
	if got == nil {
		t.Fatalf("Online(%v) = nil map", users)
	}
	ids := slices.Sorted(maps.Keys(got))
	for id, on := range got {
		if !on {
			t.Errorf("Online(%v) holds %s = false; want only the online users, each true", users, id)
		}
	}
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(ids, want) {
		t.Errorf("Online(%v) = %v, want %v", users, ids, want)
	}
}

var everyone = []string{alice, bob, carol}

func testOneConnection(t *testing.T, p ports.Presence) {
	AssertOnline(t, p, everyone)
	Connect(t, p, alice)
	AssertOnline(t, p, everyone, alice)
	AssertOnline(t, p, []string{bob})
	Disconnect(t, p, alice)
	AssertOnline(t, p, everyone)
}

func testSeveralConnections(t *testing.T, p ports.Presence) {
	Connect(t, p, alice)
	Connect(t, p, alice)
	Connect(t, p, bob)
	Disconnect(t, p, alice)
	AssertOnline(t, p, everyone, alice, bob)
	Disconnect(t, p, alice)
	AssertOnline(t, p, everyone, bob)
	Disconnect(t, p, bob)
	AssertOnline(t, p, everyone)
}

func testShared(t *testing.T, newInstance func() ports.Presence) {
	one, two := newInstance(), newInstance()
	Connect(t, one, alice)
	AssertOnline(t, two, everyone, alice)
	Connect(t, two, alice)
	Connect(t, two, bob)
	AssertOnline(t, one, everyone, alice, bob)
	// alice's connection on one closes; her connection on two remains.
	Disconnect(t, one, alice)
	AssertOnline(t, one, everyone, alice, bob)
	AssertOnline(t, two, everyone, alice, bob)
	Disconnect(t, two, alice)
	AssertOnline(t, one, everyone, bob)
	AssertOnline(t, two, everyone, bob)
	// A third instance started later sees the same.
	AssertOnline(t, newInstance(), everyone, bob)
}

// A Disconnected without its Connected (a caller's bug, or a retry) is no
// error and never leaves a negative count behind.
func testUnbalanced(t *testing.T, p ports.Presence) {
	Disconnect(t, p, alice)
	AssertOnline(t, p, everyone)
	Connect(t, p, alice)
	AssertOnline(t, p, everyone, alice)
	Disconnect(t, p, alice)
	AssertOnline(t, p, everyone)
}

func testOnlineOfNone(t *testing.T, p ports.Presence) {
	Connect(t, p, alice)
	AssertOnline(t, p, nil)
	AssertOnline(t, p, []string{})
	AssertOnline(t, p, []string{alice, alice, bob}, alice)
}

// Many connections opening and closing at once leave exactly the ones still open.
func testConcurrent(t *testing.T, p ports.Presence) {
	const n = 20
	users := make([]string, n)
	for i := range users {
		users[i] = fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4*n)
	for i := range n {
		wg.Go(func() {
			for range 3 {
				if err := p.Connected(t.Context(), users[i]); err != nil {
					errs <- err
				}
			}
			for range 2 {
				if err := p.Disconnected(t.Context(), users[i]); err != nil {
					errs <- err
				}
			}
		})
		// Everyone also opens and closes a connection on alice.
		wg.Go(func() {
			if err := p.Connected(t.Context(), alice); err != nil {
				errs <- err
			}
			if err := p.Disconnected(t.Context(), alice); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	AssertOnline(t, p, append([]string{alice}, users...), users...)
	for _, u := range users {
		Disconnect(t, p, u)
	}
	AssertOnline(t, p, append([]string{alice}, users...))
}
