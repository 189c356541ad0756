package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/halobestie/mitra-availability/docs"
)

// readyTimeout bounds one readiness probe, so a hung store answers 503 rather than hanging the probe.
const readyTimeout = 3 * time.Second

// mimeYAML is the media type of GET /docs (RFC 9512).
const mimeYAML = "application/yaml"

type healthResponse struct {
	Status string `json:"status"`
}

type readyResponse struct {
	Store string `json:"store"`
	Cache string `json:"cache"`
}

// registerOpsRoutes adds the operational routes of docs/contract.md §9.
func registerOpsRoutes(e *echo.Echo, reg *prometheus.Registry, ready func(context.Context) ReadyStatus) {
	e.GET("/healthz", healthz)
	e.GET("/readyz", readyz(ready))
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{})))
	e.GET("/docs", openAPIDoc)
}

// healthzBody is the constant answer of GET /healthz, encoded once (as
// c.JSON would encode healthResponse{Status: "ok"}).
var healthzBody = mustJSON(healthResponse{Status: "ok"})

// jsonContentType is the Content-Type header value of a JSON answer, shared
// read-only by every /healthz response (net/http copies the header map's
// values when it writes the header, and nothing appends to them).
var jsonContentType = []string{echo.MIMEApplicationJSON}

// healthz answers 200 while the process can serve at all: the constant
// body, as c.JSONBlob would write it, without building its header value.
func healthz(c echo.Context) error {
	r := c.Response()
	r.Header()[echo.HeaderContentType] = jsonContentType
	r.WriteHeader(http.StatusOK)
	_, err := r.Write(healthzBody)
	return err
}

// mustJSON encodes v as c.JSON does: JSON and a newline.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return append(b, '\n')
}

// readyz answers 200 while the store answers (the cache only degrades), 503 otherwise.
func readyz(ready func(context.Context) ReadyStatus) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx, cancel := context.WithTimeout(c.Request().Context(), readyTimeout)
		defer cancel()
		st := ready(ctx)

		resp := readyResponse{Store: "ok", Cache: "ok"}
		if !st.CacheOK {
			resp.Cache = "degraded"
		}
		status := http.StatusOK
		if !st.StoreOK {
			resp.Store = "unavailable"
			status = http.StatusServiceUnavailable
		}
		return c.JSON(status, resp)
	}
}

// openAPIDoc serves the OpenAPI document built into the binary.
func openAPIDoc(c echo.Context) error {
	return c.Blob(http.StatusOK, mimeYAML, docs.OpenAPI)
}
