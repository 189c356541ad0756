package e2e

import (
	"strings"
	"testing"
)

// docs/contract.md §1: `server admin create --phone P --password X [--name N]` creates
// an admin that can then log in; a second create with the same phone fails,
// and bad input fails with a message naming the field.
func TestAdminCreateCommand(t *testing.T) {
	t.Parallel()
	dsn := freshDatabase(t)
	vars := map[string]string{"STORE_BACKEND": "postgres", "DATABASE_URL": dsn, "APP_ENV": "test"}
	phone := randomPhone(t)

	code, out := runServerCommand(t, vars, "admin", "create", "--phone", phone, "--password", "second-admin-pass", "--name", "Ops")
	if code != 0 || !strings.Contains(out, "admin created") {
		t.Fatalf("admin create exited %d:\n%s", code, out)
	}
	code, out = runServerCommand(t, vars, "admin", "create", "--phone", phone, "--password", "second-admin-pass")
	if code == 0 || !strings.Contains(out, "phone") {
		t.Fatalf("a second admin create with the same phone exited %d:\n%s", code, out)
	}
	code, out = runServerCommand(t, vars, "admin", "create", "--phone", "12345", "--password", "second-admin-pass")
	if code == 0 || !strings.Contains(out, "phone") {
		t.Fatalf("admin create with a bad phone exited %d:\n%s", code, out)
	}

	s := startServer(t, map[string]string{"DATABASE_URL": dsn})
	tok := s.login(t, phone, "second-admin-pass")
	r := s.get(t, "/api/admin/dashboard", tok.Access)
	wantStatus(t, "dashboard as the created admin", r, 200)
}
