package httpapi

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/halobestie/mitra-availability/core/mitras"
)

type availabilityHandlers struct {
	mitras *mitras.Service
}

func (h availabilityHandlers) beacon(c echo.Context) error {
	b, err := h.mitras.Beacon(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toBeaconResponse(b))
}

func (h availabilityHandlers) mitra(c echo.Context) error {
	id, err := pathUUID(c, "id")
	if err != nil {
		return err
	}
	a, err := h.mitras.AvailabilityOf(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toAvailabilityResponse(a))
}
