package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/halobestie/mitra-availability/internal/serverproc"
)

// TestHostileInputFromOpenAPI walks docs/openapi.yaml and sends every
// operation, against the real binary on Postgres and Valkey, the hostile
// inputs of docs/contract.md §2 and §14: malformed JSON, an empty body, wrong types,
// missing and unknown fields, 100 KB strings, NUL, control and bidirectional
// characters, invalid UTF-8, out-of-range and non-integer numbers, malformed
// ids, a wrong Content-Type, repeated keys and a body over 1 MiB. It fails on
// any 5xx, any error body off the §2 envelope, a 400 that does not name the
// field at fault, and any answer that docs/openapi.yaml does not describe
// (status, or body against the operation's schema). Run it with -v for the
// counts per status class.
func TestHostileInputFromOpenAPI(t *testing.T) {
	t.Parallel()
	doc, router := loadOpenAPI(t)
	s := startValkeyServer(t, map[string]string{"LOGIN_MAX_FAILURES": "1000000"})
	admin := s.adminToken(t)
	f := &openAPIFuzz{t: t, s: s, doc: doc, router: router, classes: map[string]int{}}
	f.customer = s.newCustomer(t)
	f.leaver = s.newCustomer(t) // logs out: its token stops working
	f.mitra = s.newMitra(t, admin, 1)
	s.goOnline(t, f.mitra)
	f.session = s.requestSession(t, f.customer, 30)
	f.admin = admin

	paths := doc.Paths.InMatchingOrder()
	slices.Sort(paths)
	for _, path := range paths {
		item := doc.Paths.Value(path)
		methods := make([]string, 0, len(item.Operations()))
		for m := range item.Operations() {
			methods = append(methods, m)
		}
		slices.Sort(methods)
		for _, method := range methods {
			f.operation(method, path, item.Operations()[method])
		}
	}
	t.Logf("%d requests: %v", f.total, f.classes)
	if f.classes["5xx"] > 0 {
		t.Errorf("%d answers were 5xx", f.classes["5xx"])
	}
}

// loadOpenAPI loads and validates docs/openapi.yaml and builds its router.
func loadOpenAPI(t *testing.T) (*openapi3.T, routers.Router) {
	t.Helper()
	root, err := serverproc.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := openapi3.NewLoader().LoadFromFile(filepath.Join(root, "docs", "openapi.yaml"))
	if err != nil {
		t.Fatalf("loading docs/openapi.yaml: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("docs/openapi.yaml is not valid OpenAPI: %v", err)
	}
	doc.Servers = nil // match any host
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatalf("routing docs/openapi.yaml: %v", err)
	}
	return doc, router
}

type openAPIFuzz struct {
	t      *testing.T
	s      *Server
	doc    *openapi3.T
	router routers.Router

	admin                   string
	customer, leaver, mitra actor
	session                 string

	total   int
	classes map[string]int
	phones  atomic.Int64
}

// hostile is one request of the walk.
type hostile struct {
	name        string
	path        string // with the ids filled in
	query       string
	contentType string
	body        []byte
	field       string // the field a 400 must name ("" when any field will do)
}

// namesField is the shape of every 400 message: a field, ": ", a reason.
var namesField = regexp.MustCompile(`^[^\s:][^:]*: \S`)

// Strings a string field must refuse (every field) or may refuse (bidi).
var (
	controlValues = map[string]string{"NUL": "a\x00b", "escape": "\x1b[2J", "newline": "a\nb", "DEL": "a\x7fb", "C1 control": "a\u0085b"}
	bidiValues    = map[string]string{"right-to-left override": "Kiki\u202egnp.exe", "isolate": "\u2067Kiki"}
)

