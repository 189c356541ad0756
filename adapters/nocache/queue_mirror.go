package nocache

import (
	"context"
	"time"

	"github.com/halobestie/mitra-availability/ports"
)

// QueueMirror is the queue mirror of CACHE_BACKEND=none: it answers
// ports.ErrCacheDisabled to every call, so positions and the queue's figures
// come from the store.
type QueueMirror struct{}

var _ ports.QueueMirror = (*QueueMirror)(nil)

// NewQueueMirror returns the queue mirror of CACHE_BACKEND=none.
func NewQueueMirror() *QueueMirror { return &QueueMirror{} }

// QueueJoin returns ports.ErrCacheDisabled.
func (*QueueMirror) QueueJoin(context.Context, ports.QueueMember) error {
	return ports.ErrCacheDisabled
}

// QueueLeave returns ports.ErrCacheDisabled.
func (*QueueMirror) QueueLeave(context.Context, ports.QueueMember) error {
	return ports.ErrCacheDisabled
}

// QueueMatched returns ports.ErrCacheDisabled.
func (*QueueMirror) QueueMatched(context.Context, string, time.Time, time.Time) error {
	return ports.ErrCacheDisabled
}

// QueueFigures returns ports.ErrCacheDisabled.
func (*QueueMirror) QueueFigures(context.Context, *ports.QueueMember, time.Time) (ports.QueueFigures, error) {
	return ports.QueueFigures{}, ports.ErrCacheDisabled
}

// QueueReseed returns ports.ErrCacheDisabled.
func (*QueueMirror) QueueReseed(context.Context, ports.QueueTruth) (int, error) {
	return 0, ports.ErrCacheDisabled
}
