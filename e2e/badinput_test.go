package e2e

import (
	"bytes"
	"io"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/halobestie/mitra-availability/client"
)

// badBody is one malformed request body and the field its message must name
// ("" when there is no field to name).
type badBody struct {
	name  string
	body  string
	field string
}

// docs/contract.md §2: malformed JSON, an empty body, unknown fields, wrong types,
// out-of-range values and trailing data are 400 invalid_request naming the
// field, never a 500; and a refused request changes nothing.
func TestBadInputSignup(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	// PHONE in a body stands for a phone of the case's own.
	cases := []badBody{
		{"malformed JSON", `{"phone": "PHONE", "password": `, ""},
		{"empty body", ``, ""},
		{"whitespace body", "  \n", ""},
		{"JSON array", `[]`, ""},
		{"JSON string", `"hello"`, ""},
		{"unknown field", `{"phone":"PHONE","password":"long enough pw","display_name":"Kiki","nickname":"k"}`, "nickname"},
		{"password of the wrong type", `{"phone":"PHONE","password":12345678,"display_name":"Kiki"}`, "password"},
		{"phone of the wrong type", `{"phone":6281234567,"password":"long enough pw","display_name":"Kiki"}`, "phone"},
		{"display_name of the wrong type", `{"phone":"PHONE","password":"long enough pw","display_name":{"a":1}}`, "display_name"},
		{"password too short", `{"phone":"PHONE","password":"short","display_name":"Kiki"}`, "password"},
		{"phone not E.164", `{"phone":"081234567890","password":"long enough pw","display_name":"Kiki"}`, "phone"},
		{"phone missing", `{"password":"long enough pw","display_name":"Kiki"}`, "phone"},
		{"password missing", `{"phone":"PHONE","display_name":"Kiki"}`, "password"},
		{"trailing object", `{"phone":"PHONE","password":"long enough pw","display_name":"Kiki"}{}`, ""},
		{"trailing garbage", `{"phone":"PHONE","password":"long enough pw","display_name":"Kiki"} x`, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			phone := randomPhone(t)
			r := s.request(t, http.MethodPost, "/api/customers", "", strings.ReplaceAll(c.body, "PHONE", phone))
			wantInvalid(t, c, r)
			// Nothing was created: the phone is still free.
			s.signupCustomer(t, phone, "long enough pw", "Kiki")
		})
	}

	// Login and refresh bodies are checked the same way, for a real customer.
	phone := randomPhone(t)
	s.signupCustomer(t, phone, "long enough pw", "Kiki")
	for _, c := range []badBody{
		{"malformed JSON", `{"phone":`, ""},
		{"empty body", ``, ""},
		{"unknown field", `{"phone":"` + phone + `","password":"long enough pw","remember_me":true}`, "remember_me"},
		{"password of the wrong type", `{"phone":"` + phone + `","password":true}`, "password"},
		{"trailing data", `{"phone":"` + phone + `","password":"long enough pw"}[]`, ""},
	} {
		t.Run("login/"+c.name, func(t *testing.T) {
			wantInvalid(t, c, s.request(t, http.MethodPost, "/api/auth/login", "", c.body))
		})
	}
	tok := s.login(t, phone, "long enough pw")
	for _, c := range []badBody{
		{"malformed JSON", `{"refresh_token":`, ""},
		{"empty body", ``, ""},
		{"unknown field", `{"refresh_token":"` + tok.Refresh + `","device":"x"}`, "device"},
		{"refresh_token of the wrong type", `{"refresh_token":42}`, "refresh_token"},
		{"trailing data", `{"refresh_token":"` + tok.Refresh + `"}{}`, ""},
	} {
		t.Run("refresh/"+c.name, func(t *testing.T) {
			wantInvalid(t, c, s.request(t, http.MethodPost, "/api/auth/refresh", "", c.body))
		})
	}
	// The refused refreshes did not rotate (or revoke) the token.
	s.refresh(t, tok.Refresh)
}

