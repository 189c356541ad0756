package valkey_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valkey-io/valkey-go"

	vk "github.com/halobestie/mitra-availability/adapters/valkey"
	"github.com/halobestie/mitra-availability/internal/redisproc"
	"github.com/halobestie/mitra-availability/ports"
)

// faultTimeout is the mirror timeout of the fault tests; every call must
// fail within faultBound of it.
const (
	faultTimeout = 200 * time.Millisecond
	faultBound   = time.Second
)

// openCounting opens a client of s that counts its dials.
func openCounting(t *testing.T, s *redisproc.Server, dials *atomic.Int64) valkey.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := vk.Open(ctx, vk.Config{URL: "redis://" + s.Addr(), OnDial: func() { dials.Add(1) }})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// faultCalls are mirror calls of every kind (scripts, transactions, plain
// commands), each expected to fail fast while the server is unreachable.
func faultCalls(m *vk.Mirror, id string) map[string]func(ctx context.Context) error {
	now := time.Now()
	return map[string]func(ctx context.Context) error{
		"Status":    func(ctx context.Context) error { _, err := m.Status(ctx, id); return err },
		"Heartbeat": func(ctx context.Context) error { _, err := m.Heartbeat(ctx, id, now); return err },
		"Available": func(ctx context.Context) error { _, err := m.AvailableMitraIDs(ctx, now.Add(-time.Minute)); return err },
		"Count":     func(ctx context.Context) error { _, err := m.CountMitras(ctx, now.Add(-time.Minute)); return err },
		"PutOnline": func(ctx context.Context) error {
			return m.PutOnline(ctx, ports.MirrorMitra{ID: id, LastHeartbeat: now, Capacity: 1})
		},
		"Snapshot":   func(ctx context.Context) error { _, _, err := m.LoadSnapshot(ctx); return err },
		"Seeded":     func(ctx context.Context) error { _, err := m.Seeded(ctx); return err },
		"Ping":       func(ctx context.Context) error { return m.Ping(ctx) },
		"Reactivate": func(ctx context.Context) error { return m.Reactivate(ctx, id) },
	}
}

// checkFailsFast runs every fault call and asserts an error within faultBound.
func checkFailsFast(t *testing.T, m *vk.Mirror, id string) {
	t.Helper()
	for name, call := range faultCalls(m, id) {
		start := time.Now()
		err := call(context.Background())
		took := time.Since(start)
		if err == nil {
			t.Errorf("%s: no error from an unreachable server", name)
		}
		t.Logf("%s failed after %v: %v", name, took.Round(time.Millisecond), err)
		if took > faultBound {
			t.Errorf("%s took %v to fail, want under %v (timeout %v)", name, took, faultBound, faultTimeout)
		}
	}
}

// eventually retries fn until it succeeds or d passes.
func eventually(t *testing.T, d time.Duration, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after %v: %v", what, d, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestHungServer stops the server process (SIGSTOP): it accepts nothing and
// answers nothing, as a hung server or a dead network path. Every call must
// turn into an error within about the mirror's timeout, and the mirror must
// work again once the server runs again.
func TestHungServer(t *testing.T) {
	s := redisproc.StartForTest(t)
	var dials atomic.Int64
	c := openCounting(t, s, &dials)
	m := vk.NewMirror(c, randomPrefix(t), faultTimeout)
	ctx := context.Background()
	id := "2f1d7f0e-8a52-4b8e-9d0c-4c1a7e0b9f11"
	if _, err := m.Reseed(ctx, []ports.MirrorMitra{{ID: id, LastHeartbeat: time.Now(), Capacity: 1}}, nil); err != nil {
		t.Fatalf("Reseed: %v", err)
	}

	if err := s.Freeze(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Thaw() })
	checkFailsFast(t, m, id)
	start := time.Now()
	if _, err := m.Reseed(ctx, nil, nil); err == nil {
		t.Error("Reseed: no error from a hung server")
	} else if took := time.Since(start); took > 10*faultTimeout+faultBound {
		t.Errorf("Reseed took %v to fail, want under %v", took, 10*faultTimeout+faultBound)
	}

	if err := s.Thaw(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "Status after SIGCONT", func() error {
		st, err := m.Status(ctx, id)
		if err == nil && !st.Online {
			t.Fatalf("Status after SIGCONT = %+v, want online", st)
		}
		return err
	})
}

// TestKilledServer kills the server: calls fail fast; after a restart on
// the same port the client reconnects by itself (OnDial fires again), the
// mirror reports the lost data, and a reseed heals it.
func TestKilledServer(t *testing.T) {
	s := redisproc.StartForTest(t)
	var dials atomic.Int64
	c := openCounting(t, s, &dials)
	m := vk.NewMirror(c, randomPrefix(t), faultTimeout)
	ctx := context.Background()
	id := "7b0c5a1e-3d4f-4e2a-8b6c-1f2e3d4c5b6a"
	truth := []ports.MirrorMitra{{ID: id, LastHeartbeat: time.Now(), Capacity: 1}}
	if _, err := m.Reseed(ctx, truth, nil); err != nil {
		t.Fatalf("Reseed: %v", err)
	}
	before := dials.Load()
	if before == 0 {
		t.Fatal("OnDial was not called for the first connections")
	}

	s.Kill()
	checkFailsFast(t, m, id)

	restart(t, s)
	eventually(t, 10*time.Second, "Ping after restart", func() error { return m.Ping(ctx) })
	if dials.Load() <= before {
		t.Errorf("OnDial calls = %d after the restart, want more than %d", dials.Load(), before)
	}
	// The restarted server is empty: the mirror says so instead of answering "offline".
	if seeded, err := m.Seeded(ctx); err != nil || seeded {
		t.Errorf("Seeded after restart = %v, %v; want false", seeded, err)
	}
	if _, err := m.Status(ctx, id); !errors.Is(err, ports.ErrMirrorNotSeeded) {
		t.Errorf("Status after restart: err = %v, want ErrMirrorNotSeeded", err)
	}
	rep, err := m.Reseed(ctx, truth, nil)
	if err != nil || rep.Added != 1 {
		t.Fatalf("Reseed after restart = %+v, %v; want Added 1", rep, err)
	}
	if st, err := m.Status(ctx, id); err != nil || !st.Online {
		t.Errorf("Status after reseed = %+v, %v; want online", st, err)
	}
}

// TestOpenUnreachable: Open fails, within its dial timeout, when nothing listens.
func TestOpenUnreachable(t *testing.T) {
	addr, err := redisproc.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	c, err := vk.Open(ctx, vk.Config{URL: "redis://" + addr, DialTimeout: 500 * time.Millisecond})
	if err == nil {
		c.Close()
		t.Fatal("Open of a closed port: no error")
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Open took %v to fail", took)
	}
}
