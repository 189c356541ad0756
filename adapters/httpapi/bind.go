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
	"strings"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/halobestie/mitra-availability/core"
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
//   - an unknown field: "<field>: unknown field"
//   - a wrong type: "<field>: must be integer" (string, number, boolean, object, array)
//   - anything after the object: "body: unexpected data after JSON object"
//
// A body over the limit returns the *http.MaxBytesError, which maps to 413.
func decodeJSON(c echo.Context, dst any) error {
	req := c.Request()
	if err := checkJSONContentType(req.Header.Get(echo.HeaderContentType)); err != nil {
		return err
	}
	if req.Body == nil || req.Body == http.NoBody {
		return errNotObject
	}

	// First pass: one well-formed JSON value and nothing after it.
	dec := json.NewDecoder(req.Body)
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return bodyReadError(err, true)
	}
	var extra json.RawMessage
	switch err := dec.Decode(&extra); {
	case err == nil:
		return core.Invalid(fieldBody, "unexpected data after JSON object")
	case errors.Is(err, io.EOF):
	default:
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return fmt.Errorf("request body: %w", mbe)
		}
		return core.Invalid(fieldBody, "unexpected data after JSON object")
	}
	if len(raw) == 0 || raw[0] != '{' {
		return errNotObject
	}

	// Second pass: into dst, strictly.
	strict := json.NewDecoder(bytes.NewReader(raw))
	strict.DisallowUnknownFields()
	if err := strict.Decode(dst); err != nil {
		return fieldError(err)
	}
	return nil
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

// bodyReadError maps an error of the first decoding pass. first tells whether
// it came from the first value (an empty body is then "must be a JSON object").
func bodyReadError(err error, first bool) error {
	var mbe *http.MaxBytesError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &mbe):
		return fmt.Errorf("request body: %w", mbe)
	case first && errors.Is(err, io.EOF):
		return errNotObject
	case errors.Is(err, io.ErrUnexpectedEOF):
		return core.Invalid(fieldBody, "malformed JSON: unexpected end of input")
	case errors.As(err, &se):
		return core.Invalid(fieldBody, fmt.Sprintf("malformed JSON at offset %d", se.Offset))
	}
	// The connection failed while reading (client gone, reset, timeout).
	return core.Invalid(fieldBody, "could not be read")
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
		return core.Invalid(strings.TrimSuffix(name, `"`), "unknown field")
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
