package app_test

// The heartbeat is the hot path: docs/contract.md §5 says it costs no Postgres
// statement while the cache is up. These tests count the statements that run
// in the HTTP request goroutines (background workers, such as the session
// scheduler and the queue dispatcher, query on their own and are told apart
// by their stack).

import (
	"net/http"
	"testing"
	"time"
)

// TestHeartbeatStatements: with Valkey up and seeded, heartbeats over HTTP
// cost zero statements and the idle watcher queries nothing; with Valkey down
// each heartbeat costs a small bounded number and is still answered 204.
func TestHeartbeatStatements(t *testing.T) {
	t.Parallel()
	s := newSetup(t, true)
	in := s.start(opts{statements: true})
	m := in.createMitra(nil)
	in.online(m)
	in.waitClean(5 * time.Second)

	// A window in which the cache reported an event (a timeout under a
	// loaded machine, a new connection) rightly ends in a reseed; such a
	// window is measured again. A clean window must cost what is asserted.
	const n, attempts = 50, 3
	for attempt := 1; ; attempt++ {
		epoch := in.Health.Epoch()
		mark := in.Stmts.mark()
		total := in.Stmts.Count()
		for range n {
			in.heartbeat(m)
		}
		onPath := in.Stmts.since(mark, stmt.onRequestPath)
		// Every statement of the window came from the session scheduler's, the
		// queue dispatcher's or the event sequencer's loop (sessionWorker).
		others := in.Stmts.since(mark, func(s stmt) bool { return !sessionWorker(s) })
		if moved := in.Health.Epoch() != epoch; moved && len(others) > 0 && attempt < attempts {
			t.Logf("attempt %d: the cache reported an event during the heartbeats (a reseed is due); measuring again", attempt)
			in.waitClean(5 * time.Second)
			continue
		}
		if len(onPath) != 0 {
			t.Errorf("%d heartbeats with Valkey up ran %d statements on the request path, want 0:%s", n, len(onPath), describe(onPath))
		}
		if len(others) != 0 {
			t.Errorf("%d statements besides the session scheduler's, the queue dispatcher's and the event sequencer's during the heartbeats:%s", len(others), describe(others))
		}
		t.Logf("QueryCounter delta over %d heartbeats: %d (the session scheduler polls on its own)", n, in.Stmts.Count()-total)
		break
	}

	// The watcher checks Valkey every second; with nothing dirty it must not query Postgres.
	for attempt := 1; ; attempt++ {
		epoch := in.Health.Epoch()
		mark := in.Stmts.mark()
		time.Sleep(2200 * time.Millisecond)
		mirrorRan := in.Stmts.since(mark, func(s stmt) bool { return s.from("core/mirror.") })
		if in.Health.Epoch() != epoch && len(mirrorRan) > 0 && attempt < attempts {
			t.Logf("attempt %d: the cache reported an event while idle (a reseed is due); measuring again", attempt)
			in.waitClean(5 * time.Second)
			continue
		}
		if len(mirrorRan) != 0 {
			t.Errorf("the idle mirror workers ran %d statements:%s", len(mirrorRan), describe(mirrorRan))
		}
		if ran := in.Stmts.since(mark, func(s stmt) bool { return !sessionWorker(s) }); len(ran) != 0 {
			t.Errorf("%d statements from idle workers other than the session scheduler, the queue dispatcher and the event sequencer:%s", len(ran), describe(ran))
		}
		break
	}

	// Valkey down: the heartbeat goes to the store, at a bounded cost.
	s.redis.kill()
	before := *s.row(m.ID).LastHeartbeatAt
	for i := range 20 {
		mark := in.Stmts.mark()
		r, err := in.api.call(http.MethodPost, "/api/mitra/status/heartbeat", m.Access, nil)
		if err != nil || r.Status != http.StatusNoContent {
			t.Fatalf("heartbeat %d with Valkey down: %v %v", i, r, err)
		}
		ran := in.Stmts.since(mark, stmt.onRequestPath)
		if len(ran) < 1 || len(ran) > 3 {
			t.Errorf("heartbeat %d with Valkey down ran %d statements, want 1 to 3:%s", i, len(ran), describe(ran))
		}
	}
	if after := *s.row(m.ID).LastHeartbeatAt; !after.After(before) {
		t.Errorf("heartbeats with Valkey down did not reach Postgres: %v then %v", before, after)
	}
}

// TestStatusStatements: the mitra app polls GET /api/mitra/status next to its
// heartbeat; with Valkey up an online mitra's status costs no statement on
// the request path once its profile was read, and with Valkey down it is
// answered from the store.
func TestStatusStatements(t *testing.T) {
	t.Parallel()
	s := newSetup(t, true)
	in := s.start(opts{statements: true})
	m := in.createMitra(nil)
	in.online(m)
	in.waitClean(5 * time.Second)
	status := func() int {
		t.Helper()
		mark := in.Stmts.mark()
		r, err := in.api.call(http.MethodGet, "/api/mitra/status", m.Access, nil)
		if err != nil || r.Status != http.StatusOK {
			t.Fatalf("status: %v %v", r, err)
		}
		return len(in.Stmts.since(mark, stmt.onRequestPath))
	}
	status() // the first read fills this instance's copy of the profile
	const n, attempts = 30, 3
	for attempt := 1; ; attempt++ {
		epoch := in.Health.Epoch()
		ran := 0
		for range n {
			ran += status()
		}
		if in.Health.Epoch() != epoch && ran > 0 && attempt < attempts {
			t.Logf("attempt %d: the cache reported an event (a reseed is due); measuring again", attempt)
			in.waitClean(5 * time.Second)
			continue
		}
		if ran != 0 {
			t.Errorf("%d status reads with Valkey up ran %d statements on the request path, want 0", n, ran)
		}
		break
	}
	s.redis.kill()
	for i := range 5 {
		if ran := status(); ran < 1 || ran > 3 {
			t.Errorf("status %d with Valkey down ran %d statements, want 1 to 3", i, ran)
		}
	}
}

// sessionWorker reports whether s ran in the session scheduler's loop, the
// queue dispatcher's or the event sequencer's, which poll Postgres on their
// own (the first two once a second, the dispatcher with one index probe
// while nobody waits; the sequencer every 250 ms with one EXISTS on the
// event outbox, empty unless a sequencing failed).
func sessionWorker(s stmt) bool {
	return s.from("sessions.(*Scheduler)") || s.from("sessions.(*Dispatcher)") || s.from("app.runEventSequencer")
}
