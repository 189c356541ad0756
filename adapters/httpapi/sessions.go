package httpapi

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/halobestie/mitra-availability/core"
	"github.com/halobestie/mitra-availability/core/sessions"
)

type sessionHandlers struct {
	svc *sessions.Service
}

type createSessionRequest struct {
	DurationMinutes *int    `json:"duration_minutes"`
	MitraID         *string `json:"mitra_id"`
	// Queue: wait in the queue when no mitra can take the request now
	// (docs/contract.md §10); ignored with mitra_id, which never queues.
	Queue *bool `json:"queue"`
}

type sessionListResponse struct {
	Sessions []sessions.View `json:"sessions"`
}

func (h sessionHandlers) create(c echo.Context) error {
	var req createSessionRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.DurationMinutes == nil {
		return invalid("duration_minutes", "is required")
	}
	if req.MitraID != nil {
		id, err := parseUUID("mitra_id", *req.MitraID)
		if err != nil {
			return err
		}
		req.MitraID = &id
	}
	var (
		v   sessions.View
		err error
	)
	if req.Queue != nil && *req.Queue && req.MitraID == nil {
		v, err = h.svc.RequestQueue(c.Request().Context(), principal(c).UserID, *req.DurationMinutes)
	} else {
		v, err = h.svc.Request(c.Request().Context(), principal(c).UserID, *req.DurationMinutes, req.MitraID)
	}
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusCreated, v)
}

func (h sessionHandlers) accept(c echo.Context) error {
	id, err := pathUUID(c, "id")
	if err != nil {
		return err
	}
	v, err := h.svc.Accept(c.Request().Context(), principal(c).UserID, id)
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, v)
}

func (h sessionHandlers) decline(c echo.Context) error {
	id, err := pathUUID(c, "id")
	if err != nil {
		return err
	}
	if err := h.svc.Decline(c.Request().Context(), principal(c).UserID, id); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (h sessionHandlers) pay(c echo.Context) error {
	id, err := pathUUID(c, "id")
	if err != nil {
		return err
	}
	v, err := h.svc.Pay(c.Request().Context(), principal(c).UserID, id)
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, v)
}

type extendRequest struct {
	Minutes *int `json:"minutes"`
}

func (h sessionHandlers) extend(c echo.Context) error {
	id, err := pathUUID(c, "id")
	if err != nil {
		return err
	}
	var req extendRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.Minutes == nil {
		return invalid("minutes", "is required")
	}
	v, err := h.svc.Extend(c.Request().Context(), principal(c).UserID, id, *req.Minutes)
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, v)
}

func (h sessionHandlers) end(c echo.Context) error {
	id, err := pathUUID(c, "id")
	if err != nil {
		return err
	}
	v, err := h.svc.End(c.Request().Context(), principal(c), id)
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, v)
}

func (h sessionHandlers) reroute(c echo.Context) error {
	id, err := pathUUID(c, "id")
	if err != nil {
		return err
	}
	v, err := h.svc.Reroute(c.Request().Context(), principal(c).UserID, id)
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, v)
}

func (h sessionHandlers) get(c echo.Context) error {
	id, err := pathUUID(c, "id")
	if err != nil {
		return err
	}
	v, err := h.svc.Get(c.Request().Context(), principal(c), id)
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, v)
}

func (h sessionHandlers) list(c echo.Context) error {
	vs, err := h.svc.List(c.Request().Context(), principal(c))
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, sessionListResponse{Sessions: vs})
}

func invalid(field, reason string) error { return core.Invalid(field, reason) }
