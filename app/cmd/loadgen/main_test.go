package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/loadgen"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestParseFlags(t *testing.T) {
	var stderr bytes.Buffer
	o, err := parseFlags([]string{
		"-urls", "http://127.0.0.1:8080/, http://127.0.0.1:8081",
		"-mitras", "1000", "-customers", "100", "-heartbeat", "30s", "-duration", "2m",
		"-capacity", "2", "-accept-delay", "1s-3s", "-session-minutes", "1-3",
		"-database-url", "postgres://x@127.0.0.1/db", "-valkey-url", "redis://127.0.0.1:6379", "-valkey-prefix", "p:",
		"-json", "out.json", "-max-5xx", "3",
	}, env(map[string]string{"ADMIN_PHONE": "+620000000001", "ADMIN_PASSWORD": "from-env"}), &stderr)
	if err != nil {
		t.Fatalf("parseFlags: %v\n%s", err, stderr.String())
	}
	c := o.cfg
	if strings.Join(c.URLs, " ") != "http://127.0.0.1:8080 http://127.0.0.1:8081" {
		t.Fatalf("urls %q", c.URLs)
	}
	if c.AdminPhone != "+620000000001" || c.AdminPassword != "from-env" {
		t.Fatalf("admin from the environment: %q %q", c.AdminPhone, c.AdminPassword)
	}
	if c.Mitras != 1000 || c.Customers != 100 || c.Heartbeat != 30*time.Second || c.Duration != 2*time.Minute ||
		c.Capacity != (loadgen.IntRange{Min: 2, Max: 2}) || c.AcceptDelay != (loadgen.DurationRange{Min: time.Second, Max: 3 * time.Second}) ||
		c.SessionMinutes != (loadgen.IntRange{Min: 1, Max: 3}) || c.ValkeyPrefix != "p:" || c.Max5xx != 3 || o.jsonPath != "out.json" {
		t.Fatalf("config %+v", c)
	}
}

func TestBadFlagsExitTwo(t *testing.T) {
	for _, args := range [][]string{
		{"-urls", "http://example.com", "-admin-phone", "+620000000001", "-admin-password", "x"},
		{"-urls", "http://127.0.0.1:1"},                                   // no admin credentials
		{"-capacity", "3-1", "-admin-phone", "p", "-admin-password", "x"}, // bad range
		{"-no-such-flag"},
		{"stray-argument"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(args, env(nil), &stdout, &stderr); code != exitCannot {
			t.Errorf("run(%q) = %d, want %d\n%s", args, code, exitCannot, stderr.String())
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-h"}, env(nil), &stdout, &stderr); code != exitPass || !strings.Contains(stderr.String(), "-mitras") {
		t.Errorf("-h: %d\n%s", code, stderr.String())
	}
}

// A server that never answers: the run cannot start, exit 2.
func TestUnreachableServerExitsTwo(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run([]string{"-urls", "http://127.0.0.1:1", "-admin-phone", "+620000000001", "-admin-password", "secret-pw", "-wait-ready", "300ms"},
		env(nil), &stdout, &stderr)
	if code != exitCannot || !strings.Contains(stderr.String(), "not ready") {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
}
