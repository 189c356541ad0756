package memory

import (
	"context"
	"fmt"
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
		return ports.AuthSession{}, fmt.Errorf("memory: rotate refresh token: %w", ports.ErrRefreshReused)
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
// sessions that are not revoked yet and returns how many those were.
func (s *Store) RevokeUserAuthSessions(_ context.Context, userID string, now time.Time) (int, error) {
	key, ok := parseID(userID)
	if !ok {
		return 0, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for id, sess := range s.authSessions {
		if sess.userID == key && sess.revokedAt == nil {
			sess.revokedAt = tsPtr(now)
			s.authSessions[id] = sess
			n++
		}
	}
	return n, nil
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