func (f *openAPIFuzz) operation(method, path string, op *openapi3.Operation) {
	token := f.tokenFor(method, path, op)
	target := f.fillIDs(path, "")
	var cases []hostile

	// Ids: malformed ones are 400 naming the parameter; a well-formed unknown one is 404.
	if strings.Contains(path, "{id}") {
		for name, id := range map[string]string{
			"non-UUID id": "not-a-uuid", "id with NUL": "%00", "id with bidi": "%E2%80%AE", "short id": "0b6a5e3c",
			"100 KB id": strings.Repeat("a", 100<<10), "UUID with braces": "%7B0b6a5e3c-8f1d-4c2e-9a7b-3d4e5f6a7b8c%7D",
		} {
			cases = append(cases, hostile{name: name, path: f.fillIDs(path, id), field: "id"})
		}
		// Well-formed: 404, or whatever the request's other faults call for.
		cases = append(cases, hostile{name: "unknown UUID", path: f.fillIDs(path, "0b6a5e3c-8f1d-4c2e-9a7b-3d4e5f6a7b8c")})
	}
	// Queries: this API reads no query but GET /ws's access_token; junk is ignored or refused.
	for name, q := range map[string]string{
		"junk query": "zzz=1&zzz=2", "NUL in query": "x=%00", "access_token junk": "access_token=%00%E2%80%AE",
		"100 KB query": "x=" + strings.Repeat("q", 100<<10),
	} {
		cases = append(cases, hostile{name: name, path: target, query: q})
	}

	schema := requestSchema(op)
	if schema == nil {
		// No body expected: a body, of any type, changes nothing.
		cases = append(cases,
			hostile{name: "unexpected JSON body", path: target, contentType: "application/json", body: []byte(`{"zzz":1}`)},
			hostile{name: "unexpected text body", path: target, contentType: "text/plain", body: []byte("\x00\xff")},
		)
	} else {
		cases = append(cases, f.bodyCases(target, schema)...)
	}
	for _, c := range cases {
		f.send(method, token, c, op)
	}
}

