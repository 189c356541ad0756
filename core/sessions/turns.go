package sessions

import (
	"context"
	"sync"
)

// turns lets one accept of a session at a time through on this instance.
//
// When a session is blasted, many of its mitras accept it at once, and all
// but one lose. Each used to learn that in a transaction of its own on the
// session's row (the Postgres store queues a process's transactions on a row
// off the pool, then each takes a connection, locks the row, finds the
// session taken and rolls back), and they stood in that row's queue ahead of
// the session's other transitions: the customer's payment, declines, the
// timers. Now the accepts of one session queue here instead; the first goes
// on to the store, and the others, once it is done, learn from a plain read
// that the session was taken (or, when the first failed, go on in their
// turn). Accepts on other instances still meet at the row's lock.
type turns struct {
	mu sync.Mutex
	m  map[string]*turn
}

type turn struct {
	slot chan struct{} // holds a token while an accept has the turn
	refs int           // accepts holding or waiting for the turn, under turns.mu
}

// take waits for the turn on id, or for ctx to end. It reports whether it
// had to wait (another accept had the turn, so the session may have changed
// since the caller read it); release gives the turn to the next accept.
func (t *turns) take(ctx context.Context, id string) (release func(), waited bool, err error) {
	t.mu.Lock()
	if t.m == nil {
		t.m = make(map[string]*turn)
	}
	tu := t.m[id]
	if tu == nil {
		tu = &turn{slot: make(chan struct{}, 1)}
		t.m[id] = tu
	}
	tu.refs++
	t.mu.Unlock()

	done := func() {
		t.mu.Lock()
		if tu.refs--; tu.refs == 0 {
			delete(t.m, id)
		}
		t.mu.Unlock()
	}
	select {
	case tu.slot <- struct{}{}:
		return func() { <-tu.slot; done() }, false, nil
	default:
	}
	select {
	case tu.slot <- struct{}{}:
		return func() { <-tu.slot; done() }, true, nil
	case <-ctx.Done():
		done()
		return nil, true, ctx.Err()
	}
}
