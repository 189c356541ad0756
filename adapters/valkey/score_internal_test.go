package valkey

import (
	"math"
	"testing"
	"time"
)

func TestScoreRoundTrip(t *testing.T) {
	times := []time.Time{
		scoreEpoch,
		scoreEpoch.Add(-time.Nanosecond),
		scoreEpoch.Add(99 * time.Millisecond),
		scoreEpoch.Add(100 * time.Millisecond),
		time.Date(2031, 3, 4, 5, 6, 7, 891234567, time.FixedZone("WIB", 7*3600)),
		time.Date(1999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(2800, 1, 1, 0, 0, 0, 50000000, time.UTC),
	}
	for _, at := range times {
		for _, load := range [][2]int{{0, 0}, {0, 1}, {1, 1}, {99, 100}, {127, 127}} {
			score := packScore(toDS(at), loadBits(load[0], load[1]))
			if math.Abs(float64(score)) >= 1<<53 {
				t.Fatalf("score %d of %v is not exact in a float64", score, at)
			}
			if parseScore(float64(score)) != score {
				t.Fatalf("score %d does not survive a float64", score)
			}
			m := toMitra("id", score)
			if want := at.UTC().Truncate(precision); !m.LastHeartbeat.Equal(want) || m.LastHeartbeat.Location() != time.UTC {
				t.Errorf("heartbeat of %v = %v, want %v", at, m.LastHeartbeat, want)
			}
			if m.OpenSessions != load[0] || m.Capacity != load[1] {
				t.Errorf("load of %v = %d/%d, want %d/%d", load, m.OpenSessions, m.Capacity, load[0], load[1])
			}
			if hasRoom(loadBits(load[0], load[1])) != (load[0] < load[1]) {
				t.Errorf("hasRoom(%v) wrong", load)
			}
		}
	}
}

func TestScoreOrdersByHeartbeat(t *testing.T) {
	// The highest load of one step scores below the lowest load of the next.
	a := packScore(toDS(scoreEpoch), loadBits(127, 127))
	b := packScore(toDS(scoreEpoch.Add(precision)), loadBits(0, 0))
	if a >= b || minScore(scoreEpoch.Add(precision)) != b {
		t.Errorf("scores %d, %d, min %d: not ordered by heartbeat", a, b, minScore(scoreEpoch.Add(precision)))
	}
}

func TestScoreClamps(t *testing.T) {
	if got := loadBits(-1, 500); got != 127 {
		t.Errorf("loadBits(-1, 500) = %d, want 127 (open 0, capacity 127)", got)
	}
	if hasRoom(loadBits(200, 300)) {
		t.Error("open 200 of capacity 300 clamps to 127/127: no room")
	}
	for _, at := range []time.Time{{}, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)} {
		ds := toDS(at)
		if ds != maxDS && ds != -maxDS {
			t.Errorf("toDS(%v) = %d, want clamped to ±%d", at, ds, int64(maxDS))
		}
		score := packScore(ds, loadBits(127, 127))
		if math.Abs(float64(score)) >= 1<<53 {
			t.Errorf("score %d of %v is not exact in a float64", score, at)
		}
	}
}
