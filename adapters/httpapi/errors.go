package httpapi

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/halobestie/mitra-availability/core"
	"github.com/halobestie/mitra-availability/ports"
)

// Error codes of the envelope (docs/contract.md §2).
const (
	codeInvalidRequest     = "invalid_request"
	codeUnauthenticated    = "unauthenticated"
	codeInvalidCredentials = "invalid_credentials"
	codeForbidden          = "forbidden"
	codeAccountDeactivated = "account_deactivated"
	codeNotFound           = "not_found"
	codeMethodNotAllowed   = "method_not_allowed"
	codePhoneTaken         = "phone_taken"
	codeNotOnline          = "not_online"
	codeNoMitraAvailable   = "no_mitra_available"
	codeOpenSessionExists  = "open_session_exists"
	codeSessionTaken       = "session_taken"
	codeAtCapacity         = "at_capacity"
	codeInvalidState       = "invalid_state"
	codePayloadTooLarge    = "payload_too_large"
	codeUnavailable        = "unavailable"
	codeRateLimited        = "rate_limited"
	codeInternal           = "internal"
	codeGone               = "gone"
)

const internalMessage = "internal server error"

// errorRule maps one sentinel error to a status and a code.
//
// The message: core's errors are written for the caller (core wraps its
// sentinels with words such as "%w: missing Authorization header"), so their
// text is shown (showText). Errors of ports come from adapters, whose wrapping
// may carry driver detail (SQL, addresses), so they get the fixed message.
type errorRule struct {
	target   error
	status   int
	code     string
	message  string
	showText bool
}

// errorTable is the one table of domain error → HTTP answer, checked in order
// with errors.Is; the first match wins. *core.ValidationError,
// *ports.InvalidValueError, *http.MaxBytesError and *echo.HTTPError are
// matched with errors.As in classify, before the table.
var errorTable = []errorRule{
	// The store being down explains any other symptom of the same failure.
	{ports.ErrStoreUnavailable, http.StatusServiceUnavailable, codeUnavailable, "the service is temporarily unavailable, retry later", false},
	{core.ErrInvalidCredentials, http.StatusUnauthorized, codeInvalidCredentials, "", true},
	// Before unauthenticated and forbidden: a deactivated account is the more precise answer.
	{core.ErrAccountDeactivated, http.StatusForbidden, codeAccountDeactivated, "", true},
	{core.ErrUnauthenticated, http.StatusUnauthorized, codeUnauthenticated, "", true},
	{ports.ErrInvalidToken, http.StatusUnauthorized, codeUnauthenticated, "missing, malformed, expired or revoked credentials", false},
	{core.ErrForbidden, http.StatusForbidden, codeForbidden, "", true},
	{ports.ErrNotFound, http.StatusNotFound, codeNotFound, "the requested resource does not exist", false},
	{ports.ErrPhoneTaken, http.StatusConflict, codePhoneTaken, "an account with this phone already exists", false},
	{core.ErrNotOnline, http.StatusConflict, codeNotOnline, "", true},
	{core.ErrNoMitraAvailable, http.StatusConflict, codeNoMitraAvailable, "", true},
	{core.ErrOpenSessionExists, http.StatusConflict, codeOpenSessionExists, "", true},
	{core.ErrSessionTaken, http.StatusConflict, codeSessionTaken, "", true},
	{core.ErrAtCapacity, http.StatusConflict, codeAtCapacity, "", true},
	{core.ErrInvalidState, http.StatusConflict, codeInvalidState, "", true},
	{ports.ErrEventsGone, http.StatusGone, codeGone, "the events after this event_id are no longer kept: reload the state with GET /api/sessions", false},
}

// apiError is the HTTP answer to an error.
type apiError struct {
	status     int
	code       string
	message    string
	retryAfter time.Duration // > 0: a Retry-After header in whole seconds
}

// errorEnvelope is the body of every error response: {"error":{"code","message"}}.
type errorEnvelope struct {
	Error errorBody `json:"error"`
}

