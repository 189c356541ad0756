package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/halobestie/mitra-availability/core"
	"github.com/halobestie/mitra-availability/core/validate"
)

// Fields named by decodeJSON's validation errors when no JSON field is at fault.
const (
	fieldRequestBody = "request body"
	fieldBody        = "body"
	fieldContentType = "Content-Type"
)

var errNotObject = core.Invalid(fieldRequestBody, "must be a JSON object")

// decodeJSON decodes the request body, which must be exactly one JSON object,
// into dst (a pointer to a struct), rejecting unknown fields. Every client
// mistake becomes a *core.ValidationError naming the field (400
// invalid_request):
//
//   - an empty body, null or any non-object: "request body: must be a JSON object"
//   - a Content-Type other than application/json or application/*+json (charset,
//     if given, utf-8): "Content-Type: must be application/json". We answer 400
//     rather than 415 so that the API has one code for every malformed request;
//     a missing Content-Type is accepted.
//   - malformed JSON: "body: malformed JSON at offset N"
//   - a repeated key, at any depth: "<field>: repeated key" (docs/contract.md §14)
//   - a string holding a control character (U+0000–U+001F, U+007F–U+009F),
//     in any field: "<field>: must not contain control characters" (§14)
//   - invalid UTF-8 in a string: "<field>: must be valid UTF-8"
//   - an unknown field: "<field>: unknown field" (names match exactly, case included)
//   - a wrong type: "<field>: must be integer" (string, number, boolean, object, array)
//   - anything after the object: "body: unexpected data after JSON object"
//
// A body over the limit returns the *http.MaxBytesError, which maps to 413.
//
// It reads the body once, then makes two passes over it: checkJSONText walks
// its tokens with jsontext (syntax, repeated keys, UTF-8, control characters,
// top-level names against dst's fields), then encoding/json fills dst.
func decodeJSON(c echo.Context, dst any) error {
	req := c.Request()
	if err := checkJSONContentType(req.Header.Get(echo.HeaderContentType)); err != nil {
		return err
	}
	if req.Body == nil || req.Body == http.NoBody {
		return errNotObject
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return fmt.Errorf("request body: %w", mbe)
		}
		// The connection failed while reading (client gone, reset, timeout).
		return core.Invalid(fieldBody, "could not be read")
	}
	if err := checkJSONText(body, fieldsOf(dst)); err != nil {
		return err
	}
	strict := json.NewDecoder(bytes.NewReader(body))
	strict.DisallowUnknownFields()
	if err := strict.Decode(dst); err != nil {
		return fieldError(err)
	}
	return nil
}

// checkJSONText checks that body is one JSON object and nothing after it,
// with no repeated key, only valid UTF-8 and no string (name or value) holding
// a control character. known, when not nil, holds the names the top-level
// object may use; any other is an unknown field.
func checkJSONText(body []byte, known map[string]struct{}) error {
	d := jsontext.NewDecoder(bytes.NewBuffer(body))
	tok, err := d.ReadToken()
	switch {
	case errors.Is(err, io.EOF):
		return errNotObject
	case err != nil:
		return jsonTextError(err)
	case tok.Kind() != '{':
		return errNotObject
	}
	for d.StackDepth() > 0 {
		tok, err := d.ReadToken()
		if err != nil {
			return jsonTextError(err)
		}
		if tok.Kind() != '"' {
			continue
		}
		kind, n := d.StackIndex(d.StackDepth())
		isName := kind == '{' && n%2 == 1
		s := tok.String()
		switch {
		case isName && validate.HasControl(s):
			return core.Invalid(fieldBody, "field names must not contain control characters")
		case isName && known != nil && d.StackDepth() == 1:
			if _, ok := known[s]; !ok {
				return invalidField(s, "unknown field")
			}
		case !isName && validate.HasControl(s):
			return invalidField(fieldName(d.StackPointer()), "must not contain control characters (U+0000–U+001F, U+007F–U+009F)")
		}
	}
	if _, err := d.ReadToken(); !errors.Is(err, io.EOF) {
		return core.Invalid(fieldBody, "unexpected data after JSON object")
	}
	return nil
}

