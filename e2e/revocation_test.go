package e2e

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/halobestie/mitra-availability/internal/serverproc"
)

// revocationBound is docs/contract.md §13's bound on a revocation reaching every
// instance; revocationSlack allows for the -race build on a loaded machine.
const (
	revocationBound = time.Second
	revocationSlack = 2 * time.Second
)

// waitRefused polls GET path on s with token until it gets status and code,
// and returns how long that took; it fails the test after the bound and
// its slack.
func waitRefused(t *testing.T, s *Server, what, path, token string, status int, code string) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		r := s.get(t, path, token)
		if r.Status == status {
			wantError(t, what, r, status, code)
			return time.Since(start)
		}
		if r.Status != http.StatusOK {
			t.Fatalf("%s: %d %s while waiting for %d", what, r.Status, truncate(r.Raw), status)
		}
		if time.Since(start) > revocationBound+revocationSlack {
			t.Fatalf("%s: still accepted %s after the logout", what, time.Since(start))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitClosed waits until the server closed w with code.
func waitClosed(t *testing.T, w *WSClient, code websocket.StatusCode) {
	t.Helper()
	deadline := time.Now().Add(revocationBound + revocationSlack)
	for time.Now().Before(deadline) {
		if done, err := w.closed(); done {
			var ce websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != code {
				t.Fatalf("%s: ended with %v, want close code %d", w.name, err, code)
			}
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: still open", w.name)
}

// docs/contract.md §13: a logout on one instance stops the access token of that auth
// session on every instance within a second (REST and WebSocket handshake),
// and closes its open WebSockets; the user's other sessions go on. The same
// holds with Valkey unreachable: the instances then learn it from Postgres.
func TestLogoutRevokesAccessTokensOnEveryInstance(t *testing.T) {
	t.Parallel()
	for name, env := range map[string]map[string]string{
		"valkey up":   nil,
		"valkey down": {"VALKEY_URL": "redis://" + serverproc.FreeAddr(t)},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := startCluster(t, 2, env)
			a, b := c.Servers[0], c.Servers[1]
			cust := a.newCustomer(t)
			other := a.login(t, cust.Phone, customerPassword).Access
			ws := b.dialWS(t, "the logged-out session on B", cust.Token)
			wsOther := b.dialWS(t, "the other session on B", other)

			wantStatus(t, "logout on A", a.post(t, "/api/auth/logout", cust.Token, nil), http.StatusNoContent)
			took := waitRefused(t, b, "GET /api/sessions on B", "/api/sessions", cust.Token, http.StatusUnauthorized, "unauthenticated")
			t.Logf("%s: B refused the token %s after the logout on A", name, took)
			wantError(t, "GET /api/sessions on A", a.get(t, "/api/sessions", cust.Token), http.StatusUnauthorized, "unauthenticated")
			wantError(t, "logout again on B", b.post(t, "/api/auth/logout", cust.Token, nil), http.StatusUnauthorized, "unauthenticated")
			r := b.wsHandshake(t, "/ws", http.Header{"Authorization": {"Bearer " + cust.Token}})
			wantError(t, "WebSocket handshake on B", r, http.StatusUnauthorized, "unauthenticated")
			waitClosed(t, ws, websocket.StatusPolicyViolation)

			wantStatus(t, "the other session on B", b.get(t, "/api/sessions", other), http.StatusOK)
			if done, err := wsOther.closed(); done {
				t.Fatalf("the other session's WebSocket was closed: %v", err)
			}
		})
	}
}

// docs/contract.md §13 and §4: after a deactivation on one instance, the mitra's
// access tokens get 403 account_deactivated on every endpoint and handshake
// of every instance within a second, and its WebSockets are closed.
func TestDeactivationRevokesAccessTokensOnEveryInstance(t *testing.T) {
	t.Parallel()
	for name, env := range map[string]map[string]string{
		"valkey up":   nil,
		"valkey down": {"VALKEY_URL": "redis://" + serverproc.FreeAddr(t)},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := startCluster(t, 2, env)
			a, b := c.Servers[0], c.Servers[1]
			admin := a.adminToken(t)
			m := a.newMitra(t, admin, 1)
			ws := b.dialWS(t, "mitra on B", m.Token)

			r := a.request(t, http.MethodPatch, "/api/admin/mitras/"+m.ID, admin, map[string]any{"is_active": false})
			wantStatus(t, "deactivate on A", r, http.StatusOK)
			took := waitRefused(t, b, "GET /api/sessions on B", "/api/sessions", m.Token, http.StatusForbidden, "account_deactivated")
			t.Logf("%s: B refused the deactivated mitra %s after the PATCH on A", name, took)
			wantError(t, "logout on B", b.post(t, "/api/auth/logout", m.Token, nil), http.StatusForbidden, "account_deactivated")
			r = b.wsHandshake(t, "/ws", http.Header{"Authorization": {"Bearer " + m.Token}})
			wantError(t, "WebSocket handshake on B", r, http.StatusForbidden, "account_deactivated")
			waitClosed(t, ws, websocket.StatusPolicyViolation)
		})
	}
}
