package ports

import (
	"context"
	"encoding/json"
)

// Event types sent to WebSocket clients (docs/contract.md §8).
const (
	EventSessionOffer   = "session_offer"
	EventSessionTaken   = "session_taken"
	EventSessionUpdate  = "session_update"
	EventSessionWarning = "session_warning"
	EventSessionEnded   = "session_ended"
)

// Event is one realtime message for a set of users. Payload is the complete
// JSON object sent to each of them (it carries its own "type" field).
type Event struct {
	Type    string          `json:"type"`
	UserIDs []string        `json:"user_ids"`
	Payload json.RawMessage `json:"payload"`
}

// EventBus carries events between instances: an event published on any
// instance reaches the subscribers of every instance, once.
type EventBus interface {
	// Publish sends e to every instance's subscribers.
	Publish(ctx context.Context, e Event) error
	// Subscribe registers handler for every event from every instance until the
	// returned function is called. Handlers must not block.
	Subscribe(handler func(Event)) (unsubscribe func())
}
