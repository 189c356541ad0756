package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/valkey-io/valkey-go"

	vk "github.com/halobestie/mitra-availability/adapters/valkey"
	"github.com/halobestie/mitra-availability/ports"
)

// sizes are the online-mitra counts benchmarked.
var sizes = []struct {
	name string
	n    int
}{{"1k", 1_000}, {"10k", 10_000}, {"100k", 100_000}}

// sweepSizes are the stale-mitra counts of the sweep benchmarks.
var sweepSizes = []int{100, 1000}

// BenchmarkMirror measures, per size, each hot path on the three designs in
// the same run (Postgres path first, as the baseline, then the original
// design, then the mirror), the auto-offline sweep at 100 and 1000 stale
// mitras, and the Valkey memory per online mitra of both Valkey layouts.
// Select sizes with -bench, e.g. -bench 'Mirror/^online=(1k|10k)$'.
func BenchmarkMirror(b *testing.B) {
	for _, sz := range sizes {
		b.Run("online="+sz.name, func(b *testing.B) {
			fx := newFixture(b, sz.n)
			benchCount(b, fx, sz.name)
			benchLookup(b, fx, sz.name)
			benchHeartbeat(b, fx, sz.name)
			for _, s := range sweepSizes {
				benchSweep(b, fx, sz.name, s)
			}
			benchMemory(b, fx, sz.name)
		})
	}
}

// benchCount: the beacon's available count (and the dashboard's counts).
func benchCount(b *testing.B, fx *fixture, size string) {
	b.Run("count", func(b *testing.B) {
		b.Run(designPostgres, func(b *testing.B) {
			ctx := b.Context()
			var c ports.MitraCounts
			var err error
			for b.Loop() {
				if c, err = fx.store.CountMitras(ctx, fx.freshSince); err != nil {
					b.Fatal(err)
				}
			}
			wantAvailable(b, c.Available, fx.available)
			finish(b, resultKey{size, "count", designPostgres})
		})
		b.Run(designOriginal, func(b *testing.B) {
			ctx := b.Context()
			var n int
			var err error
			for b.Loop() {
				if n, err = fx.orig.countAvailable(ctx, fx.freshSince); err != nil {
					b.Fatal(err)
				}
			}
			wantAvailable(b, n, fx.available)
			finish(b, resultKey{size, "count", designOriginal})
		})
		b.Run(designMirror, func(b *testing.B) {
			ctx := b.Context()
			var c ports.MitraCounts
			var err error
			for b.Loop() {
				if c, err = fx.mirror.CountMitras(ctx, fx.freshSince); err != nil {
					b.Fatal(err)
				}
			}
			wantAvailable(b, c.Available, fx.available)
			finish(b, resultKey{size, "count", designMirror})
		})
	})
}

// benchLookup: the available-mitra list of the pairing blast.
func benchLookup(b *testing.B, fx *fixture, size string) {
	b.Run("lookup", func(b *testing.B) {
		b.Run(designPostgres, func(b *testing.B) {
			ctx := b.Context()
			var ms []ports.Mitra
			var err error
			for b.Loop() {
				if ms, err = fx.store.AvailableMitras(ctx, fx.freshSince); err != nil {
					b.Fatal(err)
				}
			}
			wantAvailable(b, len(ms), fx.available)
			finish(b, resultKey{size, "lookup", designPostgres})
		})
		b.Run(designOriginal, func(b *testing.B) {
			ctx := b.Context()
			var ids []string
			var err error
			for b.Loop() {
				if ids, err = fx.orig.availableMitras(ctx, fx.freshSince); err != nil {
					b.Fatal(err)
				}
			}
			wantAvailable(b, len(ids), fx.available)
			finish(b, resultKey{size, "lookup", designOriginal})
		})
		b.Run(designMirror, func(b *testing.B) {
			ctx := b.Context()
			var ids []string
			var err error
			for b.Loop() {
				// What the pairing blast calls: the ids, unordered.
				if ids, err = fx.mirror.AvailableMitraIDs(ctx, fx.freshSince); err != nil {
					b.Fatal(err)
				}
			}
			wantAvailable(b, len(ids), fx.available)
			finish(b, resultKey{size, "lookup", designMirror})
		})
	})
}

func wantAvailable(b *testing.B, got, want int) {
	b.Helper()
	if got != want {
		b.Fatalf("%d available mitras, want %d", got, want)
	}
}

// benchHeartbeat: one heartbeat of a fresh online mitra, cycling through all
// of them. The Postgres path is the service's fallback: the active check
// (Mitra) then TouchHeartbeat.
func benchHeartbeat(b *testing.B, fx *fixture, size string) {
	b.Run("heartbeat", func(b *testing.B) {
		b.Run(designPostgres, func(b *testing.B) {
			ctx := b.Context()
			i := 0
			for b.Loop() {
				id := fx.fresh[i%len(fx.fresh)]
				i++
				m, err := fx.store.Mitra(ctx, id)
				if err != nil {
					b.Fatal(err)
				}
				if !m.IsActive || !m.IsOnline {
					b.Fatalf("mitra %s: active %v online %v", id, m.IsActive, m.IsOnline)
				}
				if m, err = fx.store.TouchHeartbeat(ctx, id, time.Now()); err != nil {
					b.Fatal(err)
				}
				if !m.IsOnline {
					b.Fatalf("mitra %s went offline", id)
				}
			}
			finish(b, resultKey{size, "heartbeat", designPostgres})
		})
		b.Run(designOriginal, func(b *testing.B) {
			benchHeartbeatWith(b, fx, resultKey{size, "heartbeat", designOriginal}, fx.orig.heartbeat)
		})
		b.Run(designMirror, func(b *testing.B) {
			benchHeartbeatWith(b, fx, resultKey{size, "heartbeat", designMirror}, fx.mirror.Heartbeat)
		})
	})
}

