package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/halobestie/mitra-availability/ports"
)

// mitraRow is a mitra as the mitra view query returns it: the mitras row, the
// user's phone and name, and the derived count of open chat sessions.
type mitraRow struct {
	bun.BaseModel `bun:"table:mitras"`

	ID              string     `bun:"id"`
	Phone           string     `bun:"phone"`
	DisplayName     string     `bun:"display_name"`
	IsActive        bool       `bun:"is_active"`
	IsOnline        bool       `bun:"is_online"`
	IsAway          bool       `bun:"is_away"`
	Capacity        int        `bun:"capacity"`
	ActiveSessions  int        `bun:"active_sessions"`
	LastHeartbeatAt *time.Time `bun:"last_heartbeat_at"`
	IdleSince       *time.Time `bun:"idle_since"`
	CreatedAt       time.Time  `bun:"created_at"`
	UpdatedAt       time.Time  `bun:"updated_at"`
}

func toPortsMitra(r mitraRow) ports.Mitra {
	return ports.Mitra{
		ID:              r.ID,
		Phone:           r.Phone,
		DisplayName:     r.DisplayName,
		IsActive:        r.IsActive,
		IsOnline:        r.IsOnline,
		IsAway:          r.IsAway,
		Capacity:        r.Capacity,
		ActiveSessions:  r.ActiveSessions,
		LastHeartbeatAt: utcPtr(r.LastHeartbeatAt),
		IdleSince:       utcPtr(r.IdleSince),
		CreatedAt:       utc(r.CreatedAt),
		UpdatedAt:       utc(r.UpdatedAt),
	}
}

// activeSessionsExpr counts the sessions that hold a place of mitra m: those in
// pending_payment or active (served by chat_sessions_mitra_open_idx).
const activeSessionsExpr = `(SELECT count(*) FROM chat_sessions cs
	WHERE cs.mitra_id = m.id AND cs.status IN ('pending_payment', 'active'))::int`

// idleSinceExpr is when an online mitra m became idle: the later of when it
// went online and when its last session ended (one probe of
// chat_sessions_mitra_ended_idx); NULL while offline.
const idleSinceExpr = `CASE WHEN m.is_online THEN greatest(m.online_since, (SELECT max(cs.ended_at) FROM chat_sessions cs
	WHERE cs.mitra_id = m.id AND cs.ended_at IS NOT NULL)) END`

// mitraView wraps a statement that yields mitras rows (a SELECT, or an UPDATE …
// RETURNING *) into one statement that returns the mitra view of each row.
// ctes, when not empty, are further common table expressions that rows may
// use ("name AS (…)"); a data-modifying one must be given there, at the top level.
func mitraView(ctes, rows string) string {
	with := "WITH "
	if ctes != "" {
		with += ctes + ", "
	}
	return with + `m AS (` + rows + `)
		SELECT m.id, u.phone, u.display_name, m.is_active, m.is_online, m.is_away, m.capacity,
			` + activeSessionsExpr + ` AS active_sessions,
			m.last_heartbeat_at, ` + idleSinceExpr + ` AS idle_since, m.created_at, m.updated_at
		FROM m JOIN users u ON u.id = m.id`
}

// scanMitra scans the mitra view built by mitraView(ctes, rows) and translates errors.
func (s *Store) scanMitra(ctx context.Context, op, id, ctes, rows string, args ...any) (ports.Mitra, error) {
	var row mitraRow
	if err := s.db.NewRaw(mitraView(ctes, rows), args...).Scan(ctx, &row); err != nil {
		return ports.Mitra{}, fmt.Errorf("postgres: %s mitra %s: %w", op, id, translate(err))
	}
	return toPortsMitra(row), nil
}

