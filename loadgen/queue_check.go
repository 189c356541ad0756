package loadgen

import (
	"fmt"
	"slices"
	"time"
)

// The waiting queue's invariants (docs/contract.md §10).
const (
	// InvariantFIFO: a session queued later is never offered before one
	// queued earlier while both wait.
	InvariantFIFO = "queue_first_come_first_served"
	// InvariantQueueLoss: every queued session ends matched, cancelled or
	// unmatched (a timeout); none stays searching past its timeouts.
	InvariantQueueLoss = "no_queued_session_lost"
)

// QueueStats are the checker's figures about the waiting queue.
type QueueStats struct {
	// Queued counts the sessions requested with queue: true and answered
	// 201; Waited those of them answered with a queue_position (not offered
	// at once).
	Queued int `json:"queued"`
	Waited int `json:"waited"`
	// Offered counts the queued sessions whose first session_offer was
	// seen; Matched, Cancelled and Unmatched their outcomes (final status
	// seen), Open those still open at the end.
	Offered   int `json:"offered"`
	Matched   int `json:"matched"`
	Cancelled int `json:"cancelled"`
	Unmatched int `json:"unmatched"`
	Open      int `json:"open_at_end"`
	// PairsChecked counts the ordered pairs (earlier, later) of queued
	// sessions the FIFO check compared; Violations the pairs it found out of
	// order; Lost the queued sessions lost.
	PairsChecked int `json:"fifo_pairs_checked"`
	Violations   int `json:"fifo_violations"`
	Lost         int `json:"lost"`
	// Updates counts the queue_update frames received.
	Updates int `json:"queue_updates"`
	// MaxWaitSeconds is the longest time a queued session waited for its
	// first offer (of those offered).
	MaxWaitSeconds float64 `json:"max_wait_seconds"`
}

// queuedSession is what the checker knows of one queued session.
type queuedSession struct {
	id       string
	queuedAt time.Time // created_at of the answer (server time)
	waited   bool      // answered with a queue_position
	offered  time.Time // the server's at of the first session_offer seen, or created_at when offered at once; zero before
	left     time.Time // the at of the first queue_update saying it left the queue (offered); zero before
	status   string    // the last status seen
	reason   string
	endedAt  time.Time // zero while open
}

// Queued records a session requested with queue: true (its 201 answer).
func (c *Checker) Queued(v SessionView) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.queue == nil {
		c.queue = make(map[string]*queuedSession)
	}
	if _, ok := c.queue[v.ID]; ok {
		return
	}
	q := &queuedSession{id: v.ID, queuedAt: v.CreatedAt, waited: v.QueuePosition != nil}
	c.queue[v.ID] = q
	c.queueStats.Queued++
	if q.waited {
		c.queueStats.Waited++
	} else {
		// Offered in the request's own pass: to mitras whose frames the run
		// may not see (one deactivated at that moment), so the answer
		// is the witness.
		q.offered = v.CreatedAt
	}
	c.queueViewLocked(v)
}

// queueViewLocked updates a queued session from a view of it. c.mu must be held.
func (c *Checker) queueViewLocked(v SessionView) {
	q := c.queue[v.ID]
	if q == nil {
		return
	}
	q.status = string(v.Status)
	if v.EndReason != nil {
		q.reason = string(*v.EndReason)
	}
	if v.EndedAt != nil {
		q.endedAt = *v.EndedAt
	}
}

// queueFrameLocked records what a frame says of a queued session: the first
// offer's server time, an end. c.mu must be held.
func (c *Checker) queueFrameLocked(f Frame, at time.Time) {
	switch f.Type {
	case EventQueueUpdate:
		c.queueStats.Updates++
		if q := c.queue[f.SessionID]; q != nil && f.QueuePosition == nil && !f.At.IsZero() && (q.left.IsZero() || f.At.Before(q.left)) {
			q.left = f.At
		}
		return
	case EventSessionUpdate:
		if f.Session != nil {
			c.queueViewLocked(*f.Session)
		}
		return
	}
	q := c.queue[f.SessionID]
	if q == nil {
		return
	}
	when := f.At
	if when.IsZero() {
		when = at
	}
	switch f.Type {
	case EventSessionOffer:
		if q.offered.IsZero() || when.Before(q.offered) {
			q.offered = when
		}
	case EventSessionEnded:
		if q.endedAt.IsZero() {
			q.endedAt = when
		}
	}
}