// docs/contract.md §2 on the admin's mitra endpoints: a bad body or a malformed id is
// 400 invalid_request and the mitra view stays exactly as it was.
func TestBadInputMitraAdmin(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	admin := s.adminToken(t)
	capacity := 2
	m := s.createMitra(t, admin, client.CreateMitraRequest{Phone: randomPhone(t), Password: "mitra-password", DisplayName: "Lina", Capacity: &capacity})
	id := m.ID
	before := s.mitraView(t, admin, id)

	unchanged := func(t *testing.T) {
		t.Helper()
		if after := s.mitraView(t, admin, id); !reflect.DeepEqual(after, before) {
			t.Fatalf("the mitra changed after a refused request:\n got %v\nwant %v", after, before)
		}
	}

	for _, c := range []badBody{
		{"malformed JSON", `{"capacity": 3`, ""},
		{"empty body", ``, ""},
		{"JSON array", `[{"capacity":3}]`, ""},
		{"unknown field", `{"capacity":3,"nickname":"x"}`, "nickname"},
		{"capacity as a string", `{"capacity":"3"}`, "capacity"},
		{"capacity as a fraction", `{"capacity":2.5}`, "capacity"},
		{"capacity negative", `{"capacity":-1}`, "capacity"},
		{"capacity huge", `{"capacity":99999999999999999999}`, "capacity"},
		{"is_active as a string", `{"is_active":"false"}`, "is_active"},
		{"is_active as a number", `{"is_active":0}`, "is_active"},
		{"trailing object", `{"is_active":false,"capacity":4}{"capacity":5}`, ""},
		{"trailing garbage", `{"is_active":false,"capacity":4} garbage`, ""},
	} {
		t.Run("patch/"+c.name, func(t *testing.T) {
			wantInvalid(t, c, s.request(t, http.MethodPatch, "/api/admin/mitras/"+id, admin, c.body))
			unchanged(t)
		})
	}

	// PHONE in a body stands for a phone of the case's own.
	for _, c := range []badBody{
		{"malformed JSON", `{"phone":"PHONE"`, ""},
		{"empty body", ``, ""},
		{"unknown field", `{"phone":"PHONE","password":"mitra-password","display_name":"Mia","rating":5}`, "rating"},
		{"capacity as a string", `{"phone":"PHONE","password":"mitra-password","display_name":"Mia","capacity":"2"}`, "capacity"},
		{"capacity negative", `{"phone":"PHONE","password":"mitra-password","display_name":"Mia","capacity":-3}`, "capacity"},
		{"password too short", `{"phone":"PHONE","password":"1234567","display_name":"Mia"}`, "password"},
		{"phone not E.164", `{"phone":"not a phone","password":"mitra-password","display_name":"Mia"}`, "phone"},
		{"trailing data", `{"phone":"PHONE","password":"mitra-password","display_name":"Mia"}{}`, ""},
	} {
		t.Run("create/"+c.name, func(t *testing.T) {
			phone := randomPhone(t)
			r := s.request(t, http.MethodPost, "/api/admin/mitras", admin, strings.ReplaceAll(c.body, "PHONE", phone))
			wantInvalid(t, c, r)
			// Nothing was created: the phone is still free.
			s.createMitra(t, admin, client.CreateMitraRequest{Phone: phone, Password: "mitra-password", DisplayName: "Mia"})
		})
	}

	for _, bad := range []string{"not-a-uuid", "123", "00000000-0000-0000-0000-00000000000g", id + "0"} {
		t.Run("malformed id "+bad, func(t *testing.T) {
			msg := wantError(t, "GET with a malformed id", s.get(t, "/api/admin/mitras/"+bad, admin),
				http.StatusBadRequest, "invalid_request")
			wantMention(t, msg, "id")
			r := s.request(t, http.MethodPatch, "/api/admin/mitras/"+bad, admin, map[string]any{"is_active": false})
			msg = wantError(t, "PATCH with a malformed id", r, http.StatusBadRequest, "invalid_request")
			wantMention(t, msg, "id")
			unchanged(t)
		})
	}

	t.Run("body over 1 MiB", func(t *testing.T) {
		big := `{"capacity":4,"is_active":false,"pad":"` + strings.Repeat("x", oneMiB) + `"}`
		r := s.request(t, http.MethodPatch, "/api/admin/mitras/"+id, admin, big)
		wantError(t, "PATCH over 1 MiB", r, http.StatusRequestEntityTooLarge, "payload_too_large")
		unchanged(t)
	})
}

// docs/contract.md §2: unknown routes are 404 not_found, bodies over 1 MiB 413
// payload_too_large (with or without a Content-Length).
func TestBadInputRoutesAndLimits(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	admin := s.adminToken(t)

	for _, c := range []struct{ method, path, token string }{
		{http.MethodGet, "/api/does-not-exist", ""},
		{http.MethodGet, "/nope", ""},
		{http.MethodPost, "/api/customers/extra/path", ""},
		{http.MethodGet, "/api/admin/does-not-exist", admin},
	} {
		r := s.request(t, c.method, c.path, c.token, nil)
		wantError(t, c.method+" "+c.path, r, http.StatusNotFound, "not_found")
	}

	phone := randomPhone(t)
	big := `{"phone":"` + phone + `","password":"long enough pw","display_name":"` + strings.Repeat("y", oneMiB) + `"}`
	r := s.request(t, http.MethodPost, "/api/customers", "", big)
	wantError(t, "signup over 1 MiB", r, http.StatusRequestEntityTooLarge, "payload_too_large")

	// The same body streamed without a Content-Length (chunked).
	req, err := http.NewRequest(http.MethodPost, s.URL+"/api/customers", io.MultiReader(bytes.NewReader([]byte(big))))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentTypeJSON)
	if req.ContentLength != 0 {
		t.Fatalf("the streamed request has a Content-Length (%d)", req.ContentLength)
	}
	r = s.send(t, req)
	wantError(t, "chunked signup over 1 MiB", r, http.StatusRequestEntityTooLarge, "payload_too_large")

	// Neither created the account.
	s.signupCustomer(t, phone, "long enough pw", "Nina")
}

// wantInvalid asserts 400 invalid_request whose message names c.field.
func wantInvalid(t *testing.T, c badBody, r Response) {
	t.Helper()
	msg := wantError(t, c.name, r, http.StatusBadRequest, "invalid_request")
	if c.field != "" {
		wantMention(t, msg, c.field)
	}
}

// wantMention fails the test unless msg names field as a word of its own (so
// that "id" is not found inside "invalid").
func wantMention(t *testing.T, msg, field string) {
	t.Helper()
	re := regexp.MustCompile(`(^|[^A-Za-z0-9_])` + regexp.QuoteMeta(field) + `($|[^A-Za-z0-9_])`)
	if !re.MatchString(msg) {
		t.Fatalf("error message %q does not name the field %q", msg, field)
	}
}