type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// classify maps err to its HTTP answer. ok is false for an error nothing maps:
// the answer is then the generic 500 and the caller must log the detail.
func classify(err error) (ae apiError, ok bool) {
	var ve *core.ValidationError
	if errors.As(err, &ve) {
		return apiError{http.StatusBadRequest, codeInvalidRequest, ve.Error(), 0}, true
	}
	var ive *ports.InvalidValueError
	if errors.As(err, &ive) {
		return apiError{http.StatusBadRequest, codeInvalidRequest, ive.Error(), 0}, true
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return payloadTooLarge(mbe.Limit), true
	}
	var rle *core.RateLimitedError
	if errors.As(err, &rle) {
		return apiError{http.StatusTooManyRequests, codeRateLimited, rle.Error(), rle.RetryAfter}, true
	}
	for _, r := range errorTable {
		if errors.Is(err, r.target) {
			msg := r.message
			if r.showText {
				msg = err.Error()
			}
			return apiError{status: r.status, code: r.code, message: msg}, true
		}
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		return classifyHTTPError(he)
	}
	return apiError{http.StatusInternalServerError, codeInternal, internalMessage, 0}, false
}

// retryAfterSeconds renders d as Retry-After wants it: whole seconds, rounded
// up, at least 1.
func retryAfterSeconds(d time.Duration) string {
	s := int64((d + time.Second - 1) / time.Second)
	return strconv.FormatInt(max(s, 1), 10)
}

func payloadTooLarge(limit int64) apiError {
	return apiError{http.StatusRequestEntityTooLarge, codePayloadTooLarge,
		fmt.Sprintf("request body must not exceed %d bytes", limit), 0}
}

// classifyHTTPError maps Echo's own errors (router 404/405, middleware errors).
func classifyHTTPError(he *echo.HTTPError) (apiError, bool) {
	msg, _ := he.Message.(string)
	switch {
	case he.Code == http.StatusNotFound:
		return apiError{http.StatusNotFound, codeNotFound, "route not found", 0}, true
	case he.Code == http.StatusMethodNotAllowed:
		return apiError{http.StatusMethodNotAllowed, codeMethodNotAllowed, "method not allowed on this route", 0}, true
	case he.Code == http.StatusRequestEntityTooLarge:
		return apiError{http.StatusRequestEntityTooLarge, codePayloadTooLarge, "request body is too large", 0}, true
	case he.Code == http.StatusUnauthorized:
		if msg == "" || msg == http.StatusText(http.StatusUnauthorized) {
			msg = "missing, malformed, expired or revoked credentials"
		}
		return apiError{http.StatusUnauthorized, codeUnauthenticated, msg, 0}, true
	case he.Code == http.StatusServiceUnavailable:
		return apiError{http.StatusServiceUnavailable, codeUnavailable, "the service is temporarily unavailable, retry later", 0}, true
	case he.Code >= 400 && he.Code < 500:
		if msg == "" {
			msg = http.StatusText(he.Code)
		}
		return apiError{he.Code, codeInvalidRequest, msg, 0}, true
	}
	return apiError{http.StatusInternalServerError, codeInternal, internalMessage, 0}, false
}

// newErrorHandler returns the server's one echo.HTTPErrorHandler: it writes
// the envelope of classify(err), logs what the client does not see, and does
// nothing to a response that is already committed.
func newErrorHandler(logger *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		req := c.Request()
		attrs := []slog.Attr{
			slog.String("request_id", requestID(c)),
			slog.String("method", req.Method),
			slog.String("route", c.Path()),
			slog.String("error", err.Error()),
		}
		if c.Response().Committed {
			logger.LogAttrs(req.Context(), slog.LevelWarn, "error after the response was committed", attrs...)
			return
		}

		ae, known := classify(err)
		switch {
		case !known:
			var pe *panicError
			if errors.As(err, &pe) {
				attrs = append(attrs, slog.String("stack", string(pe.stack)))
			}
			logger.LogAttrs(req.Context(), slog.LevelError, "internal error", attrs...)
		case ae.status >= http.StatusInternalServerError:
			logger.LogAttrs(req.Context(), slog.LevelWarn, "request failed", attrs...)
		}

		if ae.code == codeUnauthenticated {
			c.Response().Header().Set(echo.HeaderWWWAuthenticate, "Bearer")
		}
		if ae.retryAfter > 0 {
			c.Response().Header().Set(echo.HeaderRetryAfter, retryAfterSeconds(ae.retryAfter))
		}
		var werr error
		if req.Method == http.MethodHead {
			werr = c.NoContent(ae.status)
		} else {
			werr = c.JSON(ae.status, errorEnvelope{Error: errorBody{Code: ae.code, Message: ae.message}})
		}
		if werr != nil {
			logger.LogAttrs(req.Context(), slog.LevelWarn, "writing the error response",
				slog.String("request_id", requestID(c)), slog.String("error", werr.Error()))
		}
	}
}
