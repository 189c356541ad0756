package valkey_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	vk "github.com/halobestie/mitra-availability/adapters/valkey"
	"github.com/halobestie/mitra-availability/ports"
)

// TestKeySchema pins the layout docs/valkey-keys.md describes: the key
// names, the score packing and that every key starts with the prefix.
func TestKeySchema(t *testing.T) {
	mr := miniredis.RunT(t)
	c := open(t, "redis://"+mr.Addr())
	m := vk.NewMirror(c, "stage:", time.Second)
	ctx := context.Background()
	epoch := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

	if _, err := m.Reseed(ctx, nil, []string{"d1"}); err != nil {
		t.Fatal(err)
	}
	mustNil := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	mustNil(m.PutOnline(ctx, ports.MirrorMitra{ID: "a", LastHeartbeat: epoch.Add(1250 * time.Millisecond), OpenSessions: 1, Capacity: 3}))
	mustNil(m.PutOnline(ctx, ports.MirrorMitra{ID: "b", LastHeartbeat: epoch.Add(-150 * time.Millisecond), OpenSessions: 2, Capacity: 2}))
	mustNil(m.PutOnline(ctx, ports.MirrorMitra{ID: "c", LastHeartbeat: epoch, OpenSessions: 0, Capacity: 1, Away: true}))
	mustNil(m.SaveSnapshot(ctx, ports.Snapshot{AvailableMitras: 1, AsOf: epoch}, time.Minute))
	release, ok, err := m.TryLock(ctx, "sweep", time.Minute)
	if err != nil || !ok {
		t.Fatalf("TryLock = %v, %v", ok, err)
	}
	defer release(ctx)

	want := []string{
		"stage:{avail}:away", "stage:{avail}:deactivated", "stage:{avail}:free", "stage:{avail}:full",
		"stage:{avail}:idle", "stage:{avail}:load", "stage:{avail}:lock:sweep", "stage:{avail}:seeded",
		"stage:{avail}:snapshot",
	}
	if got := mr.Keys(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("keys = %v, want %v", got, want)
	}
	// score = ds*16384 + open*128 + capacity, ds in deciseconds since 2025-01-01.
	if s, err := mr.ZScore("stage:{avail}:free", "a"); err != nil || s != 12*16384+1*128+3 {
		t.Errorf("score of a = %v, %v; want %d", s, err, 12*16384+131)
	}
	if s, err := mr.ZScore("stage:{avail}:full", "b"); err != nil || s != -2*16384+2*128+2 {
		t.Errorf("score of b = %v, %v; want %d", s, err, -2*16384+258)
	}
	// The routing ranks: idle = idle ds (the heartbeat when no idle time was
	// given, clamped at 0), load = open*2^36 + idle ds; 2^44 added when not free.
	for _, r := range []struct {
		key, id string
		want    float64
	}{
		{"stage:{avail}:idle", "a", 12},
		{"stage:{avail}:load", "a", 1<<36 + 12},
		{"stage:{avail}:idle", "b", 1 << 44},
		{"stage:{avail}:load", "b", 1<<44 + 2<<36},
		{"stage:{avail}:idle", "c", 1 << 44},
	} {
		if s, err := mr.ZScore(r.key, r.id); err != nil || s != r.want {
			t.Errorf("%s score of %s = %v, %v; want %v", r.key, r.id, s, err, r.want)
		}
	}
	mustNil(m.SetLoad(ctx, "a", 0, 3, epoch.Add(time.Hour)))
	if s, err := mr.ZScore("stage:{avail}:idle", "a"); err != nil || s != 36000 {
		t.Errorf("idle score of a after SetLoad = %v, %v; want 36000", s, err)
	}
	if got := mr.TTL("stage:{avail}:snapshot"); got != time.Minute {
		t.Errorf("snapshot ttl = %v, want 1m", got)
	}
	if got := mr.TTL("stage:{avail}:seeded"); got != 0 {
		t.Errorf("seeded marker ttl = %v, want none", got)
	}
	raw, _ := mr.Get("stage:{avail}:snapshot")
	if raw != `{"available_mitras":1,"as_of":"2025-01-01T00:00:00Z"}` {
		t.Errorf("snapshot = %s", raw)
	}
	// An away mitra sits in the full set, whatever its load, and in the away set.
	if s, err := mr.ZScore("stage:{avail}:full", "c"); err != nil || s != 1 {
		t.Errorf("score of away c = %v, %v; want 1 in the full set", s, err)
	}
	if ok, err := mr.SIsMember("stage:{avail}:away", "c"); err != nil || !ok {
		t.Errorf("away set holds c = %v, %v", ok, err)
	}
	if got := m.Keys(); len(got) != 9 || got[0] != "stage:{avail}:free" {
		t.Errorf("Keys() = %v", got)
	}
}

// TestReseedRepairsCorruption: an entry in both sets, or in the set its load
// does not call for, is corrected (and counted as updated).
func TestReseedRepairsCorruption(t *testing.T) {
	mr := miniredis.RunT(t)
	c := open(t, "redis://"+mr.Addr())
	m := vk.NewMirror(c, "", time.Second)
	ctx := context.Background()
	epoch := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	hb := epoch.Add(10 * time.Second) // ds 100
	// "both" is in both sets; "wrong" has room but sits in the full set.
	mr.ZAdd("{avail}:free", 100*16384+0*128+2, "both")
	mr.ZAdd("{avail}:full", 90*16384+0*128+2, "both")
	mr.ZAdd("{avail}:full", 100*16384+0*128+2, "wrong")
	truth := []ports.MirrorMitra{
		{ID: "both", LastHeartbeat: hb, OpenSessions: 0, Capacity: 2},
		{ID: "wrong", LastHeartbeat: hb, OpenSessions: 0, Capacity: 2},
	}
	rep, err := m.Reseed(ctx, truth, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Updated != 2 || rep.Total() != 2 {
		t.Errorf("Reseed = %+v, want Updated 2", rep)
	}
	free, _ := mr.ZMembers("{avail}:free")
	if full, _ := mr.ZMembers("{avail}:full"); len(full) != 0 || strings.Join(free, ",") != "both,wrong" {
		t.Errorf("free %v, full %v; want both and wrong in free only", free, full)
	}
	counts, err := m.CountMitras(ctx, hb)
	if err != nil || counts != (ports.MitraCounts{Online: 2, Available: 2}) {
		t.Errorf("CountMitras = %+v, %v", counts, err)
	}
	if rep, err := m.Reseed(ctx, truth, nil); err != nil || rep.Total() != 0 {
		t.Errorf("second Reseed = %+v, %v; want nothing to correct", rep, err)
	}
}
