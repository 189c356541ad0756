package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/halobestie/mitra-availability/core/auth"
	"github.com/halobestie/mitra-availability/core/validate"
)

// The fuzz targets of the request decoding and validation of every endpoint
// that takes a body or a query (docs/contract.md §2, §14). Each sends the fuzzed
// input through the whole API on the memory adapters and checks what a
// client would: never a 5xx; every error in the §2 envelope; every 400 names
// a field ("field: reason"); and nothing with a control character (or, in
// display_name, a bidirectional control) is ever answered as stored.
//
// `go test` runs the seeds below; `task fuzz` runs each target for FUZZTIME.

// fuzzAPI is a server with a customer, an admin, a mitra and a session
// of the customer, so that every route reaches its decoding.
type fuzzAPI struct {
	e                         *echo.Echo
	customer, admin           string // access tokens
	mitraID, sessionID, phone string
}

func newFuzzAPI(f *testing.F) *fuzzAPI {
	e, _, as := buildServer(f, auth.Throttle{}, nil)
	a := &fuzzAPI{e: e, phone: "+628100000001"}
	if _, err := as.CreateAdmin(f.Context(), auth.NewAccount{Phone: "+628100000009", Password: "admin password", DisplayName: "Admin"}); err != nil {
		f.Fatal(err)
	}
	a.admin = a.loginToken(f, "+628100000009", "admin password")
	a.mustPost(f, "/api/customers", "", `{"phone":"+628100000001","password":"customer password","display_name":"Cici"}`, http.StatusCreated)
	a.customer = a.loginToken(f, "+628100000001", "customer password")
	m := a.mustPost(f, "/api/admin/mitras", a.admin, `{"phone":"+628100000002","password":"mitra password","display_name":"Mia"}`, http.StatusCreated)
	a.mitraID = m["id"].(string)
	mt := a.loginToken(f, "+628100000002", "mitra password")
	a.mustPost(f, "/api/mitra/status/online", mt, "", http.StatusOK)
	s := a.mustPost(f, "/api/sessions", a.customer, `{"duration_minutes":30}`, http.StatusCreated)
	a.sessionID = s["id"].(string)
	return a
}

func (a *fuzzAPI) serve(method, target, token, contentType string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set(echo.HeaderContentType, contentType)
	}
	if token != "" {
		req.Header.Set(echo.HeaderAuthorization, "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	a.e.ServeHTTP(rec, req)
	return rec
}

func (a *fuzzAPI) mustPost(f *testing.F, path, token, body string, want int) map[string]any {
	f.Helper()
	rec := a.serve(http.MethodPost, path, token, echo.MIMEApplicationJSON, []byte(body))
	if rec.Code != want {
		f.Fatalf("POST %s: %d %s", path, rec.Code, rec.Body)
	}
	var m map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &m)
	return m
}

func (a *fuzzAPI) loginToken(f *testing.F, phone, pw string) string {
	f.Helper()
	m := a.mustPost(f, "/api/auth/login", "", `{"phone":"`+phone+`","password":"`+pw+`"}`, http.StatusOK)
	return m["access_token"].(string)
}

// namesAField is the shape of every 400 message: a field, ": ", a reason.
var namesAField = regexp.MustCompile(`^[^\s:][^:]*: \S`)

// checkAnswer fails on anything a hostile input must never get.
func checkAnswer(t *testing.T, what string, rec *httptest.ResponseRecorder) {
	t.Helper()
	if rec.Code >= 500 {
		t.Fatalf("%s: status %d: %s", what, rec.Code, rec.Body)
	}
	if rec.Code < 400 {
		checkStoredText(t, what, rec.Body.Bytes())
		return
	}
	var env struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil || env.Error == nil || env.Error.Code == "" || env.Error.Message == "" {
		t.Fatalf("%s: status %d, body off the error envelope: %s", what, rec.Code, rec.Body)
	}
	if rec.Code == http.StatusBadRequest && (env.Error.Code != codeInvalidRequest || !namesAField.MatchString(env.Error.Message)) {
		t.Fatalf("%s: 400 that names no field: %s", what, rec.Body)
	}
}

// checkStoredText walks a success body: no string may hold a control
// character, and no display_name a bidirectional control.
func checkStoredText(t *testing.T, what string, body []byte) {
	t.Helper()
	var v any
	if len(bytes.TrimSpace(body)) == 0 {
		return
	}
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("%s: success body is not JSON: %v", what, err)
	}
	var walk func(key string, v any)
	walk = func(key string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				walk(k, e)
			}
		case []any:
			for _, e := range x {
				walk(key, e)
			}
		case string:
			if validate.HasControl(x) || !utf8.ValidString(x) {
				t.Fatalf("%s: stored %s %q holds a control character or invalid UTF-8", what, key, x)
			}
			if key == "display_name" && validate.HasBidiControl(x) {
				t.Fatalf("%s: stored display_name %q holds a bidirectional control", what, x)
			}
		}
	}
	walk("", v)
}

// hostileSeeds are bodies every body target starts from, besides its own.
var hostileSeeds = []string{
	``, `null`, `[]`, `"x"`, `{`, `{}`, `{"a":1}`, `{} {}`, `{"a":1,"a":2}`,
	`{"x":"\u0000"}`, `{"x":"\u202e"}`, "{\"x\":\"\xff\"}", `{"x":1e999}`, `{"x":-0}`,
	`{"x":[[[[[[[[[[]]]]]]]]]]}`, strings.Repeat(`[`, 20000),
}

