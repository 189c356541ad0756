package ports

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// Errors every store adapter translates its driver errors into. Core wraps or
// passes them through; the HTTP adapter maps them to statuses in one table.
var (
	// ErrNotFound: the row does not exist.
	ErrNotFound = errors.New("not found")
	// ErrPhoneTaken: a user with this phone already exists.
	ErrPhoneTaken = errors.New("phone taken")
	// ErrStoreUnavailable: the store could not be reached or failed to answer.
	ErrStoreUnavailable = errors.New("store unavailable")
)

// InvalidValueError: a value the store cannot hold, such as a string with a
// NUL character (Postgres text cannot store one) or invalid UTF-8. Stores
// refuse it before any statement is sent, so it never becomes a driver error;
// the HTTP adapter maps it to 400 invalid_request naming Field.
type InvalidValueError struct {
	Field  string
	Reason string
}

func (e *InvalidValueError) Error() string { return e.Field + ": " + e.Reason }

// CheckStorableText returns an *InvalidValueError when s holds a NUL
// character or invalid UTF-8, the strings no store adapter accepts.
func CheckStorableText(field, s string) error {
	if strings.IndexByte(s, 0) >= 0 {
		return &InvalidValueError{Field: field, Reason: "must not contain NUL characters"}
	}
	if !utf8.ValidString(s) {
		return &InvalidValueError{Field: field, Reason: "must be valid UTF-8"}
	}
	return nil
}

// CheckStorableUser applies CheckStorableText to the strings of a new user.
func CheckStorableUser(u NewUser) error {
	for _, f := range []struct{ name, value string }{
		{"phone", u.Phone}, {"display_name", u.DisplayName}, {"password_hash", u.PasswordHash},
	} {
		if err := CheckStorableText(f.name, f.value); err != nil {
			return err
		}
	}
	return nil
}
