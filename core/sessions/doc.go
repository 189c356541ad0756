// Package sessions holds the chat-session lifecycle: pairing through a
// routing strategy, the race-safe accept, payment, extension, end, reroute,
// the waiting queue, and the timers.
//
// Lifecycle. searching → pending_payment → active → ended; searching may end
// as unmatched (pairing timeout) or cancelled (by the customer);
// pending_payment as cancelled (payment timeout) or ended (by either party).
// Every transition runs inside the store's UpdateSession: the session row is
// locked (SELECT … FOR UPDATE in Postgres, a mutex in memory), the rules
// below are checked against the locked state, and the change is saved in the
// same transaction, together with its events (the outbox: ports.SessionTx.Emit
// writes them to the event log, each recipient's stream numbered without
// gaps; the Postgres store numbers them right after the commit, before the
// transition returns). After it commits, the open-session count of each mitra it touched
// is recomputed from the store and mirrored (mitras.RecomputeLoad), and the
// logged events are published on the bus, which never waits on Valkey.
//
// Pairing. A request is offered to the mitras its Router chooses among the
// available ones (routing.go: a blast to every one, or BLAST_LIMIT of them at
// random; or batches of the longest idle or least loaded that widen on the
// batch timer and at once when a batch declined), or only to the requested
// one, minus any mitra the session excludes; the offered set is saved with
// the session.
// Only an offered mitra may accept. The accept locks the session, then the
// mitra's row (LockMitraLoad) and counts its open sessions in the same
// transaction, so any number of concurrent accepts of one session yield one
// winner, and one mitra accepting several sessions at the same instant never
// exceeds its capacity.
//
// Reroute. The customer releases the mitra: the session searches again,
// offered to the available mitras except every mitra it was rerouted away
// from. A paid active session stops its clock: the remaining time is saved,
// and the next accept makes it active at once, expiring after that time.
//
// Waiting queue (queue.go). A session requested with queue: true joins one
// queue, ordered by a key (priority, queued_at, a store sequence). A
// dispatch pass, under the store's queue lock shared by every instance,
// counts the free places from the store's truth and offers that many of the
// oldest waiting sessions; the Dispatcher runs one whenever this instance
// saw capacity appear (Kick) and every second regardless.
//
// Timers. Each open session has at most one pending deadline per kind:
// pairing (searching for PairingTimeout, from the offer for a queued
// session), payment (pending_payment for PaymentTimeout), warning
// (WarningLead before expires_at), expiry (expires_at), queue (waiting
// in the queue past its queue timeout) and batch (the next batch of a search
// offered in batches). They live in the store, as columns, so they survive restarts.
// The Scheduler on every instance sleeps until the earliest deadline (at most
// a second, to notice sessions created on other instances), then claims each
// due deadline with a transition that re-checks it under the row lock: one
// instance alone wins each firing, so no event is sent twice and none is lost
// when an instance dies. The warning sets warning_sent_at, which nothing ever
// clears, so an extension or a reroute never fires it again. Time comes from
// ports.Clock; tests move a manual clock and call FireDue.
package sessions
