package memory

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/halobestie/mitra-availability/ports"
)

// CreateUser implements ports.UserStore.
func (s *Store) CreateUser(_ context.Context, u ports.NewUser) (ports.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.createUserLocked(u)
}

func (s *Store) createUserLocked(u ports.NewUser) (ports.User, error) {
	if err := ports.CheckStorableUser(u); err != nil {
		return ports.User{}, fmt.Errorf("memory: create user: %w", err)
	}
	if !u.Role.Valid() {
		return ports.User{}, fmt.Errorf("memory: create user: role %q: %w", u.Role, errCheckViolation)
	}
	if _, taken := s.userByPhone[u.Phone]; taken {
		return ports.User{}, fmt.Errorf("memory: create user: %w", ports.ErrPhoneTaken)
	}
	user := ports.User{
		ID:           uuid.NewString(),
		Role:         u.Role,
		Phone:        u.Phone,
		DisplayName:  u.DisplayName,
		PasswordHash: u.PasswordHash,
		CreatedAt:    s.wallClock(),
	}
	s.users[user.ID] = user
	s.userByPhone[user.Phone] = user.ID
	return user, nil
}

// UserByID implements ports.UserStore.
func (s *Store) UserByID(_ context.Context, id string) (ports.User, error) {
	key, ok := parseID(id)
	if !ok {
		return ports.User{}, notFound("user", id)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[key]
	if !ok {
		return ports.User{}, notFound("user", id)
	}
	return u, nil
}

// UserByPhone implements ports.UserStore.
func (s *Store) UserByPhone(_ context.Context, phone string) (ports.User, error) {
	if err := ports.CheckStorableText("phone", phone); err != nil {
		return ports.User{}, fmt.Errorf("memory: user by phone: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.userByPhone[phone]
	if !ok {
		return ports.User{}, fmt.Errorf("memory: user by phone: %w", ports.ErrNotFound)
	}
	return s.users[id], nil
}
