// Package core holds the domain errors shared by the core packages. The
// packages below it (auth, mitras, …) hold the rules; they import only ports
// and the standard library.
package core

import (
	"errors"
	"fmt"
)

// Domain errors. The HTTP adapter maps each to a status and an error code in one table.
var (
	ErrInvalidCredentials = errors.New("invalid credentials")
	ErrUnauthenticated    = errors.New("unauthenticated")
	ErrForbidden          = errors.New("forbidden")
	ErrAccountDeactivated = errors.New("account deactivated")
	ErrNotOnline          = errors.New("mitra is not online")
	ErrNoMitraAvailable   = errors.New("no mitra available")
	ErrOpenSessionExists  = errors.New("customer already has an open session")
	ErrSessionTaken       = errors.New("session already taken")
	ErrAtCapacity         = errors.New("mitra is at capacity")
	ErrInvalidState       = errors.New("invalid state for this operation")
)

// ValidationError says which input field is wrong and why; it maps to 400 invalid_request.
type ValidationError struct {
	Field  string
	Reason string
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("%s: %s", e.Field, e.Reason)
}

// Invalid returns a *ValidationError for field.
func Invalid(field, reason string) error {
	return &ValidationError{Field: field, Reason: reason}
}
