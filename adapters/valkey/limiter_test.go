package valkey_test

import (
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/valkey-io/valkey-go"

	vk "github.com/halobestie/mitra-availability/adapters/valkey"
	"github.com/halobestie/mitra-availability/ports"
	"github.com/halobestie/mitra-availability/ports/limitertest"
)

func TestLimiterMiniredis(t *testing.T) {
	limitertest.Run(t, func(t *testing.T) ports.Limiter {
		mr := miniredis.RunT(t)
		return vk.NewLimiter(open(t, "redis://"+mr.Addr()), "env:", time.Second)
	})
}

// sharedLimiter returns a factory of limiters on one client, each with its
// own prefix whose keys are deleted when the test ends.
func sharedLimiter(c valkey.Client) limitertest.Factory {
	return func(t *testing.T) ports.Limiter {
		prefix := randomPrefix(t)
		t.Cleanup(func() { deleteKeys(t, c, prefix) })
		return vk.NewLimiter(c, prefix, time.Second)
	}
}

func TestLimiterServer(t *testing.T) {
	limitertest.Run(t, sharedLimiter(sharedServer(t)))
}

func TestLimiterCluster(t *testing.T) {
	nodes := startCluster(t)
	c := open(t, nodes[0].Addr()+","+nodes[1].Addr()+","+nodes[2].Addr())
	limitertest.Run(t, sharedLimiter(c))
}

// TestLimiterKey checks the key's shape: the prefix taken literally, its own
// hash tag, bounded length whatever the key.
func TestLimiterKey(t *testing.T) {
	l := vk.NewLimiter(nil, "env:", time.Second)
	k := l.Key("login:phone:+628123456789")
	if len(k) != len("env:limit:{}")+32 || k[:len("env:limit:{")] != "env:limit:{" || k[len(k)-1] != '}' {
		t.Fatalf("key %q", k)
	}
	if l.Key("a") == l.Key("b") {
		t.Fatal("two keys share a Valkey key")
	}
}
