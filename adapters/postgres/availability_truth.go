package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/halobestie/mitra-availability/ports"
)

// mirrorTruthRow is one row of the mirror truth query: an active online mitra
// (online true) or a deactivated one (online false, only ID set).
type mirrorTruthRow struct {
	Online        bool       `bun:"online"`
	ID            string     `bun:"id"`
	LastHeartbeat *time.Time `bun:"last_heartbeat_at"`
	OpenSessions  int        `bun:"open_sessions"`
	Capacity      int        `bun:"capacity"`
	Away          bool       `bun:"is_away"`
	IdleSince     *time.Time `bun:"idle_since"`
}

// MirrorTruth implements ports.AvailabilityTruth. One statement, so the online
// and the deactivated mitras come from the same snapshot: the open sessions are
// counted by one grouped aggregate over chat_sessions_mitra_open_idx and
// hash-joined to the active online mitras (mitras_reachable_idx), and the
// deactivated ones come from mitras_deactivated_idx. The idle time of each
// online mitra is the later of online_since and its last ended session (one
// probe of chat_sessions_mitra_ended_idx per online mitra). Rows are in no
// particular order.
func (s *Store) MirrorTruth(ctx context.Context) ([]ports.MirrorMitra, []string, error) {
	var rows []mirrorTruthRow
	err := s.db.NewRaw(`
		SELECT true AS online, m.id, m.last_heartbeat_at, coalesce(o.n, 0)::int AS open_sessions, m.capacity, m.is_away,
			greatest(m.online_since, e.ended_at) AS idle_since
		FROM mitras m
		LEFT JOIN (
			SELECT mitra_id, count(*) AS n FROM chat_sessions
			WHERE status IN ('pending_payment', 'active')
			GROUP BY mitra_id
		) o ON o.mitra_id = m.id
		LEFT JOIN LATERAL (
			SELECT cs.ended_at FROM chat_sessions cs
			WHERE cs.mitra_id = m.id AND cs.ended_at IS NOT NULL
			ORDER BY cs.ended_at DESC LIMIT 1
		) e ON true
		WHERE m.is_online AND m.is_active
		UNION ALL
		SELECT false, id, NULL, 0, 0, false, NULL FROM mitras WHERE NOT is_active`,
	).Scan(ctx, &rows)
	if err != nil {
		return nil, nil, fmt.Errorf("postgres: mirror truth: %w", translate(err))
	}
	online := make([]ports.MirrorMitra, 0, len(rows))
	deactivated := []string{}
	for _, r := range rows {
		if !r.Online {
			deactivated = append(deactivated, r.ID)
			continue
		}
		m := ports.MirrorMitra{ID: r.ID, OpenSessions: r.OpenSessions, Capacity: r.Capacity, Away: r.Away}
		if r.LastHeartbeat != nil {
			m.LastHeartbeat = utc(*r.LastHeartbeat)
		}
		if r.IdleSince != nil {
			m.IdleSince = utc(*r.IdleSince)
		}
		online = append(online, m)
	}
	return online, deactivated, nil
}

// SetOfflineIfStale implements ports.AvailabilityTruth in one statement.
// Malformed ids are skipped (no row has them).
func (s *Store) SetOfflineIfStale(ctx context.Context, ids []string, staleBefore time.Time) ([]string, error) {
	keys := parseIDs(ids)
	if len(keys) == 0 {
		return []string{}, nil
	}
	out := []string{}
	err := s.db.NewRaw(`
		UPDATE mitras SET is_online = false, is_away = false, online_since = NULL, updated_at = now()
		WHERE id = ANY(?::uuid[]) AND is_online
			AND (last_heartbeat_at IS NULL OR last_heartbeat_at < ?::timestamptz)
		RETURNING id`,
		pgdialect.Array(keys), ts(staleBefore),
	).Scan(ctx, &out)
	if err != nil {
		return nil, fmt.Errorf("postgres: set %d mitras offline if stale: %w", len(keys), translate(err))
	}
	return out, nil
}

// WriteBackHeartbeats implements ports.AvailabilityTruth in one statement. A
// heartbeat only ever raises last_heartbeat_at, so running it twice changes
// nothing the second time. Malformed ids and zero heartbeats are skipped; of
// several heartbeats of one mitra the latest counts.
func (s *Store) WriteBackHeartbeats(ctx context.Context, beats []ports.MirrorMitra) (int, error) {
	latest := make(map[string]time.Time, len(beats))
	for _, b := range beats {
		key, ok := parseID(b.ID)
		if !ok || b.LastHeartbeat.IsZero() {
			continue
		}
		if hb := ts(b.LastHeartbeat); hb.After(latest[key]) {
			latest[key] = hb
		}
	}
	if len(latest) == 0 {
		return 0, nil
	}
	keys := make([]string, 0, len(latest))
	hbs := make([]time.Time, 0, len(latest))
	for k, hb := range latest {
		keys = append(keys, k)
		hbs = append(hbs, hb)
	}
	res, err := s.db.NewRaw(`
		UPDATE mitras m SET last_heartbeat_at = v.hb
		FROM unnest(?::uuid[], ?::timestamptz[]) AS v(id, hb)
		WHERE m.id = v.id AND (m.last_heartbeat_at IS NULL OR m.last_heartbeat_at < v.hb)`,
		pgdialect.Array(keys), pgdialect.Array(hbs),
	).Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("postgres: write back %d heartbeats: %w", len(keys), translate(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("postgres: write back %d heartbeats: %w", len(keys), translate(err))
	}
	return int(n), nil
}

// parseIDs returns the canonical form of each UUID in ids, skipping the
// malformed ones. The result is never nil.
func parseIDs(ids []string) []string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if key, ok := parseID(id); ok {
			out = append(out, key)
		}
	}
	return out
}
