package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/halobestie/mitra-availability/core"
	"github.com/halobestie/mitra-availability/docs"
	"github.com/halobestie/mitra-availability/ports"
)

// lockedBuffer is a log sink safe for the server's goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type testServer struct {
	e    *echo.Echo
	logs *lockedBuffer
	reg  *prometheus.Registry
}

func newTestServer(t *testing.T, ready func(context.Context) ReadyStatus) testServer {
	t.Helper()
	if ready == nil {
		ready = func(context.Context) ReadyStatus { return ReadyStatus{StoreOK: true, CacheOK: true} }
	}
	logs := &lockedBuffer{}
	reg := prometheus.NewRegistry()
	e, err := New(Options{
		Logger:   slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registry: reg,
		Ready:    ready,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return testServer{e: e, logs: logs, reg: reg}
}

func (s testServer) do(t *testing.T, method, target string, body io.Reader, header map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, body)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	s.e.ServeHTTP(rec, req)
	return rec
}

// envelope decodes an error response strictly: exactly {"error":{"code","message"}}.
func envelope(t *testing.T, rec *httptest.ResponseRecorder) errorBody {
	t.Helper()
	if ct := rec.Header().Get(echo.HeaderContentType); !strings.HasPrefix(ct, echo.MIMEApplicationJSON) {
		t.Fatalf("Content-Type = %q, want JSON; body %s", ct, rec.Body)
	}
	var env struct {
		Error *errorBody `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil || env.Error == nil {
		t.Fatalf("body is not an error envelope (%v): %s", err, rec.Body)
	}
	if env.Error.Code == "" || env.Error.Message == "" {
		t.Fatalf("envelope with an empty code or message: %s", rec.Body)
	}
	return *env.Error
}

func expectError(t *testing.T, rec *httptest.ResponseRecorder, status int, code, msgContains string) errorBody {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status = %d, want %d; body %s", rec.Code, status, rec.Body)
	}
	got := envelope(t, rec)
	if got.Code != code {
		t.Errorf("code = %q, want %q (message %q)", got.Code, code, got.Message)
	}
	if !strings.Contains(got.Message, msgContains) {
		t.Errorf("message = %q, want it to contain %q", got.Message, msgContains)
	}
	return got
}

func TestNewOptions(t *testing.T) {
	ready := func(context.Context) ReadyStatus { return ReadyStatus{StoreOK: true, CacheOK: true} }
	if _, err := New(Options{}); err == nil {
		t.Error("New without Ready: want an error")
	}
	if _, err := New(Options{Ready: ready, BodyLimit: -1}); err == nil {
		t.Error("New with a negative BodyLimit: want an error")
	}
	// Two servers on one registry share the HTTP metrics instead of failing.
	reg := prometheus.NewRegistry()
	for i := range 2 {
		if _, err := New(Options{Ready: ready, Registry: reg}); err != nil {
			t.Fatalf("New #%d on a shared registry: %v", i+1, err)
		}
	}
}

func TestErrorTable(t *testing.T) {
	cases := []struct {
		name     string
		err      error
		status   int
		code     string
		contains string
		hidden   string // must not appear in the body
	}{
		{"validation", fmt.Errorf("signup: %w", core.Invalid("phone", "must be E.164")), 400, "invalid_request", "phone: must be E.164", ""},
		{"unstorable value", fmt.Errorf("postgres: create user: %w", &ports.InvalidValueError{Field: "display_name", Reason: "must not contain NUL characters"}), 400, "invalid_request", "display_name: must not contain NUL characters", "postgres"},
		{"not found", fmt.Errorf("postgres: select mitras (SQLSTATE 02000): %w", ports.ErrNotFound), 404, "not_found", "does not exist", "SQLSTATE"},
		{"phone taken", fmt.Errorf("insert users: unique users_phone_key: %w", ports.ErrPhoneTaken), 409, "phone_taken", "phone", "users_phone_key"},
		{"store unavailable", fmt.Errorf("dial tcp 10.0.0.5:5432: %w", ports.ErrStoreUnavailable), 503, "unavailable", "unavailable", "10.0.0.5"},
		{"invalid credentials", core.ErrInvalidCredentials, 401, "invalid_credentials", "invalid credentials", ""},
		{"unauthenticated", fmt.Errorf("%w: missing Authorization header", core.ErrUnauthenticated), 401, "unauthenticated", "missing Authorization header", ""},
		{"invalid token", fmt.Errorf("jwt: %w", ports.ErrInvalidToken), 401, "unauthenticated", "credentials", ""},
		{"forbidden", fmt.Errorf("%w: this endpoint is for the admin role", core.ErrForbidden), 403, "forbidden", "admin role", ""},
		{"account deactivated", core.ErrAccountDeactivated, 403, "account_deactivated", "deactivated", ""},
		{"deactivated beats unauthenticated", fmt.Errorf("%w: %w", core.ErrUnauthenticated, core.ErrAccountDeactivated), 403, "account_deactivated", "deactivated", ""},
		{"not online", core.ErrNotOnline, 409, "not_online", "not online", ""},
		{"no mitra available", core.ErrNoMitraAvailable, 409, "no_mitra_available", "no mitra", ""},
		{"open session exists", core.ErrOpenSessionExists, 409, "open_session_exists", "open session", ""},
		{"session taken", core.ErrSessionTaken, 409, "session_taken", "taken", ""},
		{"at capacity", core.ErrAtCapacity, 409, "at_capacity", "capacity", ""},
		{"invalid state", core.ErrInvalidState, 409, "invalid_state", "state", ""},
		{"max bytes", fmt.Errorf("reading: %w", &http.MaxBytesError{Limit: 1 << 20}), 413, "payload_too_large", "1048576", ""},
		{"echo 400", echo.NewHTTPError(http.StatusBadRequest, "bad query"), 400, "invalid_request", "bad query", ""},
		{"echo 401", echo.ErrUnauthorized, 401, "unauthenticated", "credentials", ""},
		{"echo 404", echo.ErrNotFound, 404, "not_found", "route not found", ""},
		{"echo 405", echo.ErrMethodNotAllowed, 405, "method_not_allowed", "method", ""},
		{"echo 413", echo.ErrStatusRequestEntityTooLarge, 413, "payload_too_large", "too large", ""},
		{"echo 422", echo.NewHTTPError(http.StatusUnprocessableEntity), 422, "invalid_request", "Unprocessable", ""},
		{"echo 500", echo.NewHTTPError(http.StatusInternalServerError, "db password is hunter2"), 500, "internal", "internal server error", "hunter2"},
		{"unknown", errors.New("pq: password authentication failed for user secret_user"), 500, "internal", "internal server error", "secret_user"},
	}
	s := newTestServer(t, nil)
	for i, tc := range cases {
		s.e.GET(fmt.Sprintf("/err/%d", i), func(echo.Context) error { return tc.err })
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := s.do(t, http.MethodGet, fmt.Sprintf("/err/%d", i), nil, nil)
			expectError(t, rec, tc.status, tc.code, tc.contains)
			if tc.hidden != "" && strings.Contains(rec.Body.String(), tc.hidden) {
				t.Errorf("body leaks %q: %s", tc.hidden, rec.Body)
			}
			if tc.code == "unauthenticated" && rec.Header().Get(echo.HeaderWWWAuthenticate) != "Bearer" {
				t.Errorf("WWW-Authenticate = %q, want Bearer", rec.Header().Get(echo.HeaderWWWAuthenticate))
			}
		})
	}

	t.Run("500 detail is logged with the request id", func(t *testing.T) {
		last := len(cases) - 1
		rec := s.do(t, http.MethodGet, fmt.Sprintf("/err/%d", last), nil, map[string]string{echo.HeaderXRequestID: "req-500-check"})
		if rec.Code != 500 {
			t.Fatalf("status %d", rec.Code)
		}
		line := logLine(t, s.logs.String(), "internal error", "req-500-check")
		if !strings.Contains(line, "secret_user") {
			t.Errorf("log line lacks the error detail: %s", line)
		}
	})
}

// logLine returns the log line with msg and the request id, failing when there is none.
func logLine(t *testing.T, logs, msg, reqID string) string {
	t.Helper()
	for _, line := range strings.Split(logs, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil {
			continue
		}
		if m["msg"] == msg && m["request_id"] == reqID {
			return line
		}
	}
	t.Fatalf("no log line %q with request_id %q in:\n%s", msg, reqID, logs)
	return ""
}

func TestErrorHandlerHeadAndCommitted(t *testing.T) {
	s := newTestServer(t, nil)
	s.e.HEAD("/gone", func(echo.Context) error { return ports.ErrNotFound })
	s.e.GET("/committed", func(c echo.Context) error {
		if err := c.String(http.StatusOK, "partial"); err != nil {
			return err
		}
		return errors.New("failed after writing")
	})

	rec := s.do(t, http.MethodHead, "/gone", nil, nil)
	if rec.Code != 404 || rec.Body.Len() != 0 {
		t.Errorf("HEAD error: status %d body %q, want 404 and no body", rec.Code, rec.Body)
	}

	rec = s.do(t, http.MethodGet, "/committed", nil, nil)
	if rec.Code != 200 || rec.Body.String() != "partial" {
		t.Errorf("committed response changed: status %d body %q", rec.Code, rec.Body)
	}
}

func TestUnknownRouteAndMethod(t *testing.T) {
	s := newTestServer(t, nil)

	rec := s.do(t, http.MethodGet, "/no/such/route", nil, nil)
	expectError(t, rec, 404, "not_found", "route not found")

	rec = s.do(t, http.MethodPost, "/healthz", strings.NewReader("{}"), nil)
	expectError(t, rec, 405, "method_not_allowed", "method")
	if allow := rec.Header().Get(echo.HeaderAllow); !strings.Contains(allow, http.MethodGet) {
		t.Errorf("Allow = %q, want it to list GET", allow)
	}
}

type decodeTarget struct {
	Phone           string `json:"phone"`
	DurationMinutes int    `json:"duration_minutes"`
	Nested          struct {
		Flag bool   `json:"flag"`
		Name string `json:"name"`
	} `json:"nested"`
	Capacity *int `json:"capacity"`
}

func decodeServer(t *testing.T) testServer {
	s := newTestServer(t, nil)
	s.e.POST("/decode", func(c echo.Context) error {
		var dst decodeTarget
		if err := decodeJSON(c, &dst); err != nil {
			return err
		}
		return c.JSON(http.StatusOK, dst)
	})
	return s
}

func TestBodyLimit(t *testing.T) {
	s := decodeServer(t)
	big := `{"phone":"` + strings.Repeat("x", 1<<20) + `"}`

	t.Run("declared length over the limit", func(t *testing.T) {
		rec := s.do(t, http.MethodPost, "/decode", strings.NewReader(big), nil)
		expectError(t, rec, 413, "payload_too_large", "1048576")
	})
	t.Run("unknown length over the limit", func(t *testing.T) {
		req := httptest.NewRequest(http.MethodPost, "/decode", io.NopCloser(strings.NewReader(big)))
		req.ContentLength = -1
		rec := httptest.NewRecorder()
		s.e.ServeHTTP(rec, req)
		expectError(t, rec, 413, "payload_too_large", "1048576")
	})
	t.Run("over the limit on an unknown route", func(t *testing.T) {
		rec := s.do(t, http.MethodPost, "/no/such/route", strings.NewReader(big), nil)
		expectError(t, rec, 413, "payload_too_large", "")
	})
	t.Run("exactly the limit is accepted", func(t *testing.T) {
		prefix, suffix := `{"phone":"`, `"}`
		exact := prefix + strings.Repeat("y", 1<<20-len(prefix)-len(suffix)) + suffix
		if len(exact) != 1<<20 {
			t.Fatalf("test body is %d bytes", len(exact))
		}
		rec := s.do(t, http.MethodPost, "/decode", strings.NewReader(exact), nil)
		if rec.Code != 200 {
			t.Fatalf("status %d, want 200; body %.200s", rec.Code, rec.Body)
		}
	})
}

func TestDecodeJSON(t *testing.T) {
	s := decodeServer(t)
	jsonCT := map[string]string{echo.HeaderContentType: echo.MIMEApplicationJSON}
	cases := []struct {
		name   string
		body   string
		header map[string]string
		want   string // message of the 400; "" for success
	}{
		{"empty", "", jsonCT, "request body: must be a JSON object"},
		{"whitespace only", "  \n\t ", jsonCT, "request body: must be a JSON object"},
		{"null", "null", jsonCT, "request body: must be a JSON object"},
		{"array", `[{"phone":"+62"}]`, jsonCT, "request body: must be a JSON object"},
		{"string", `"hello"`, jsonCT, "request body: must be a JSON object"},
		{"malformed", `{"phone" "x"}`, jsonCT, "body: malformed JSON at offset 9"},
		{"truncated", `{"phone":`, jsonCT, "body: malformed JSON"},
		{"unknown field", `{"phone":"+628123456789","phon":"x"}`, jsonCT, "phon: unknown field"},
		{"wrong type string for int", `{"duration_minutes":"ten"}`, jsonCT, "duration_minutes: must be integer"},
		{"fraction for int", `{"duration_minutes":1.5}`, jsonCT, "duration_minutes: must be integer"},
		{"wrong type for pointer int", `{"capacity":true}`, jsonCT, "capacity: must be integer"},
		{"number for string", `{"phone":628}`, jsonCT, "phone: must be string"},
		{"nested wrong type", `{"nested":{"flag":1}}`, jsonCT, "nested.flag: must be boolean"},
		{"scalar for object", `{"nested":3}`, jsonCT, "nested: must be object"},
		{"trailing object", `{} {}`, jsonCT, "body: unexpected data after JSON object"},
		{"repeated key", `{"phone":"+628123456789","phone":"+628000000000"}`, jsonCT, "phone: repeated key"},
		{"repeated key, nested", `{"nested":{"flag":true,"flag":false}}`, jsonCT, "nested.flag: repeated key"},
		{"repeated key, escaped spelling", `{"phone":"+628123456789","ph\u006fne":"+628000000000"}`, jsonCT, "phone: repeated key"},
		{"other case is an unknown field", `{"phone":"+628123456789","PHONE":"+628000000000"}`, jsonCT, "PHONE: unknown field"},
		{"NUL in a string", `{"phone":"+62812\u00003456789"}`, jsonCT, "phone: must not contain control characters (U+0000–U+001F, U+007F–U+009F)"},
		{"newline in a string", `{"phone":"a\nb"}`, jsonCT, "phone: must not contain control characters (U+0000–U+001F, U+007F–U+009F)"},
		{"DEL in a string", "{\"phone\":\"a\x7fb\"}", jsonCT, "phone: must not contain control characters (U+0000–U+001F, U+007F–U+009F)"},
		{"C1 control in a string", `{"phone":"a\u0085b"}`, jsonCT, "phone: must not contain control characters (U+0000–U+001F, U+007F–U+009F)"},
		{"control in a nested string", `{"nested":{"name":"\u001b[31m"}}`, jsonCT, "nested.name: must not contain control characters (U+0000–U+001F, U+007F–U+009F)"},
		{"empty field name", `{"":1}`, jsonCT, `body: unknown field ""`},
		{"field name with spaces", `{" phone":1}`, jsonCT, `body: unknown field " phone"`},
		{"repeated odd name", `{"nested":{"a b":1,"a b":2}}`, jsonCT, `body: repeated key "nested.a b"`},
		{"control in a field name", `{"pho\u0000ne":"x"}`, jsonCT, "body: field names must not contain control characters"},
		{"invalid UTF-8", "{\"phone\":\"a\xffb\"}", jsonCT, "phone: must be valid UTF-8"},
		{"raw control character", "{\"phone\":\"a\x01b\"}", jsonCT, "body: malformed JSON at offset"},
		{"trailing garbage", `{"phone":"x"}garbage`, jsonCT, "body: unexpected data after JSON object"},
		{"wrong content type", `{}`, map[string]string{echo.HeaderContentType: "text/plain"}, "Content-Type: must be application/json"},
		{"form content type", `{}`, map[string]string{echo.HeaderContentType: echo.MIMEApplicationForm}, "Content-Type: must be application/json"},
		{"wrong charset", `{}`, map[string]string{echo.HeaderContentType: "application/json; charset=latin1"}, "Content-Type: charset must be utf-8"},
		{"valid", `{"phone":"+628123456789","duration_minutes":30,"nested":{"flag":true},"capacity":2}`, jsonCT, ""},
		{"valid, trailing whitespace", "{\"phone\":\"+628123456789\"}\n\n", jsonCT, ""},
		{"valid, no content type", `{"phone":"+628123456789"}`, nil, ""},
		{"valid, utf-8 charset", `{"phone":"+628123456789"}`, map[string]string{echo.HeaderContentType: "application/json; charset=UTF-8"}, ""},
		{"valid, +json type", `{"phone":"+628123456789"}`, map[string]string{echo.HeaderContentType: "application/merge-patch+json"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := s.do(t, http.MethodPost, "/decode", strings.NewReader(tc.body), tc.header)
			if tc.want != "" {
				got := expectError(t, rec, 400, "invalid_request", tc.want)
				if got.Message != tc.want && !strings.HasPrefix(tc.want, "body: malformed JSON") {
					t.Errorf("message = %q, want exactly %q", got.Message, tc.want)
				}
				return
			}
			if rec.Code != 200 {
				t.Fatalf("status %d, want 200; body %s", rec.Code, rec.Body)
			}
			var got decodeTarget
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if got.Phone != "+628123456789" {
				t.Errorf("decoded phone = %q", got.Phone)
			}
		})
	}

	t.Run("valid decodes every field", func(t *testing.T) {
		rec := s.do(t, http.MethodPost, "/decode",
			strings.NewReader(`{"phone":"+628123456789","duration_minutes":30,"nested":{"flag":true},"capacity":0}`), jsonCT)
		var got decodeTarget
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		if got.DurationMinutes != 30 || !got.Nested.Flag || got.Capacity == nil || *got.Capacity != 0 {
			t.Errorf("decoded %+v", got)
		}
	})
}

func TestPathUUID(t *testing.T) {
	s := newTestServer(t, nil)
	s.e.GET("/things/:id", func(c echo.Context) error {
		id, err := pathUUID(c, "id")
		if err != nil {
			return err
		}
		return c.String(http.StatusOK, id)
	})
	const canonical = "0b6a5e3c-8f1d-4c2e-9a7b-3d4e5f6a7b8c"
	ok := map[string]string{
		canonical:                              canonical,
		strings.ToUpper(canonical):             canonical,
		"00000000-0000-0000-0000-000000000000": "00000000-0000-0000-0000-000000000000",
	}
	for in, want := range ok {
		rec := s.do(t, http.MethodGet, "/things/"+in, nil, nil)
		if rec.Code != 200 || rec.Body.String() != want {
			t.Errorf("%s: status %d body %q, want 200 %q", in, rec.Code, rec.Body, want)
		}
	}
	bad := []string{
		"not-a-uuid",
		"123",
		strings.ReplaceAll(canonical, "-", ""),
		"urn:uuid:" + canonical,
		"%7B" + canonical + "%7D",
		canonical[:35] + "g",
		canonical + "0",
	}
	for _, in := range bad {
		rec := s.do(t, http.MethodGet, "/things/"+in, nil, nil)
		got := expectError(t, rec, 400, "invalid_request", "id: must be a UUID")
		if got.Message != "id: must be a UUID" {
			t.Errorf("%s: message %q", in, got.Message)
		}
	}
}

func TestRequestID(t *testing.T) {
	s := newTestServer(t, nil)
	cases := []struct {
		name, sent string
		echoed     bool
	}{
		{"none", "", false},
		{"sane", "abc-123_x.y:z", true},
		{"uuid", "6f1c0c8e-3b9a-4c7e-8d2f-1a2b3c4d5e6f", true},
		{"with space", "abc 123", false},
		{"with quote", `abc"123`, false},
		{"too long", strings.Repeat("a", 129), false},
		{"longest accepted", strings.Repeat("a", 128), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := map[string]string{}
			if tc.sent != "" {
				h[echo.HeaderXRequestID] = tc.sent
			}
			rec := s.do(t, http.MethodGet, "/healthz", nil, h)
			got := rec.Header().Get(echo.HeaderXRequestID)
			if tc.echoed {
				if got != tc.sent {
					t.Errorf("X-Request-ID = %q, want %q echoed", got, tc.sent)
				}
				return
			}
			if got == "" || got == tc.sent || !saneRequestID(got) {
				t.Errorf("X-Request-ID = %q, want a fresh generated id", got)
			}
		})
	}
	// Error responses carry it too, and the access log names it.
	rec := s.do(t, http.MethodGet, "/no/such/route", nil, map[string]string{echo.HeaderXRequestID: "trace-404"})
	if rec.Header().Get(echo.HeaderXRequestID) != "trace-404" {
		t.Errorf("404 X-Request-ID = %q", rec.Header().Get(echo.HeaderXRequestID))
	}
	line := logLine(t, s.logs.String(), "http request", "trace-404")
	for _, want := range []string{`"route":"unmatched"`, `"status":404`, `"method":"GET"`, `"remote_ip":`, `"latency":`} {
		if !strings.Contains(line, want) {
			t.Errorf("access log line lacks %s: %s", want, line)
		}
	}
}

func TestHealthz(t *testing.T) {
	s := newTestServer(t, nil)
	rec := s.do(t, http.MethodGet, "/healthz", nil, nil)
	if rec.Code != 200 || rec.Body.String() != "{\"status\":\"ok\"}\n" || rec.Header().Get("Content-Type") != "application/json" {
		t.Errorf("healthz: %d %q %v", rec.Code, rec.Body, rec.Header())
	}
}

func TestReadyz(t *testing.T) {
	cases := []struct {
		name   string
		st     ReadyStatus
		status int
		body   string
	}{
		{"ready", ReadyStatus{StoreOK: true, CacheOK: true}, 200, `{"store":"ok","cache":"ok"}`},
		{"cache down is still ready", ReadyStatus{StoreOK: true}, 200, `{"store":"ok","cache":"degraded"}`},
		{"store down", ReadyStatus{CacheOK: true}, 503, `{"store":"unavailable","cache":"ok"}`},
		{"both down", ReadyStatus{}, 503, `{"store":"unavailable","cache":"degraded"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var hadDeadline bool
			s := newTestServer(t, func(ctx context.Context) ReadyStatus {
				_, hadDeadline = ctx.Deadline()
				return tc.st
			})
			rec := s.do(t, http.MethodGet, "/readyz", nil, nil)
			if rec.Code != tc.status || strings.TrimSpace(rec.Body.String()) != tc.body {
				t.Errorf("readyz: %d %s, want %d %s", rec.Code, rec.Body, tc.status, tc.body)
			}
			if !hadDeadline {
				t.Error("Ready was called without a deadline")
			}
		})
	}
}

func TestMetrics(t *testing.T) {
	s := newTestServer(t, nil)
	s.e.GET("/things/:id", func(c echo.Context) error { return ports.ErrNotFound })

	s.do(t, http.MethodGet, "/healthz", nil, nil)
	s.do(t, http.MethodGet, "/healthz", nil, nil)
	s.do(t, http.MethodGet, "/things/abc", nil, nil)
	s.do(t, http.MethodGet, "/things/def", nil, nil)
	s.do(t, http.MethodGet, "/random/probe/1", nil, nil)
	s.do(t, http.MethodGet, "/random/probe/2", nil, nil)
	s.do(t, http.MethodDelete, "/healthz", nil, nil)
	s.do(t, "BREW", "/healthz", nil, nil)

	rec := s.do(t, http.MethodGet, "/metrics", nil, nil)
	if rec.Code != 200 {
		t.Fatalf("metrics: %d", rec.Code)
	}
	body := rec.Body.String()
	for _, want := range []string{
		`http_requests_total{method="GET",route="/healthz",status="200"} 2`,
		`http_requests_total{method="GET",route="/things/:id",status="404"} 2`,
		`http_requests_total{method="GET",route="unmatched",status="404"} 2`,
		`http_requests_total{method="DELETE",route="unmatched",status="405"} 1`,
		`http_requests_total{method="OTHER",route="unmatched",status="405"} 1`,
		`http_request_duration_seconds_count{method="GET",route="/healthz"} 2`,
		`http_request_duration_seconds_bucket{method="GET",route="/things/:id",le="+Inf"} 2`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(body, "/random/probe") || strings.Contains(body, "/things/abc") {
		t.Error("metrics carry raw paths; route labels must be templates")
	}
}

func TestDocs(t *testing.T) {
	s := newTestServer(t, nil)
	rec := s.do(t, http.MethodGet, "/docs", nil, nil)
	if rec.Code != 200 {
		t.Fatalf("docs: %d", rec.Code)
	}
	if ct := rec.Header().Get(echo.HeaderContentType); ct != "application/yaml" {
		t.Errorf("Content-Type = %q, want application/yaml", ct)
	}
	if !bytes.Equal(rec.Body.Bytes(), docs.OpenAPI) || !strings.HasPrefix(rec.Body.String(), "openapi: 3.0.3") {
		t.Errorf("docs body is not the embedded OpenAPI document (%d bytes)", rec.Body.Len())
	}
}

func TestPanicBecomes500(t *testing.T) {
	s := newTestServer(t, nil)
	s.e.GET("/boom", func(echo.Context) error { panic("secret panic detail") })

	rec := s.do(t, http.MethodGet, "/boom", nil, map[string]string{echo.HeaderXRequestID: "boom-1"})
	got := expectError(t, rec, 500, "internal", "internal server error")
	if strings.Contains(rec.Body.String(), "secret") || strings.Contains(got.Message, "panic") {
		t.Errorf("500 body leaks the panic: %s", rec.Body)
	}
	line := logLine(t, s.logs.String(), "internal error", "boom-1")
	if !strings.Contains(line, "secret panic detail") || !strings.Contains(line, `"stack":`) {
		t.Errorf("panic log lacks the value or the stack: %.300s", line)
	}
	access := logLine(t, s.logs.String(), "http request", "boom-1")
	if !strings.Contains(access, `"status":500`) || !strings.Contains(access, `"route":"/boom"`) {
		t.Errorf("access log of the panic: %s", access)
	}
	// The server goes on serving.
	if rec := s.do(t, http.MethodGet, "/healthz", nil, nil); rec.Code != 200 {
		t.Errorf("after a panic: healthz %d", rec.Code)
	}
}

func TestHTTPServerBusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	srv := NewHTTPServer(ln.Addr().String(), http.NotFoundHandler())
	if err := srv.Start(context.Background()); err == nil {
		_ = srv.Stop(context.Background())
		t.Fatal("Start on a busy port succeeded, want an error")
	}
	if err := NewHTTPServer("127.0.0.1:0", nil).Start(context.Background()); err == nil {
		t.Error("Start without a handler succeeded, want an error")
	}
	// Stopping a server that never started is a no-op.
	if err := srv.Stop(context.Background()); err != nil {
		t.Errorf("Stop after a failed Start: %v", err)
	}
}

func TestHTTPServerStopWaitsForInFlight(t *testing.T) {
	s := newTestServer(t, nil)
	started, release := make(chan struct{}), make(chan struct{})
	s.e.GET("/slow", func(c echo.Context) error {
		close(started)
		<-release
		return c.String(http.StatusOK, "done")
	})
	srv := NewHTTPServer("127.0.0.1:0", s.e)
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(srv.Addr(), ":0") {
		t.Fatalf("Addr() = %s, want the bound port", srv.Addr())
	}
	if err := srv.Start(context.Background()); err == nil {
		t.Error("second Start succeeded, want an error")
	}
	base := "http://" + srv.Addr()

	type result struct {
		status int
		body   string
		err    error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Get(base + "/slow")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- result{resp.StatusCode, string(b), err}
	}()
	<-started

	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stopped <- srv.Stop(ctx)
	}()

	select {
	case err := <-stopped:
		t.Fatalf("Stop returned (%v) while a request was in flight", err)
	case <-time.After(200 * time.Millisecond):
	}
	// New connections are refused once stopping has begun.
	if resp, err := http.Get(base + "/healthz"); err == nil {
		resp.Body.Close()
		t.Error("a new request was served after Stop began")
	}

	close(release)
	if err := <-stopped; err != nil {
		t.Errorf("Stop: %v", err)
	}
	r := <-got
	if r.err != nil || r.status != 200 || r.body != "done" {
		t.Errorf("in-flight request: status %d body %q err %v, want 200 done", r.status, r.body, r.err)
	}
}

func TestHTTPServerStopDeadline(t *testing.T) {
	hold := make(chan struct{})
	defer close(hold)
	started := make(chan struct{})
	var once sync.Once
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { close(started) })
		select {
		case <-hold:
		case <-r.Context().Done():
		}
	})
	srv := NewHTTPServer("127.0.0.1:0", h)
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	clientDone := make(chan struct{})
	go func() {
		defer close(clientDone)
		if resp, err := http.Get("http://" + srv.Addr() + "/"); err == nil {
			resp.Body.Close()
		}
	}()
	<-started

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := srv.Stop(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Stop past its deadline = %v, want context.DeadlineExceeded", err)
	}
	select {
	case <-clientDone: // Close cut the connection off
	case <-time.After(5 * time.Second):
		t.Error("the stuck connection was not closed")
	}
}
