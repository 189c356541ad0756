package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/halobestie/mitra-availability/ports"
)

// authSessionRow is a row of auth_sessions.
type authSessionRow struct {
	bun.BaseModel `bun:"table:auth_sessions"`

	ID        string     `bun:"id"`
	UserID    string     `bun:"user_id"`
	CreatedAt time.Time  `bun:"created_at"`
	ExpiresAt time.Time  `bun:"expires_at"`
	RevokedAt *time.Time `bun:"revoked_at"`
}

const authSessionColumns = `id, user_id, created_at, expires_at, revoked_at`

// refreshTokenRow is a refresh_tokens row joined with its auth session.
type refreshTokenRow struct {
	TokenExpiresAt time.Time  `bun:"token_expires_at"`
	RotatedAt      *time.Time `bun:"rotated_at"`

	SessionID        string     `bun:"session_id"`
	UserID           string     `bun:"user_id"`
	SessionCreatedAt time.Time  `bun:"session_created_at"`
	SessionExpiresAt time.Time  `bun:"session_expires_at"`
	SessionRevokedAt *time.Time `bun:"session_revoked_at"`
}

func toPortsAuthSession(r authSessionRow) ports.AuthSession {
	return ports.AuthSession{
		ID:        r.ID,
		UserID:    r.UserID,
		CreatedAt: utc(r.CreatedAt),
		ExpiresAt: utc(r.ExpiresAt),
		RevokedAt: utcPtr(r.RevokedAt),
	}
}

// CreateAuthSession implements ports.AuthStore. The session and its first
// refresh token are inserted by one statement. An unknown user is ErrNotFound.
func (s *Store) CreateAuthSession(ctx context.Context, userID string, tokenHash []byte, now, expiresAt time.Time) (ports.AuthSession, error) {
	key, ok := parseID(userID)
	if !ok {
		return ports.AuthSession{}, fmt.Errorf("postgres: create auth session for user %q: %w", userID, ports.ErrNotFound)
	}
	var row authSessionRow
	err := s.db.NewRaw(`
		WITH s AS (
			INSERT INTO auth_sessions (id, user_id, created_at, expires_at)
			VALUES (?0, ?1, ?2, ?3)
			RETURNING `+authSessionColumns+`
		), t AS (
			INSERT INTO refresh_tokens (token_hash, auth_session_id, created_at, expires_at)
			SELECT ?4, id, created_at, expires_at FROM s
		)
		SELECT `+authSessionColumns+` FROM s`,
		uuid.NewString(), key, ts(now), ts(expiresAt), tokenHash,
	).Scan(ctx, &row)
	if err != nil {
		if isForeignKeyViolation(err) {
			return ports.AuthSession{}, fmt.Errorf("postgres: create auth session: user %s: %w: %w", key, ports.ErrNotFound, err)
		}
		return ports.AuthSession{}, fmt.Errorf("postgres: create auth session: %w", translate(err))
	}
	return toPortsAuthSession(row), nil
}

// RotateRefreshToken implements ports.AuthStore. In one transaction it locks
// the token and its session, then either rotates the token, or — for a token
// that was already rotated — revokes the session and commits that before
// answering ErrRefreshReused.
func (s *Store) RotateRefreshToken(ctx context.Context, oldHash, newHash []byte, now, expiresAt time.Time) (ports.AuthSession, error) {
	now, expiresAt = ts(now), ts(expiresAt)
	var (
		out    authSessionRow
		reused bool
	)
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var tok refreshTokenRow
		err := tx.NewRaw(`
			SELECT rt.expires_at AS token_expires_at, rt.rotated_at,
				s.id AS session_id, s.user_id, s.created_at AS session_created_at,
				s.expires_at AS session_expires_at, s.revoked_at AS session_revoked_at
			FROM refresh_tokens rt JOIN auth_sessions s ON s.id = rt.auth_session_id
			WHERE rt.token_hash = ?
			FOR UPDATE`, oldHash).Scan(ctx, &tok)
		if err != nil {
			return translate(err)
		}
		if tok.RotatedAt != nil {
			reused = true
			err := tx.NewRaw(`UPDATE auth_sessions SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?
				RETURNING `+authSessionColumns, now, tok.SessionID).Scan(ctx, &out)
			return translate(err)
		}
		if tok.SessionRevokedAt != nil || !now.Before(tok.SessionExpiresAt) || !now.Before(tok.TokenExpiresAt) {
			return ports.ErrNotFound
		}
		// ?0 now, ?1 old hash, ?2 new hash, ?3 session id, ?4 expires at.
		err = tx.NewRaw(`
			WITH r AS (
				UPDATE refresh_tokens SET rotated_at = ?0 WHERE token_hash = ?1
			), n AS (
				INSERT INTO refresh_tokens (token_hash, auth_session_id, created_at, expires_at)
				VALUES (?2, ?3, ?0, ?4)
			)
			UPDATE auth_sessions SET expires_at = ?4 WHERE id = ?3
			RETURNING `+authSessionColumns,
			now, oldHash, newHash, tok.SessionID, expiresAt).Scan(ctx, &out)
		return translate(err)
	})
	if err != nil {
		return ports.AuthSession{}, fmt.Errorf("postgres: rotate refresh token: %w", translate(err))
	}
	if reused {
		return toPortsAuthSession(out), fmt.Errorf("postgres: rotate refresh token: %w", ports.ErrRefreshReused)
	}
	return toPortsAuthSession(out), nil
}

