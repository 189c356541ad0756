package push_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/halobestie/mitra-availability/adapters/push"
	"github.com/halobestie/mitra-availability/ports"
)

func TestLogWritesOneLine(t *testing.T) {
	var buf bytes.Buffer
	l := push.NewLog(slog.New(slog.NewJSONHandler(&buf, nil)))
	if err := l.Push(t.Context(), offer("secret-device-token-0123456789")); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("%d log lines, want 1: %q", len(lines), buf.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	if rec["msg"] != "push notification" || rec["type"] != ports.EventSessionOffer || rec["user_id"] != "u1" {
		t.Errorf("log line = %v", rec)
	}
	if strings.Contains(lines[0], "secret-device-token") || rec["token_suffix"] != "…23456789" {
		t.Errorf("the line shows more than the token's end: %s", lines[0])
	}
}

func TestNoneSendsNothing(t *testing.T) {
	if err := (push.None{}).Push(t.Context(), offer("t")); err != nil {
		t.Fatal(err)
	}
}
