// Package openapicheck checks HTTP responses against the service's OpenAPI
// document (docs/openapi.yaml) with kin-openapi's openapi3filter. The e2e
// suite sends every request through Transport, so every answer it receives,
// errors included, must be one the document describes: a documented status,
// content type and headers, and a body that matches the schema exactly.
//
// The document's response schemas are strict (Strict checks it when the
// Checker is made): every object forbids properties it does not list and
// requires every property it lists, because every field of a view is always
// present (docs/contract.md §2). So a field the server sends that the
// document lacks fails, and so does a field the document lists that the
// server leaves out.
package openapicheck

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// schemaOptions check formats too; ids are UUIDs (docs/contract.md §2).
var schemaOptions = []openapi3.SchemaValidationOption{
	openapi3.EnableFormatValidation(),
	openapi3.WithStringFormatValidator("uuid", openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForUUIDOfRFC9562)),
}

// Checker validates responses against one document.
type Checker struct {
	doc    *openapi3.T
	router routers.Router
	errSch *openapi3.Schema // components/schemas/Error, for answers to unknown routes
	evSch  *openapi3.Schema // components/schemas/WsEvent, for WebSocket frames
}

// Load parses the document, validates it (openapi3.T.Validate) and checks
// that its response schemas are strict.
func Load(spec []byte) (*Checker, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(spec)
	if err != nil {
		return nil, fmt.Errorf("openapi: parse: %w", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("openapi: invalid document: %w", err)
	}
	if err := Strict(doc); err != nil {
		return nil, err
	}
	// The document's one server is "/": match the paths as they are, on any host.
	doc.Servers = nil
	router, err := legacy.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("openapi: router: %w", err)
	}
	c := &Checker{doc: doc, router: router}
	if ref := doc.Components.Schemas["Error"]; ref != nil {
		c.errSch = ref.Value
	}
	if ref := doc.Components.Schemas["WsEvent"]; ref != nil {
		c.evSch = ref.Value
	}
	if c.errSch == nil || c.evSch == nil {
		return nil, errors.New("openapi: components/schemas/Error or WsEvent is missing")
	}
	return c, nil
}

// Strict reports every object schema reachable from a response of doc (or
// from components/schemas/WsEvent, the WebSocket frames) that allows
// properties it does not list (additionalProperties not false) or lists a
// property it does not require.
func Strict(doc *openapi3.T) error {
	var problems []string
	seen := map[*openapi3.Schema]bool{}
	var walk func(where string, s *openapi3.SchemaRef)
	walk = func(where string, ref *openapi3.SchemaRef) {
		if ref == nil || ref.Value == nil || seen[ref.Value] {
			return
		}
		s := ref.Value
		seen[s] = true
		if ref.Ref != "" {
			where = ref.Ref
		}
		for _, sub := range slices.Concat(s.OneOf, s.AnyOf, s.AllOf) {
			walk(where, sub)
		}
		walk(where+"[]", s.Items)
		if s.Type.Is(openapi3.TypeObject) || len(s.Properties) > 0 {
			if s.AdditionalProperties.Has == nil || *s.AdditionalProperties.Has {
				problems = append(problems, where+": additionalProperties is not false")
			}
			for _, name := range sortedKeys(s.Properties) {
				if !slices.Contains(s.Required, name) {
					problems = append(problems, fmt.Sprintf("%s: property %s is not required", where, name))
				}
				walk(where+"."+name, s.Properties[name])
			}
		}
	}
	for _, path := range doc.Paths.InMatchingOrder() {
		item := doc.Paths.Value(path)
		for method, op := range item.Operations() {
			for status, resp := range op.Responses.Map() {
				if resp.Value == nil {
					continue
				}
				for mime, mt := range resp.Value.Content {
					if strings.Contains(mime, "json") {
						walk(fmt.Sprintf("%s %s %s %s", method, path, status, mime), mt.Schema)
					}
				}
			}
		}
	}
	if doc.Components != nil {
		if ev := doc.Components.Schemas["WsEvent"]; ev != nil {
			walk("#/components/schemas/WsEvent", ev)
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		problems = slices.Compact(problems)
		return fmt.Errorf("openapi: response schemas are not strict:\n  %s", strings.Join(problems, "\n  "))
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Check validates one answer to req. An answer to a route the document does
// not have must be 404 or 405 with the error envelope.
func (c *Checker) Check(req *http.Request, status int, header http.Header, body []byte) error {
	what := fmt.Sprintf("%s %s → %d", req.Method, req.URL.Path, status)
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		var re *routers.RouteError
		if !errors.As(err, &re) || (re.Reason != routers.ErrPathNotFound.Error() && re.Reason != routers.ErrMethodNotAllowed.Error()) {
			return fmt.Errorf("%s: find route: %w", what, err)
		}
		if status != http.StatusNotFound && status != http.StatusMethodNotAllowed {
			return fmt.Errorf("%s: the document has no such route, and the answer is not 404 or 405", what)
		}
		return c.checkEnvelope(what, header, body)
	}
	input := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request:    req,
			PathParams: params,
			Route:      route,
		},
		Status: status,
		Header: header,
		Options: &openapi3filter.Options{
			IncludeResponseStatus:   true,
			MultiError:              true,
			SchemaValidationOptions: schemaOptions,
		},
	}
	input.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), input); err != nil {
		return fmt.Errorf("%s: %w (body %s)", what, err, truncate(body))
	}
	if len(body) > 0 {
		if resp := route.Operation.Responses.Status(status); resp != nil && resp.Value != nil && len(resp.Value.Content) == 0 {
			return fmt.Errorf("%s: the document describes no body, the answer has one: %s", what, truncate(body))
		}
	}
	return nil
}

