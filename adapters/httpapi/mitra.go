package httpapi

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/halobestie/mitra-availability/core/mitras"
)

type mitraHandlers struct {
	mitras *mitras.Service
}

func (h mitraHandlers) status(c echo.Context) error {
	v, err := h.mitras.Status(c.Request().Context(), principal(c).UserID)
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, toMitraResponse(v))
}

func (h mitraHandlers) online(c echo.Context) error {
	v, err := h.mitras.GoOnline(c.Request().Context(), principal(c).UserID)
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, toMitraResponse(v))
}

func (h mitraHandlers) offline(c echo.Context) error {
	v, err := h.mitras.GoOffline(c.Request().Context(), principal(c).UserID)
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, toMitraResponse(v))
}

func (h mitraHandlers) away(c echo.Context) error {
	v, err := h.mitras.GoAway(c.Request().Context(), principal(c).UserID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toMitraResponse(v))
}

func (h mitraHandlers) heartbeat(c echo.Context) error {
	if err := h.mitras.Heartbeat(c.Request().Context(), principal(c).UserID); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
