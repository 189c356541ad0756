package httpapi

import (
	"context"
	"errors"

	"github.com/labstack/echo/v4"

	"github.com/halobestie/mitra-availability/core/auth"
	"github.com/halobestie/mitra-availability/core/mitras"
	"github.com/halobestie/mitra-availability/core/sessions"
	"github.com/halobestie/mitra-availability/ports"
)

// Services are the core services the API serves.
type Services struct {
	Auth     *auth.Service
	Mitras   *mitras.Service
	Sessions *sessions.Service
	Hub      *Hub
}

// RegisterRoutes adds the API routes of docs/contract.md §3–§6 to e.
func RegisterRoutes(e *echo.Echo, s Services) error {
	if s.Auth == nil || s.Mitras == nil || s.Sessions == nil || s.Hub == nil {
		return errors.New("httpapi: missing service")
	}
	ah := authHandlers{svc: s.Auth}
	adm := adminHandlers{mitras: s.Mitras}
	mh := mitraHandlers{mitras: s.Mitras}
	av := availabilityHandlers{mitras: s.Mitras}
	sh := sessionHandlers{svc: s.Sessions}

	// Every route a mitra can call refuses a deactivated one (403
	// account_deactivated); the /api/mitra/status routes check it in the
	// service, the heartbeat on the mirror.
	active := denyDeactivated(s.Mitras)
	anyRole := chain(authenticate(s.Auth), active)
	admin := authenticate(s.Auth, ports.RoleAdmin)
	mitraStatus := authenticate(s.Auth, ports.RoleMitra)
	mitra := chain(authenticate(s.Auth, ports.RoleMitra), active)
	customer := authenticate(s.Auth, ports.RoleCustomer)
	participant := chain(authenticate(s.Auth, ports.RoleCustomer, ports.RoleMitra), active)

	e.POST("/api/customers", ah.signup)
	e.POST("/api/auth/login", ah.login)
	e.POST("/api/auth/refresh", ah.refresh)
	e.POST("/api/auth/logout", ah.logout, anyRole)

	e.POST("/api/admin/mitras", adm.createMitra, admin)
	e.GET("/api/admin/mitras/:id", adm.getMitra, admin)
	e.PATCH("/api/admin/mitras/:id", adm.patchMitra, admin)
	e.GET("/api/admin/dashboard", adm.dashboard, admin)

	e.GET("/api/mitra/status", mh.status, mitraStatus)
	e.POST("/api/mitra/status/online", mh.online, mitraStatus)
	e.POST("/api/mitra/status/offline", mh.offline, mitraStatus)
	e.POST("/api/mitra/status/heartbeat", mh.heartbeat, mitraStatus)

	e.GET("/api/availability", av.beacon)
	e.GET("/api/mitras/:id/availability", av.mitra, anyRole)

	e.POST("/api/sessions", sh.create, customer)
	e.GET("/api/sessions", sh.list, anyRole)
	e.GET("/api/sessions/:id", sh.get, anyRole)
	e.POST("/api/sessions/:id/accept", sh.accept, mitra)
	e.POST("/api/sessions/:id/pay", sh.pay, customer)
	e.POST("/api/sessions/:id/extend", sh.extend, customer)
	e.POST("/api/sessions/:id/end", sh.end, participant)
	e.POST("/api/sessions/:id/reroute", sh.reroute, customer)

	e.GET("/ws", s.Hub.Handler(func(token string) (auth.Principal, error) {
		p, err := s.Auth.Authenticate(token)
		if err != nil {
			return auth.Principal{}, err
		}
		if p.Role == ports.RoleMitra {
			// No request context reaches here; the mirror call carries its own deadline.
			if err := s.Mitras.EnsureActive(context.Background(), p.UserID); err != nil {
				return auth.Principal{}, err
			}
		}
		return p, nil
	}))
	return nil
}
