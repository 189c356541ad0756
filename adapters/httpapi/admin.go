package httpapi

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/halobestie/mitra-availability/core"
	"github.com/halobestie/mitra-availability/core/auth"
	"github.com/halobestie/mitra-availability/core/mitras"
	"github.com/halobestie/mitra-availability/core/sessions"
	"github.com/halobestie/mitra-availability/ports"
)

type adminHandlers struct {
	mitras   *mitras.Service
	sessions *sessions.Service
}

type createMitraRequest struct {
	Phone       string `json:"phone"`
	Password    string `json:"password"`
	DisplayName string `json:"display_name"`
	Capacity    *int   `json:"capacity"`
}

func (h adminHandlers) createMitra(c echo.Context) error {
	var req createMitraRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	v, err := h.mitras.Create(c.Request().Context(),
		auth.NewAccount{Phone: req.Phone, Password: req.Password, DisplayName: req.DisplayName}, req.Capacity)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, toMitraResponse(v))
}

func (h adminHandlers) getMitra(c echo.Context) error {
	id, err := pathUUID(c, "id")
	if err != nil {
		return err
	}
	v, err := h.mitras.Get(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toMitraResponse(v))
}

type patchMitraRequest struct {
	IsActive *bool `json:"is_active"`
	Capacity *int  `json:"capacity"`
}

func (h adminHandlers) patchMitra(c echo.Context) error {
	id, err := pathUUID(c, "id")
	if err != nil {
		return err
	}
	var req patchMitraRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.IsActive == nil && req.Capacity == nil {
		return core.Invalid("body", "must set is_active or capacity")
	}
	v, err := h.mitras.Patch(c.Request().Context(), id, ports.MitraPatch{IsActive: req.IsActive, Capacity: req.Capacity})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toMitraResponse(v))
}

func (h adminHandlers) dashboard(c echo.Context) error {
	d, err := h.mitras.Dashboard(c.Request().Context())
	if err != nil {
		return err
	}
	q, err := h.sessions.QueueSummary(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toDashboardResponse(d, q))
}
