package ports

import (
	"context"
	"errors"
)

// ErrPushTokenUnregistered: the push service no longer knows the device
// token (the app was uninstalled, or the token expired); the token must be
// dropped.
var ErrPushTokenUnregistered = errors.New("push token unregistered")

// Push is one notification for one device: an event of docs/contract.md §8 or §10.
type Push struct {
	Device Device
	Event  Event // Payload is the frame a WebSocket client would have received
}

// Pusher sends notifications through a push service (PUSH_BACKEND).
type Pusher interface {
	// Push sends p, within ctx's deadline. ErrPushTokenUnregistered (wrapped)
	// when the service reports the token unregistered; any other error is a
	// failure of this attempt.
	Push(ctx context.Context, p Push) error
}

// PushMetrics records what became of each recipient's notification.
type PushMetrics interface {
	// PushOutcome counts one recipient of one event by outcome: sent, failed,
	// unregistered, dropped (the queue was full or the notifier stopped),
	// connected (an open WebSocket delivers it; no push), no_device, or
	// lookup_failed (the device store did not answer).
	PushOutcome(outcome string)
	// PresenceFailed counts a presence lookup that failed; the recipient was
	// then treated as not connected (pushed when unsure).
	PresenceFailed()
}
