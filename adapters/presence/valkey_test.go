package presence_test

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/valkey-io/valkey-go"

	"github.com/halobestie/mitra-availability/adapters/presence"
	valkeyadapter "github.com/halobestie/mitra-availability/adapters/valkey"
	"github.com/halobestie/mitra-availability/internal/redisproc"
	"github.com/halobestie/mitra-availability/ports"
	"github.com/halobestie/mitra-availability/ports/presencetest"
)

// openClient connects to url as the service does, closing the client at cleanup.
func openClient(t *testing.T, url string) valkey.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := valkeyadapter.Open(ctx, valkeyadapter.Config{URL: url})
	if err != nil {
		t.Fatalf("connecting to %s: %v", url, err)
	}
	t.Cleanup(c.Close)
	return c
}

// prefix returns a key prefix no other test uses.
func prefix() string { return "test:presence:" + rand.Text()[:10] + ":" }

func newValkey(t *testing.T, c valkey.Client, prefix string, opts presence.ValkeyOptions) *presence.Valkey {
	t.Helper()
	p, err := presence.NewValkey(c, prefix, opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestValkeyContract(t *testing.T) {
	for _, s := range redisproc.Targets() {
		t.Run(s.Name, func(t *testing.T) {
			presencetest.Run(t, func(t *testing.T) func() ports.Presence {
				url, pfx := s.URL(t), prefix()
				return func() ports.Presence {
					// Each instance has its own client, as separate processes do.
					return newValkey(t, openClient(t, url), pfx, presence.ValkeyOptions{})
				}
			})
		})
	}
}

// An instance that dies without closing its connections (it stops
// refreshing) stops counting once its entries expire; one that keeps
// refreshing keeps its users online well past the TTL.
func TestValkeyKilledInstanceExpires(t *testing.T) {
	const ttl = 600 * time.Millisecond
	for _, s := range redisproc.Targets() {
		t.Run(s.Name, func(t *testing.T) {
			url, pfx := s.URL(t), prefix()
			killed := newValkey(t, openClient(t, url), pfx, presence.ValkeyOptions{TTL: ttl})
			alive := newValkey(t, openClient(t, url), pfx, presence.ValkeyOptions{TTL: ttl})
			observer := newValkey(t, openClient(t, url), pfx, presence.ValkeyOptions{TTL: ttl})
			users := []string{"alice", "bob"}
			presencetest.Connect(t, killed, "alice")
			presencetest.Connect(t, alive, "bob")
			presencetest.AssertOnline(t, observer, users, "alice", "bob")

			deadline := time.Now().Add(3 * ttl)
			for time.Now().Before(deadline) {
				if err := alive.Refresh(t.Context()); err != nil {
					t.Fatalf("Refresh: %v", err)
				}
				time.Sleep(presence.RefreshInterval(ttl))
			}
			presencetest.AssertOnline(t, observer, users, "bob")
			// The killed instance still believes in its own connection: only
			// the shared view forgot it.
			presencetest.AssertOnline(t, killed, users, "alice", "bob")
		})
	}
}

// Entries lost on the server (a restart, a flush) come back with the next Refresh.
func TestValkeyRefreshRestoresLostEntries(t *testing.T) {
	m := miniredis.RunT(t)
	url, pfx := "redis://"+m.Addr(), prefix()
	one := newValkey(t, openClient(t, url), pfx, presence.ValkeyOptions{})
	two := newValkey(t, openClient(t, url), pfx, presence.ValkeyOptions{})
	presencetest.Connect(t, one, "alice")
	m.FlushAll()
	presencetest.AssertOnline(t, two, []string{"alice"})
	if err := one.Refresh(t.Context()); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	presencetest.AssertOnline(t, two, []string{"alice"}, "alice")
	// A user who left is not written back.
	presencetest.Disconnect(t, one, "alice")
	if err := one.Refresh(t.Context()); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	presencetest.AssertOnline(t, two, []string{"alice"})
}

// While Valkey is unreachable or hung, every call fails within about the
// timeout; Online still reports the users connected to this instance, and
// the connections made meanwhile are written by the first Refresh after.
func TestValkeyOutage(t *testing.T) {
	const timeout = 200 * time.Millisecond
	s := redisproc.StartForTest(t)
	url, pfx := s.URL(), prefix()
	here := newValkey(t, openClient(t, url), pfx, presence.ValkeyOptions{Timeout: timeout})
	there := newValkey(t, openClient(t, url), pfx, presence.ValkeyOptions{Timeout: timeout})
	presencetest.Connect(t, there, "bob")

	ctx := t.Context()
	bound := func(what string, call func() error) {
		t.Helper()
		start := time.Now()
		err := call()
		if err == nil {
			t.Errorf("%s: no error while Valkey is hung", what)
		}
		if took := time.Since(start); took > 3*timeout {
			t.Errorf("%s took %v, want about %v", what, took, timeout)
		}
	}
	if err := s.Freeze(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Thaw() })
	bound("Connected", func() error { return here.Connected(ctx, "alice") })
	var online map[string]bool
	bound("Online", func() (err error) { online, err = here.Online(ctx, []string{"alice", "bob"}); return err })
	if !online["alice"] || online["bob"] || len(online) != 1 {
		t.Errorf("Online during the outage = %v, want alice (connected here) only", online)
	}
	bound("Refresh", func() error { return here.Refresh(ctx) })
	bound("Disconnected", func() error { return there.Disconnected(ctx, "bob") })

	if err := s.Thaw(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := here.Refresh(ctx)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Refresh after the outage: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// bob's removal was lost: he stays online for another instance until his
	// entry expires (the TTL); alice is back.
	got, err := there.Online(ctx, []string{"alice"})
	if err != nil || !got["alice"] {
		t.Errorf("Online(alice) after the outage = %v, %v; want online", got, err)
	}
}

func TestNewValkeyValidates(t *testing.T) {
	if _, err := presence.NewValkey(nil, "", presence.ValkeyOptions{}); err == nil {
		t.Error("nil client accepted")
	}
}
