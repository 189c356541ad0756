package httpapi

import (
	"encoding/json"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/halobestie/mitra-availability/core/auth"
	"github.com/halobestie/mitra-availability/core/mitras"
	"github.com/halobestie/mitra-availability/core/sessions"
	"github.com/halobestie/mitra-availability/ports"
)

// Response bodies. Every field is always present; unknown values are null.

type userResponse struct {
	ID          string `json:"id"`
	Role        string `json:"role"`
	Phone       string `json:"phone"`
	DisplayName string `json:"display_name"`
}

type tokensResponse struct {
	AccessToken  string       `json:"access_token"`
	RefreshToken string       `json:"refresh_token"`
	TokenType    string       `json:"token_type"`
	ExpiresIn    int64        `json:"expires_in"`
	User         userResponse `json:"user"`
}

type mitraResponse struct {
	ID              string     `json:"id"`
	DisplayName     string     `json:"display_name"`
	Phone           string     `json:"phone"`
	IsActive        bool       `json:"is_active"`
	IsOnline        bool       `json:"is_online"`
	Presence        string     `json:"presence"`
	Capacity        int        `json:"capacity"`
	ActiveSessions  int        `json:"active_sessions"`
	LastHeartbeatAt *time.Time `json:"last_heartbeat_at"`
	Reachable       bool       `json:"reachable"`
	Available       bool       `json:"available"`
}

type availabilityResponse struct {
	MitraID   string `json:"mitra_id"`
	Reachable bool   `json:"reachable"`
	Available bool   `json:"available"`
}

type beaconResponse struct {
	AvailableMitras int       `json:"available_mitras"`
	AsOf            time.Time `json:"as_of"`
}

type dashboardResponse struct {
	OnlineMitras      int `json:"online_mitras"`
	AvailableMitras   int `json:"available_mitras"`
	DeactivatedMitras int `json:"deactivated_mitras"`
	Sessions          struct {
		Searching      int `json:"searching"`
		PendingPayment int `json:"pending_payment"`
		Active         int `json:"active"`
	} `json:"sessions"`
	Cache struct {
		Backend string `json:"backend"`
		Healthy bool   `json:"healthy"`
	} `json:"cache"`
	Queue struct {
		Length             int `json:"length"`
		LongestWaitSeconds int `json:"longest_wait_seconds"`
	} `json:"queue"`
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func toUserResponse(u ports.User) userResponse {
	return userResponse{ID: u.ID, Role: string(u.Role), Phone: u.Phone, DisplayName: u.DisplayName}
}

func toTokensResponse(t auth.Tokens) tokensResponse {
	return tokensResponse{
		AccessToken:  t.AccessToken,
		RefreshToken: t.RefreshToken,
		TokenType:    "Bearer",
		ExpiresIn:    int64(t.ExpiresIn.Seconds()),
		User:         toUserResponse(t.User),
	}
}

func toMitraResponse(v mitras.View) mitraResponse {
	return mitraResponse{
		ID:              v.ID,
		DisplayName:     v.DisplayName,
		Phone:           v.Phone,
		IsActive:        v.IsActive,
		IsOnline:        v.IsOnline,
		Presence:        string(v.Presence),
		Capacity:        v.Capacity,
		ActiveSessions:  v.ActiveSessions,
		LastHeartbeatAt: utc(v.LastHeartbeatAt),
		Reachable:       v.Reachable,
		Available:       v.Available,
	}
}

func toAvailabilityResponse(a mitras.Availability) availabilityResponse {
	return availabilityResponse{MitraID: a.MitraID, Reachable: a.Reachable, Available: a.Available}
}

func toBeaconResponse(b mitras.Beacon) beaconResponse {
	return beaconResponse{AvailableMitras: b.AvailableMitras, AsOf: b.AsOf.UTC()}
}

func toDashboardResponse(d mitras.Dashboard, q sessions.QueueSummary) dashboardResponse {
	var r dashboardResponse
	r.OnlineMitras = d.Mitras.Online
	r.AvailableMitras = d.Mitras.Available
	r.DeactivatedMitras = d.Mitras.Deactivated
	r.Sessions.Searching = d.Sessions.Searching
	r.Sessions.PendingPayment = d.Sessions.PendingPayment
	r.Sessions.Active = d.Sessions.Active
	r.Cache.Backend = d.CacheBackend
	r.Cache.Healthy = d.CacheHealthy
	r.Queue.Length = q.Length
	r.Queue.LongestWaitSeconds = q.LongestWaitSeconds
	return r
}

// writeJSON answers v as JSON with status, as c.JSON does. c.JSON parses
// the query string of every request for Echo's ?pretty (a map per answer);
// a request without a query cannot ask for it, so its answer is encoded
// directly.
func writeJSON(c echo.Context, status int, v any) error {
	if c.Request().URL.RawQuery != "" {
		return c.JSON(status, v)
	}
	resp := c.Response()
	resp.Header().Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	resp.Status = status
	return json.NewEncoder(resp).Encode(v)
}
