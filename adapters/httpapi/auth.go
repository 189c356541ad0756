package httpapi

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/halobestie/mitra-availability/core"
	"github.com/halobestie/mitra-availability/core/auth"
	"github.com/halobestie/mitra-availability/core/mitras"
	"github.com/halobestie/mitra-availability/ports"
)

// authenticate returns middleware that requires a valid access token whose
// role is one of roles (any role when none is given).
func authenticate(svc *auth.Service, roles ...ports.Role) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			tok, err := bearerToken(c.Request())
			if err != nil {
				return err
			}
			p, err := svc.Authenticate(tok)
			if err != nil {
				return err
			}
			if len(roles) > 0 && !slices.Contains(roles, p.Role) {
				return fmt.Errorf("%w: this endpoint is for the %s role", core.ErrForbidden, roles[0])
			}
			setPrincipal(c, p)
			return next(c)
		}
	}
}

// bearerToken extracts the token of an "Authorization: Bearer …" header.
func bearerToken(r *http.Request) (string, error) {
	h := r.Header.Get(echo.HeaderAuthorization)
	if h == "" {
		return "", fmt.Errorf("%w: missing Authorization header", core.ErrUnauthenticated)
	}
	scheme, tok, ok := strings.Cut(h, " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", fmt.Errorf("%w: Authorization must be \"Bearer <access_token>\"", core.ErrUnauthenticated)
	}
	return tok, nil
}

type authHandlers struct {
	svc *auth.Service
}

type signupRequest struct {
	Phone       string `json:"phone"`
	Password    string `json:"password"`
	DisplayName string `json:"display_name"`
}

func (h authHandlers) signup(c echo.Context) error {
	var req signupRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	u, err := h.svc.SignupCustomer(c.Request().Context(), auth.NewAccount(req))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, toUserResponse(u))
}

type loginRequest struct {
	Phone    string `json:"phone"`
	Password string `json:"password"`
}

func (h authHandlers) login(c echo.Context) error {
	var req loginRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	t, err := h.svc.LoginFrom(c.Request().Context(), c.RealIP(), req.Phone, req.Password)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toTokensResponse(t))
}

type refreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

func (h authHandlers) refresh(c echo.Context) error {
	var req refreshRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	t, err := h.svc.Refresh(c.Request().Context(), req.RefreshToken)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toTokensResponse(t))
}

func (h authHandlers) logout(c echo.Context) error {
	if err := h.svc.Logout(c.Request().Context(), principal(c)); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// denyDeactivated refuses a deactivated mitra (403 account_deactivated); it
// runs after authenticate and lets other roles through.
func denyDeactivated(m *mitras.Service) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if p := principal(c); p.Role == ports.RoleMitra {
				if err := m.EnsureActive(c.Request().Context(), p.UserID); err != nil {
					return err
				}
			}
			return next(c)
		}
	}
}

// chain composes middleware: the first runs first.
func chain(mw ...echo.MiddlewareFunc) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		for i := len(mw) - 1; i >= 0; i-- {
			next = mw[i](next)
		}
		return next
	}
}
