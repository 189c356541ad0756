package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/halobestie/mitra-availability/core"
)

// BenchmarkDecode measures what the request hygiene of docs/contract.md §14 costs on
// the two hot bodies, session create and login: decoding and validating a
// body as their handlers do, with decodeJSON ("after") and with the decoder
// it replaced ("before", decodeJSONBefore below), in the same run. The
// figure to read is after/before of each pair:
//
//	go test -run '^$' -bench '^BenchmarkDecode$' -benchmem -count 1 ./adapters/httpapi/
func BenchmarkDecode(b *testing.B) {
	decoders := []struct {
		name   string
		decode func(echo.Context, any) error
	}{
		{"before", decodeJSONBefore},
		{"after", decodeJSON},
	}
	login := []byte(`{"phone":"+628123456789","password":"correct horse battery"}`)
	create := []byte(`{"duration_minutes":30,"mitra_id":"0b6a5e3c-8f1d-4c2e-9a7b-3d4e5f6a7b8c"}`)

	for _, d := range decoders {
		b.Run("login/"+d.name, func(b *testing.B) {
			c, reset := benchContext(login)
			for b.Loop() {
				reset()
				var req loginRequest
				if err := d.decode(c, &req); err != nil {
					b.Fatal(err)
				}
				if req.Phone == "" || req.Password == "" {
					b.Fatal("empty field")
				}
			}
		})
		b.Run("session_create/"+d.name, func(b *testing.B) {
			c, reset := benchContext(create)
			for b.Loop() {
				reset()
				var req createSessionRequest
				if err := d.decode(c, &req); err != nil {
					b.Fatal(err)
				}
				if req.DurationMinutes == nil || req.MitraID == nil {
					b.Fatal("missing field")
				}
				if _, err := parseUUID("mitra_id", *req.MitraID); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchContext returns one Echo context whose request body reset rewinds to body.
func benchContext(body []byte) (echo.Context, func()) {
	e := echo.New()
	req := httptest.NewRequest(http.MethodPost, "/", nil)
	req.Header.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	c := e.NewContext(req, httptest.NewRecorder())
	r := bytes.NewReader(body)
	rc := io.NopCloser(r)
	return c, func() {
		r.Reset(body)
		req.Body = rc
	}
}

// decodeJSONBefore is decodeJSON as it was before docs/contract.md §14 (no repeated
// key, UTF-8 or control character checks): the baseline of BenchmarkDecode.
func decodeJSONBefore(c echo.Context, dst any) error {
	req := c.Request()
	if err := checkJSONContentType(req.Header.Get(echo.HeaderContentType)); err != nil {
		return err
	}
	if req.Body == nil || req.Body == http.NoBody {
		return errNotObject
	}
	dec := json.NewDecoder(req.Body)
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return core.Invalid(fieldBody, fmt.Sprintf("malformed JSON at offset %d", se.Offset))
		}
		return core.Invalid(fieldBody, "could not be read")
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return core.Invalid(fieldBody, "unexpected data after JSON object")
	}
	if len(raw) == 0 || raw[0] != '{' {
		return errNotObject
	}
	strict := json.NewDecoder(bytes.NewReader(raw))
	strict.DisallowUnknownFields()
	if err := strict.Decode(dst); err != nil {
		return fieldError(err)
	}
	return nil
}
