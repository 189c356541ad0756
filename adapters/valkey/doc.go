// Package valkey holds the Valkey adapters: the availability mirror
// (ports.AvailabilityMirror) over github.com/valkey-io/valkey-go, Open,
// which builds a client from VALKEY_URL for a standalone server or a cluster
// and fails fast, and Connector, which the service uses: it connects in the
// background (retrying with backoff until its Stop) and hands out a client
// that fails fast until then, so the service starts and serves from the store
// while Valkey is down and picks it up, reseeding, when it answers.
//
// The mirror keeps one sorted-set entry per online mitra. Its score packs the
// heartbeat (100 ms precision) and the load, so every hot read is one score
// range or one count, and none walks the other online mitras. Every key
// starts with the configured prefix and carries the hash tag {avail}, so the
// scripts and transactions also run on Valkey Cluster. docs/valkey-keys.md
// describes the keys and their memory cost.
//
// Every call has its own deadline: a killed or hung server is an error within
// the mirror's timeout, never a hang, and the caller falls back to the store.
package valkey
