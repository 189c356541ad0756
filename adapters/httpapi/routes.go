package httpapi

import (
	"errors"

	"github.com/labstack/echo/v4"

	"github.com/halobestie/mitra-availability/core/auth"
	"github.com/halobestie/mitra-availability/core/mitras"
	"github.com/halobestie/mitra-availability/ports"
)

// Services are the core services the API serves.
type Services struct {
	Auth   *auth.Service
	Mitras *mitras.Service
}

// RegisterRoutes adds the API routes of CONTRACT §3–§6 to e.
func RegisterRoutes(e *echo.Echo, s Services) error {
	if s.Auth == nil || s.Mitras == nil {
		return errors.New("httpapi: missing service")
	}
	ah := authHandlers{svc: s.Auth}
	adm := adminHandlers{mitras: s.Mitras}
	mh := mitraHandlers{mitras: s.Mitras}
	av := availabilityHandlers{mitras: s.Mitras}

	anyRole := authenticate(s.Auth)
	admin := authenticate(s.Auth, ports.RoleAdmin)
	mitra := authenticate(s.Auth, ports.RoleMitra)

	e.POST("/api/customers", ah.signup)
	e.POST("/api/auth/login", ah.login)
	e.POST("/api/auth/refresh", ah.refresh)
	e.POST("/api/auth/logout", ah.logout, anyRole)

	e.POST("/api/admin/mitras", adm.createMitra, admin)
	e.GET("/api/admin/mitras/:id", adm.getMitra, admin)
	e.PATCH("/api/admin/mitras/:id", adm.patchMitra, admin)
	e.GET("/api/admin/dashboard", adm.dashboard, admin)

	e.GET("/api/mitra/status", mh.status, mitra)
	e.POST("/api/mitra/status/online", mh.online, mitra)
	e.POST("/api/mitra/status/offline", mh.offline, mitra)
	e.POST("/api/mitra/status/heartbeat", mh.heartbeat, mitra)

	e.GET("/api/availability", av.beacon)
	e.GET("/api/mitras/:id/availability", av.mitra, anyRole)
	return nil
}
