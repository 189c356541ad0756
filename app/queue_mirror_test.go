package app_test

// The waiting queue's reads (docs/contract.md §10: queue_position, the
// estimated wait, the dashboard's queue figures) come from the queue mirror
// while the cache is up: no Postgres statement. With Valkey down they come
// from Postgres, with the same answers, and after Valkey restarts empty the
// reseed puts every instance back on the mirror.

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/client"
)

// queueRequest makes customer c request a session that waits in the queue.
func (in *instance) queueRequest(c account) client.Session {
	in.t.Helper()
	var v client.Session
	in.api.do(http.MethodPost, "/api/sessions", c.Access, map[string]any{"duration_minutes": 30, "queue": true}, http.StatusCreated, &v)
	return v
}

// session reads session id as a.
func (in *instance) session(a account, id string) client.Session {
	in.t.Helper()
	var v client.Session
	in.api.do(http.MethodGet, "/api/sessions/"+id, a.Access, nil, http.StatusOK, &v)
	return v
}

// onQueuePath: the statement ran for a queue read (a position, the match
// rate, the dashboard's queue figures) in an HTTP request's goroutine.
func (s stmt) onQueuePath() bool {
	return s.onRequestPath() && (s.from("sessions.(*Service).queueFigures") || s.from("sessions.(*matchRate).get") ||
		s.from("sessions.(*Service).QueueSummary"))
}

// waitingOrder is the queue in Postgres: the waiting sessions' ids in the queue's order.
func (s *setup) waitingOrder() []string {
	s.t.Helper()
	var ids []string
	err := s.bun.NewRaw(`SELECT id::text FROM chat_sessions
		WHERE status = 'searching' AND queue_seq IS NOT NULL AND queue_matched_at IS NULL AND offer_expires_at IS NULL
		ORDER BY queue_priority DESC, queued_at, queue_seq`).Scan(context.Background(), &ids)
	if err != nil {
		s.t.Fatal(err)
	}
	return ids
}

// queueKeyCard is the number of members of the queue mirror in Valkey.
func (s *setup) queueKeyCard() (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return s.kv.Do(ctx, s.kv.B().Zcard().Key(s.key("queue")).Build()).AsInt64()
}

// positionsAgree reads every session of ids as its customer on each
// instance and compares its queue_position with Postgres's order; it
// returns how many statements the reads ran for the queue.
func positionsAgree(t *testing.T, s *setup, ids []string, owner map[string]account, ins ...*instance) int {
	t.Helper()
	order := s.waitingOrder()
	queueStmts := 0
	for _, in := range ins {
		mark := 0
		if in.Stmts != nil {
			mark = in.Stmts.mark()
		}
		for _, id := range ids {
			v := in.session(owner[id], id)
			want := slices.Index(order, id) + 1 // 0: not waiting
			got := 0
			if v.QueuePosition != nil {
				got = *v.QueuePosition
			}
			if got != want {
				t.Errorf("instance %s: position of %s = %d, want %d (Postgres's order %v)", in.api.base, id, got, want, order)
			}
		}
		if in.Stmts != nil {
			queueStmts += len(in.Stmts.since(mark, stmt.onQueuePath))
		}
	}
	return queueStmts
}

