package httpapi

import (
	"encoding/json"
	"net/http"
	"sync/atomic"

	"github.com/labstack/echo/v4"

	"github.com/halobestie/mitra-availability/core/mitras"
)

type availabilityHandlers struct {
	mitras *mitras.Service
	// beaconBody is the encoded answer of the last beacon served: the beacon
	// changes once per snapshot (AVAILABILITY_SNAPSHOT_TTL_SECONDS), so the
	// requests in between send the same bytes.
	beaconBody *atomic.Pointer[encodedBeacon]
}

type encodedBeacon struct {
	b    mitras.Beacon
	body []byte
}

func newAvailabilityHandlers(m *mitras.Service) availabilityHandlers {
	return availabilityHandlers{mitras: m, beaconBody: new(atomic.Pointer[encodedBeacon])}
}

func (h availabilityHandlers) beacon(c echo.Context) error {
	b, err := h.mitras.Beacon(c.Request().Context())
	if err != nil {
		return err
	}
	enc := h.beaconBody.Load()
	if enc == nil || enc.b.AvailableMitras != b.AvailableMitras || !enc.b.AsOf.Equal(b.AsOf) {
		body, err := json.Marshal(toBeaconResponse(b))
		if err != nil {
			return err
		}
		enc = &encodedBeacon{b: b, body: append(body, '\n')}
		h.beaconBody.Store(enc)
	}
	return c.JSONBlob(http.StatusOK, enc.body)
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
	return writeJSON(c, http.StatusOK, toAvailabilityResponse(a))
}
