package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// TestLoginThrottleAcrossInstances: docs/contract.md §14 on two instances sharing
// Postgres and Valkey. The failures of one phone counted on either instance
// add up; the next attempt, with the right password, is 429 rate_limited
// with a Retry-After on both; a success clears the count; behind a trusted
// proxy (here the loopback peer) the per-address cap counts the right-most
// X-Forwarded-For entry, across instances too.
func TestLoginThrottleAcrossInstances(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 2, map[string]string{
		"LOGIN_MAX_FAILURES":    "3",
		"LOGIN_WINDOW_SECONDS":  "600",
		"LOGIN_MAX_PER_ADDRESS": "6",
		"TRUSTED_PROXIES":       "127.0.0.0/8,::1/128",
	})
	a, b := c.Servers[0], c.Servers[1]

	// login sends one attempt as the client at addr (through the loopback proxy).
	login := func(t *testing.T, s *Server, addr, phone, password string) (Response, string) {
		t.Helper()
		body, _ := json.Marshal(map[string]string{"phone": phone, "password": password})
		req, err := http.NewRequest(http.MethodPost, s.URL+"/api/auth/login", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", contentTypeJSON)
		req.Header.Set("X-Forwarded-For", "192.0.2.250, "+addr) // the left entry is the client's own claim
		resp, err := s.client.Do(req)
		if err != nil {
			t.Fatalf("POST /api/auth/login: %v", err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		r := Response{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), Raw: raw}
		return r, resp.Header.Get("Retry-After")
	}
	want429 := func(t *testing.T, what string, r Response, retryAfter string) {
		t.Helper()
		wantError(t, what, r, http.StatusTooManyRequests, "rate_limited")
		if n, err := strconv.Atoi(retryAfter); err != nil || n <= 0 || n > 600 {
			t.Fatalf("%s: Retry-After %q, want whole seconds in 1..600", what, retryAfter)
		}
	}

	t.Run("phone", func(t *testing.T) {
		cust := a.newCustomer(t)
		for i, s := range []*Server{a, b, a} {
			r, _ := login(t, s, "198.51.100.1", cust.Phone, "wrong password")
			wantError(t, "failure "+strconv.Itoa(i+1), r, http.StatusUnauthorized, "invalid_credentials")
		}
		for name, s := range map[string]*Server{"A": a, "B": b} {
			r, ra := login(t, s, "198.51.100.2", cust.Phone, customerPassword)
			want429(t, "right password after 3 failures on "+name, r, ra)
		}
		// A phone with no account is counted and answered the same way.
		ghost := randomPhone(t)
		for i, s := range []*Server{b, a, b} {
			r, _ := login(t, s, "198.51.100.3", ghost, "wrong password")
			wantError(t, "unknown phone, failure "+strconv.Itoa(i+1), r, http.StatusUnauthorized, "invalid_credentials")
		}
		r, ra := login(t, a, "198.51.100.3", ghost, "wrong password")
		want429(t, "unknown phone after 3 failures", r, ra)
	})

	t.Run("success clears", func(t *testing.T) {
		cust := b.newCustomer(t)
		for range 2 {
			r, _ := login(t, a, "198.51.100.4", cust.Phone, "wrong password")
			wantError(t, "failure", r, http.StatusUnauthorized, "invalid_credentials")
		}
		r, _ := login(t, b, "198.51.100.4", cust.Phone, customerPassword)
		wantStatus(t, "login on B", r, http.StatusOK)
		for i := range 3 {
			r, _ := login(t, a, "198.51.100.5", cust.Phone, "wrong password")
			wantError(t, "failure after the success "+strconv.Itoa(i+1), r, http.StatusUnauthorized, "invalid_credentials")
		}
		r, ra := login(t, b, "198.51.100.5", cust.Phone, customerPassword)
		want429(t, "after 3 new failures", r, ra)
	})

	t.Run("address", func(t *testing.T) {
		for i := range 6 {
			s := []*Server{a, b}[i%2]
			r, _ := login(t, s, "203.0.113.77", randomPhone(t), "wrong password")
			wantError(t, "attempt "+strconv.Itoa(i+1)+" of the address", r, http.StatusUnauthorized, "invalid_credentials")
		}
		r, ra := login(t, a, "203.0.113.77", randomPhone(t), "wrong password")
		want429(t, "7th attempt of the address", r, ra)
		r, _ = login(t, b, "203.0.113.78", randomPhone(t), "wrong password")
		wantError(t, "another address", r, http.StatusUnauthorized, "invalid_credentials")
	})

	// The throttled attempts are counted in /metrics (per instance).
	var total float64
	for _, s := range []*Server{a, b} {
		r := s.get(t, "/metrics", "")
		for _, line := range strings.Split(string(r.Raw), "\n") {
			if strings.HasPrefix(line, "login_throttled_total{") {
				f := strings.Fields(line)
				v, _ := strconv.ParseFloat(f[len(f)-1], 64)
				total += v
			}
		}
	}
	if total != 5 {
		t.Errorf("login_throttled_total over both instances = %v, want 5", total)
	}
}