// jsonTextError maps an error of checkJSONText's token walk.
func jsonTextError(err error) error {
	var se *jsontext.SyntacticError
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return core.Invalid(fieldBody, "malformed JSON: unexpected end of input")
	case errors.As(err, &se) && errors.Is(se.Err, jsontext.ErrDuplicateName):
		return invalidField(fieldName(se.JSONPointer), "repeated key")
	case errors.As(err, &se) && se.Err != nil && strings.Contains(se.Err.Error(), "invalid UTF-8"):
		return invalidField(fieldName(se.JSONPointer), "must be valid UTF-8")
	case errors.As(err, &se):
		return core.Invalid(fieldBody, fmt.Sprintf("malformed JSON at offset %d", se.ByteOffset))
	}
	return core.Invalid(fieldBody, "malformed JSON")
}

// invalidField names a field the client chose in a 400. A name that does not
// read as one (empty, or with characters beyond letters, digits, _ . -) is
// not put first, where a client looks for the field, but quoted after "body:".
func invalidField(name, reason string) error {
	if plainName(name) {
		return core.Invalid(name, reason)
	}
	if len(name) > 64 {
		name = name[:64] + "…"
	}
	return core.Invalid(fieldBody, fmt.Sprintf("%s %s", reason, strconv.QuoteToASCII(name)))
}

// plainName reports whether name is 1..64 characters of [A-Za-z0-9_.-].
func plainName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '.', c == '-':
		default:
			return false
		}
	}
	return true
}

// fieldName turns a JSON pointer (/nested/flag) into the dotted field name
// errors use (nested.flag).
func fieldName(p jsontext.Pointer) string {
	var b strings.Builder
	for tok := range p.Tokens() {
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(tok)
	}
	return b.String()
}

// knownFields caches fieldsOf per struct type.
var knownFields sync.Map // reflect.Type → map[string]struct{}

// fieldsOf returns the JSON names of the fields of the struct dst points to,
// or nil (no check) when dst is not a pointer to a plain struct.
func fieldsOf(dst any) map[string]struct{} {
	t := reflect.TypeOf(dst)
	if t == nil || t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return nil
	}
	t = t.Elem()
	if m, ok := knownFields.Load(t); ok {
		return m.(map[string]struct{})
	}
	m := make(map[string]struct{}, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous {
			return nil // embedded fields: leave the names to encoding/json
		}
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = f.Name
		}
		m[name] = struct{}{}
	}
	knownFields.Store(t, m)
	return m
}

// checkJSONContentType accepts no Content-Type, application/json and
// application/*+json, with no charset or a utf-8 one.
func checkJSONContentType(ct string) error {
	if ct == "" {
		return nil
	}
	wrong := core.Invalid(fieldContentType, "must be application/json")
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return wrong
	}
	if mt != echo.MIMEApplicationJSON && !(strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")) {
		return wrong
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return core.Invalid(fieldContentType, "charset must be utf-8")
	}
	return nil
}

// fieldError maps an error of the strict pass to a ValidationError naming the field.
func fieldError(err error) error {
	var ute *json.UnmarshalTypeError
	var ve *core.ValidationError
	switch {
	case errors.As(err, &ve):
		return err // a field type's UnmarshalJSON already named the field
	case errors.As(err, &ute):
		if ute.Field == "" {
			return errNotObject
		}
		return core.Invalid(ute.Field, "must be "+jsonTypeName(ute.Type))
	}
	if name, ok := strings.CutPrefix(err.Error(), `json: unknown field "`); ok {
		return invalidField(strings.TrimSuffix(name, `"`), "unknown field")
	}
	var ime *json.InvalidUnmarshalError
	if errors.As(err, &ime) {
		return fmt.Errorf("decodeJSON: %w", err) // a programming error: 500
	}
	return core.Invalid(fieldBody, "invalid JSON value")
}

// jsonTypeName names t the way a JSON client thinks of it.
func jsonTypeName(t reflect.Type) string {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return "a valid value"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.String:
		return "string"
	case reflect.Struct, reflect.Map:
		return "object"
	case reflect.Slice, reflect.Array:
		return "array"
	}
	return "a valid value"
}

// pathUUID returns the path parameter name as a lower-case canonical UUID.
// Only the 36-character hyphenated form is accepted (in either case); anything
// else is a *core.ValidationError naming the parameter (400 invalid_request).
func pathUUID(c echo.Context, name string) (string, error) {
	return parseUUID(name, c.Param(name))
}

// parseUUID checks that raw is a canonical 36-character UUID and returns it
// in lower case; otherwise a 400 naming field.
func parseUUID(field, raw string) (string, error) {
	name := field
	if len(raw) != 36 {
		return "", core.Invalid(name, "must be a UUID")
	}
	id, err := uuid.Parse(raw)
	if err != nil {
		return "", core.Invalid(name, "must be a UUID")
	}
	return id.String(), nil
}