// CreateMitra implements ports.MitraStore. The user and its mitra row are
// inserted by one statement, so both exist or neither does.
func (s *Store) CreateMitra(ctx context.Context, u ports.NewUser, capacity int) (ports.Mitra, error) {
	if err := ports.CheckStorableUser(u); err != nil {
		return ports.Mitra{}, fmt.Errorf("postgres: create mitra: %w", err)
	}
	var row mitraRow
	err := s.db.NewRaw(`
		WITH u AS (
			INSERT INTO users (role, phone, password_hash, display_name)
			VALUES ('mitra', ?, ?, ?)
			RETURNING id, phone, display_name
		), m AS (
			INSERT INTO mitras (id, capacity) SELECT id, ? FROM u
			RETURNING *
		)
		SELECT m.id, u.phone, u.display_name, m.is_active, m.is_online, m.is_away, m.capacity,
			0 AS active_sessions, m.last_heartbeat_at, NULL::timestamptz AS idle_since, m.created_at, m.updated_at
		FROM m JOIN u ON u.id = m.id`,
		u.Phone, u.PasswordHash, u.DisplayName, capacity,
	).Scan(ctx, &row)
	if err != nil {
		return ports.Mitra{}, fmt.Errorf("postgres: create mitra: %w", translate(err))
	}
	return toPortsMitra(row), nil
}

// Mitra implements ports.MitraStore.
func (s *Store) Mitra(ctx context.Context, id string) (ports.Mitra, error) {
	key, ok := parseID(id)
	if !ok {
		return ports.Mitra{}, fmt.Errorf("postgres: mitra %q: %w", id, ports.ErrNotFound)
	}
	return s.scanMitra(ctx, "get", key, "", `SELECT * FROM mitras WHERE id = ?`, key)
}

// PatchMitra implements ports.MitraStore. Deactivating also takes the mitra
// offline; reactivating leaves it offline.
func (s *Store) PatchMitra(ctx context.Context, id string, p ports.MitraPatch) (ports.Mitra, error) {
	key, ok := parseID(id)
	if !ok {
		return ports.Mitra{}, fmt.Errorf("postgres: patch mitra %q: %w", id, ports.ErrNotFound)
	}
	if p.IsActive == nil && p.Capacity == nil {
		return s.scanMitra(ctx, "patch", key, "", `SELECT * FROM mitras WHERE id = ?`, key)
	}
	// ?0 capacity, ?1 is_active (NULL keeps the column), ?2 id.
	return s.scanMitra(ctx, "patch", key, "", `
		UPDATE mitras SET
			capacity     = coalesce(?0::int, capacity),
			is_active    = coalesce(?1::boolean, is_active),
			is_online    = is_online AND coalesce(?1::boolean, is_active),
			is_away      = is_away AND coalesce(?1::boolean, is_active),
			online_since = CASE WHEN coalesce(?1::boolean, is_active) THEN online_since END,
			updated_at   = now()
		WHERE id = ?2
		RETURNING *`,
		p.Capacity, p.IsActive, key)
}

// SetOnline implements ports.MitraStore. Going online records at as the
// heartbeat (never moving it backwards) and, when the mitra was offline, as
// online_since; either way is_away is cleared. A deactivated mitra cannot go
// online: it is returned offline and unchanged, and the caller decides what
// to answer.
func (s *Store) SetOnline(ctx context.Context, id string, online bool, at time.Time) (ports.Mitra, error) {
	return s.setPresence(ctx, "set online", id, online, false, at)
}

// SetAway implements ports.MitraStore: SetOnline(true) that leaves the mitra away.
func (s *Store) SetAway(ctx context.Context, id string, at time.Time) (ports.Mitra, error) {
	return s.setPresence(ctx, "set away", id, true, true, at)
}

