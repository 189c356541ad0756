package ports

import "time"

// Role is the kind of user an account belongs to.
type Role string

const (
	RoleCustomer Role = "customer"
	RoleMitra    Role = "mitra"
	RoleAdmin    Role = "admin"
)

// Valid reports whether r is one of the known roles.
func (r Role) Valid() bool {
	return r == RoleCustomer || r == RoleMitra || r == RoleAdmin
}

// User is an account: a customer, a mitra or an admin. IDs are canonical UUID strings.
type User struct {
	ID           string
	Role         Role
	Phone        string
	DisplayName  string
	PasswordHash string
	CreatedAt    time.Time
}

// NewUser is what a store needs to create a user; the store assigns the ID.
type NewUser struct {
	Role         Role
	Phone        string
	DisplayName  string
	PasswordHash string
}

// Mitra is a paid listener: a user with role mitra plus its availability state.
// ActiveSessions is derived by the store from chat sessions in pending_payment or
// active with this mitra; it is never stored as a counter.
type Mitra struct {
	ID          string
	Phone       string
	DisplayName string
	IsActive    bool
	IsOnline    bool
	// IsAway: online and heartbeating but taking no new offers
	// (docs/contract.md §12). Only an online mitra is away; going online or offline, a
	// deactivation and the stale sweep clear it.
	IsAway          bool
	Capacity        int
	ActiveSessions  int
	LastHeartbeatAt *time.Time
	// IdleSince is when the mitra last became idle: the later of when it
	// went online and when its last session ended (derived by the store);
	// nil while offline.
	IdleSince *time.Time
	CreatedAt time.Time
	UpdatedAt time.Time
}

// MitraPatch is a partial update of a mitra's administrative fields; nil leaves a field as it is.
type MitraPatch struct {
	IsActive *bool
	Capacity *int
}

// AuthSession is one login: the refresh-token family that a login starts and
// every refresh rotates. Revoking it invalidates its current refresh token.
type AuthSession struct {
	ID        string
	UserID    string
	CreatedAt time.Time
	ExpiresAt time.Time
	RevokedAt *time.Time
}
