package valkey_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valkey-io/valkey-go"

	"github.com/halobestie/mitra-availability/internal/redisproc"
)

// randomPrefix returns a key prefix no other test uses.
func randomPrefix(t *testing.T) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "test:" + hex.EncodeToString(b[:]) + ":"
}

// restart starts s again (empty), failing the test when it cannot.
func restart(t *testing.T, s *redisproc.Server) {
	t.Helper()
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
}

// startCluster starts three cluster-enabled servers, joins them into a
// cluster without replicas and waits until it serves every slot.
func startCluster(t *testing.T) []*redisproc.Server {
	t.Helper()
	cli, err := redisproc.CLI()
	if err != nil {
		if os.Getenv(redisproc.EnvRequire) == "1" {
			t.Fatalf("REQUIRE_INTEGRATION=1 but %v", err)
		}
		t.Skip(err)
	}
	nodes := make([]*redisproc.Server, 3)
	for i := range nodes {
		nodes[i] = redisproc.StartForTest(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "2000")
	}
	args := []string{"--cluster", "create"}
	for _, n := range nodes {
		args = append(args, n.Addr())
	}
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, n := range nodes {
		for {
			out, err := exec.Command(cli, "-p", strconv.Itoa(n.Port()), "cluster", "info").CombinedOutput()
			if err == nil && strings.Contains(string(out), "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cluster node %s not ok: %v\n%s", n.Addr(), err, out)
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
