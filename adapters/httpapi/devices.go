package httpapi

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/halobestie/mitra-availability/core/push"
)

type deviceHandlers struct {
	devices *push.Devices
}

type putDeviceRequest struct {
	Platform *string `json:"platform"`
	Token    *string `json:"token"`
}

// put registers the caller's device: PUT /api/me/device (docs/contract.md §12).
func (h deviceHandlers) put(c echo.Context) error {
	var req putDeviceRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.Platform == nil {
		return invalid("platform", "is required")
	}
	if req.Token == nil {
		return invalid("token", "is required")
	}
	if err := h.devices.Register(c.Request().Context(), principal(c).UserID, *req.Platform, *req.Token); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// remove forgets the caller's device: DELETE /api/me/device.
func (h deviceHandlers) remove(c echo.Context) error {
	if err := h.devices.Unregister(c.Request().Context(), principal(c).UserID); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
