// Package validate holds the input rules shared by the core services.
package validate

import (
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/halobestie/mitra-availability/core"
)

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{7,14}$`)

// Limits of the account fields.
const (
	MinPasswordLen    = 8
	MaxPasswordBytes  = 72 // bcrypt ignores anything longer
	MaxDisplayNameLen = 100
	MaxCapacity       = 100
)

// Phone checks an E.164 phone number such as +628123456789.
func Phone(field, phone string) error {
	if !e164.MatchString(phone) {
		return core.Invalid(field, "must be an E.164 phone number such as +628123456789")
	}
	return nil
}

// Password checks the length rules of a new password.
func Password(field, pw string) error {
	switch {
	case utf8.RuneCountInString(pw) < MinPasswordLen:
		return core.Invalid(field, "must be at least 8 characters")
	case len(pw) > MaxPasswordBytes:
		return core.Invalid(field, "must be at most 72 bytes")
	}
	return nil
}

// DisplayName trims and checks a display name, returning the trimmed value.
func DisplayName(field, name string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return "", core.Invalid(field, "must not be empty")
	}
	if utf8.RuneCountInString(name) > MaxDisplayNameLen {
		return "", core.Invalid(field, "must be at most 100 characters")
	}
	return name, nil
}

// Capacity checks a mitra capacity.
func Capacity(field string, n int) error {
	if n < 0 || n > MaxCapacity {
		return core.Invalid(field, "must be an integer from 0 to 100")
	}
	return nil
}
