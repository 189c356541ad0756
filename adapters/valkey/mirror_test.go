package valkey_test

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/valkey-io/valkey-go"

	vk "github.com/halobestie/mitra-availability/adapters/valkey"
	"github.com/halobestie/mitra-availability/internal/redisproc"
	"github.com/halobestie/mitra-availability/ports/mirrortest"
)

// open connects to url and closes the client in t.Cleanup.
func open(t *testing.T, url string) valkey.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := vk.Open(ctx, vk.Config{URL: url})
	if err != nil {
		t.Fatalf("Open(%s): %v", url, err)
	}
	t.Cleanup(c.Close)
	return c
}

// TestMirrorMiniredis runs the contract against miniredis, one server per
// test; expiry moves miniredis's clock instead of sleeping.
func TestMirrorMiniredis(t *testing.T) {
	mirrortest.Run(t, func(t *testing.T) mirrortest.Subject {
		mr := miniredis.RunT(t)
		c := open(t, "redis://"+mr.Addr())
		return mirrortest.Subject{
			Mirror: vk.NewMirror(c, "env:", time.Second),
			Flush:  func(*testing.T) { mr.FlushAll() },
			Wait:   func(_ *testing.T, d time.Duration) { mr.FastForward(d) },
		}
	})
}

// sharedSubject returns a factory of subjects on one client: each test has
// its own random prefix, and its keys are deleted when it ends.
func sharedSubject(c valkey.Client) mirrortest.Factory {
	return func(t *testing.T) mirrortest.Subject {
		prefix := randomPrefix(t)
		t.Cleanup(func() { deleteKeys(t, c, prefix) })
		return mirrortest.Subject{
			Mirror: vk.NewMirror(c, prefix, time.Second),
			Flush:  func(t *testing.T) { deleteKeys(t, c, prefix) },
		}
	}
}

var (
	serverOnce   sync.Once
	serverClient valkey.Client
	serverErr    error
)

// sharedServer returns one client of TEST_VALKEY_URL for the whole package.
func sharedServer(t *testing.T) valkey.Client {
	t.Helper()
	url := redisproc.SharedURL(t)
	serverOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		serverClient, serverErr = vk.Open(ctx, vk.Config{URL: url})
	})
	if serverErr != nil {
		t.Fatalf("Open(TEST_VALKEY_URL): %v", serverErr)
	}
	return serverClient
}

func TestMain(m *testing.M) {
	code := m.Run()
	if serverClient != nil {
		serverClient.Close()
	}
	os.Exit(code)
}

// TestMirrorServer runs the contract against the server at TEST_VALKEY_URL.
func TestMirrorServer(t *testing.T) {
	mirrortest.Run(t, sharedSubject(sharedServer(t)))
}

// TestMirrorCluster runs the contract against a three-node cluster of its own.
func TestMirrorCluster(t *testing.T) {
	nodes := startCluster(t)
	url := nodes[0].Addr() + "," + nodes[1].Addr() + "," + nodes[2].Addr()
	c := open(t, url)
	if len(c.Nodes()) != 3 {
		t.Fatalf("cluster client sees %d nodes, want 3", len(c.Nodes()))
	}
	mirrortest.Run(t, sharedSubject(c))
}
