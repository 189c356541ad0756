package memory

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/halobestie/mitra-availability/ports"
)

// CreateAuthSession implements ports.AuthStore. An unknown user is ErrNotFound.
func (s *Store) CreateAuthSession(_ context.Context, userID string, tokenHash []byte, now, expiresAt time.Time) (ports.AuthSession, error) {
	key, ok := parseID(userID)
	if !ok {
		return ports.AuthSession{}, notFound("user", userID)
	}
	now, expiresAt = ts(now), ts(expiresAt)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[key]; !ok {
		return ports.AuthSession{}, notFound("user", userID)
	}
	if _, dup := s.tokens[string(tokenHash)]; dup {
		return ports.AuthSession{}, fmt.Errorf("memory: create auth session: duplicate token hash: %w", errCheckViolation)
	}
	sess := authSessionRow{id: uuid.NewString(), userID: key, createdAt: now, expiresAt: expiresAt}
	s.authSessions[sess.id] = sess
	s.tokens[string(tokenHash)] = refreshTokenRow{sessionID: sess.id, createdAt: now, expiresAt: expiresAt}
	return toPortsAuthSession(sess), nil
}

// RotateRefreshToken implements ports.AuthStore.
func (s *Store) RotateRefreshToken(_ context.Context, oldHash, newHash []byte, now, expiresAt time.Time) (ports.AuthSession, error) {
	now, expiresAt = ts(now), ts(expiresAt)
	s.mu.Lock()
	defer s.mu.Unlock()
	tok, ok := s.tokens[string(oldHash)]
	if !ok {
		return ports.AuthSession{}, fmt.Errorf("memory: rotate refresh token: %w", ports.ErrNotFound)
	}
	sess := s.authSessions[tok.sessionID]
	if tok.rotatedAt != nil {
		if sess.revokedAt == nil {
			sess.revokedAt = &now
			s.authSessions[sess.id] = sess
		}
		return toPortsAuthSession(sess), fmt.Errorf("memory: rotate refresh token: %w", ports.ErrRefreshReused)
	}
	if sess.revokedAt != nil || !now.Before(sess.expiresAt) || !now.Before(tok.expiresAt) {
		return ports.AuthSession{}, fmt.Errorf("memory: rotate refresh token: %w", ports.ErrNotFound)
	}
	if _, dup := s.tokens[string(newHash)]; dup {
		return ports.AuthSession{}, fmt.Errorf("memory: rotate refresh token: duplicate token hash: %w", errCheckViolation)
	}
	tok.rotatedAt = &now
	s.tokens[string(oldHash)] = tok
	s.tokens[string(newHash)] = refreshTokenRow{sessionID: sess.id, createdAt: now, expiresAt: expiresAt}
	sess.expiresAt = expiresAt
	s.authSessions[sess.id] = sess
	return toPortsAuthSession(sess), nil
}

// RevokeAuthSession implements ports.AuthStore. Revoking a revoked session
// keeps its first revocation time; an unknown session is ErrNotFound.
func (s *Store) RevokeAuthSession(_ context.Context, sessionID string, now time.Time) error {
	key, ok := parseID(sessionID)
	if !ok {
		return notFound("auth session", sessionID)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.authSessions[key]
	if !ok {
		return notFound("auth session", sessionID)
	}
	if sess.revokedAt == nil {
		sess.revokedAt = tsPtr(now)
		s.authSessions[key] = sess
	}
	return nil
}

// RevokeUserAuthSessions implements ports.AuthStore. It revokes the user's
// sessions that are not revoked yet and returns those.
func (s *Store) RevokeUserAuthSessions(_ context.Context, userID string, now time.Time) ([]ports.Revocation, error) {
	out := []ports.Revocation{}
	key, ok := parseID(userID)
	if !ok {
		return out, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, sess := range s.authSessions {
		if sess.userID == key && sess.revokedAt == nil {
			sess.revokedAt = tsPtr(now)
			s.authSessions[id] = sess
			out = append(out, ports.Revocation{SessionID: id, UserID: key, RevokedAt: *sess.revokedAt})
		}
	}
	return out, nil
}

// RevokedSince implements ports.AuthStore, oldest first (ties by session id).
func (s *Store) RevokedSince(_ context.Context, since time.Time, limit int) ([]ports.Revocation, error) {
	out := []ports.Revocation{}
	if limit <= 0 {
		return out, nil
	}
	since = ts(since)
	s.mu.Lock()
	for id, sess := range s.authSessions {
		if sess.revokedAt != nil && !sess.revokedAt.Before(since) {
			out = append(out, ports.Revocation{SessionID: id, UserID: sess.userID, RevokedAt: *sess.revokedAt})
		}
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b ports.Revocation) int {
		if c := a.RevokedAt.Compare(b.RevokedAt); c != 0 {
			return c
		}
		return strings.Compare(a.SessionID, b.SessionID)
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// AuthSession implements ports.AuthStore.
func (s *Store) AuthSession(_ context.Context, sessionID string) (ports.AuthSession, error) {
	key, ok := parseID(sessionID)
	if !ok {
		return ports.AuthSession{}, notFound("auth session", sessionID)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.authSessions[key]
	if !ok {
		return ports.AuthSession{}, notFound("auth session", sessionID)
	}
	return toPortsAuthSession(sess), nil
}

func toPortsAuthSession(r authSessionRow) ports.AuthSession {
	return ports.AuthSession{
		ID:        r.id,
		UserID:    r.userID,
		CreatedAt: r.createdAt,
		ExpiresAt: r.expiresAt,
		RevokedAt: copyTime(r.revokedAt),
	}
}
