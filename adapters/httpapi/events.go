package httpapi

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/halobestie/mitra-availability/core"
	"github.com/halobestie/mitra-availability/ports"
)

// Limits of GET /api/events (docs/contract.md §13).
const (
	DefaultEventsLimit = 100
	MaxEventsLimit     = 500
)

// eventsHandlers serve GET /api/events, the event stream for clients that poll.
type eventsHandlers struct {
	log ports.EventLog
}

// eventsResponse is the answer of GET /api/events: the frames a WebSocket
// would have carried, and the id to ask after next.
type eventsResponse struct {
	Events    []json.RawMessage `json:"events"`
	NextAfter string            `json:"next_after"`
}

func (h eventsHandlers) list(c echo.Context) error {
	q := c.Request().URL.Query()
	after, _, err := parseAfter(q)
	if err != nil {
		return err
	}
	limit, err := parseLimit(q)
	if err != nil {
		return err
	}
	p := principal(c)
	evs, err := h.log.EventsAfter(c.Request().Context(), p.UserID, after, limit)
	if err != nil {
		return err
	}
	resp := eventsResponse{Events: make([]json.RawMessage, len(evs)), NextAfter: strconv.FormatInt(after, 10)}
	for i, e := range evs {
		resp.Events[i] = e.Frame()
	}
	switch {
	case len(evs) > 0:
		resp.NextAfter = evs[len(evs)-1].EventID()
	case after == 0:
		// Nothing kept: go on from the newest id, never from before it.
		heads, err := h.log.Heads(c.Request().Context(), []string{p.UserID})
		if err != nil {
			return err
		}
		resp.NextAfter = strconv.FormatInt(heads[p.UserID], 10)
	}
	return c.JSON(http.StatusOK, resp)
}

// parseAfter reads the after query parameter: an event id (decimal digits,
// 0 or more), or absent. A malformed or negative one is 400 naming it.
func parseAfter(q url.Values) (after int64, present bool, err error) {
	vs, ok := q["after"]
	if !ok {
		return 0, false, nil
	}
	if len(vs) != 1 || !allDigits(vs[0]) {
		return 0, false, core.Invalid("after", "must be an event_id: a non-negative integer")
	}
	n, err := strconv.ParseInt(vs[0], 10, 64)
	if err != nil {
		return 0, false, core.Invalid("after", "must be an event_id: a non-negative integer")
	}
	return n, true, nil
}

// parseLimit reads the limit query parameter: 1..MaxEventsLimit, default
// DefaultEventsLimit.
func parseLimit(q url.Values) (int, error) {
	vs, ok := q["limit"]
	if !ok {
		return DefaultEventsLimit, nil
	}
	if len(vs) != 1 || !allDigits(vs[0]) {
		return 0, core.Invalid("limit", "must be an integer from 1 to 500")
	}
	n, err := strconv.Atoi(vs[0])
	if err != nil || n < 1 || n > MaxEventsLimit {
		return 0, core.Invalid("limit", "must be an integer from 1 to 500")
	}
	return n, nil
}

func allDigits(s string) bool {
	if s == "" || len(s) > 19 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
