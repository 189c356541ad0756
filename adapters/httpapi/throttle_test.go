package httpapi

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/halobestie/mitra-availability/adapters/memory"
	"github.com/halobestie/mitra-availability/core/auth"
)

// TestLoginThrottleHTTP: 429 rate_limited in the §2 envelope with a
// Retry-After in whole seconds, per phone and per client address, the
// address taken from X-Forwarded-For only behind a trusted proxy.
func TestLoginThrottleHTTP(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	e, _, _ := buildServer(t, auth.Throttle{Limiter: memory.NewLimiter(), MaxFailures: 3, MaxPerAddress: 6, Window: time.Minute}, trusted)
	login := func(peer, xff, phone, pw string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/api/auth/login", strings.NewReader(`{"phone":"`+phone+`","password":"`+pw+`"}`))
		req.Header.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
		req.RemoteAddr = peer
		if xff != "" {
			req.Header.Set(echo.HeaderXForwardedFor, xff)
		}
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		return rec
	}
	expect429 := func(t *testing.T, rec *httptest.ResponseRecorder, limit string) {
		t.Helper()
		expectError(t, rec, http.StatusTooManyRequests, "rate_limited", limit)
		n, err := strconv.Atoi(rec.Header().Get(echo.HeaderRetryAfter))
		if err != nil || n <= 0 || n > 60 {
			t.Fatalf("Retry-After = %q, want whole seconds in 1..60", rec.Header().Get(echo.HeaderRetryAfter))
		}
	}

	t.Run("per phone", func(t *testing.T) {
		for range 3 {
			expectError(t, login("203.0.113.1:1000", "", "+628100000001", "wrong password"), 401, "invalid_credentials", "")
		}
		expect429(t, login("203.0.113.2:1000", "", "+628100000001", "wrong password"), "phone")
		// Another phone is not affected.
		expectError(t, login("203.0.113.2:1000", "", "+628100000002", "wrong password"), 401, "invalid_credentials", "")
	})

	t.Run("per address behind a trusted proxy", func(t *testing.T) {
		// Six attempts from one client through the proxy, each for another phone.
		for i := range 6 {
			phone := "+62820000000" + strconv.Itoa(i)
			expectError(t, login("10.0.0.5:1000", "1.1.1.1, 198.51.100.7", phone, "wrong password"), 401, "invalid_credentials", "")
		}
		expect429(t, login("10.0.0.5:1000", "198.51.100.7", "+628299999999", "wrong password"), "address")
		// A forged left-most entry does not make another client of it.
		expect429(t, login("10.0.0.5:1000", "9.9.9.9, 198.51.100.7", "+628299999998", "wrong password"), "address")
		// Another client behind the same proxy is not affected.
		expectError(t, login("10.0.0.5:1000", "198.51.100.8", "+628299999997", "wrong password"), 401, "invalid_credentials", "")
		// An untrusted peer cannot shift its attempts onto someone else with the header.
		for i := range 6 {
			phone := "+62830000000" + strconv.Itoa(i)
			expectError(t, login("203.0.113.50:1000", "198.51.100.9", phone, "wrong password"), 401, "invalid_credentials", "")
		}
		expect429(t, login("203.0.113.50:1000", "198.51.100.9", "+628399999999", "wrong password"), "address")
		expectError(t, login("10.0.0.5:1000", "198.51.100.9", "+628399999998", "wrong password"), 401, "invalid_credentials", "")
	})
}
