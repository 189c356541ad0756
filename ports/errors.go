package ports

import "errors"

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
