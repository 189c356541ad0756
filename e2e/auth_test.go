package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/client"
)

// docs/contract.md §3: POST /api/customers creates a customer and answers its user view;
// a phone in use is 409 phone_taken.
func TestCustomerSignup(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)

	phone := randomPhone(t)
	user := s.signupCustomer(t, phone, "correct horse", "Ayu")
	if user.Role != client.UserRoleCustomer || user.Phone != phone || user.DisplayName != "Ayu" {
		t.Fatalf("signup view = %s, want role customer, phone %s, display_name Ayu", jsonOf(user), phone)
	}

	// The account exists: logging in answers the same user view.
	tok := s.login(t, phone, "correct horse")
	if tok.User != user {
		t.Fatalf("login user = %s, want the signup view %s", jsonOf(tok.User), jsonOf(user))
	}

	r := s.request(t, http.MethodPost, "/api/customers", "", map[string]any{
		"phone": phone, "password": "another password", "display_name": "Someone else",
	})
	wantError(t, "signup with a phone in use", r, http.StatusConflict, "phone_taken")

	r = s.request(t, http.MethodPost, "/api/customers", "", map[string]any{
		"phone": adminPhone, "password": "another password", "display_name": "Not the admin",
	})
	wantError(t, "signup with the admin's phone", r, http.StatusConflict, "phone_taken")

	// The failed signups changed nothing: the original password still works.
	s.login(t, phone, "correct horse")
	r = s.request(t, http.MethodPost, "/api/auth/login", "", map[string]any{"phone": phone, "password": "another password"})
	wantError(t, "login with the rejected signup's password", r, http.StatusUnauthorized, "invalid_credentials")
}

// docs/contract.md §3: login answers {access_token, refresh_token, token_type "Bearer",
// expires_in, user}; bad credentials are 401 invalid_credentials.
func TestLogin(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"ACCESS_TOKEN_TTL": "10m"})

	phone := randomPhone(t)
	user := s.signupCustomer(t, phone, "s3cret-password", "Budi")
	tok := s.login(t, phone, "s3cret-password")
	if tok.ExpiresIn != 600 {
		t.Fatalf("expires_in = %d, want 600 (ACCESS_TOKEN_TTL=10m)", tok.ExpiresIn)
	}
	if tok.User != user {
		t.Fatalf("login user = %s, want %s", jsonOf(tok.User), jsonOf(user))
	}

	admin := s.login(t, adminPhone, adminPassword)
	if au := admin.User; au.Role != client.UserRoleAdmin || au.Phone != adminPhone {
		t.Fatalf("admin login user = %s, want role admin, phone %s", jsonOf(au), adminPhone)
	}

	for _, c := range []struct {
		name, phone, password string
	}{
		{"wrong password", phone, "s3cret-passwordX"},
		{"password of another case", phone, "S3CRET-PASSWORD"},
		{"unknown phone", randomPhone(t), "s3cret-password"},
		{"admin with a wrong password", adminPhone, adminPassword + "x"},
	} {
		r := s.request(t, http.MethodPost, "/api/auth/login", "", map[string]any{"phone": c.phone, "password": c.password})
		wantError(t, c.name, r, http.StatusUnauthorized, "invalid_credentials")
	}
}

// docs/contract.md §3: a refresh answers new tokens and retires the old refresh token;
// presenting a rotated token again revokes that auth session (its newest token
// fails too) but not the user's other sessions.
func TestRefreshRotation(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	phone := randomPhone(t)
	user := s.signupCustomer(t, phone, "rotate-me-please", "Citra")

	first := s.login(t, phone, "rotate-me-please")
	other := s.login(t, phone, "rotate-me-please") // a second, independent login

	second := s.refresh(t, first.Refresh)
	if second.Access == first.Access || second.Refresh == first.Refresh {
		t.Fatal("refresh answered the same tokens again")
	}
	if second.User != user {
		t.Fatalf("refresh user = %s, want %s", jsonOf(second.User), jsonOf(user))
	}
	third := s.refresh(t, second.Refresh) // the newest token keeps working
	if third.Refresh == second.Refresh {
		t.Fatal("second refresh answered the same refresh token")
	}

	// Reuse of a rotated token: 401, and the whole auth session is revoked.
	wantError(t, "reusing the first refresh token", s.refreshResponse(t, first.Refresh),
		http.StatusUnauthorized, "unauthenticated")
	wantError(t, "the newest refresh token after a reuse", s.refreshResponse(t, third.Refresh),
		http.StatusUnauthorized, "unauthenticated")
	wantError(t, "the second refresh token after a reuse", s.refreshResponse(t, second.Refresh),
		http.StatusUnauthorized, "unauthenticated")

	// The other login is another auth session: untouched.
	s.refresh(t, other.Refresh)

	for _, c := range []struct{ name, token string }{
		{"garbage refresh token", "not-a-token"},
		{"tampered refresh token", tamper(third.Refresh)},
	} {
		wantError(t, c.name, s.refreshResponse(t, c.token), http.StatusUnauthorized, "unauthenticated")
	}
}

