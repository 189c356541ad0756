package httpapi

import (
	"context"
	"errors"

	"github.com/labstack/echo/v4"

	"github.com/halobestie/mitra-availability/core/auth"
	"github.com/halobestie/mitra-availability/core/mitras"
	"github.com/halobestie/mitra-availability/core/push"
	"github.com/halobestie/mitra-availability/core/sessions"
	"github.com/halobestie/mitra-availability/ports"
)

// Services are the core services the API serves.
type Services struct {
	Auth     *auth.Service
	Mitras   *mitras.Service
	Sessions *sessions.Service
	Devices  *push.Devices
	Hub      *Hub
	Events   ports.EventLog
}

// RegisterRoutes adds the API routes of docs/contract.md §3–§8 and §12 to e.
func RegisterRoutes(e *echo.Echo, s Services) error {
	if s.Auth == nil || s.Mitras == nil || s.Sessions == nil || s.Devices == nil || s.Hub == nil || s.Events == nil {
		return errors.New("httpapi: missing service")
	}
	ah := authHandlers{svc: s.Auth}
	adm := adminHandlers{mitras: s.Mitras, sessions: s.Sessions}
	mh := mitraHandlers{mitras: s.Mitras}
	av := newAvailabilityHandlers(s.Mitras)
	sh := sessionHandlers{svc: s.Sessions}
	dh := deviceHandlers{devices: s.Devices}

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
	// Each route's middleware wraps its handler here, once: Echo would wrap
	// it again on every request when given as e.GET's middleware argument.

	e.POST("/api/customers", ah.signup)
	e.POST("/api/auth/login", ah.login)
	e.POST("/api/auth/refresh", ah.refresh)
	e.POST("/api/auth/logout", anyRole(ah.logout))

	e.POST("/api/admin/mitras", admin(adm.createMitra))
	e.GET("/api/admin/mitras/:id", admin(adm.getMitra))
	e.PATCH("/api/admin/mitras/:id", admin(adm.patchMitra))
	e.GET("/api/admin/dashboard", admin(adm.dashboard))

	e.GET("/api/mitra/status", mitraStatus(mh.status))
	e.POST("/api/mitra/status/online", mitraStatus(mh.online))
	e.POST("/api/mitra/status/offline", mitraStatus(mh.offline))
	e.POST("/api/mitra/status/away", mitraStatus(mh.away))
	e.POST("/api/mitra/status/heartbeat", mitraStatus(mh.heartbeat))

	e.GET("/api/availability", av.beacon)
	e.GET("/api/mitras/:id/availability", anyRole(av.mitra))

	e.POST("/api/sessions", customer(sh.create))
	e.GET("/api/sessions", anyRole(sh.list))
	e.GET("/api/sessions/:id", anyRole(sh.get))
	e.POST("/api/sessions/:id/accept", mitra(sh.accept))
	e.POST("/api/sessions/:id/decline", mitra(sh.decline))
	e.POST("/api/sessions/:id/pay", customer(sh.pay))
	e.POST("/api/sessions/:id/extend", customer(sh.extend))
	e.POST("/api/sessions/:id/end", participant(sh.end))
	e.POST("/api/sessions/:id/reroute", customer(sh.reroute))

	e.PUT("/api/me/device", dh.put, anyRole)
	e.DELETE("/api/me/device", dh.remove, anyRole)
	e.GET("/api/events", eventsHandlers{log: s.Events}.list, anyRole)

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
