package validate_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/halobestie/mitra-availability/core"
	"github.com/halobestie/mitra-availability/core/validate"
)

func TestHasControl(t *testing.T) {
	control := []rune{0x00, 0x01, 0x09, 0x0a, 0x0d, 0x1b, 0x1f, 0x7f, 0x80, 0x85, 0x9f}
	for _, r := range control {
		s := "ab" + string(r) + "cd"
		if !validate.HasControl(s) {
			t.Errorf("HasControl(%q) = false, want true (U+%04X)", s, r)
		}
	}
	clean := []string{"", "Kiki", "Ñandú", "a b", "~", "\u00a0x", "\u00a1", "日本語", "😀", "\u200b", "\u202e"}
	for _, s := range clean {
		if validate.HasControl(s) {
			t.Errorf("HasControl(%q) = true, want false", s)
		}
	}
}

func TestHasBidiControl(t *testing.T) {
	for r := rune(0x202a); r <= 0x202e; r++ {
		if !validate.HasBidiControl("x" + string(r)) {
			t.Errorf("U+%04X not refused", r)
		}
	}
	for r := rune(0x2066); r <= 0x2069; r++ {
		if !validate.HasBidiControl(string(r) + "x") {
			t.Errorf("U+%04X not refused", r)
		}
	}
	for _, s := range []string{"Kiki", "مرحبا", "שלום", "\u2029", "\u2065", "\u206a", "\u2029x"} {
		if validate.HasBidiControl(s) {
			t.Errorf("HasBidiControl(%q) = true, want false", s)
		}
	}
}

func TestDisplayName(t *testing.T) {
	cases := []struct {
		in, want, reason string
	}{
		{"  Kiki  ", "Kiki", ""},
		{"مرحبا", "مرحبا", ""},
		{"Ki\x00ki", "", "control characters"},
		{"Kiki\n", "", "control characters"},
		{"Ki\u0085ki", "", "control characters"},
		{"Kiki\u202egnp.exe", "", "bidirectional"},
		{"\u2067Kiki", "", "bidirectional"},
		{"   ", "", "must not be empty"},
		{strings.Repeat("a", 101), "", "at most 100"},
	}
	for _, tc := range cases {
		got, err := validate.DisplayName("display_name", tc.in)
		if tc.reason == "" {
			if err != nil || got != tc.want {
				t.Errorf("DisplayName(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
			continue
		}
		var ve *core.ValidationError
		if !errors.As(err, &ve) || ve.Field != "display_name" || !strings.Contains(ve.Reason, tc.reason) {
			t.Errorf("DisplayName(%q) error = %v, want display_name: …%s…", tc.in, err, tc.reason)
		}
	}
}
