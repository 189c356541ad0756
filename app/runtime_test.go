package app

import (
	"runtime/debug"
	"testing"
)

// gcPercent reads the collector's target without changing it.
func gcPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

func TestTuneGCAppliesTheDefaultWithoutGOGC(t *testing.T) {
	t.Cleanup(func(p int) func() { return func() { debug.SetGCPercent(p) } }(gcPercent()))
	debug.SetGCPercent(100)

	got := TuneGC(func(string) string { return "" })
	if got != DefaultGCPercent || gcPercent() != DefaultGCPercent {
		t.Fatalf("TuneGC without GOGC: returned %d, in force %d; want %d", got, gcPercent(), DefaultGCPercent)
	}
}

func TestTuneGCLeavesAnOperatorsGOGC(t *testing.T) {
	t.Cleanup(func(p int) func() { return func() { debug.SetGCPercent(p) } }(gcPercent()))
	// The runtime applied GOGC=150 at start; TuneGC must keep it.
	debug.SetGCPercent(150)

	env := map[string]string{"GOGC": "150"}
	got := TuneGC(func(k string) string { return env[k] })
	if got != 150 || gcPercent() != 150 {
		t.Fatalf("TuneGC with GOGC=150: returned %d, in force %d; want 150 kept", got, gcPercent())
	}
}
