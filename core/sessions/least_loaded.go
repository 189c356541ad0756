package sessions

import "github.com/halobestie/mitra-availability/ports"

// LeastLoaded offers a search to the Batch available mitras with the fewest
// open sessions, the longest idle first among equals, then to the next Batch
// every OFFER_BATCH_SECONDS (docs/contract.md §11).
type LeastLoaded struct {
	Batch int // OFFER_BATCH_SIZE, at least 1
}

// Read implements Router: the Batch least loaded.
func (r LeastLoaded) Read() (ports.CandidateOrder, int) {
	return ports.OrderLeastLoaded, max(r.Batch, 1)
}

// Choose implements Router: fewest open sessions first, then longest idle, then id.
func (r LeastLoaded) Choose(cands []ports.Candidate) ([]string, int) {
	return ordered(cands, ports.OrderLeastLoaded), max(r.Batch, 1)
}
