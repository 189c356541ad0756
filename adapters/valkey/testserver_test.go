package valkey_test

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
	"syscall"
	"testing"
	"time"

	"github.com/valkey-io/valkey-go"
)

// requireIntegration reports whether a missing integration dependency is a
// failure (REQUIRE_INTEGRATION=1) rather than a skip.
func requireIntegration() bool { return os.Getenv("REQUIRE_INTEGRATION") == "1" }

// missing fails or skips the test for a missing dependency.
func missing(t *testing.T, format string, args ...any) {
	t.Helper()
	if requireIntegration() {
		t.Fatalf("REQUIRE_INTEGRATION=1 but "+format, args...)
	}
	t.Skipf(format, args...)
}

// binary finds a Redis/Valkey executable from env (TEST_REDIS_SERVER,
// TEST_REDIS_CLI) or PATH.
func binary(t *testing.T, env string, names ...string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		return p
	}
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	missing(t, "no %s in PATH and %s unset", strings.Join(names, " or "), env)
	return ""
}

func serverBinary(t *testing.T) string {
	return binary(t, "TEST_REDIS_SERVER", "redis-server", "valkey-server")
}

func cliBinary(t *testing.T) string {
	return binary(t, "TEST_REDIS_CLI", "redis-cli", "valkey-cli")
}

// randomPrefix returns a key prefix no other test uses.
func randomPrefix(t *testing.T) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "test:" + hex.EncodeToString(b[:]) + ":"
}

// freePort returns a loopback port that is free, and whose cluster bus port
// (port+10000) is free too.
func freePort(t *testing.T) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if p+10000 > 65535 {
			continue
		}
		bus, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+10000))
		if err != nil {
			continue
		}
		bus.Close()
		return p
	}
	t.Fatal("no free port pair")
	return 0
}

// server is a redis-server process the test started and owns.
type server struct {
	t    *testing.T
	bin  string
	dir  string
	port int
	args []string
	cmd  *exec.Cmd
	out  *bytes.Buffer
}

// startServer starts a redis-server without persistence on a free port in
// its own directory; extra are further arguments. It is killed by PID in
// t.Cleanup.
func startServer(t *testing.T, extra ...string) *server {
	t.Helper()
	s := &server{t: t, bin: serverBinary(t), dir: t.TempDir(), port: freePort(t), args: extra}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *server) addr() string { return fmt.Sprintf("127.0.0.1:%d", s.port) }

func (s *server) start() {
	s.t.Helper()
	args := append([]string{"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--daemonize", "no", "--dir", s.dir}, s.args...)
	s.out = &bytes.Buffer{}
	s.cmd = exec.Command(s.bin, args...)
	s.cmd.Dir = s.dir
	s.cmd.Stdout = s.out
	s.cmd.Stderr = s.out
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start %s: %v", s.bin, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.addr(), 100*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			s.stop()
			s.t.Fatalf("%s on port %d did not start: %v\n%s", s.bin, s.port, err, s.out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// signal sends sig to the server's PID.
func (s *server) signal(sig syscall.Signal) {
	s.t.Helper()
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Logf("signal %v to pid %d: %v", sig, s.cmd.Process.Pid, err)
	}
}

// stop kills the server by its PID and reaps it (idempotent).
func (s *server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGCONT) // a stopped process must run to die
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// startCluster starts three cluster-enabled servers, joins them into a
// cluster without replicas and waits until it serves every slot.
func startCluster(t *testing.T) []*server {
	t.Helper()
	cli := cliBinary(t)
	nodes := make([]*server, 3)
	for i := range nodes {
		nodes[i] = startServer(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "2000")
	}
	args := []string{"--cluster", "create"}
	for _, n := range nodes {
		args = append(args, n.addr())
	}
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, n := range nodes {
		for {
			out, err := exec.Command(cli, "-p", strconv.Itoa(n.port), "cluster", "info").CombinedOutput()
			if err == nil && strings.Contains(string(out), "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cluster node %s not ok: %v\n%s", n.addr(), err, out)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nodes
}

// deleteKeys deletes every key that starts with prefix, on every node.
func deleteKeys(t *testing.T, c valkey.Client, prefix string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pattern := escapeGlob(prefix) + "*"
	for addr, n := range c.Nodes() {
		var cursor uint64
		for {
			e, err := n.Do(ctx, n.B().Scan().Cursor(cursor).Match(pattern).Count(1000).Build()).AsScanEntry()
			if err != nil {
				t.Errorf("scan %s: %v", addr, err)
				break
			}
			for _, k := range e.Elements {
				// DEL of one key at a time: each lands on its own slot's node.
				if err := c.Do(ctx, c.B().Del().Key(k).Build()).Error(); err != nil {
					t.Errorf("del %s: %v", k, err)
				}
			}
			if cursor = e.Cursor; cursor == 0 {
				break
			}
		}
	}
}

// escapeGlob escapes the glob characters of s for SCAN MATCH.
func escapeGlob(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
