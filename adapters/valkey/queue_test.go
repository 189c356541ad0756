package valkey_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/valkey-io/valkey-go"

	vk "github.com/halobestie/mitra-availability/adapters/valkey"
	"github.com/halobestie/mitra-availability/ports"
	"github.com/halobestie/mitra-availability/ports/queuemirrortest"
)

// TestQueueMirrorMiniredis runs the queue mirror's contract against
// miniredis, one server per test.
func TestQueueMirrorMiniredis(t *testing.T) {
	queuemirrortest.Run(t, func(t *testing.T) queuemirrortest.Subject {
		mr := miniredis.RunT(t)
		c := open(t, "redis://"+mr.Addr())
		return queuemirrortest.Subject{Mirror: vk.NewQueueMirror(c, "env:", time.Second), Flush: func(*testing.T) { mr.FlushAll() }}
	})
}

// sharedQueueSubject returns a factory of queue mirrors on one client, each
// under its own prefix, whose keys are deleted when its test ends.
func sharedQueueSubject(c valkey.Client) queuemirrortest.Factory {
	return func(t *testing.T) queuemirrortest.Subject {
		prefix := randomPrefix(t)
		t.Cleanup(func() { deleteKeys(t, c, prefix) })
		return queuemirrortest.Subject{Mirror: vk.NewQueueMirror(c, prefix, time.Second), Flush: func(t *testing.T) { deleteKeys(t, c, prefix) }}
	}
}

// TestQueueMirrorServer runs it against the server at TEST_VALKEY_URL.
func TestQueueMirrorServer(t *testing.T) {
	queuemirrortest.Run(t, sharedQueueSubject(sharedServer(t)))
}

// TestQueueMirrorCluster runs it against a three-node cluster of its own:
// every key of the queue is in the availability mirror's slot.
func TestQueueMirrorCluster(t *testing.T) {
	nodes := startCluster(t)
	queuemirrortest.Run(t, sharedQueueSubject(open(t, nodes[0].Addr()+","+nodes[1].Addr()+","+nodes[2].Addr())))
}

// TestQueueKeySchema pins the layout docs/valkey-keys.md describes for the
// queue: the key names, the member encoding, the negated priority as score,
// the version keys and their expiry.
func TestQueueKeySchema(t *testing.T) {
	mr := miniredis.RunT(t)
	c := open(t, "redis://"+mr.Addr())
	q := vk.NewQueueMirror(c, "stage:", time.Second)
	ctx := context.Background()
	at := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	if _, err := q.QueueReseed(ctx, ports.QueueTruth{MatchedSince: at.Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	a := ports.QueueMember{ID: "a", QueuedAt: at, Seq: 42}
	b := ports.QueueMember{ID: "b", QueuedAt: at, Seq: 7, Priority: 2}
	for _, m := range []ports.QueueMember{a, b} {
		if err := q.QueueJoin(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.QueueMatched(ctx, "m", at, at.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	want := []string{"stage:{avail}:queue", "stage:{avail}:queue:matched", "stage:{avail}:queue:seeded",
		"stage:{avail}:queue:v:a", "stage:{avail}:queue:v:b"}
	if got := mr.Keys(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("keys = %v, want %v", got, want)
	}
	us := fmt.Sprintf("%016d", at.UnixMicro())
	members, err := mr.ZMembers("stage:{avail}:queue")
	if err != nil || strings.Join(members, " ") != us+":0000000000000000007:b "+us+":0000000000000000042:a" {
		t.Errorf("members = %v, %v", members, err)
	}
	if s, err := mr.ZScore("stage:{avail}:queue", us+":0000000000000000007:b"); err != nil || s != -2 {
		t.Errorf("score of b = %v, %v; want -2", s, err)
	}
	if s, err := mr.ZScore("stage:{avail}:queue:matched", "m"); err != nil || s != float64(at.UnixMilli()) {
		t.Errorf("match score = %v, %v; want %d", s, err, at.UnixMilli())
	}
	if v, err := mr.Get("stage:{avail}:queue:v:a"); err != nil || v != "0" || mr.TTL("stage:{avail}:queue:v:a") != ports.QueueVersionKeep {
		t.Errorf("version of a = %q (ttl %v), %v; want 0 kept %v", v, mr.TTL("stage:{avail}:queue:v:a"), err, ports.QueueVersionKeep)
	}
}