func (s *Store) setPresence(ctx context.Context, op, id string, online, away bool, at time.Time) (ports.Mitra, error) {
	key, ok := parseID(id)
	if !ok {
		return ports.Mitra{}, fmt.Errorf("postgres: %s mitra %q: %w", op, id, ports.ErrNotFound)
	}
	// ?0 online, ?1 at, ?2 id, ?3 away. Every right-hand side sees the row as it was.
	return s.scanMitra(ctx, op, key, "", `
		UPDATE mitras SET
			is_online         = is_active AND ?0::boolean,
			is_away           = is_active AND ?0::boolean AND ?3::boolean,
			last_heartbeat_at = CASE WHEN is_active AND ?0::boolean
			                         THEN greatest(last_heartbeat_at, ?1::timestamptz)
			                         ELSE last_heartbeat_at END,
			online_since      = CASE WHEN NOT (is_active AND ?0::boolean) THEN NULL
			                         WHEN is_online THEN coalesce(online_since, ?1::timestamptz)
			                         ELSE ?1::timestamptz END,
			updated_at        = now()
		WHERE id = ?2
		RETURNING *`,
		online, ts(at), key, away)
}

// TouchHeartbeat implements ports.MitraStore. Only an online mitra's heartbeat
// moves, and only forwards; an offline mitra is returned unchanged.
func (s *Store) TouchHeartbeat(ctx context.Context, id string, at time.Time) (ports.Mitra, error) {
	key, ok := parseID(id)
	if !ok {
		return ports.Mitra{}, fmt.Errorf("postgres: heartbeat mitra %q: %w", id, ports.ErrNotFound)
	}
	// The fallback branch reads the row only when the update matched nothing, in
	// which case this statement did not change it.
	return s.scanMitra(ctx, "heartbeat", key, `
		upd AS (
			UPDATE mitras SET last_heartbeat_at = greatest(last_heartbeat_at, ?0::timestamptz)
			WHERE id = ?1 AND is_online AND is_active
			RETURNING *
		)`, `
		SELECT * FROM upd
		UNION ALL
		SELECT * FROM mitras WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM upd)`,
		ts(at), key)
}

// mitraStateRow is the row of MitraState and TouchHeartbeatState.
type mitraStateRow struct {
	IsActive bool `bun:"is_active"`
	IsOnline bool `bun:"is_online"`
}

// MitraState implements ports.MitraStore from the mitras row alone (its
// primary key): no join, none of chat_sessions' indexes to lock.
func (s *Store) MitraState(ctx context.Context, id string) (ports.MitraState, error) {
	key, ok := parseID(id)
	if !ok {
		return ports.MitraState{}, fmt.Errorf("postgres: mitra state %q: %w", id, ports.ErrNotFound)
	}
	var row mitraStateRow
	if err := s.db.NewRaw(`SELECT is_active, is_online FROM mitras WHERE id = ?`, key).Scan(ctx, &row); err != nil {
		return ports.MitraState{}, fmt.Errorf("postgres: mitra state %s: %w", key, translate(err))
	}
	return ports.MitraState(row), nil
}

// TouchHeartbeatState implements ports.MitraStore: TouchHeartbeat's update,
// returning only the mitra's state.
func (s *Store) TouchHeartbeatState(ctx context.Context, id string, at time.Time) (ports.MitraState, error) {
	key, ok := parseID(id)
	if !ok {
		return ports.MitraState{}, fmt.Errorf("postgres: heartbeat mitra %q: %w", id, ports.ErrNotFound)
	}
	var row mitraStateRow
	err := s.db.NewRaw(`WITH upd AS (
			UPDATE mitras SET last_heartbeat_at = greatest(last_heartbeat_at, ?0::timestamptz)
			WHERE id = ?1 AND is_online AND is_active
			RETURNING is_active, is_online
		)
		SELECT is_active, is_online FROM upd
		UNION ALL
		SELECT is_active, is_online FROM mitras WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM upd)`,
		ts(at), key).Scan(ctx, &row)
	if err != nil {
		return ports.MitraState{}, fmt.Errorf("postgres: heartbeat mitra %s: %w", key, translate(err))
	}
	return ports.MitraState(row), nil
}

// reachableCond is true for a mitra m that is active, online and whose
// heartbeat is not older than the first argument (?0).
const reachableCond = `m.is_active AND m.is_online AND m.last_heartbeat_at >= ?0::timestamptz`

// offerableCond is reachableCond for a mitra that is not away.
const offerableCond = reachableCond + ` AND NOT m.is_away`

