package sessions

import (
	"math/rand/v2"

	"github.com/halobestie/mitra-availability/ports"
)

// Blast offers a search to every available mitra at once (docs/contract.md
// §7), or, with a positive Limit (BLAST_LIMIT), to Limit of them chosen at
// random: the availability read samples them (its cost grows with Limit, not
// with the online mitras).
type Blast struct {
	Limit int
	// Shuffle draws the random choice; nil uses math/rand/v2's Shuffle.
	Shuffle func(n int, swap func(i, j int))
}

// Read implements Router: a random sample of Limit (0: every available mitra).
func (b Blast) Read() (ports.CandidateOrder, int) { return ports.OrderRandom, max(b.Limit, 0) }

// Choose implements Router: every candidate at once (no batches). With more
// candidates than Limit it keeps a uniformly random Limit-subset: a partial
// Fisher–Yates shuffle over the first Limit places, so its cost is Limit
// swaps, not len(cands).
func (b Blast) Choose(cands []ports.Candidate) ([]string, int) {
	ids := make([]string, len(cands))
	for i, c := range cands {
		ids[i] = c.ID
	}
	if b.Limit <= 0 || len(ids) <= b.Limit {
		return ids, 0
	}
	if b.Shuffle != nil {
		b.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		return ids[:b.Limit], 0
	}
	for i := range b.Limit {
		j := i + rand.IntN(len(ids)-i)
		ids[i], ids[j] = ids[j], ids[i]
	}
	return ids[:b.Limit], 0
}
