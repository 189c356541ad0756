package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/valkey-io/valkey-go"

	vk "github.com/halobestie/mitra-availability/adapters/valkey"
	"github.com/halobestie/mitra-availability/internal/redisproc"
)

// Environment the benchmarks read (scripts/with-services.sh sets them).
const (
	envValkeyURL = "TEST_VALKEY_URL"
	envRequire   = "REQUIRE_INTEGRATION"
)

// missing skips tb for a missing service, or fails it when
// REQUIRE_INTEGRATION=1.
func missing(tb testing.TB, format string, args ...any) {
	tb.Helper()
	if os.Getenv(envRequire) == "1" {
		tb.Fatalf("REQUIRE_INTEGRATION=1 but "+format, args...)
	}
	tb.Skipf(format, args...)
}

// randomHex returns n random bytes in hex.
func randomHex(tb testing.TB, n int) string {
	tb.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// sharedValkey connects to the shared test server (TEST_VALKEY_URL); the
// client is closed when tb ends.
func sharedValkey(tb testing.TB) valkey.Client {
	tb.Helper()
	url := redisproc.SharedURL(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := vk.Open(ctx, vk.Config{URL: url})
	if err != nil {
		tb.Fatalf("open %s: %v", redisproc.EnvSharedURL, err)
	}
	tb.Cleanup(c.Close)
	return c
}

// deletePrefix deletes every key that starts with prefix (which holds no glob
// character), one UNLINK per key so that it works on a cluster too.
func deletePrefix(tb testing.TB, c valkey.Client, prefix string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for addr, node := range c.Nodes() {
		var cursor uint64
		for {
			e, err := node.Do(ctx, node.B().Scan().Cursor(cursor).Match(prefix+"*").Count(5000).Build()).AsScanEntry()
			if err != nil {
				tb.Errorf("scan %s: %v", addr, err)
				break
			}
			if len(e.Elements) > 0 {
				cmds := make(valkey.Commands, len(e.Elements))
				for i, k := range e.Elements {
					cmds[i] = c.B().Unlink().Key(k).Build()
				}
				for _, r := range c.DoMulti(ctx, cmds...) {
					if err := r.Error(); err != nil {
						tb.Errorf("unlink: %v", err)
						return
					}
				}
			}
			if cursor = e.Cursor; cursor == 0 {
				break
			}
		}
	}
}

// privateServer is a redis-server (or valkey-server) started for one
// measurement (internal/redisproc: without persistence, on a free loopback
// port, killed by its PID when the test or benchmark ends). The shared servers
// are never used for memory measurements, because FLUSHALL is needed between
// them.
type privateServer struct {
	*redisproc.Server
}

// startPrivateServer starts the server binary named by TEST_REDIS_SERVER, or
// the first of redis-server and valkey-server on PATH, with DEBUG enabled
// where the server knows the option.
func startPrivateServer(tb testing.TB) *privateServer {
	tb.Helper()
	bin, err := redisproc.Binary()
	if err != nil {
		missing(tb, "%v", err)
	}
	// DEBUG HTSTATS lets the memory probe wait for rehashing; servers before 7.0 lack the option.
	for _, args := range [][]string{{"--enable-debug-command", "yes"}, nil} {
		s, err := redisproc.Start(redisproc.Options{Bin: bin, Dir: tb.TempDir(), Args: args})
		if err == nil {
			tb.Cleanup(s.Kill)
			return &privateServer{s}
		}
		if args == nil || !strings.Contains(err.Error(), "enable-debug-command") {
			tb.Fatal(err)
		}
	}
	return nil
}

// connect opens a client to the server.
func (s *privateServer) connect(tb testing.TB) valkey.Client {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := vk.Open(ctx, vk.Config{URL: s.URL()})
	if err != nil {
		tb.Fatalf("open private server: %v", err)
	}
	return c
}