// bodyCases are the hostile bodies of an operation with a JSON body.
func (f *openAPIFuzz) bodyCases(target string, schema *openapi3.Schema) []hostile {
	var out []hostile
	add := func(name, field string, body []byte) {
		out = append(out, hostile{name: name, path: target, contentType: "application/json", body: body, field: field})
	}
	valid := f.validBody(schema)
	for name, b := range map[string]string{
		"empty body": "", "whitespace": " \n", "null": "null", "array": "[]", "string": `"x"`, "number": "1",
		"truncated": `{"a":`, "unclosed": "{", "garbage": "}{", "bare word": "nul", "trailing data": "{} {}",
		"deep nesting": strings.Repeat("[", 100000), "invalid UTF-8 key": "{\"\xff\":1}",
	} {
		add(name, "", []byte(b))
	}
	add("unknown field", "zzz_unknown", marshalWith(valid, "zzz_unknown", 1))
	add("wrong Content-Type text/plain", "Content-Type", mustJSON(valid))
	out[len(out)-1].contentType = "text/plain"
	add("form Content-Type", "Content-Type", mustJSON(valid))
	out[len(out)-1].contentType = "application/x-www-form-urlencoded"
	add("latin1 charset", "Content-Type", mustJSON(valid))
	out[len(out)-1].contentType = "application/json; charset=latin1"
	add("body over 1 MiB", "", marshalWith(valid, "zzz_pad", strings.Repeat("p", 1<<20+10)))

	names := make([]string, 0, len(schema.Properties))
	for n := range schema.Properties {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, p := range names {
		ps := effective(schema.Properties[p].Value)
		if slices.Contains(schema.Required, p) {
			add("missing "+p, p, marshalWithout(valid, p))
		}
		add("repeated key "+p, p, repeatedKey(f.validBody(schema), p))
		for name, v := range wrongTypes(ps) {
			add(name+" for "+p, p, marshalWith(f.validBody(schema), p, v))
		}
		if ps.Type.Is(openapi3.TypeString) {
			add("100 KB "+p, p, marshalWith(f.validBody(schema), p, strings.Repeat("k", 100<<10)))
			for name, v := range controlValues {
				add(name+" in "+p, p, marshalWith(f.validBody(schema), p, v))
			}
			for name, v := range bidiValues {
				field := "" // refused in display_name only; elsewhere any answer but a 5xx
				if p == "display_name" {
					field = p
				}
				add(name+" in "+p, field, marshalWith(f.validBody(schema), p, v))
			}
			add("invalid UTF-8 in "+p, p, []byte(strings.Replace(string(marshalWith(f.validBody(schema), p, "MARK")), "MARK", "a\xffb", 1)))
		}
		if ps.Type.Is(openapi3.TypeInteger) {
			for name, raw := range map[string]string{
				"fraction": "1.5", "negative": "-1", "zero": "0", "huge": "1000000000", "beyond int64": "9223372036854775808",
				"below int64": "-9223372036854775809", "overflowing exponent": "1e400", "exponent": "1e2", "numeric string": `"30"`,
			} {
				add(name+" "+p, p, []byte(strings.Replace(string(marshalWith(f.validBody(schema), p, "MARK")), `"MARK"`, raw, 1)))
			}
		}
	}
	return out
}

// wrongTypes are JSON values of another type than s.
func wrongTypes(s *openapi3.Schema) map[string]any {
	all := map[string]any{"a string": "x", "a number": 12345, "a boolean": true, "an object": map[string]any{"a": 1}, "an array": []any{1}}
	switch {
	case s.Type.Is(openapi3.TypeString):
		delete(all, "a string")
	case s.Type.Is(openapi3.TypeInteger), s.Type.Is(openapi3.TypeNumber):
		delete(all, "a number")
	case s.Type.Is(openapi3.TypeBoolean):
		delete(all, "a boolean")
	}
	return all
}

// validBody builds a body the operation accepts (as far as the fields go).
func (f *openAPIFuzz) validBody(s *openapi3.Schema) map[string]any {
	body := map[string]any{}
	for name, ref := range s.Properties {
		p := effective(ref.Value)
		switch name {
		case "phone":
			body[name] = fmt.Sprintf("+62877%07d", f.phones.Add(1))
		case "password":
			body[name] = "long enough pw"
		case "display_name":
			body[name] = "Kiki"
		case "mitra_id":
			continue // optional; a direct request would pin the one mitra
		case "is_active":
			body[name] = true // never deactivate the walk's mitra
		default:
			switch {
			case p.Example != nil:
				body[name] = p.Example
			case len(p.Enum) > 0:
				body[name] = p.Enum[0]
			case p.Type.Is(openapi3.TypeInteger), p.Type.Is(openapi3.TypeNumber):
				v := 1.0
				if p.Min != nil && *p.Min > v {
					v = *p.Min
				}
				body[name] = int(v)
			case p.Type.Is(openapi3.TypeBoolean):
				body[name] = true
			default:
				body[name] = "x"
			}
		}
	}
	return body
}

// effective is s, or the schema it wraps in a one-element allOf (a $ref with a description).
func effective(s *openapi3.Schema) *openapi3.Schema {
	if s.Type == nil && len(s.AllOf) == 1 && s.AllOf[0].Value != nil {
		return s.AllOf[0].Value
	}
	return s
}

func requestSchema(op *openapi3.Operation) *openapi3.Schema {
	if op.RequestBody == nil || op.RequestBody.Value == nil {
		return nil
	}
	mt := op.RequestBody.Value.Content.Get("application/json")
	if mt == nil || mt.Schema == nil {
		return nil
	}
	return mt.Schema.Value
}

func (f *openAPIFuzz) tokenFor(method, path string, op *openapi3.Operation) string {
	switch {
	case op.Security != nil && len(*op.Security) == 0:
		return ""
	case path == "/api/auth/logout":
		return f.leaver.Token
	case strings.HasPrefix(path, "/api/admin"):
		return f.admin
	case strings.HasPrefix(path, "/api/mitra/") || strings.HasSuffix(path, "/accept"):
		return f.mitra.Token
	}
	return f.customer.Token
}

// fillIDs puts id (or, when "", the walk's own mitra or session) into path.
func (f *openAPIFuzz) fillIDs(path, id string) string {
	if id == "" {
		id = f.session
		if strings.Contains(path, "mitras/{id}") {
			id = f.mitra.ID
		}
	}
	return strings.ReplaceAll(path, "{id}", id)
}

// send sends one hostile request and checks the answer.
func (f *openAPIFuzz) send(method, token string, c hostile, op *openapi3.Operation) {
	t := f.t
	t.Helper()
	what := fmt.Sprintf("%s %s: %s", method, op.OperationID, c.name)
	url := f.s.URL + c.path
	if c.query != "" {
		url += "?" + c.query
	}
	req, err := http.NewRequest(method, url, bytes.NewReader(c.body))
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if c.body == nil {
		req.Body = http.NoBody
	}
	if c.contentType != "" {
		req.Header.Set("Content-Type", c.contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := f.s.client.Do(req)
	if err != nil {
		t.Errorf("%s: %v", what, err)
		return
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	f.total++
	f.classes[fmt.Sprintf("%dxx", resp.StatusCode/100)]++

	if resp.StatusCode >= 500 {
		t.Errorf("%s: status %d: %s", what, resp.StatusCode, truncate(raw))
		return
	}
	if resp.StatusCode >= 400 && req.Method != http.MethodHead {
		msg, ok := envelopeMessage(raw)
		if !ok {
			t.Errorf("%s: status %d, body off the error envelope: %s", what, resp.StatusCode, truncate(raw))
			return
		}
		if resp.StatusCode == http.StatusBadRequest {
			switch {
			case !namesField.MatchString(msg):
				t.Errorf("%s: 400 that names no field: %q", what, msg)
			case c.field != "" && !strings.Contains(msg, c.field):
				t.Errorf("%s: 400 names another field than %s: %q", what, c.field, msg)
			}
		}
	}
	f.checkDocumented(what, req, resp, raw)
}

// envelopeMessage decodes exactly {"error":{"code","message"}} and returns the message.
func envelopeMessage(raw []byte) (string, bool) {
	var env struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil || env.Error == nil || env.Error.Code == "" || env.Error.Message == "" {
		return "", false
	}
	return env.Error.Message, true
}

// checkDocumented validates the answer against the operation in docs/openapi.yaml.
func (f *openAPIFuzz) checkDocumented(what string, req *http.Request, resp *http.Response, raw []byte) {
	t := f.t
	t.Helper()
	// The router matches the documented path template; a 100 KB id still matches {id}.
	vreq := req.Clone(context.Background())
	vreq.Body = http.NoBody
	route, params, err := f.router.FindRoute(vreq)
	if err != nil {
		t.Errorf("%s: no documented route: %v", what, err)
		return
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request: vreq, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
		},
		Status: resp.StatusCode,
		Header: resp.Header,
		Body:   io.NopCloser(bytes.NewReader(raw)),
		Options: &openapi3filter.Options{
			IncludeResponseStatus: true, // a status the operation does not list is an error
			// GET /docs answers the YAML document itself, which the validator would parse.
			ExcludeResponseBody: !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json"),
		},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		t.Errorf("%s: answer %d not as docs/openapi.yaml says: %v", what, resp.StatusCode, firstLine(err.Error()))
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// marshalWith is body with key set to v.
func marshalWith(body map[string]any, key string, v any) []byte {
	m := make(map[string]any, len(body)+1)
	for k, x := range body {
		m[k] = x
	}
	m[key] = v
	return mustJSON(m)
}

func marshalWithout(body map[string]any, key string) []byte {
	m := make(map[string]any, len(body))
	for k, x := range body {
		if k != key {
			m[k] = x
		}
	}
	return mustJSON(m)
}

// repeatedKey is body with key written twice (the second time with the same value).
func repeatedKey(body map[string]any, key string) []byte {
	if _, ok := body[key]; !ok {
		body[key] = "x"
	}
	b := mustJSON(body)
	dup := fmt.Sprintf(`%q:%s,`, key, mustJSON(body[key]))
	return append([]byte("{"+dup), b[1:]...)
}
