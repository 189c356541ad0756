// Package mirror keeps the availability mirror (Valkey) honest against the
// store (Postgres), the source of truth.
//
// Health. Every mirror error seen anywhere is reported to Health. An error
// marks the mirror unhealthy (readyz says the cache is "degraded", reads fall
// back to the store) and dirty: while the cache failed, writes that committed
// to the store may not have reached it, and heartbeats were recorded in the
// store instead. A dirty mirror is reseeded before it is trusted again by the
// sweeps.
//
// Seeding. Seed reads the truth from the store and hands it to the mirror's
// Reseed, which corrects only what differs and keeps a heartbeat of the
// mirror that is later than the store's (the write-back runs only every
// minute). When it corrected anything, it reads the truth once more and
// reseeds again (writing only what still differs), in one batch, closing the
// race with a write that committed while the first pass ran. The mirror
// writes a marker key last; a read that finds the marker missing (a server
// restarted empty, a FLUSHALL, a failover to an empty replica) answers
// ErrMirrorNotSeeded, falls back to the store, and wakes the watcher.
//
// The queue mirror (SetQueue) is reseeded in the same Seed, after the
// availability mirror and in the same way (a second pass on the truth read
// again when the first corrected anything); the mirror is clean only once
// both succeeded, so core/sessions trusts the queue's figures under the same
// Health.
//
// Watcher. valkey-go has no "ready" event, so the watcher polls: every second
// (and at once when the client dials a new connection) it asks the mirror
// whether it is seeded. A failure marks it unhealthy and dirty; an answer after
// a failure, a missing marker, or a new connection triggers a reseed. The
// reseed is idempotent, so a spurious one costs only its reads.
//
// Sweeps. Three workers keep the mirror and the store aligned:
//   - auto-offline (MITRA_AUTO_OFFLINE_SWEEP_SECONDS): the mirror atomically
//     removes the mitras whose heartbeat is older than HEARTBEAT_STALE_SECONDS
//     (a sorted-set range: its cost grows with the stale mitras, not the online
//     ones), then the store sets those offline unless they came back meanwhile.
//     It aborts entirely on a mirror error or while the mirror is dirty: it
//     never mass-offlines mitras from a store scan while the cache hiccups.
//   - heartbeat write-back (HEARTBEAT_MIRROR_INTERVAL_SECONDS): the heartbeats
//     recorded since the previous run go to the store in one batched statement
//     that never moves a timestamp backwards, so several instances may run it.
//   - reseed (VALKEY_ONLINE_MIRROR_SWEEP_SECONDS): a full Seed that heals any
//     drift and counts what it corrected.
package mirror