// checkQueueLocked runs the queue's checks at the end of a run: FIFO on
// the first offers, and no queued session lost. Two sessions queued within
// the grace of each other, or an offer within the grace of the other's end
// or offer, are not compared (the clocks and the request's way to the lock
// blur their order). A session still searching past queueTimeout +
// pairingTimeout + grace after it was queued is lost; with queueTimeout 0
// only a session of which no view was ever seen is. c.mu must be held.
func (c *Checker) checkQueueLocked(now time.Time) {
	grace := c.cfg.QueueGrace
	list := make([]*queuedSession, 0, len(c.queue))
	for _, q := range c.queue {
		list = append(list, q)
	}
	slices.SortFunc(list, func(a, b *queuedSession) int { return a.queuedAt.Compare(b.queuedAt) })
	for _, q := range list {
		if h := q.offeredBy(); !h.IsZero() {
			c.queueStats.Offered++
			c.queueStats.MaxWaitSeconds = max(c.queueStats.MaxWaitSeconds, h.Sub(q.queuedAt).Seconds())
		}
		switch {
		case q.status == StatusSearching || q.status == "":
			c.queueStats.Open++
		case q.reason == "cancelled_by_customer":
			c.queueStats.Cancelled++
		case q.reason == "unmatched":
			c.queueStats.Unmatched++
		default:
			c.queueStats.Matched++
		}
	}
	for j, b := range list {
		bOffered := b.offeredBy()
		if bOffered.IsZero() {
			continue
		}
		for _, a := range list[:j] {
			if !a.queuedAt.Add(grace).Before(b.queuedAt) {
				continue
			}
			aOffered := a.offeredAfter()
			if aOffered.IsZero() && matched(a) {
				continue // offered, but no witness of when: unknown
			}
			c.queueStats.PairsChecked++
			// a was waiting when b was offered: surely not offered by then, not ended by then.
			if !aOffered.IsZero() && !aOffered.After(bOffered.Add(grace)) {
				continue
			}
			if !a.endedAt.IsZero() && !a.endedAt.After(bOffered.Add(grace)) {
				continue
			}
			c.queueStats.Violations++
			c.violate(Violation{
				Invariant: InvariantFIFO, Kind: "later_offered_first", Subject: a.id, Source: SourceWebSocket, At: bOffered,
				Detail: fmt.Sprintf("session %s, queued %s after %s, was offered by %s while %s still waited (offered %s, told it left the queue %s, ended %s)",
					b.id, b.queuedAt.Sub(a.queuedAt).Round(time.Millisecond), a.id, bOffered.Format(time.RFC3339Nano), a.id,
					timeOrNever(a.offered), timeOrNever(a.left), timeOrNever(a.endedAt)),
			})
		}
	}
	limit := c.cfg.QueueTimeout + c.cfg.PairingTimeout + c.cfg.Grace
	for _, q := range list {
		lost := ""
		switch {
		case q.status == "":
			lost = "no view of it after the request"
		case q.status == StatusSearching && c.cfg.QueueTimeout > 0 && now.Sub(q.queuedAt) > limit:
			lost = fmt.Sprintf("still searching %s after it was queued (queue timeout %s, pairing timeout %s)",
				now.Sub(q.queuedAt).Round(time.Second), c.cfg.QueueTimeout, c.cfg.PairingTimeout)
		}
		if lost != "" {
			c.queueStats.Lost++
			c.violate(Violation{Invariant: InvariantQueueLoss, Kind: "queued_session_lost", Subject: q.id, Source: SourceHTTP, At: now, Detail: lost})
		}
	}
}

// offeredBy is the latest the session can have been offered, by what the run
// saw: its first session_offer, the answer that it was offered at once, or
// the queue_update that it left the queue; zero when nothing says it was.
func (q *queuedSession) offeredBy() time.Time {
	return earliest(q.offered, q.left)
}

// offeredAfter is the earliest the session can have been offered: a
// queue_update that it left the queue comes up to a second (the notices'
// pace) after the offer.
func (q *queuedSession) offeredAfter() time.Time {
	if q.left.IsZero() {
		return q.offered
	}
	return earliest(q.offered, q.left.Add(-noticePace))
}

// noticePace is the servers' least time between two queue_update events of
// a session.
const noticePace = time.Second

// earliest is the earlier of two times, zero meaning none.
func earliest(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero() || a.Before(b):
		return a
	}
	return b
}

// matched reports whether q's last status shows a mitra took it.
func matched(q *queuedSession) bool {
	switch q.status {
	case StatusPendingPayment, StatusActive, "ended":
		return true
	}
	return q.reason == "payment_timeout"
}

func timeOrNever(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Format(time.RFC3339Nano)
}
