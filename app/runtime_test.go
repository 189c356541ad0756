package app

import (
	"runtime/debug"
	"testing"
)

func TestTuneGCAppliesTheDefaultWithoutGOGC(t *testing.T) {
	t.Cleanup(func(p int) func() { return func() { debug.SetGCPercent(p) } }(GCPercent()))
	debug.SetGCPercent(100)

	got := TuneGC(func(string) string { return "" })
	if got != DefaultGCPercent || GCPercent() != DefaultGCPercent {
		t.Fatalf("TuneGC without GOGC: returned %d, in force %d; want %d", got, GCPercent(), DefaultGCPercent)
	}
}

func TestTuneGCLeavesAnOperatorsGOGC(t *testing.T) {
	t.Cleanup(func(p int) func() { return func() { debug.SetGCPercent(p) } }(GCPercent()))
	// The runtime applied GOGC=150 at start; TuneGC must keep it.
	debug.SetGCPercent(150)

	env := map[string]string{"GOGC": "150"}
	got := TuneGC(func(k string) string { return env[k] })
	if got != 150 || GCPercent() != 150 {
		t.Fatalf("TuneGC with GOGC=150: returned %d, in force %d; want 150 kept", got, GCPercent())
	}
}
