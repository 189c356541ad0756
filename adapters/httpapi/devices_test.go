package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/halobestie/mitra-availability/ports"
)

// deviceTestServer serves the whole API in memory with a signed-up customer.
func deviceTestServer(t *testing.T) (srv testServer, token, userID string, devices func() map[string]ports.Device) {
	t.Helper()
	e, st := buildServerWithStore(t)
	srv = testServer{e: e}
	rec := srv.do(t, http.MethodPost, "/api/customers",
		strings.NewReader(`{"phone":"+628123400001","password":"password-1","display_name":"C"}`), nil)
	if rec.Code != http.StatusCreated {
		t.Fatalf("signup: %d %s", rec.Code, rec.Body)
	}
	rec = srv.do(t, http.MethodPost, "/api/auth/login", strings.NewReader(`{"phone":"+628123400001","password":"password-1"}`), nil)
	var login struct {
		AccessToken string `json:"access_token"`
		User        struct {
			ID string `json:"id"`
		} `json:"user"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &login); err != nil || login.AccessToken == "" {
		t.Fatalf("login: %d %s", rec.Code, rec.Body)
	}
	devices = func() map[string]ports.Device {
		ds, err := st.Devices(t.Context(), []string{login.User.ID})
		if err != nil {
			t.Fatal(err)
		}
		return ds
	}
	return srv, login.AccessToken, login.User.ID, devices
}

func TestPutAndDeleteDevice(t *testing.T) {
	srv, token, userID, devices := deviceTestServer(t)
	auth := map[string]string{"Authorization": "Bearer " + token, "Content-Type": "application/json"}
	put := func(body string) *httptest.ResponseRecorder {
		return srv.do(t, http.MethodPut, "/api/me/device", strings.NewReader(body), auth)
	}

	if rec := put(`{"platform":"fcm","token":"first"}`); rec.Code != http.StatusNoContent || rec.Body.Len() != 0 {
		t.Fatalf("PUT = %d %q, want 204 and no body", rec.Code, rec.Body)
	}
	if rec := put(`{"platform":"fcm","token":"second"}`); rec.Code != http.StatusNoContent {
		t.Fatalf("second PUT = %d %s", rec.Code, rec.Body)
	}
	if d := devices()[userID]; d.Token != "second" || d.Platform != ports.PlatformFCM {
		t.Errorf("device = %+v, want the second token (the last one wins)", d)
	}
	for range 2 { // deleting twice is fine
		if rec := srv.do(t, http.MethodDelete, "/api/me/device", nil, auth); rec.Code != http.StatusNoContent {
			t.Fatalf("DELETE = %d %s", rec.Code, rec.Body)
		}
	}
	if ds := devices(); len(ds) != 0 {
		t.Errorf("devices after DELETE = %+v", ds)
	}
}

func TestPutDeviceBadInput(t *testing.T) {
	srv, token, _, devices := deviceTestServer(t)
	auth := map[string]string{"Authorization": "Bearer " + token, "Content-Type": "application/json"}
	cases := map[string]struct{ body, field string }{
		"unknown platform": {`{"platform":"apns","token":"t"}`, "platform"},
		"platform number":  {`{"platform":1,"token":"t"}`, "platform"},
		"no platform":      {`{"token":"t"}`, "platform"},
		"empty token":      {`{"platform":"fcm","token":""}`, "token"},
		"no token":         {`{"platform":"fcm"}`, "token"},
		"null token":       {`{"platform":"fcm","token":null}`, "token"},
		"oversized token":  {`{"platform":"fcm","token":"` + strings.Repeat("x", 4097) + `"}`, "token"},
		"control in token": {`{"platform":"fcm","token":"a\u0000b"}`, "token"},
		"unknown field":    {`{"platform":"fcm","token":"t","user_id":"x"}`, "user_id"},
		"empty body":       {``, "request body"},
		"not an object":    {`["fcm"]`, "request body"},
	}
	for name, c := range cases {
		rec := srv.do(t, http.MethodPut, "/api/me/device", strings.NewReader(c.body), auth)
		if rec.Code != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400; body %s", name, rec.Code, rec.Body)
			continue
		}
		if got := envelope(t, rec); got.Code != codeInvalidRequest || !strings.HasPrefix(got.Message, c.field+":") {
			t.Errorf("%s: error %+v, want invalid_request naming %s", name, got, c.field)
		}
	}
	if ds := devices(); len(ds) != 0 {
		t.Errorf("bad input stored a device: %+v", ds)
	}
	// 4096 characters is the limit, not over it.
	if rec := srv.do(t, http.MethodPut, "/api/me/device",
		strings.NewReader(`{"platform":"fcm","token":"`+strings.Repeat("é", 4096)+`"}`), auth); rec.Code != http.StatusNoContent {
		t.Errorf("4096-character token: %d %s", rec.Code, rec.Body)
	}
}

func TestDeviceNeedsAuthentication(t *testing.T) {
	srv, _, _, _ := deviceTestServer(t)
	for _, m := range []string{http.MethodPut, http.MethodDelete} {
		rec := srv.do(t, m, "/api/me/device", strings.NewReader(`{"platform":"fcm","token":"t"}`), nil)
		expectError(t, rec, http.StatusUnauthorized, codeUnauthenticated, "")
	}
}
