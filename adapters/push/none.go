// Package push holds the implementations of ports.Pusher, one per
// PUSH_BACKEND: None, Log (a structured log line per notification) and FCM
// (Firebase Cloud Messaging's HTTP v1 API with a service-account OAuth2
// token).
package push

import (
	"context"

	"github.com/halobestie/mitra-availability/ports"
)

// None is the pusher of PUSH_BACKEND=none: it sends nothing. (The app does
// not even run the notifier with it; None exists so that a Pusher is never nil.)
type None struct{}

var _ ports.Pusher = None{}

// Push implements ports.Pusher; it does nothing.
func (None) Push(context.Context, ports.Push) error { return nil }
