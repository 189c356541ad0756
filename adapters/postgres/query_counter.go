package postgres

import (
	"context"
	"sync/atomic"

	"github.com/uptrace/bun"
)

// QueryCounter is a bun.QueryHook that counts the statements a bun.DB runs
// (BEGIN, COMMIT and ROLLBACK included), so tests can assert how many a code
// path costs, zero in particular. Attach it with db.AddQueryHook before use.
type QueryCounter struct {
	n atomic.Int64
}

var _ bun.QueryHook = (*QueryCounter)(nil)

// NewQueryCounter returns a counter at zero.
func NewQueryCounter() *QueryCounter {
	return &QueryCounter{}
}

// BeforeQuery implements bun.QueryHook.
func (c *QueryCounter) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context {
	return ctx
}

// AfterQuery implements bun.QueryHook; it counts the statement, failed or not.
func (c *QueryCounter) AfterQuery(_ context.Context, _ *bun.QueryEvent) {
	c.n.Add(1)
}

// Count returns how many statements ran since creation or the last Reset.
func (c *QueryCounter) Count() int64 {
	return c.n.Load()
}

// Reset sets the count back to zero.
func (c *QueryCounter) Reset() {
	c.n.Store(0)
}
