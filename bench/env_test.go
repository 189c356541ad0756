package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valkey-io/valkey-go"

	vk "github.com/halobestie/mitra-availability/adapters/valkey"
)

// Environment the benchmarks read (scripts/with-services.sh sets them).
const (
	envValkeyURL   = "TEST_VALKEY_URL"
	envRedisServer = "TEST_REDIS_SERVER"
	envRequire     = "REQUIRE_INTEGRATION"
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

// sharedValkey connects to the server at TEST_VALKEY_URL; the client is
// closed when tb ends.
func sharedValkey(tb testing.TB) valkey.Client {
	tb.Helper()
	url := os.Getenv(envValkeyURL)
	if url == "" {
		missing(tb, "%s is unset (run through scripts/with-services.sh)", envValkeyURL)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := vk.Open(ctx, vk.Config{URL: url})
	if err != nil {
		tb.Fatalf("open %s: %v", envValkeyURL, err)
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

// privateServer is a redis-server (or valkey-server) process started for one
// measurement, without persistence, on a free loopback port. It is killed by
// its PID when the test or benchmark ends. The shared servers are never used
// for memory measurements, because FLUSHALL is needed between them.
type privateServer struct {
	addr   string
	cmd    *exec.Cmd
	out    *bytes.Buffer
	exited chan struct{} // closed once the process was reaped
}

// startPrivateServer starts the server binary named by TEST_REDIS_SERVER, or
// the first of redis-server and valkey-server on PATH.
func startPrivateServer(tb testing.TB) *privateServer {
	tb.Helper()
	bin := os.Getenv(envRedisServer)
	if bin == "" {
		for _, name := range []string{"redis-server", "valkey-server"} {
			if p, err := exec.LookPath(name); err == nil {
				bin = p
				break
			}
		}
	}
	if bin == "" {
		missing(tb, "no redis-server or valkey-server on PATH and %s unset", envRedisServer)
	}
	var lastErr error
	debug := true // DEBUG HTSTATS lets the memory probe wait for rehashing; servers before 7.0 lack the option
	for range 5 {
		port, err := freePort()
		if err != nil {
			tb.Fatalf("free port: %v", err)
		}
		s := &privateServer{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), out: &bytes.Buffer{}}
		args := []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", tb.TempDir()}
		if debug {
			args = append(args, "--enable-debug-command", "yes")
		}
		s.cmd = exec.Command(bin, args...)
		s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
		if err := s.cmd.Start(); err != nil {
			tb.Fatalf("start %s: %v", bin, err)
		}
		s.exited = make(chan struct{})
		go func() {
			_ = s.cmd.Wait()
			close(s.exited)
		}()
		if lastErr = s.waitReady(10 * time.Second); lastErr == nil {
			tb.Cleanup(s.stop)
			return s
		}
		s.stop()
		if strings.Contains(lastErr.Error(), "enable-debug-command") {
			debug = false
		}
	}
	tb.Fatalf("%s did not start: %v", bin, lastErr)
	return nil
}

// freePort returns a loopback port nothing listens on.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitReady waits until the server accepts connections, or exited.
func (s *privateServer) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-s.exited:
			return fmt.Errorf("exited: %s", strings.TrimSpace(s.out.String()))
		default:
		}
		if c, err := net.DialTimeout("tcp", s.addr, 100*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not answering on %s after %v", s.addr, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop kills the server by its PID and waits until it was reaped (idempotent).
func (s *privateServer) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
	}
	s.cmd = nil
}

// connect opens a client to the server.
func (s *privateServer) connect(tb testing.TB) valkey.Client {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := vk.Open(ctx, vk.Config{URL: "redis://" + s.addr})
	if err != nil {
		tb.Fatalf("open private server: %v", err)
	}
	return c
}
