package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

// TestHostileSignup drives docs/contract.md §14 through the whole API on the memory
// adapters: each hostile body is a 400 naming the field, and nothing is
// stored (the phone can still sign up cleanly afterwards).
func TestHostileSignup(t *testing.T) {
	e := buildServerForTest(t)
	post := func(path, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		req.Header.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		return rec
	}
	const phone = "+628111222333"
	cases := []struct {
		name, body, want string
	}{
		{"NUL in display_name", `{"phone":"` + phone + `","password":"long enough pw","display_name":"Ki\u0000ki"}`, "display_name: must not contain control characters"},
		{"escape in display_name", `{"phone":"` + phone + `","password":"long enough pw","display_name":"\u001b[2J"}`, "display_name: must not contain control characters"},
		{"NUL in phone", `{"phone":"+62811\u0000","password":"long enough pw","display_name":"Kiki"}`, "phone: must not contain control characters"},
		{"tab in password", `{"phone":"` + phone + `","password":"long\tenough pw","display_name":"Kiki"}`, "password: must not contain control characters"},
		{"right-to-left override", `{"phone":"` + phone + `","password":"long enough pw","display_name":"Kiki\u202Egnp.exe"}`, "display_name: must not contain bidirectional"},
		{"isolate", `{"phone":"` + phone + `","password":"long enough pw","display_name":"\u2067Kiki"}`, "display_name: must not contain bidirectional"},
		{"repeated key", `{"phone":"` + phone + `","password":"long enough pw","display_name":"Kiki","display_name":"Admin"}`, "display_name: repeated key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			expectError(t, post("/api/customers", tc.body), 400, "invalid_request", tc.want)
		})
	}
	t.Run("login with NUL in phone", func(t *testing.T) {
		expectError(t, post("/api/auth/login", `{"phone":"+62\u0000","password":"x"}`), 400, "invalid_request", "phone: must not contain control characters")
	})
	t.Run("nothing was stored", func(t *testing.T) {
		rec := post("/api/customers", `{"phone":"`+phone+`","password":"long enough pw","display_name":"Kiki"}`)
		if rec.Code != http.StatusCreated {
			t.Fatalf("clean signup after the refusals: %d %s", rec.Code, rec.Body)
		}
	})
}
