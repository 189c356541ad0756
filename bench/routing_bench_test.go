package bench

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/adapters/clock"
	"github.com/halobestie/mitra-availability/adapters/memory"
	"github.com/halobestie/mitra-availability/adapters/password"
	"github.com/halobestie/mitra-availability/core/mirror"
	"github.com/halobestie/mitra-availability/core/mitras"
	"github.com/halobestie/mitra-availability/core/sessions"
	"github.com/halobestie/mitra-availability/ports"
)

// routingSizes are the online-mitra counts of BenchmarkRouting: the
// performance bar of docs/contract.md §11 compares 100k with 1k.
var routingSizes = []struct {
	name string
	n    int
}{{"1k", 1_000}, {"100k", 100_000}}

// routingBlastLimit is BLAST_LIMIT in the session benchmarks.
const routingBlastLimit = 50

// routingResults keeps ns/op per size and operation of this run.
var routingResults = struct {
	sync.Mutex
	ns map[[2]string]float64
}{ns: map[[2]string]float64{}}

// BenchmarkRouting measures creating a session (sessions.Service.Request
// on Postgres with the Valkey mirror, the whole path: the candidate read,
// the insert, the session_offer events in the outbox) with BLAST_LIMIT=50
// and with longest_idle, and the candidate reads alone, at 1k and 100k
// online mitras (the bench:mirror data set: 85 % available), then prints
// the 100k/1k ratio of each. "ids+sample" is the read this build replaced
// (every available id, then a sample in Go).
func BenchmarkRouting(b *testing.B) {
	for _, sz := range routingSizes {
		b.Run("online="+sz.name, func(b *testing.B) {
			fx := newFixture(b, sz.n)
			rt := newRoutingFixture(b, fx)
			ctx := b.Context()
			for _, r := range []struct {
				name   string
				router sessions.Router
			}{
				{"create/blast_limit_50", sessions.Blast{Limit: routingBlastLimit}},
				{"create/longest_idle", sessions.LongestIdle{Batch: 3}},
			} {
				b.Run(r.name, func(b *testing.B) {
					svc := rt.service(b, r.router)
					customers := rt.customers(b, b.N)
					b.ResetTimer()
					for i := range b.N {
						v, err := svc.Request(ctx, customers[i], 10, nil)
						if err != nil {
							b.Fatal(err)
						}
						if i == 0 {
							wantOffers(b, rt, v.ID, r.router)
						}
					}
					recordRouting(b, sz.name, r.name)
				})
			}
			reads := []struct {
				name string
				read func() (int, error)
			}{
				{"read/sample_50", func() (int, error) {
					c, err := fx.mirror.Candidates(ctx, ports.CandidateQuery{FreshSince: fx.freshSince, Order: ports.OrderRandom, Limit: routingBlastLimit})
					return len(c), err
				}},
				{"read/ids+sample_50", func() (int, error) {
					ids, err := fx.mirror.AvailableMitraIDs(ctx, fx.freshSince)
					for i := range min(routingBlastLimit, len(ids)) {
						j := i + rand.IntN(len(ids)-i)
						ids[i], ids[j] = ids[j], ids[i]
					}
					return min(routingBlastLimit, len(ids)), err
				}},
				{"read/longest_idle_3", func() (int, error) {
					c, err := fx.mirror.Candidates(ctx, ports.CandidateQuery{FreshSince: fx.freshSince, Order: ports.OrderLongestIdle, Limit: 3})
					return len(c), err
				}},
				{"read/least_loaded_3", func() (int, error) {
					c, err := fx.mirror.Candidates(ctx, ports.CandidateQuery{FreshSince: fx.freshSince, Order: ports.OrderLeastLoaded, Limit: 3})
					return len(c), err
				}},
			}
			for _, r := range reads {
				b.Run(r.name, func(b *testing.B) {
					for b.Loop() {
						n, err := r.read()
						if err != nil {
							b.Fatal(err)
						}
						if n == 0 {
							b.Fatal("no candidate")
						}
					}
					recordRouting(b, sz.name, r.name)
				})
			}
		})
	}
	printRoutingRatios()
}

// routingFixture is the session service's world over one fixture: the
// Postgres store, the Valkey mirror seeded from it, a clock stopped at the
// fixture's t0 (so its heartbeats stay fresh however long the run takes).
type routingFixture struct {
	fx     *fixture
	mitras *mitras.Service
	clock  *clock.Manual
	seq    int
}