// RevokeAuthSession implements ports.AuthStore. Revoking a revoked session
// keeps its first revocation time; an unknown session is ErrNotFound.
func (s *Store) RevokeAuthSession(ctx context.Context, sessionID string, now time.Time) error {
	key, ok := parseID(sessionID)
	if !ok {
		return fmt.Errorf("postgres: revoke auth session %q: %w", sessionID, ports.ErrNotFound)
	}
	res, err := s.db.NewRaw(`UPDATE auth_sessions SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?`,
		ts(now), key).Exec(ctx)
	if err != nil {
		return fmt.Errorf("postgres: revoke auth session %s: %w", key, translate(err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("postgres: revoke auth session %s: %w", key, translate(err))
	} else if n == 0 {
		return fmt.Errorf("postgres: revoke auth session %s: %w", key, ports.ErrNotFound)
	}
	return nil
}

// revocationRow is one revoked auth session.
type revocationRow struct {
	ID        string    `bun:"id"`
	UserID    string    `bun:"user_id"`
	RevokedAt time.Time `bun:"revoked_at"`
}

func toPortsRevocations(rows []revocationRow) []ports.Revocation {
	out := make([]ports.Revocation, len(rows))
	for i, r := range rows {
		out[i] = ports.Revocation{SessionID: r.ID, UserID: r.UserID, RevokedAt: utc(r.RevokedAt)}
	}
	return out
}

// RevokeUserAuthSessions implements ports.AuthStore. It revokes the user's
// sessions that are not revoked yet and returns those.
func (s *Store) RevokeUserAuthSessions(ctx context.Context, userID string, now time.Time) ([]ports.Revocation, error) {
	key, ok := parseID(userID)
	if !ok {
		return []ports.Revocation{}, nil
	}
	var rows []revocationRow
	err := s.db.NewRaw(`UPDATE auth_sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL
		RETURNING id, user_id, revoked_at`, ts(now), key).Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: revoke auth sessions of user %s: %w", key, translate(err))
	}
	return toPortsRevocations(rows), nil
}

// RevokedSince implements ports.AuthStore over auth_sessions_revoked_at_idx.
func (s *Store) RevokedSince(ctx context.Context, since time.Time, limit int) ([]ports.Revocation, error) {
	if limit <= 0 {
		return []ports.Revocation{}, nil
	}
	var rows []revocationRow
	err := s.db.NewRaw(`SELECT id, user_id, revoked_at FROM auth_sessions
		WHERE revoked_at >= ? ORDER BY revoked_at, id LIMIT ?`, ts(since), limit).Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: revoked auth sessions: %w", translate(err))
	}
	return toPortsRevocations(rows), nil
}

// AuthSession implements ports.AuthStore.
func (s *Store) AuthSession(ctx context.Context, sessionID string) (ports.AuthSession, error) {
	key, ok := parseID(sessionID)
	if !ok {
		return ports.AuthSession{}, fmt.Errorf("postgres: auth session %q: %w", sessionID, ports.ErrNotFound)
	}
	var row authSessionRow
	err := s.db.NewRaw(`SELECT `+authSessionColumns+` FROM auth_sessions WHERE id = ?`, key).Scan(ctx, &row)
	if err != nil {
		return ports.AuthSession{}, fmt.Errorf("postgres: auth session %s: %w", key, translate(err))
	}
	return toPortsAuthSession(row), nil
}