// fuzzBody registers seeds and runs one body target.
func fuzzBody(f *testing.F, method string, path func(*fuzzAPI) string, token func(*fuzzAPI) string, seeds ...string) {
	a := newFuzzAPI(f)
	for _, s := range append(seeds, hostileSeeds...) {
		f.Add([]byte(s), echo.MIMEApplicationJSON)
	}
	f.Add([]byte(`{}`), "text/plain")
	f.Add([]byte(`{}`), "application/json; charset=latin1")
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		p := path(a)
		checkAnswer(t, method+" "+p, a.serve(method, p, token(a), contentType, body))
	})
}

func fixed(s string) func(*fuzzAPI) string { return func(*fuzzAPI) string { return s } }

func FuzzSignup(f *testing.F) {
	fuzzBody(f, http.MethodPost, fixed("/api/customers"), fixed(""),
		`{"phone":"+628123456789","password":"long enough pw","display_name":"Kiki"}`,
		`{"phone":"+628123456780","password":"long enough pw","display_name":"Ki\u0000ki"}`,
		`{"phone":"+628123456781","password":"long enough pw","display_name":"Kiki\u202egnp.exe"}`,
		`{"phone":"+628123456782","password":"long enough pw","display_name":"Kiki","display_name":"Admin"}`,
		`{"phone":"+628123456783","password":"long enough pw","display_name":"\u0085"}`,
		`{"phone":"+628123456784","password":"long enough pw","display_name":"Kiki","Display_Name":"x"}`,
		`{"phone":628123456789,"password":true,"display_name":null}`,
	)
}

func FuzzLogin(f *testing.F) {
	fuzzBody(f, http.MethodPost, fixed("/api/auth/login"), fixed(""),
		`{"phone":"+628100000001","password":"customer password"}`,
		`{"phone":"+628100000001\u0000","password":"x"}`,
		`{"phone":"+628100000001","password":"x","password":"customer password"}`,
		`{"phone":"+628100000001","password":"`+strings.Repeat("p", 100)+`"}`,
	)
}

func FuzzRefresh(f *testing.F) {
	fuzzBody(f, http.MethodPost, fixed("/api/auth/refresh"), fixed(""),
		`{"refresh_token":"rt_abc"}`, `{"refresh_token":"\u0000"}`, `{"refresh_token":1}`,
	)
}

func FuzzCreateMitra(f *testing.F) {
	fuzzBody(f, http.MethodPost, fixed("/api/admin/mitras"), func(a *fuzzAPI) string { return a.admin },
		`{"phone":"+628123450001","password":"mitra password","display_name":"Mia","capacity":2}`,
		`{"phone":"+628123450002","password":"mitra password","display_name":"M\u0000ia"}`,
		`{"phone":"+628123450003","password":"mitra password","display_name":"Mia","capacity":101}`,
		`{"phone":"+628123450004","password":"mitra password","display_name":"Mia","capacity":1.5}`,
		`{"phone":"+628123450005","password":"mitra password","display_name":"Mia","capacity":99999999999999999999}`,
	)
}

func FuzzPatchMitra(f *testing.F) {
	fuzzBody(f, http.MethodPatch, func(a *fuzzAPI) string { return "/api/admin/mitras/" + a.mitraID }, func(a *fuzzAPI) string { return a.admin },
		`{"capacity":3}`, `{"is_active":true}`, `{"is_active":"yes"}`, `{"capacity":-1}`, `{"capacity":2,"capacity":3}`,
	)
}

func FuzzCreateSession(f *testing.F) {
	fuzzBody(f, http.MethodPost, fixed("/api/sessions"), func(a *fuzzAPI) string { return a.customer },
		`{"duration_minutes":30}`, `{"duration_minutes":0}`, `{"duration_minutes":241}`, `{"duration_minutes":"30"}`,
		`{"duration_minutes":30,"mitra_id":"not-a-uuid"}`, `{"duration_minutes":30,"mitra_id":"0b6a5e3c-8f1d-4c2e-9a7b-3d4e5f6a7b8c"}`,
		`{"duration_minutes":30,"mitra_id":"0b6a5e3c-8f1d-4c2e-9a7b-3d4e5f6a7b8c\u0000"}`,
	)
}

func FuzzExtendSession(f *testing.F) {
	fuzzBody(f, http.MethodPost, func(a *fuzzAPI) string { return "/api/sessions/" + a.sessionID + "/extend" }, func(a *fuzzAPI) string { return a.customer },
		`{"minutes":10}`, `{"minutes":0}`, `{"minutes":121}`, `{"minutes":1e2}`, `{"minutes":10,"minutes":20}`,
	)
}

// FuzzPathAndQuery covers what arrives outside a body: a path id, and the
// query of GET /ws (access_token), the one endpoint that reads a query.
func FuzzPathAndQuery(f *testing.F) {
	a := newFuzzAPI(f)
	for _, s := range []string{"0b6a5e3c-8f1d-4c2e-9a7b-3d4e5f6a7b8c", "x", "", "%00", "0B6A5E3C-8F1D-4C2E-9A7B-3D4E5F6A7B8C", "{0b6a5e3c-8f1d-4c2e-9a7b-3d4e5f6a7b8c}", strings.Repeat("a", 5000)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		esc := url.PathEscape(s)
		checkAnswer(t, "GET session", a.serve(http.MethodGet, "/api/sessions/"+esc, a.customer, "", nil))
		checkAnswer(t, "GET mitra availability", a.serve(http.MethodGet, "/api/mitras/"+esc+"/availability", a.customer, "", nil))
		checkAnswer(t, "POST accept", a.serve(http.MethodPost, "/api/sessions/"+esc+"/accept", a.customer, "", nil))
		checkAnswer(t, "GET /ws", a.serve(http.MethodGet, "/ws?access_token="+url.QueryEscape(s), "", "", nil))
	})
}
