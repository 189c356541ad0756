package e2e

import (
	"net/http"
	"testing"
	"time"
)

// docs/contract.md §11 longest_idle on two instances (Postgres, Valkey): the
// request is offered to the mitra idle longest only; the next batch comes an
// OFFER_BATCH_SECONDS later, from whichever instance claims the timer, once;
// a batch that declined widens at once; the first accept wins and
// session_taken reaches every offered mitra, the one that declined included.
func TestLongestIdleBatchesWiden(t *testing.T) {
	t.Parallel()
	const interval = 2 * time.Second
	c := startCluster(t, 2, map[string]string{
		"ROUTING_STRATEGY":        "longest_idle",
		"OFFER_BATCH_SIZE":        "1",
		"OFFER_BATCH_SECONDS":     "2",
		"PAIRING_TIMEOUT_SECONDS": "60",
	})
	a, b := c.Servers[0], c.Servers[1]
	admin := a.adminToken(t)
	// Online one after another: m1 idle longest, then m2, then m3. Each
	// listens on the instance it did not go online on.
	var ms []actor
	var ws []*WSClient
	for i := range 3 {
		on, listen := a, b
		if i%2 == 1 {
			on, listen = b, a
		}
		m := on.newMitra(t, admin, 1)
		on.goOnline(t, m)
		ms = append(ms, m)
		ws = append(ws, listen.dialWS(t, "mitra"+string(rune('1'+i)), m.Token))
		time.Sleep(300 * time.Millisecond) // the mirror keeps idle times at 100 ms
	}
	cust := a.newCustomer(t)
	start := time.Now()
	id := a.requestSession(t, cust, 5)

	ws[0].waitFor(t, "the first batch's offer", 2*time.Second, event("session_offer", id))
	time.Sleep(interval / 2)
	ws[1].wantCount(t, "an offer before the interval", 0, event("session_offer", id))
	ws[2].wantCount(t, "an offer before the interval", 0, event("session_offer", id))

	ws[1].waitFor(t, "the second batch's offer", 3*interval, event("session_offer", id))
	if took := time.Since(start); took < interval-200*time.Millisecond {
		t.Fatalf("the second batch came %v after the request, before OFFER_BATCH_SECONDS (%v)", took, interval)
	}
	ws[2].wantCount(t, "an offer with the second batch", 0, event("session_offer", id))

	// The second batch declines: the third comes at once, not an interval later.
	declined := time.Now()
	wantStatus(t, "decline by the second batch", b.post(t, "/api/sessions/"+id+"/decline", ms[1].Token, nil), http.StatusNoContent)
	ws[2].waitFor(t, "the third batch's offer", 3*interval, event("session_offer", id))
	if took := time.Since(declined); took > interval*3/4 {
		t.Fatalf("the batch after a declined one came %v after the decline, want at once (the interval is %v)", took, interval)
	}

	wantStatus(t, "accept by the third batch", a.post(t, "/api/sessions/"+id+"/accept", ms[2].Token, nil), http.StatusOK)
	ws[0].waitFor(t, "session_taken", 5*time.Second, event("session_taken", id))
	ws[1].waitFor(t, "session_taken (declined, still offered)", 5*time.Second, event("session_taken", id))
	time.Sleep(settleWindow)
	for i, w := range ws {
		w.wantCount(t, "session_offer", 1, event("session_offer", id))
		if i == 2 {
			w.wantCount(t, "session_taken by the winner", 0, event("session_taken", id))
		}
	}
}
