package ports

// Metrics records the domain's operational events. The Prometheus adapter
// exports them; tests use a recorder.
type Metrics interface {
	// CacheFallback: a read or heartbeat went to the store because the cache failed (op names the read).
	CacheFallback(op string)
	// CacheWriteFailed: a best-effort mirror write failed after the store committed.
	CacheWriteFailed(op string)
	// SweepRun: one run of a sweep ended with outcome ok, aborted or error.
	SweepRun(sweep, outcome string)
	// DriftHealed: a reseed corrected n mirror entries.
	DriftHealed(n int)
	// MirrorSeeded: the mirror was seeded (reason: start, reconnect, lost_data, periodic).
	MirrorSeeded(reason string)
	// LoginThrottled: a login attempt was refused with 429 by a limit ("phone" or "address").
	LoginThrottled(limit string)
}