// docs/contract.md §3: a refresh token lives REFRESH_TOKEN_TTL from its issue; each
// refresh issues one valid for REFRESH_TOKEN_TTL from then. An expired access
// token is 401 unauthenticated.
func TestTokenExpiry(t *testing.T) {
	t.Parallel()
	const ttl = 4 * time.Second
	s := startServer(t, map[string]string{"REFRESH_TOKEN_TTL": "4s", "ACCESS_TOKEN_TTL": "2s"})
	login := s.login(t, adminPhone, adminPassword)
	if login.ExpiresIn != 2 {
		t.Fatalf("expires_in = %d, want 2 (ACCESS_TOKEN_TTL=2s)", login.ExpiresIn)
	}
	issued := time.Now()

	time.Sleep(ttl * 5 / 8) // 2.5 s: the first token is still valid
	second := s.refresh(t, login.Refresh)
	refreshed := time.Now()

	// Past the first token's lifetime but within the second's.
	time.Sleep(time.Until(issued.Add(ttl + time.Second)))
	if time.Since(refreshed) >= ttl {
		t.Skip("the machine is too slow for this timing test")
	}
	// The access token of the login has expired by now.
	r := s.get(t, "/api/admin/dashboard", login.Access)
	wantError(t, "an expired access token", r, http.StatusUnauthorized, "unauthenticated")
	third := s.refresh(t, second.Refresh)
	thirdAt := time.Now()

	time.Sleep(time.Until(thirdAt.Add(ttl + time.Second)))
	wantError(t, "an expired refresh token", s.refreshResponse(t, third.Refresh),
		http.StatusUnauthorized, "unauthenticated")
}

// docs/contract.md §3: a refresh token is never accepted as an access token, nor the reverse.
func TestTokenKinds(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	admin := s.login(t, adminPhone, adminPassword)

	// The access token works where an access token is expected.
	wantStatus(t, "dashboard with the access token", s.get(t, "/api/admin/dashboard", admin.Access), http.StatusOK)

	wantError(t, "refresh token as Bearer", s.get(t, "/api/admin/dashboard", admin.Refresh),
		http.StatusUnauthorized, "unauthenticated")
	wantError(t, "access token as refresh_token", s.refreshResponse(t, admin.Access),
		http.StatusUnauthorized, "unauthenticated")

	mitraPhone := randomPhone(t)
	s.createMitra(t, admin.Access, client.CreateMitraRequest{Phone: mitraPhone, Password: "mitra-password", DisplayName: "Dewi"})
	mitra := s.login(t, mitraPhone, "mitra-password")
	wantStatus(t, "mitra status with the access token", s.get(t, "/api/mitra/status", mitra.Access), http.StatusOK)
	wantError(t, "mitra refresh token as Bearer", s.get(t, "/api/mitra/status", mitra.Refresh),
		http.StatusUnauthorized, "unauthenticated")
	wantError(t, "logout with a refresh token as Bearer",
		s.request(t, http.MethodPost, "/api/auth/logout", mitra.Refresh, nil),
		http.StatusUnauthorized, "unauthenticated")

	// The refused attempts had no side effect: both sessions still refresh.
	s.refresh(t, admin.Refresh)
	s.refresh(t, mitra.Refresh)

	// Malformed credentials.
	for _, c := range []struct{ name, header string }{
		{"garbage Bearer", "Bearer not-a-token"},
		{"tampered access token", "Bearer " + tamper(admin.Access)},
		{"empty Bearer", "Bearer "},
		{"Basic scheme", "Basic YWRtaW46cGFzc3dvcmQ="},
		{"token without a scheme", admin.Access},
	} {
		req, err := http.NewRequest(http.MethodGet, s.URL+"/api/admin/dashboard", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", c.header)
		wantError(t, c.name, s.send(t, req), http.StatusUnauthorized, "unauthenticated")
	}
}

// docs/contract.md §3: logout (Bearer, no body) answers 204 and revokes the auth
// session the token was issued for; the user's other sessions stay.
func TestLogout(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	phone := randomPhone(t)
	s.signupCustomer(t, phone, "logout-password", "Eka")
	a := s.login(t, phone, "logout-password")
	b := s.login(t, phone, "logout-password")

	r := s.request(t, http.MethodPost, "/api/auth/logout", a.Access, nil)
	wantStatus(t, "logout", r, http.StatusNoContent)
	if len(strings.TrimSpace(string(r.Raw))) != 0 {
		t.Fatalf("logout answered a body with its 204: %q", r.Raw)
	}

	wantError(t, "refresh of the logged-out session", s.refreshResponse(t, a.Refresh),
		http.StatusUnauthorized, "unauthenticated")
	s.refresh(t, b.Refresh) // the other session keeps working

	wantError(t, "logout without a token", s.request(t, http.MethodPost, "/api/auth/logout", "", nil),
		http.StatusUnauthorized, "unauthenticated")
}

// tamper changes one character in the middle of a token's last dot-separated
// part (a JWT's signature), keeping its shape.
func tamper(token string) string {
	start := strings.LastIndexByte(token, '.') + 1
	if start >= len(token) {
		return token + "x"
	}
	b := []byte(token)
	i := start + (len(token)-start)/2
	if b[i] == 'a' {
		b[i] = 'b'
	} else {
		b[i] = 'a'
	}
	return string(b)
}