// TestQueueReadStatements: with Valkey up and seeded, GET /api/sessions/{id}
// of a waiting session runs no statement for its position and estimate
// (the session's own row is its one statement), and the dashboard's queue
// figures none; with Valkey down both are answered from Postgres.
func TestQueueReadStatements(t *testing.T) {
	t.Parallel()
	s := newSetup(t, true)
	in := s.start(opts{statements: true})
	owner := map[string]account{}
	var ids []string
	for range 3 {
		c := in.createCustomer()
		v := in.queueRequest(c)
		if v.QueuePosition == nil || *v.QueuePosition != len(ids)+1 {
			t.Fatalf("queued session %d: position %v", len(ids)+1, v.QueuePosition)
		}
		owner[v.ID] = c
		ids = append(ids, v.ID)
	}
	in.waitClean(5 * time.Second)
	in.dashboard() // fills the snapshot of the session counts (not the queue's)

	const n, attempts = 20, 3
	for attempt := 1; ; attempt++ {
		epoch := in.Health.Epoch()
		mark := in.Stmts.mark()
		for range n {
			v := in.session(owner[ids[2]], ids[2])
			if v.QueuePosition == nil || *v.QueuePosition != 3 {
				t.Fatalf("position %v, want 3", v.QueuePosition)
			}
		}
		get := in.Stmts.since(mark, stmt.onRequestPath)
		mark = in.Stmts.mark()
		for range n {
			if d := in.dashboard(); d.Queue.Length != 3 {
				t.Fatalf("dashboard queue length %d, want 3", d.Queue.Length)
			}
		}
		dash := in.Stmts.since(mark, stmt.onRequestPath)
		if in.Health.Epoch() != epoch && attempt < attempts {
			t.Logf("attempt %d: the cache reported an event (a reseed is due); measuring again", attempt)
			in.waitClean(5 * time.Second)
			continue
		}
		var queue []stmt
		for _, st := range append(slices.Clone(get), dash...) {
			if st.onQueuePath() {
				queue = append(queue, st)
			}
		}
		if len(queue) != 0 {
			t.Errorf("%d position reads and %d dashboards with Valkey up ran %d statements for the queue, want 0:%s", n, n, len(queue), describe(queue))
		}
		if len(get) != n {
			t.Errorf("%d reads of a waiting session ran %d statements on the request path, want %d (its row):%s", n, len(get), n, describe(get))
		}
		t.Logf("statements on the request path with Valkey up: %d for %d GET /api/sessions/{id} (the session's row), %d for %d dashboards, %d of them for the queue",
			len(get), n, len(dash), n, len(queue))
		break
	}

	// Valkey down: the same answers, from Postgres.
	s.redis.kill()
	for i := range 5 {
		mark := in.Stmts.mark()
		v := in.session(owner[ids[1]], ids[1])
		if v.QueuePosition == nil || *v.QueuePosition != 2 {
			t.Fatalf("position with Valkey down %v, want 2", v.QueuePosition)
		}
		if d := in.dashboard(); d.Queue.Length != 3 {
			t.Fatalf("dashboard queue length with Valkey down %d, want 3", d.Queue.Length)
		}
		if ran := in.Stmts.since(mark, stmt.onQueuePath); len(ran) < 2 {
			t.Errorf("read %d with Valkey down ran %d statements for the queue, want at least 2 (from Postgres)", i, len(ran))
		}
	}
}

// TestQueuePositionsAgreeAfterValkeyRestart: two instances agree on every
// position with Valkey up, while it is down (Postgres answers) and after it
// restarts empty: the reseed of each instance puts the queue back, written
// while Valkey was down included, and the reads come from the mirror again.
func TestQueuePositionsAgreeAfterValkeyRestart(t *testing.T) {
	t.Parallel()
	s := newSetup(t, true)
	a := s.start(opts{statements: true})
	b := s.start(opts{statements: true})
	owner := map[string]account{}
	var ids []string
	queue := func(in *instance) {
		t.Helper()
		c := in.createCustomer()
		v := in.queueRequest(c)
		owner[v.ID] = c
		ids = append(ids, v.ID)
	}
	for i := range 4 {
		queue([]*instance{a, b}[i%2])
	}
	a.waitClean(5 * time.Second)
	b.waitClean(5 * time.Second)
	if n := positionsAgree(t, s, ids, owner, a, b); n != 0 {
		t.Errorf("positions with Valkey up ran %d statements for the queue, want 0", n)
	}

	s.redis.kill()
	b.end(owner[ids[1]], ids[1]) // the second cancels
	queue(a)                     // a fifth joins
	queue(b)                     // a sixth
	positionsAgree(t, s, ids, owner, a, b)

	s.redis.restart()
	eventually(t, 15*time.Second, "both instances reseeded", func() string {
		for _, in := range []*instance{a, b} {
			if in.Health.Dirty() {
				return fmt.Sprintf("%s is still dirty", in.api.base)
			}
		}
		n, err := s.queueKeyCard()
		if err != nil {
			return err.Error()
		}
		if want := len(s.waitingOrder()); int(n) != want {
			return fmt.Sprintf("the queue mirror holds %d, Postgres %d waiting", n, want)
		}
		return ""
	})
	if n := positionsAgree(t, s, ids, owner, a, b); n != 0 {
		t.Errorf("positions after the reseed ran %d statements for the queue, want 0", n)
	}
	for _, in := range []*instance{a, b} {
		if d, want := in.dashboard(), len(s.waitingOrder()); d.Queue.Length != want {
			t.Errorf("dashboard of %s after the restart: queue length %d, want %d", in.api.base, d.Queue.Length, want)
		}
	}
}
