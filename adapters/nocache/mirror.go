// Package nocache holds the mirror of CACHE_BACKEND=none: a
// ports.AvailabilityMirror that mirrors nothing, so every caller goes to the
// store.
package nocache

import (
	"context"
	"time"

	"github.com/halobestie/mitra-availability/ports"
)

// Mirror answers ports.ErrCacheDisabled to every call. Callers take it as
// "go to the store", not as a cache fault.
type Mirror struct{}

var _ ports.AvailabilityMirror = (*Mirror)(nil)

// NewMirror returns the mirror of CACHE_BACKEND=none.
func NewMirror() *Mirror { return &Mirror{} }

// PutOnline returns ports.ErrCacheDisabled.
func (*Mirror) PutOnline(context.Context, ports.MirrorMitra) error { return ports.ErrCacheDisabled }

// PutOffline returns ports.ErrCacheDisabled.
func (*Mirror) PutOffline(context.Context, string) error { return ports.ErrCacheDisabled }

// Deactivate returns ports.ErrCacheDisabled.
func (*Mirror) Deactivate(context.Context, string) error { return ports.ErrCacheDisabled }

// Reactivate returns ports.ErrCacheDisabled.
func (*Mirror) Reactivate(context.Context, string) error { return ports.ErrCacheDisabled }

// SetLoad returns ports.ErrCacheDisabled.
func (*Mirror) SetLoad(context.Context, string, int, int, time.Time) error {
	return ports.ErrCacheDisabled
}

// Heartbeat returns ports.ErrCacheDisabled.
func (*Mirror) Heartbeat(context.Context, string, time.Time) (ports.HeartbeatOutcome, error) {
	return 0, ports.ErrCacheDisabled
}

// Status returns ports.ErrCacheDisabled.
func (*Mirror) Status(context.Context, string) (ports.MirrorStatus, error) {
	return ports.MirrorStatus{}, ports.ErrCacheDisabled
}

// AvailableMitraIDs returns ports.ErrCacheDisabled.
func (*Mirror) AvailableMitraIDs(context.Context, time.Time) ([]string, error) {
	return nil, ports.ErrCacheDisabled
}

// Candidates returns ports.ErrCacheDisabled.
func (*Mirror) Candidates(context.Context, ports.CandidateQuery) ([]ports.Candidate, error) {
	return nil, ports.ErrCacheDisabled
}

// CountMitras returns ports.ErrCacheDisabled.
func (*Mirror) CountMitras(context.Context, time.Time) (ports.MitraCounts, error) {
	return ports.MitraCounts{}, ports.ErrCacheDisabled
}

// LoadSnapshot returns ports.ErrCacheDisabled.
func (*Mirror) LoadSnapshot(context.Context) (ports.Snapshot, bool, error) {
	return ports.Snapshot{}, false, ports.ErrCacheDisabled
}

// SaveSnapshot returns ports.ErrCacheDisabled.
func (*Mirror) SaveSnapshot(context.Context, ports.Snapshot, time.Duration) error {
	return ports.ErrCacheDisabled
}

// TryLock returns ports.ErrCacheDisabled.
func (*Mirror) TryLock(context.Context, string, time.Duration) (func(context.Context) error, bool, error) {
	return nil, false, ports.ErrCacheDisabled
}

// RemoveStale returns ports.ErrCacheDisabled.
func (*Mirror) RemoveStale(context.Context, time.Time, int) ([]ports.MirrorMitra, error) {
	return nil, ports.ErrCacheDisabled
}

// Heartbeats returns ports.ErrCacheDisabled.
func (*Mirror) Heartbeats(context.Context, time.Time) ([]ports.MirrorMitra, error) {
	return nil, ports.ErrCacheDisabled
}

// Reseed returns ports.ErrCacheDisabled.
func (*Mirror) Reseed(context.Context, []ports.MirrorMitra, []string) (ports.ReseedReport, error) {
	return ports.ReseedReport{}, ports.ErrCacheDisabled
}

// Seeded returns ports.ErrCacheDisabled.
func (*Mirror) Seeded(context.Context) (bool, error) { return false, ports.ErrCacheDisabled }

// Ping returns ports.ErrCacheDisabled.
func (*Mirror) Ping(context.Context) error { return ports.ErrCacheDisabled }
