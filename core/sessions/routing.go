package sessions

// Router is a routing strategy (docs/contract.md §11): it chooses, among the mitras
// a search may be offered to now, those that get the offer. A strategy is one
// small policy behind this interface, in a file of its own; this build serves
// Blast.
type Router interface {
	// Choose returns the mitras to offer to, a subset of available (which it
	// may reorder). available holds no mitra the session excludes.
	Choose(available []string) []string
}