func newRoutingFixture(b *testing.B, fx *fixture) *routingFixture {
	b.Helper()
	log := slog.New(slog.DiscardHandler)
	h, err := password.NewBcrypt(4)
	if err != nil {
		b.Fatal(err)
	}
	health := mirror.NewHealth("valkey", true)
	metrics := memory.NewMetrics()
	clk := clock.NewManual(fx.t0)
	ms, err := mitras.NewService(mitras.Deps{Store: fx.store, Queries: fx.store, AuthDB: fx.store, Stats: fx.store,
		Mirror: fx.mirror, Health: health, Metrics: metrics, Hasher: h, Clock: clk, Log: log},
		mitras.Config{DefaultCapacity: 1, HeartbeatStale: heartbeatStale, SnapshotTTL: 10 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	if _, err := mirror.NewSeeder(fx.mirror, fx.store, health, metrics, log).Seed(ctx, mirror.ReasonStart); err != nil {
		b.Fatalf("seed: %v", err)
	}
	return &routingFixture{fx: fx, mitras: ms, clock: clk}
}

// service returns a session service routing with r.
func (rt *routingFixture) service(b *testing.B, r sessions.Router) *sessions.Service {
	b.Helper()
	svc, err := sessions.NewService(rt.fx.store, rt.mitras, nopBus{}, rt.clock, slog.New(slog.DiscardHandler), sessions.Config{
		PairingTimeout: time.Minute, PaymentTimeout: time.Minute, WarningLead: time.Minute, Router: r,
	})
	if err != nil {
		b.Fatal(err)
	}
	return svc
}

// customers inserts n new customers (one statement) and returns their ids.
func (rt *routingFixture) customers(b *testing.B, n int) []string {
	b.Helper()
	var ids []string
	err := rt.fx.db.NewRaw(`INSERT INTO users (role, phone, password_hash, display_name)
		SELECT 'customer', '+6299' || lpad((?0 + g)::text, 9, '0'), 'x', 'C' FROM generate_series(1, ?1) g
		RETURNING id`, rt.seq, n).Scan(context.Background(), &ids)
	if err != nil {
		b.Fatalf("insert %d customers: %v", n, err)
	}
	rt.seq += n
	return ids
}

// wantOffers checks that session id was offered to as many mitras as r says.
func wantOffers(b *testing.B, rt *routingFixture, id string, r sessions.Router) {
	b.Helper()
	s, err := rt.fx.store.Session(context.Background(), id)
	if err != nil {
		b.Fatal(err)
	}
	want := routingBlastLimit
	if _, ok := r.(sessions.LongestIdle); ok {
		want = 3
	}
	if len(s.OfferedMitraIDs) != want {
		b.Fatalf("session offered to %d mitras, want %d", len(s.OfferedMitraIDs), want)
	}
}

func recordRouting(b *testing.B, size, op string) {
	ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	routingResults.Lock()
	routingResults.ns[[2]string{size, op}] = ns
	routingResults.Unlock()
}

// printRoutingRatios prints, for each operation measured at both sizes, its
// time at 1k and 100k and the ratio (the bar: at most 2 for creating a
// session with BLAST_LIMIT=50).
func printRoutingRatios() {
	routingResults.Lock()
	defer routingResults.Unlock()
	ops := []string{"create/blast_limit_50", "create/longest_idle", "read/sample_50", "read/ids+sample_50", "read/longest_idle_3", "read/least_loaded_3"}
	printed := false
	for _, op := range ops {
		small, ok1 := routingResults.ns[[2]string{"1k", op}]
		large, ok2 := routingResults.ns[[2]string{"100k", op}]
		if !ok1 || !ok2 {
			continue
		}
		if !printed {
			fmt.Printf("\n## Routing: 100k online vs 1k online\n\n| operation | 1k | 100k | ratio 100k/1k |\n| --- | --- | --- | --- |\n")
			printed = true
		}
		fmt.Printf("| %s | %.0f µs | %.0f µs | %.2f |\n", op, small/1e3, large/1e3, large/small)
	}
}

// nopBus is an event bus that delivers nothing: the events are in the log.
type nopBus struct{}

func (nopBus) Publish(context.Context, ports.Event) error { return nil }
func (nopBus) Subscribe(func(ports.Event)) func()         { return func() {} }
