package app

import (
	"runtime/debug"
	"runtime/metrics"
)

// DefaultGCPercent is the garbage collector's target when the environment
// does not set GOGC: a new cycle starts once the heap has grown by 400 % of
// what the last one left live, against Go's 100 %.
//
// Under load nearly all of this service's allocation is per-request garbage
// (net/http's request parsing, the response, the access-log line) over a
// small live heap (the in-process maps of tokens and presence, the
// connection pools), so at 100 % the collector runs many cycles a second
// and its mark assists land on the request path. 400 % spends heap, a few
// times a live heap of tens of MB, to run it a quarter as often
// (docs/benchmarks.md: the heartbeat measured with and without;
// docs/operations.md: GOGC and GOMEMLIMIT).
const DefaultGCPercent = 400

// TuneGC applies DefaultGCPercent unless the environment sets GOGC, which
// the Go runtime has then applied itself (an operator's GOGC always wins,
// "off" included). It returns the percentage in force.
func TuneGC(getenv func(string) string) int {
	if getenv("GOGC") != "" {
		return GCPercent()
	}
	debug.SetGCPercent(DefaultGCPercent)
	return DefaultGCPercent
}

// GCPercent reads the collector's target in force (-1: off) without
// changing it.
func GCPercent() int {
	sample := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(sample)
	return int(sample[0].Value.Uint64())
}
