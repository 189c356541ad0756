package push

import (
	"context"
	"log/slog"

	"github.com/halobestie/mitra-availability/ports"
)

// Log is the pusher of PUSH_BACKEND=log: it writes one structured line per
// notification instead of sending it, for development and for trying the
// push path without FCM credentials.
type Log struct {
	log *slog.Logger
}

var _ ports.Pusher = (*Log)(nil)

// NewLog returns a pusher that logs to log (nil discards).
func NewLog(log *slog.Logger) *Log {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Log{log: log.With(slog.String("component", "push"))}
}

// Push implements ports.Pusher: it logs the notification and never fails.
// Only the end of the device token is logged.
func (l *Log) Push(ctx context.Context, p ports.Push) error {
	l.log.InfoContext(ctx, "push notification",
		slog.String("backend", "log"),
		slog.String("user_id", p.Device.UserID),
		slog.String("platform", p.Device.Platform),
		slog.String("token_suffix", tokenSuffix(p.Device.Token)),
		slog.String("type", p.Event.Type),
		slog.String("payload", string(p.Event.Payload)))
	return nil
}

// tokenSuffix is what logs show of a device token: its last 8 characters.
func tokenSuffix(token string) string {
	r := []rune(token)
	if len(r) <= 8 {
		return "…"
	}
	return "…" + string(r[len(r)-8:])
}
