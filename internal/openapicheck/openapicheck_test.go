package openapicheck_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/halobestie/mitra-availability/docs"
	"github.com/halobestie/mitra-availability/internal/openapicheck"
)

func load(t *testing.T) *openapicheck.Checker {
	t.Helper()
	c, err := openapicheck.Load(docs.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func jsonHeader() http.Header { return http.Header{"Content-Type": {"application/json"}} }

// TestDocument checks docs/openapi.yaml itself: a valid OpenAPI 3 document
// (kin-openapi's Validate) whose response schemas are strict (task lint runs it).
func TestDocument(t *testing.T) {
	load(t)
}

// The validator must refuse what the document does not describe: this feeds
// it wrong answers and expects each to fail, and right ones to pass.
func TestCheckRefusesWrongAnswers(t *testing.T) {
	c := load(t)
	const id = "0b6f3c9e-7f7e-4a51-9a55-2f1f7d3c1a10"
	beacon := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:1234/api/availability", nil)
	status := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:1234/api/mitra/status", nil)
	mitra := `"id":"` + id + `","display_name":"Sari","phone":"+628111000001","is_active":true,"is_online":true,"presence":"online",` +
		`"capacity":2,"active_sessions":0,"last_heartbeat_at":null,"reachable":true,"available":true`
	heartbeat := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:1234/api/mitra/status/heartbeat", nil)
	unknown := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:1234/api/nope", nil)
	for _, tc := range []struct {
		name   string
		req    *http.Request
		status int
		header http.Header
		body   string
		ok     bool
	}{
		{"beacon", beacon, 200, jsonHeader(), `{"available_mitras":3,"as_of":"2026-12-07T01:00:00Z"}`, true},
		{"beacon with a field the document lacks", beacon, 200, jsonHeader(), `{"available_mitras":3,"as_of":"2026-12-07T01:00:00Z","extra":1}`, false},
		{"beacon without a field the document requires", beacon, 200, jsonHeader(), `{"available_mitras":3}`, false},
		{"beacon with a wrong type", beacon, 200, jsonHeader(), `{"available_mitras":"3","as_of":"2026-12-07T01:00:00Z"}`, false},
		{"beacon with a malformed time", beacon, 200, jsonHeader(), `{"available_mitras":3,"as_of":"yesterday"}`, false},
		{"beacon with an undocumented status", beacon, 201, jsonHeader(), `{"available_mitras":3,"as_of":"2026-12-07T01:00:00Z"}`, false},
		{"beacon as text", beacon, 200, http.Header{"Content-Type": {"text/plain"}}, `3`, false},
		{"mitra view", status, 200, jsonHeader(), `{` + mitra + `}`, true},
		{"mitra view without null field", status, 200, jsonHeader(), `{` + strings.Replace(mitra, `"last_heartbeat_at":null,`, "", 1) + `}`, false},
		{"mitra view with a malformed id", status, 200, jsonHeader(), `{` + strings.Replace(mitra, id, "42", 1) + `}`, false},
		{"error envelope", status, 401, jsonHeader(), `{"error":{"code":"unauthenticated","message":"missing bearer token"}}`, true},
		{"error envelope with an unknown code", status, 401, jsonHeader(), `{"error":{"code":"nope","message":"x"}}`, false},
		{"error envelope with an extra field", status, 401, jsonHeader(), `{"error":{"code":"unauthenticated","message":"x","detail":"y"}}`, false},
		{"error without the envelope", status, 401, jsonHeader(), `{"code":"unauthenticated","message":"x"}`, false},
		{"heartbeat", heartbeat, 204, http.Header{}, ``, true},
		{"heartbeat with a body", heartbeat, 204, jsonHeader(), `{}`, false},
		{"unknown route", unknown, 404, jsonHeader(), `{"error":{"code":"not_found","message":"no such route"}}`, true},
		{"unknown route answered 200", unknown, 200, jsonHeader(), `{}`, false},
		{"unknown route without the envelope", unknown, 404, jsonHeader(), `not found`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := c.Check(tc.req, tc.status, tc.header, []byte(tc.body))
			if tc.ok && err != nil {
				t.Errorf("Check = %v, want nil", err)
			}
			if !tc.ok && err == nil {
				t.Errorf("Check = nil, want an error")
			}
		})
	}
}

// Strict refuses a document whose response schema allows unknown properties
// or has an optional one.
func TestStrictRefusesLooseSchemas(t *testing.T) {
	for name, schema := range map[string]string{
		"open object":       `{type: object, required: [a], properties: {a: {type: integer}}}`,
		"optional property": `{type: object, additionalProperties: false, required: [a], properties: {a: {type: integer}, b: {type: integer}}}`,
		"open nested":       `{type: object, additionalProperties: false, required: [a], properties: {a: {type: object, properties: {}}}}`,
	} {
		spec := `openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /x:
    get:
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema: ` + schema + "\n"
		doc, err := openapi3.NewLoader().LoadFromData([]byte(spec))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := openapicheck.Strict(doc); err == nil {
			t.Errorf("%s: Strict = nil, want an error", name)
		}
	}
}

// The transport hands the body back unchanged and reports a wrong answer.
func TestTransportReports(t *testing.T) {
	c := load(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"available_mitras":1,"as_of":"2026-12-07T01:00:00Z","surprise":true}`))
	}))
	defer srv.Close()
	var reported []error
	tr := &openapicheck.Transport{Checker: c, Report: func(err error) { reported = append(reported, err) }}
	resp, err := (&http.Client{Transport: tr}).Get(srv.URL + "/api/availability")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := new(strings.Builder)
	if _, err := io.Copy(buf, resp.Body); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "surprise") {
		t.Errorf("body %q was not handed back", buf.String())
	}
	if len(reported) != 1 || !strings.Contains(reported[0].Error(), "surprise") || tr.Checked() != 1 {
		t.Errorf("reported %v, checked %d; want one report naming the field", reported, tr.Checked())
	}
}

// A WebSocket frame must be one of the document's events, exactly.
func TestCheckEvent(t *testing.T) {
	c := load(t)
	const id = "0b6f3c9e-7f7e-4a51-9a55-2f1f7d3c1a10"
	for frame, ok := range map[string]bool{
		`{"event_id":"7","at":"2026-12-07T01:00:00Z","type":"session_taken","session_id":"` + id + `"}`:                                                                   true,
		`{"event_id":"7","at":"2026-12-07T01:00:00Z","type":"session_taken","session_id":"` + id + `","extra":1}`:                                                         false,
		`{"event_id":"7","at":"2026-12-07T01:00:00Z","type":"session_taken"}`:                                                                                             false,
		`{"event_id":"7","at":"2026-12-07T01:00:00Z","type":"session_ended","session_id":"` + id + `","reason":"expired"}`:                                                true,
		`{"event_id":"7","at":"2026-12-07T01:00:00Z","type":"session_ended","session_id":"` + id + `","reason":"bored"}`:                                                  false,
		`{"type":"no_such_event","session_id":"` + id + `"}`:                                                                                                              false,
		`{"event_id":"7","at":"2026-12-07T01:00:00Z","type":"session_warning","session_id":"` + id + `","kind":"three_minutes_left","expires_at":"2026-12-07T01:00:00Z"}`: true,
	} {
		err := c.CheckEvent([]byte(frame))
		if ok && err != nil {
			t.Errorf("CheckEvent(%s) = %v, want nil", frame, err)
		}
		if !ok && err == nil {
			t.Errorf("CheckEvent(%s) = nil, want an error", frame)
		}
	}
}
