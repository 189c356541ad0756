package ports

import (
	"context"
	"time"
)

// AvailabilityTruth is what the mirror's seeder and sweeps ask of the store,
// the source of truth.
type AvailabilityTruth interface {
	// MirrorTruth returns the active online mitras with their heartbeat, open
	// sessions and capacity, and the ids of the deactivated mitras. An online
	// mitra with no heartbeat yet has a zero LastHeartbeat.
	MirrorTruth(ctx context.Context) (online []MirrorMitra, deactivated []string, err error)
	// SetOfflineIfStale sets is_online false for those of ids that are online and
	// whose last heartbeat is before staleBefore (or missing), and returns them.
	// A mitra that came back online since (fresh heartbeat) is left alone.
	SetOfflineIfStale(ctx context.Context, ids []string, staleBefore time.Time) ([]string, error)
	// WriteBackHeartbeats raises last_heartbeat_at to each given heartbeat in one
	// statement, never moving a timestamp backwards; it returns how many rows moved.
	WriteBackHeartbeats(ctx context.Context, beats []MirrorMitra) (int, error)
}