// AvailableMitras implements ports.MitraQueries.
func (s *Store) AvailableMitras(ctx context.Context, freshSince time.Time) ([]ports.Mitra, error) {
	var rows []mitraRow
	err := s.db.NewRaw(`
		SELECT * FROM (`+mitraView("", `SELECT * FROM mitras m WHERE `+offerableCond)+`) v
		WHERE v.active_sessions < v.capacity
		ORDER BY v.id`,
		ts(freshSince),
	).Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: available mitras: %w", translate(err))
	}
	out := make([]ports.Mitra, len(rows))
	for i, r := range rows {
		out[i] = toPortsMitra(r)
	}
	return out, nil
}

// candidateRow is one row of the candidates query.
type candidateRow struct {
	ID           string     `bun:"id"`
	OpenSessions int        `bun:"open_sessions"`
	IdleSince    *time.Time `bun:"idle_since"`
}

// candidateOrderBy is the ORDER BY of each ports.CandidateOrder.
var candidateOrderBy = map[ports.CandidateOrder]string{
	ports.OrderRandom:      "random()",
	ports.OrderLongestIdle: "idle_since NULLS FIRST, id",
	ports.OrderLeastLoaded: "open_sessions, idle_since NULLS FIRST, id",
}

// Candidates implements ports.MitraQueries: the available mitras (the scan
// of AvailableMitras, on mitras_reachable_idx), with their open sessions and
// idle time, ordered and cut to the limit in the database. It is the fallback
// of the mirror's candidate read: its cost grows with the online mitras.
func (s *Store) Candidates(ctx context.Context, q ports.CandidateQuery) ([]ports.Candidate, error) {
	order, ok := candidateOrderBy[q.Order]
	if !ok {
		return nil, fmt.Errorf("postgres: candidates: unknown order %d", q.Order)
	}
	if q.Limit <= 0 {
		return []ports.Candidate{}, nil
	}
	var rows []candidateRow
	err := s.db.NewRaw(`
		SELECT id, open_sessions, idle_since FROM (
			SELECT m.id, m.capacity, `+activeSessionsExpr+` AS open_sessions, `+idleSinceExpr+` AS idle_since
			FROM mitras m
			WHERE `+offerableCond+` AND NOT (m.id = ANY(?1::uuid[]))
		) c
		WHERE open_sessions < capacity
		ORDER BY `+order+`
		LIMIT ?2`,
		ts(q.FreshSince), pgdialect.Array(parseIDs(q.Exclude)), q.Limit,
	).Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: candidates: %w", translate(err))
	}
	out := make([]ports.Candidate, len(rows))
	for i, r := range rows {
		out[i] = ports.Candidate{ID: r.ID, OpenSessions: r.OpenSessions}
		if r.IdleSince != nil {
			out[i].IdleSince = utc(*r.IdleSince)
		}
	}
	return out, nil
}

// mitraCountsRow is the result of the dashboard count query.
type mitraCountsRow struct {
	Online      int `bun:"online"`
	Available   int `bun:"available"`
	Deactivated int `bun:"deactivated"`
}

// CountMitras implements ports.MitraQueries.
func (s *Store) CountMitras(ctx context.Context, freshSince time.Time) (ports.MitraCounts, error) {
	var row mitraCountsRow
	err := s.db.NewRaw(`
		SELECT
			count(*) FILTER (WHERE m.is_active AND m.is_online)::int AS online,
			count(*) FILTER (WHERE `+offerableCond+` AND `+activeSessionsExpr+` < m.capacity)::int AS available,
			count(*) FILTER (WHERE NOT m.is_active)::int AS deactivated
		FROM mitras m`,
		ts(freshSince),
	).Scan(ctx, &row)
	if err != nil {
		return ports.MitraCounts{}, fmt.Errorf("postgres: count mitras: %w", translate(err))
	}
	return ports.MitraCounts{Online: row.Online, Available: row.Available, Deactivated: row.Deactivated}, nil
}
