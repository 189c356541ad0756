// Package core holds the domain errors shared by the core packages. The
// packages below it (auth, mitras, …) hold the rules; they import only ports
// and the standard library.
package core

import (
	"errors"
	"fmt"
	"time"
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
	ErrRateLimited        = errors.New("too many attempts")
)

// RateLimitedError is an attempt refused by a limit (ErrRateLimited); it
// maps to 429 with Retry-After.
type RateLimitedError struct {
	// What was limited, for the message: "phone" or "address".
	Limit string
	// RetryAfter is how long until an attempt can be counted again (> 0).
	RetryAfter time.Duration
}

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("too many login attempts for this %s, retry later", e.Limit)
}

func (e *RateLimitedError) Is(target error) bool { return target == ErrRateLimited }

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
