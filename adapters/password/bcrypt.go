// Package password hashes passwords with bcrypt.
package password

import (
	"fmt"

	"golang.org/x/crypto/bcrypt"

	"github.com/halobestie/mitra-availability/ports"
)

// Bcrypt implements ports.PasswordHasher.
type Bcrypt struct {
	cost int
}

var _ ports.PasswordHasher = (*Bcrypt)(nil)

// NewBcrypt returns a hasher with the given cost (bcrypt.DefaultCost when 0).
// Tests use bcrypt.MinCost to stay fast.
func NewBcrypt(cost int) (*Bcrypt, error) {
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	if cost < bcrypt.MinCost || cost > bcrypt.MaxCost {
		return nil, fmt.Errorf("password: bcrypt cost %d out of range", cost)
	}
	return &Bcrypt{cost: cost}, nil
}

// Hash returns the bcrypt hash of pw.
func (b *Bcrypt) Hash(pw string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(pw), b.cost)
	if err != nil {
		return "", fmt.Errorf("password: hashing: %w", err)
	}
	return string(h), nil
}

// Compare returns nil when pw matches hash.
func (b *Bcrypt) Compare(hash, pw string) error {
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(pw))
}