func benchHeartbeatWith(b *testing.B, fx *fixture, k resultKey, hb func(context.Context, string, time.Time) (ports.HeartbeatOutcome, error)) {
	ctx := b.Context()
	i := 0
	for b.Loop() {
		id := fx.fresh[i%len(fx.fresh)]
		i++
		out, err := hb(ctx, id, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		if out != ports.HeartbeatRecorded {
			b.Fatalf("heartbeat of %s: outcome %v", id, out)
		}
	}
	finish(b, k)
}

// benchSweep: one auto-offline sweep pass that finds and removes s stale
// mitras among the n online ones (the Valkey side only; the store update
// that follows costs the same for both designs). Before every pass, with the
// timer stopped, s mitras whose heartbeat is an hour old are put online
// again. The mirror's pass is one RemoveStale call (s ≤ its batch of 1000).
func benchSweep(b *testing.B, fx *fixture, size string, s int) {
	op := fmt.Sprintf("sweep=%d", s)
	b.Run(op, func(b *testing.B) {
		b.Run(designOriginal, func(b *testing.B) {
			ctx := b.Context()
			stale := fx.staleMitras(s)
			for b.Loop() {
				b.StopTimer()
				if err := fx.injectOriginal(ctx, stale); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				removed, err := fx.orig.sweep(ctx, fx.sweepBefore)
				if err != nil {
					b.Fatal(err)
				}
				if len(removed) != s {
					b.Fatalf("sweep removed %d, want %d", len(removed), s)
				}
			}
			finish(b, resultKey{size, op, designOriginal})
		})
		b.Run(designMirror, func(b *testing.B) {
			ctx := b.Context()
			stale := fx.staleMitras(s)
			for b.Loop() {
				b.StopTimer()
				if err := fx.injectMirror(ctx, stale); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				removed, err := fx.mirror.RemoveStale(ctx, fx.sweepBefore, sweepLimit)
				if err != nil {
					b.Fatal(err)
				}
				if len(removed) != s {
					b.Fatalf("RemoveStale removed %d, want %d", len(removed), s)
				}
			}
			finish(b, resultKey{size, op, designMirror})
		})
	})
}

// benchMemory: the growth of used_memory when the n online mitras of the
// fixture are written into an empty private server, divided by n, for the
// original keys and for the mirror (its own Reseed). ns/op is the time of
// that write. The deactivated set is left out: both designs keep the same one.
func benchMemory(b *testing.B, fx *fixture, size string) {
	b.Run("memory", func(b *testing.B) {
		b.Run(designOriginal, func(b *testing.B) {
			benchMemoryWith(b, fx, resultKey{size, "memory", designOriginal}, func(ctx context.Context, c valkey.Client) error {
				return newOriginal(c, "", seedCapacity).seed(ctx, fx.online, nil)
			})
		})
		b.Run(designMirror, func(b *testing.B) {
			benchMemoryWith(b, fx, resultKey{size, "memory", designMirror}, func(ctx context.Context, c valkey.Client) error {
				return reseedMirror(ctx, c, fx.online)
			})
		})
	})
}

// reseedMirror writes online into an empty mirror with the default (empty)
// key prefix, through Reseed.
func reseedMirror(ctx context.Context, c valkey.Client, online []ports.MirrorMitra) error {
	m := vk.NewMirror(c, "", mirrorTimeout)
	rep, err := m.Reseed(ctx, online, nil)
	if err != nil {
		return err
	}
	if rep.Added != len(online) {
		return fmt.Errorf("reseed added %d, want %d", rep.Added, len(online))
	}
	// The routing ranks (idle, load: docs/valkey-keys.md) serve the batched
	// strategies, which the original design has no counterpart for: the
	// comparison is of the availability keys alone.
	keys := m.Keys()
	for _, k := range keys[len(keys)-3 : len(keys)-1] {
		if err := c.Do(ctx, c.B().Del().Key(k).Build()).Error(); err != nil { // DEL frees at once (UNLINK in the background)
			return err
		}
	}
	return nil
}

func benchMemoryWith(b *testing.B, fx *fixture, k resultKey, seed func(context.Context, valkey.Client) error) {
	probe := newMemProbe(b)
	// Load the mirror's scripts once: the script cache survives FLUSHALL and
	// must not be counted.
	probe.measure(b, func(ctx context.Context, c valkey.Client) error { return reseedMirror(ctx, c, fx.online[:1]) }, nil, nil)
	var total int64
	for b.Loop() {
		b.StopTimer()
		total += probe.measure(b, seed, b.StartTimer, b.StopTimer)
		b.StartTimer()
	}
	perMitra := float64(total) / float64(b.N) / float64(fx.n)
	record(results.bytes, k, perMitra)
	b.ReportMetric(perMitra, "B/online-mitra")
	if k.design == designMirror {
		if orig, ok := lookup(results.bytes, resultKey{k.size, k.op, designOriginal}); ok && orig > 0 {
			b.ReportMetric(perMitra/orig, "mem-vs-original")
		}
	}
	finish(b, k)
}
