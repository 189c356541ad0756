package nocache_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/adapters/nocache"
	"github.com/halobestie/mitra-availability/ports"
)

func TestEveryCallIsDisabled(t *testing.T) {
	var m ports.AvailabilityMirror = nocache.NewMirror()
	ctx := context.Background()
	now := time.Now()
	calls := map[string]func() error{
		"PutOnline":         func() error { return m.PutOnline(ctx, ports.MirrorMitra{ID: "a"}) },
		"PutOffline":        func() error { return m.PutOffline(ctx, "a") },
		"Deactivate":        func() error { return m.Deactivate(ctx, "a") },
		"Reactivate":        func() error { return m.Reactivate(ctx, "a") },
		"SetLoad":           func() error { return m.SetLoad(ctx, "a", 0, 1, time.Time{}) },
		"Heartbeat":         func() error { _, err := m.Heartbeat(ctx, "a", now); return err },
		"Status":            func() error { _, err := m.Status(ctx, "a"); return err },
		"AvailableMitraIDs": func() error { _, err := m.AvailableMitraIDs(ctx, now); return err },
		"CountMitras":       func() error { _, err := m.CountMitras(ctx, now); return err },
		"LoadSnapshot":      func() error { _, _, err := m.LoadSnapshot(ctx); return err },
		"SaveSnapshot":      func() error { return m.SaveSnapshot(ctx, ports.Snapshot{}, time.Second) },
		"TryLock": func() error {
			release, ok, err := m.TryLock(ctx, "x", time.Second)
			if ok || release != nil {
				t.Errorf("TryLock = ok %v, release %v; want neither", ok, release != nil)
			}
			return err
		},
		"RemoveStale": func() error { _, err := m.RemoveStale(ctx, now, 10); return err },
		"Heartbeats":  func() error { _, err := m.Heartbeats(ctx, now); return err },
		"Reseed":      func() error { _, err := m.Reseed(ctx, nil, nil); return err },
		"Seeded":      func() error { _, err := m.Seeded(ctx); return err },
		"Ping":        func() error { return m.Ping(ctx) },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, ports.ErrCacheDisabled) {
			t.Errorf("%s: err = %v, want ErrCacheDisabled", name, err)
		}
	}
}
