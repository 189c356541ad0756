package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/halobestie/mitra-availability/ports"
)

// userRow is a row of users.
type userRow struct {
	bun.BaseModel `bun:"table:users"`

	ID           string    `bun:"id"`
	Role         string    `bun:"role"`
	Phone        string    `bun:"phone"`
	PasswordHash string    `bun:"password_hash"`
	DisplayName  string    `bun:"display_name"`
	CreatedAt    time.Time `bun:"created_at"`
}

const userColumns = `id, role, phone, password_hash, display_name, created_at`

func toPortsUser(r userRow) ports.User {
	return ports.User{
		ID:           r.ID,
		Role:         ports.Role(r.Role),
		Phone:        r.Phone,
		DisplayName:  r.DisplayName,
		PasswordHash: r.PasswordHash,
		CreatedAt:    utc(r.CreatedAt),
	}
}

// CreateUser implements ports.UserStore.
func (s *Store) CreateUser(ctx context.Context, u ports.NewUser) (ports.User, error) {
	// Refused before the statement: a NUL would end the query text early.
	if err := ports.CheckStorableUser(u); err != nil {
		return ports.User{}, fmt.Errorf("postgres: create user: %w", err)
	}
	var row userRow
	err := s.db.NewRaw(`
		INSERT INTO users (role, phone, password_hash, display_name)
		VALUES (?, ?, ?, ?)
		RETURNING `+userColumns,
		string(u.Role), u.Phone, u.PasswordHash, u.DisplayName,
	).Scan(ctx, &row)
	if err != nil {
		return ports.User{}, fmt.Errorf("postgres: create user: %w", translate(err))
	}
	return toPortsUser(row), nil
}

// UserByID implements ports.UserStore.
func (s *Store) UserByID(ctx context.Context, id string) (ports.User, error) {
	key, ok := parseID(id)
	if !ok {
		return ports.User{}, fmt.Errorf("postgres: user %q: %w", id, ports.ErrNotFound)
	}
	var row userRow
	err := s.db.NewRaw(`SELECT `+userColumns+` FROM users WHERE id = ?`, key).Scan(ctx, &row)
	if err != nil {
		return ports.User{}, fmt.Errorf("postgres: user %s: %w", key, translate(err))
	}
	return toPortsUser(row), nil
}

// UserByPhone implements ports.UserStore.
func (s *Store) UserByPhone(ctx context.Context, phone string) (ports.User, error) {
	if err := ports.CheckStorableText("phone", phone); err != nil {
		return ports.User{}, fmt.Errorf("postgres: user by phone: %w", err)
	}
	var row userRow
	err := s.db.NewRaw(`SELECT `+userColumns+` FROM users WHERE phone = ?`, phone).Scan(ctx, &row)
	if err != nil {
		return ports.User{}, fmt.Errorf("postgres: user by phone: %w", translate(err))
	}
	return toPortsUser(row), nil
}
