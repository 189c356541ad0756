package ports

import "context"

// UserStore persists accounts.
type UserStore interface {
	// CreateUser inserts a user; ErrPhoneTaken when the phone is in use.
	CreateUser(ctx context.Context, u NewUser) (User, error)
	// UserByID returns ErrNotFound when there is no such user.
	UserByID(ctx context.Context, id string) (User, error)
	// UserByPhone returns ErrNotFound when there is no such user.
	UserByPhone(ctx context.Context, phone string) (User, error)
}
