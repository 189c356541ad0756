package postgres

import (
	"context"
	"fmt"

	"github.com/halobestie/mitra-availability/ports"
)

// sessionCountsRow is the result of the open-session count query.
type sessionCountsRow struct {
	Searching      int `bun:"searching"`
	PendingPayment int `bun:"pending_payment"`
	Active         int `bun:"active"`
}

// CountOpenSessions implements ports.SessionStats.
func (s *Store) CountOpenSessions(ctx context.Context) (ports.SessionCounts, error) {
	var row sessionCountsRow
	err := s.db.NewRaw(`
		SELECT
			count(*) FILTER (WHERE status = 'searching')::int       AS searching,
			count(*) FILTER (WHERE status = 'pending_payment')::int AS pending_payment,
			count(*) FILTER (WHERE status = 'active')::int          AS active
		FROM chat_sessions
		WHERE status IN ('searching', 'pending_payment', 'active')`,
	).Scan(ctx, &row)
	if err != nil {
		return ports.SessionCounts{}, fmt.Errorf("postgres: count open sessions: %w", translate(err))
	}
	return ports.SessionCounts{Searching: row.Searching, PendingPayment: row.PendingPayment, Active: row.Active}, nil
}
