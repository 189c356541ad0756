package sessions

import "math/rand/v2"

// Blast offers a search to every available mitra (docs/contract.md §7), or, with a
// positive Limit (BLAST_LIMIT), to Limit of them chosen at random.
type Blast struct {
	Limit int
	// Shuffle draws the random choice; nil uses math/rand/v2's Shuffle.
	Shuffle func(n int, swap func(i, j int))
}

// Choose implements Router. With a limit below len(available) it returns a
// uniformly random Limit-subset: a partial Fisher–Yates shuffle over the
// first Limit places, so its cost is Limit swaps, not len(available).
func (b Blast) Choose(available []string) []string {
	if b.Limit <= 0 || len(available) <= b.Limit {
		return available
	}
	if b.Shuffle != nil {
		b.Shuffle(len(available), func(i, j int) { available[i], available[j] = available[j], available[i] })
		return available[:b.Limit]
	}
	for i := range b.Limit {
		j := i + rand.IntN(len(available)-i)
		available[i], available[j] = available[j], available[i]
	}
	return available[:b.Limit]
}
