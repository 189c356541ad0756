package sessions

import (
	"slices"

	"github.com/halobestie/mitra-availability/ports"
)

// LongestIdle offers a search to the Batch available mitras idle longest
// (since their last session ended, or since they went online), then to the
// next Batch every OFFER_BATCH_SECONDS (docs/contract.md §11).
type LongestIdle struct {
	Batch int // OFFER_BATCH_SIZE, at least 1
}

// Read implements Router: the Batch longest idle.
func (r LongestIdle) Read() (ports.CandidateOrder, int) {
	return ports.OrderLongestIdle, max(r.Batch, 1)
}

// Choose implements Router: longest idle first, ties by id.
func (r LongestIdle) Choose(cands []ports.Candidate) ([]string, int) {
	return ordered(cands, ports.OrderLongestIdle), max(r.Batch, 1)
}

// ordered sorts cands by o and returns their ids.
func ordered(cands []ports.Candidate, o ports.CandidateOrder) []string {
	cands = slices.Clone(cands)
	slices.SortFunc(cands, o.Compare)
	ids := make([]string, len(cands))
	for i, c := range cands {
		ids[i] = c.ID
	}
	return ids
}
