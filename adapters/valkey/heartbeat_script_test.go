package valkey

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valkey-io/valkey-go"

	"github.com/halobestie/mitra-availability/internal/redisproc"
)

// TestHeartbeatBatchAsOneByOne: a batch of heartbeats, duplicates included,
// answers and writes exactly what the same heartbeats sent one by one, in
// order, do, and what the rules say (a model in Go), on every kind of mitra:
// free, full, offline, deactivated, and deactivated while an online set
// still holds it (a late write of another instance), which must be refused.
// On miniredis and on the shared server.
func TestHeartbeatBatchAsOneByOne(t *testing.T) {
	for _, target := range redisproc.Targets() {
		t.Run(target.Name, func(t *testing.T) {
			ctx := context.Background()
			c, err := Open(ctx, Config{URL: target.URL(t)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Close)
			for seed := range uint64(20) {
				batch := newKeys(fmt.Sprintf("hbeq%d-%d:batch:", time.Now().UnixNano(), seed))
				single := newKeys(fmt.Sprintf("hbeq%d-%d:single:", time.Now().UnixNano(), seed))
				t.Cleanup(func() { dropKeys(c, batch, single) })
				rng := rand.New(rand.NewPCG(seed, 7))
				base := int64(17_000_000_000) + rng.Int64N(1000)
				ids := []string{"free-a", "free-b", "full-a", "off", "dead", "dead-online"}
				for _, k := range []keys{batch, single} {
					cmds := valkey.Commands{
						c.B().Set().Key(k.seeded).Value("1").Build(),
						c.B().Zadd().Key(k.free).ScoreMember().ScoreMember(float64(base*16384+130), "free-a").
							ScoreMember(float64((base+5)*16384+1), "free-b").ScoreMember(float64(base*16384), "dead-online").Build(),
						c.B().Zadd().Key(k.full).ScoreMember().ScoreMember(float64((base+2)*16384+257), "full-a").Build(),
						c.B().Sadd().Key(k.deactivated).Member("dead", "dead-online").Build(),
					}
					for _, r := range c.DoMulti(ctx, cmds...) {
						if err := r.Error(); err != nil {
							t.Fatal(err)
						}
					}
				}

				n := 1 + rng.IntN(60)
				args := make([]string, 0, 2*n)
				for range n {
					args = append(args, ids[rng.IntN(len(ids))], strconv.FormatInt(base-5+rng.Int64N(20), 10))
				}
				got, err := scriptHeartbeat.Exec(ctx, c, batch.heartbeat, args).AsIntSlice()
				if err != nil {
					t.Fatalf("seed %d: batch: %v", seed, err)
				}
				var want []int64
				for i := 0; i < len(args); i += 2 {
					one, err := scriptHeartbeat.Exec(ctx, c, single.heartbeat, args[i:i+2]).AsIntSlice()
					if err != nil || len(one) != 1 {
						t.Fatalf("seed %d: heartbeat %d alone: %v, %v", seed, i/2, one, err)
					}
					want = append(want, one[0])
				}
				model := heartbeatModel(base, args)
				if !slices.Equal(got, want) || !slices.Equal(got, model.codes) {
					t.Errorf("seed %d: batch %v answered %v; one by one %v; the rules %v", seed, args, got, want, model.codes)
				}
				for i, set := range []func(keys) string{func(k keys) string { return k.free }, func(k keys) string { return k.full }} {
					b, s := zsetOf(t, c, set(batch)), zsetOf(t, c, set(single))
					if b != s || b != model.sets[i] {
						t.Errorf("seed %d: batch %v left %s, one by one %s, the rules %s", seed, args, b, s, model.sets[i])
					}
				}
			}
		})
	}
}

type modelResult struct {
	codes []int64
	sets  [2]string // free, full: as zsetOf prints them
}

// heartbeatModel applies the heartbeats of args (id, ds pairs) by the rules
// to the state the test seeds: deactivated first, then the online sets; a
// later heartbeat rewrites the score's heartbeat part and keeps its load bits.
func heartbeatModel(base int64, args []string) modelResult {
	type entry struct {
		set   int
		score int64
	}
	online := map[string]*entry{
		"free-a":      {0, base*16384 + 130},
		"free-b":      {0, (base+5)*16384 + 1},
		"dead-online": {0, base * 16384},
		"full-a":      {1, (base+2)*16384 + 257},
	}
	dead := map[string]bool{"dead": true, "dead-online": true}
	var r modelResult
	for i := 0; i < len(args); i += 2 {
		id := args[i]
		ds, _ := strconv.ParseInt(args[i+1], 10, 64)
		e, ok := online[id]
		switch {
		case dead[id]:
			r.codes = append(r.codes, 3)
		case !ok:
			r.codes = append(r.codes, 2)
		default:
			if old := e.score / 16384; ds > old {
				e.score = ds*16384 + e.score%16384
			}
			r.codes = append(r.codes, 1)
		}
	}
	for set := range 2 {
		var kv []valkey.ZScore
		for id, e := range online {
			if e.set == set {
				kv = append(kv, valkey.ZScore{Member: id, Score: float64(e.score)})
			}
		}
		slices.SortFunc(kv, func(a, b valkey.ZScore) int {
			if a.Score != b.Score {
				if a.Score < b.Score {
					return -1
				}
				return 1
			}
			return strings.Compare(a.Member, b.Member)
		})
		r.sets[set] = fmt.Sprint(kv)
	}
	return r
}

// zsetOf is a sorted set's members and scores, as text.
func zsetOf(t *testing.T, c valkey.Client, key string) string {
	t.Helper()
	kv, err := c.Do(context.Background(), c.B().Zrange().Key(key).Min("0").Max("-1").Withscores().Build()).AsZScores()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(kv)
}

func dropKeys(c valkey.Client, ks ...keys) {
	for _, k := range ks {
		c.Do(context.Background(), c.B().Del().Key(k.free, k.full, k.deactivated, k.seeded).Build())
	}
}
