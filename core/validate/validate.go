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
// Besides the length rules it refuses control characters and the
// bidirectional overrides and isolates (docs/contract.md §14): a name is shown to
// other users, and U+202E would make it read backwards there.
func DisplayName(field, name string) (string, error) {
	if err := Text(field, name); err != nil {
		return "", err
	}
	if HasBidiControl(name) {
		return "", core.Invalid(field, "must not contain bidirectional control characters (U+202A–U+202E, U+2066–U+2069)")
	}
	name = strings.TrimSpace(name)
	if name == "" {
		return "", core.Invalid(field, "must not be empty")
	}
	if utf8.RuneCountInString(name) > MaxDisplayNameLen {
		return "", core.Invalid(field, "must be at most 100 characters")
	}
	return name, nil
}

// Text refuses a string holding a control character (docs/contract.md §14). The HTTP
// binding applies it to every string of a request body; core applies it again
// where a value can arrive another way (the admin command line).
func Text(field, s string) error {
	if HasControl(s) {
		return core.Invalid(field, "must not contain control characters (U+0000–U+001F, U+007F–U+009F)")
	}
	return nil
}

// HasControl reports whether s holds a C0 control (U+0000–U+001F), DEL
// (U+007F) or a C1 control (U+0080–U+009F). It scans bytes: the C1 controls
// are the UTF-8 sequences C2 80 … C2 9F, and C2 is never a continuation byte.
func HasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		switch b := s[i]; {
		case b < 0x20 || b == 0x7f:
			return true
		case b == 0xc2 && i+1 < len(s) && s[i+1] >= 0x80 && s[i+1] <= 0x9f:
			return true
		}
	}
	return false
}

// HasBidiControl reports whether s holds a bidirectional embedding or override
// (U+202A–U+202E) or isolate (U+2066–U+2069).
func HasBidiControl(s string) bool {
	for _, r := range s {
		if (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) {
			return true
		}
	}
	return false
}

// Capacity checks a mitra capacity.
func Capacity(field string, n int) error {
	if n < 0 || n > MaxCapacity {
		return core.Invalid(field, "must be an integer from 0 to 100")
	}
	return nil
}
