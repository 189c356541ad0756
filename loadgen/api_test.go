package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestClientRecordsAnswers(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			if r.Header.Get("Authorization") != "Bearer tok" || r.Header.Get("Content-Type") != "application/json" {
				http.Error(w, "bad headers", http.StatusTeapot)
				return
			}
			_, _ = w.Write([]byte(`{"available_mitras": 3, "as_of": "2026-01-02T03:04:05Z"}`))
		case "/conflict":
			w.WriteHeader(http.StatusConflict)
			_, _ = w.Write([]byte(`{"error": {"code": "session_taken", "message": "taken"}}`))
		default:
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	rec := NewRecorder(0)
	c := NewClient(5*time.Second, rec, nil)
	ctx := context.Background()

	var b Beacon
	if err := c.Do(ctx, srv.URL+"/", "POST", "/ok", "/ok", "tok", map[string]int{"x": 1}, &b); err != nil {
		t.Fatal(err)
	}
	if b.AvailableMitras != 3 || !b.AsOf.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Fatalf("decoded %+v", b)
	}
	err := c.Do(ctx, srv.URL, "POST", "/api/sessions/:id/accept", "/conflict", "", nil, nil)
	if ErrorCode(err) != "session_taken" || StatusOf(err) != http.StatusConflict {
		t.Fatalf("conflict: %v", err)
	}
	if err := c.Do(ctx, srv.URL, "GET", "/boom", "/boom", "", nil, nil); StatusOf(err) != 500 {
		t.Fatalf("500: %v", err)
	}
	srv.Close()
	if err := c.Do(ctx, srv.URL, "GET", "/gone", "/gone", "", nil, nil); err == nil || StatusOf(err) != 0 {
		t.Fatalf("closed server: %v", err)
	}
	// A request cancelled by the caller is not an error of the service.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_ = c.Do(cctx, srv.URL, "GET", "/cancelled", "/cancelled", "", nil, nil)

	total, s5, transport := rec.Totals()
	if total != 4 || s5 != 1 || transport != 1 {
		t.Fatalf("totals %d/%d/%d, want 4/1/1: %+v", total, s5, transport, rec.Routes())
	}
	if c.Sent() != 5 {
		t.Fatalf("sent %d", c.Sent())
	}
}

func TestClientBudget(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	defer srv.Close()
	var spent atomic.Int32
	c := NewClient(5*time.Second, NewRecorder(0), func() { spent.Add(1) })
	ctx := context.Background()
	for range 3 {
		if err := c.Do(ctx, srv.URL, "GET", "/x", "/x", "", nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	c.SetBudget(2)
	var ok, refused int
	for range 5 {
		switch err := c.Do(ctx, srv.URL, "GET", "/x", "/x", "", nil, nil); {
		case err == nil:
			ok++
		case errors.Is(err, errRequestBudget):
			refused++
		default:
			t.Fatal(err)
		}
	}
	if ok != 2 || refused != 3 || spent.Load() != 1 || c.Sent() != 5 {
		t.Fatalf("ok %d refused %d onBudget %d sent %d", ok, refused, spent.Load(), c.Sent())
	}
	c.SetBudget(0)
	if err := c.Do(ctx, srv.URL, "GET", "/x", "/x", "", nil, nil); err != nil {
		t.Fatalf("no bound: %v", err)
	}
}

// authServer issues tokens like the service: a refresh token works once,
// access tokens can be revoked by the test.
type authServer struct {
	mu        sync.Mutex
	valid     map[string]bool // access tokens
	refresh   map[string]bool
	n         int
	logins    int
	refreshes int
	calls     int
}

func (a *authServer) issue(w http.ResponseWriter) {
	a.n++
	acc, ref := "acc"+string(rune('A'+a.n)), "ref"+string(rune('A'+a.n))
	a.valid[acc], a.refresh[ref] = true, true
	_ = json.NewEncoder(w).Encode(Tokens{AccessToken: acc, RefreshToken: ref, TokenType: "Bearer", User: UserView{ID: "u1", Role: "mitra"}})
}

func (a *authServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	unauth := func() {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error": {"code": "unauthenticated", "message": "no"}}`))
	}
	switch r.URL.Path {
	case routeLogin:
		a.logins++
		a.issue(w)
	case routeRefresh:
		a.refreshes++
		var body struct {
			RefreshToken string `json:"refresh_token"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		if !a.refresh[body.RefreshToken] {
			unauth()
			return
		}
		delete(a.refresh, body.RefreshToken)
		a.issue(w)
	default:
		a.calls++
		if !a.valid[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")] {
			unauth()
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

func (a *authServer) expireAccess(revokeRefresh bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.valid = map[string]bool{}
	if revokeRefresh {
		a.refresh = map[string]bool{}
	}
}

// On 401 a call refreshes the tokens once and retries; when the refresh is
// refused it logs in again. Concurrent calls share one renewal.
func TestUserRenewsTokensOn401(t *testing.T) {
	as := &authServer{valid: map[string]bool{}, refresh: map[string]bool{}}
	srv := httptest.NewServer(as)
	defer srv.Close()
	c := NewClient(5*time.Second, NewRecorder(0), nil)
	u := &User{Role: "mitra", Phone: "+6281000100000", Password: "password"}
	ctx := context.Background()
	if err := u.Login(ctx, c, srv.URL); err != nil {
		t.Fatal(err)
	}
	if u.ID() != "u1" {
		t.Fatalf("id %q", u.ID())
	}

	as.expireAccess(false)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() { errs <- u.Call(ctx, c, srv.URL, "POST", routeHeartbeat, routeHeartbeat, nil, nil) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("call after expiry: %v", err)
		}
	}
	if as.refreshes != 1 || as.logins != 1 {
		t.Fatalf("refreshes %d logins %d, want 1 and 1", as.refreshes, as.logins)
	}

	as.expireAccess(true)
	if err := u.Call(ctx, c, srv.URL, "POST", routeHeartbeat, routeHeartbeat, nil, nil); err != nil {
		t.Fatalf("call after revocation: %v", err)
	}
	if as.refreshes != 2 || as.logins != 2 {
		t.Fatalf("refreshes %d logins %d, want 2 and 2", as.refreshes, as.logins)
	}
}
