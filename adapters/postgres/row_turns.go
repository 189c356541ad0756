package postgres

import (
	"context"
	"sync"
)

// rowTurns queues, inside one process, the transactions that wait for the
// same row lock (a session's) before they take a pool connection. Postgres'
// lock stays the truth across instances; this only keeps the waiters of one
// instance off the pool, so that at most one connection per instance waits
// on a row. Queued in Postgres, every waiter held a pool connection for as
// long as it waited: a blast's offer reaches every mitra at once, and the
// accepts and declines that read the session while it was still searching
// all queued on its row lock. The pool (20 connections) ran dry and the
// instance's other requests, the payment of that very session included,
// waited for a connection. Waiters are served in arrival order.
type rowTurns struct {
	mu sync.Mutex
	m  map[string]*rowTurn
}

// rowTurn is the queue of one row.
type rowTurn struct {
	token chan struct{} // capacity 1: full while a transaction of the row runs
	n     int           // callers holding or waiting for the row; guarded by rowTurns.mu
}

// wait returns once the caller's turn on key has come, or ctx's error. The
// caller must call done once its transaction ended.
func (r *rowTurns) wait(ctx context.Context, key string) (done func(), err error) {
	r.mu.Lock()
	if r.m == nil {
		r.m = make(map[string]*rowTurn)
	}
	t := r.m[key]
	if t == nil {
		t = &rowTurn{token: make(chan struct{}, 1)}
		r.m[key] = t
	}
	t.n++
	r.mu.Unlock()
	leave := func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if t.n--; t.n == 0 {
			delete(r.m, key)
		}
	}
	select {
	case t.token <- struct{}{}:
		return func() {
			<-t.token
			leave()
		}, nil
	case <-ctx.Done():
		leave()
		return nil, ctx.Err()
	}
}

// rows is the number of rows with a holder or waiters (for tests).
func (r *rowTurns) rows() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.m)
}