// CheckEvent validates one WebSocket text frame against
// components/schemas/WsEvent (its type picks the event schema).
func (c *Checker) CheckEvent(frame []byte) error {
	var v any
	if err := json.Unmarshal(frame, &v); err != nil {
		return fmt.Errorf("WebSocket frame is not JSON: %w (%s)", err, truncate(frame))
	}
	if err := c.evSch.VisitJSON(v, append([]openapi3.SchemaValidationOption{openapi3.MultiErrors()}, schemaOptions...)...); err != nil {
		return fmt.Errorf("WebSocket frame %s: %w", truncate(frame), err)
	}
	return nil
}

// checkEnvelope checks an answer against the error envelope alone.
func (c *Checker) checkEnvelope(what string, header http.Header, body []byte) error {
	if ct := header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return fmt.Errorf("%s: content type %q, want the JSON error envelope", what, ct)
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("%s: body is not JSON: %w (%s)", what, err, truncate(body))
	}
	if err := c.errSch.VisitJSON(v, append([]openapi3.SchemaValidationOption{openapi3.MultiErrors()}, schemaOptions...)...); err != nil {
		return fmt.Errorf("%s: not the error envelope: %w (body %s)", what, err, truncate(body))
	}
	return nil
}

func truncate(b []byte) string {
	const max = 500
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}

// Transport is an http.RoundTripper that checks every answer it passes on.
// Each failed check is handed to Report (from the goroutine of the request);
// the body is read in full and given back to the caller unchanged.
type Transport struct {
	Checker *Checker
	Base    http.RoundTripper // nil: http.DefaultTransport
	Report  func(error)

	mu      sync.Mutex
	checked int
}

// RoundTrip sends req and checks the answer.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return resp, nil // a WebSocket upgrade: the body is the connection
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("read the answer to %s %s: %w", req.Method, req.URL.Path, err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err := t.Checker.Check(req, resp.StatusCode, resp.Header, body); err != nil && t.Report != nil {
		t.Report(err)
	}
	t.mu.Lock()
	t.checked++
	t.mu.Unlock()
	return resp, nil
}

// Checked is how many answers the transport has checked.
func (t *Transport) Checked() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.checked
}
