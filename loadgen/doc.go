// Package loadgen drives running instances of the service (the real binary)
// with simulated mitras and customers over HTTP and WebSocket, measures the
// answers, and checks the service's invariants while it does. The command
// ./app/cmd/loadgen is its command line; a test or a chaos tool can call
// NewRunner and Run directly, or use the Checker on its own.
//
// Run. Setup logs in as the admin, creates the mitras (POST
// /api/admin/mitras) and customers (POST /api/customers) of the run id, or
// reuses them on a rerun (their phones derive from the run id), and logs
// everyone in, spread over the URLs. Then, for the run's duration, every
// mitra goes online, heartbeats (jittered), holds a WebSocket to a random
// instance, accepts some offers after a random delay, ends some sessions,
// and now and then goes offline for a while; on 409 not_online it goes
// online again, on 401 it refreshes its tokens. Every customer polls the
// beacon, requests a session, pays, and sometimes extends, reroutes, ends
// or cancels it, following it over its own WebSocket and by polling. A few
// mitras are deactivated part way. Afterwards the WebSockets keep listening
// for a settle period, the final checks run, and the cleanup ends the open
// sessions, takes the mitras offline and reactivates the deactivated ones.
// Every request is recorded by route template and status, with latency
// percentiles (Recorder); the Report holds the figures.
//
// Invariants. The Checker watches five invariants: (a) the Valkey mirror
// matches Postgres within one reseed cycle, (b) no mitra holds more open
// sessions than its capacity, (c) no session gets two warnings, (d) every
// session ends exactly once and an expired one ends on time with end_reason
// expired, (e) no deactivated mitra is offered a session; and the waiting
// queue's two (queue_check.go): first come, first served (no session queued
// later is offered, by its first session_offer, before one queued earlier
// that still waited) and no queued session lost (each ends matched,
// cancelled or unmatched, none searching past its queue and pairing
// timeouts). A customer requests with queue: true with QueueProbability.
// The checker learns from what the run observes — WebSocket frames per connection, session and
// mitra views from HTTP answers, deactivations — and, when given, reads
// Postgres (StoreReader) and the mirror (MirrorReader) directly: live with
// Sample, at the end with Final. Checks that compare times allow a grace
// window; a mirror drift counts only once it outlived a reseed cycle plus
// the grace, and is re-checked before it is reported. Timestamps of the
// servers, of Postgres and of the load generator are compared, so they must
// share a clock: the tool is meant for one host (loopback URLs by default).
package loadgen
