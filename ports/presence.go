package ports

import "context"

// Presence records which users have an open WebSocket connection, shared by
// every instance of the service, so that an event is pushed to a user's
// device only when no instance can deliver it over a WebSocket (docs/contract.md §12).
//
// Each instance holds its own view: Connected and Disconnected count this
// instance's connections; Online answers for every instance. An instance that
// dies without saying Disconnected stops counting once its entries expire
// (the adapter documents after how long).
type Presence interface {
	// Connected records one more open connection of userID on this instance.
	Connected(ctx context.Context, userID string) error
	// Disconnected records that one connection of userID on this instance closed.
	Disconnected(ctx context.Context, userID string) error
	// Online returns the users of userIDs with an open connection on any
	// instance. On error, the set still holds the users known to be online
	// (those connected to this instance) and the caller decides what to do
	// about the others.
	Online(ctx context.Context, userIDs []string) (map[string]bool, error)
}
