// Package e2e runs the real server binary against a real Postgres and talks to
// it over HTTP, as the mobile apps and the admin console do (docs/contract.md).
//
// TestMain builds ./app/cmd/server once (with -race when the tests themselves
// run with -race, unless E2E_RACE=0), or uses the prebuilt binary that
// E2E_SERVER_BIN names. Each test then starts its own server process on a
// fresh database created on TEST_DATABASE_URL and stops it with SIGTERM when it
// ends, asserting a clean exit. Without TEST_DATABASE_URL the tests that need
// Postgres skip, or fail when REQUIRE_INTEGRATION=1 (scripts/with-services.sh
// sets both). With -short nothing is built and every test skips.
//
// startCluster runs several instances as one deployment: one fresh database,
// the Valkey at TEST_VALKEY_URL under a key prefix of the test's own, one
// JWT_SECRET. A test may kill an instance with SIGKILL (Server.Kill); the
// cleanup then leaves it alone and stops the others as usual. Tests that
// need Valkey skip without TEST_VALKEY_URL, or fail under REQUIRE_INTEGRATION=1.
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"github.com/valkey-io/valkey-go"

	"github.com/halobestie/mitra-availability/adapters/postgres/pgtest"
	"github.com/halobestie/mitra-availability/client"
	"github.com/halobestie/mitra-availability/docs"
	"github.com/halobestie/mitra-availability/internal/openapicheck"
	"github.com/halobestie/mitra-availability/internal/serverproc"
)

// Environment variables the harness reads.
const (
	envRequireIntegration = "REQUIRE_INTEGRATION"
	envRace               = "E2E_RACE"
	envServerBin          = "E2E_SERVER_BIN"
	envValkeyURL          = "TEST_VALKEY_URL"
)

// Credentials of the admin every server is started with (ADMIN_PHONE, ADMIN_PASSWORD).
const (
	adminPhone    = "+620000000001"
	adminPassword = "admin-password-e2e"
)

const (
	requestTimeout  = 30 * time.Second
	dbSetupTimeout  = 60 * time.Second
	commandTimeout  = 60 * time.Second
	oneMiB          = 1 << 20
	contentTypeJSON = "application/json"
)

// serverBin is the path of the binary TestMain built; empty when it built none.
var serverBin string

// checker checks every answer against docs/openapi.yaml (checkedClient).
var (
	checkerOnce sync.Once
	checker     *openapicheck.Checker
	checkerErr  error
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if testing.Short() {
		return m.Run() // every test skips in short mode
	}
	if bin := os.Getenv(envServerBin); bin != "" {
		serverBin = bin // a prebuilt binary: nothing to build
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "mitra-e2e-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: temp dir: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin, err := serverproc.Build(dir, serverproc.RaceEnabled() && os.Getenv(envRace) != "0")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	serverBin = bin
	return m.Run()
}

// requireBinary skips the test in short mode; otherwise the binary must exist.
func requireBinary(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("e2e tests do not run with -short")
	}
	if serverBin == "" {
		t.Fatal("the server binary was not built")
	}
}

// freshDatabase creates an empty database on TEST_DATABASE_URL
// (pgtest.NewEmptyDSN: the test is skipped when it is unset, or fails under
// REQUIRE_INTEGRATION=1) and returns its DSN; the server migrates it at start.
// The database is dropped WITH (FORCE) when the test ends.
func freshDatabase(t *testing.T) string {
	t.Helper()
	requireBinary(t)
	return pgtest.NewEmptyDSN(t)
}

// Server is one running server process (URL, Output, Kill: see
// serverproc.Process) on its database.
type Server struct {
	*serverproc.Process
	// DSN is the server's own database.
	DSN string

	client *http.Client
	// api is the typed client (package client) over client.
	api *client.ClientWithResponses
}

// startServer starts the binary on a fresh database with the standard test
// environment, overridden by env, and waits until GET /readyz answers 200. The
// server is stopped with SIGTERM when the test ends and must exit 0 within 10 s.
// When env sets DATABASE_URL, that database is used instead of a fresh one.
func startServer(t *testing.T, env map[string]string) *Server {
	t.Helper()
	dsn := env["DATABASE_URL"]
	if dsn == "" {
		dsn = freshDatabase(t)
	}
	vars := map[string]string{
		"STORE_BACKEND":  "postgres",
		"DATABASE_URL":   dsn,
		"APP_ENV":        "test",
		"JWT_SECRET":     randomHex(t, 32),
		"ADMIN_PHONE":    adminPhone,
		"ADMIN_PASSWORD": adminPassword,
		"CACHE_BACKEND":  "memory",
	}
	for k, v := range env {
		vars[k] = v
	}
	s := startProcess(t, vars)
	s.DSN = dsn
	return s
}

// valkeyURL returns TEST_VALKEY_URL, skipping the test when it is unset (or
// failing it when REQUIRE_INTEGRATION=1).
func valkeyURL(t *testing.T) string {
	t.Helper()
	requireBinary(t)
	u := os.Getenv(envValkeyURL)
	if u != "" {
		return u
	}
	if os.Getenv(envRequireIntegration) == "1" {
		t.Fatalf("%s is not set but %s=1: this e2e test needs a Valkey (or Redis 7) server (run it through scripts/with-services.sh)",
			envValkeyURL, envRequireIntegration)
	}
	t.Skipf("skipping e2e test: set %s to a Valkey URL, or run it through scripts/with-services.sh", envValkeyURL)
	return ""
}

// Cluster is several server processes serving one deployment: one fresh
// database, one Valkey server and key prefix (CACHE_BACKEND=valkey, so that
// events cross instances over pub/sub), and one JWT_SECRET, so that a token
// issued by any instance works on every one.
type Cluster struct {
	// Servers are the instances, in start order.
	Servers []*Server
	// DSN is the shared database; Prefix the shared VALKEY_KEY_PREFIX.
	DSN, Prefix string

	vars map[string]string
}

// startCluster starts n instances (n ≥ 1) one after another, the first one
// applying the migrations. env overrides the standard test environment of
// every instance (startServer's, plus the shared Valkey, prefix and secret).
// Each instance is stopped with SIGTERM when the test ends (unless it was
// killed), then the prefix's keys are deleted and the database is dropped.
func startCluster(t *testing.T, n int, env map[string]string) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("startCluster: %d instances", n)
	}
	vurl := valkeyURL(t)
	dsn := freshDatabase(t)
	prefix := "e2e:" + randomHex(t, 8) + ":"
	// Registered before any server starts, so it runs after they all stopped.
	t.Cleanup(func() { deleteValkeyPrefix(t, vurl, prefix) })
	vars := map[string]string{
		"DATABASE_URL":      dsn,
		"CACHE_BACKEND":     "valkey",
		"VALKEY_URL":        vurl,
		"VALKEY_KEY_PREFIX": prefix,
		"JWT_SECRET":        randomHex(t, 32),
	}
	for k, v := range env {
		vars[k] = v
	}
	c := &Cluster{DSN: dsn, Prefix: prefix, vars: vars}
	for range n {
		c.add(t, nil)
	}
	return c
}

// add starts one more instance of the cluster, with env on top of the
// cluster's environment, and returns it.
func (c *Cluster) add(t *testing.T, env map[string]string) *Server {
	t.Helper()
	vars := make(map[string]string, len(c.vars)+len(env))
	for k, v := range c.vars {
		vars[k] = v
	}
	for k, v := range env {
		vars[k] = v
	}
	s := startServer(t, vars)
	c.Servers = append(c.Servers, s)
	return s
}

// startValkeyServer starts one instance with CACHE_BACKEND=valkey on its own
// database and key prefix (a cluster of one).
func startValkeyServer(t *testing.T, env map[string]string) *Server {
	t.Helper()
	return startCluster(t, 1, env).Servers[0]
}

// deleteValkeyPrefix deletes every key under prefix on the Valkey at url. A
// failure is only logged: the keys of a test never disturb another one.
func deleteValkeyPrefix(t *testing.T, url, prefix string) {
	t.Helper()
	opt, err := valkey.ParseURL(url)
	if err != nil {
		t.Logf("cleanup of Valkey prefix %s: %v", prefix, err)
		return
	}
	opt.DisableCache = true
	client, err := valkey.NewClient(opt)
	if err != nil {
		t.Logf("cleanup of Valkey prefix %s: %v", prefix, err)
		return
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), dbSetupTimeout)
	defer cancel()
	var cursor uint64
	for {
		e, err := client.Do(ctx, client.B().Scan().Cursor(cursor).Match(prefix+"*").Count(1000).Build()).AsScanEntry()
		if err != nil {
			t.Logf("cleanup of Valkey prefix %s: %v", prefix, err)
			return
		}
		if len(e.Elements) > 0 {
			if err := client.Do(ctx, client.B().Del().Key(e.Elements...).Build()).Error(); err != nil {
				t.Logf("cleanup of Valkey prefix %s: %v", prefix, err)
				return
			}
		}
		if e.Cursor == 0 {
			return
		}
		cursor = e.Cursor
	}
}

// startProcess starts the binary with vars (and a free HTTP_ADDR) and waits
// until GET /readyz answers 200; it is stopped with SIGTERM when the test ends
// and must exit 0 (serverproc.Start).
func startProcess(t *testing.T, vars map[string]string) *Server {
	t.Helper()
	requireBinary(t)
	s := &Server{Process: serverproc.Start(t, serverBin, vars), client: checkedClient(t)}
	api, err := client.New(s.URL, s.client)
	if err != nil {
		t.Fatalf("API client: %v", err)
	}
	s.api = api
	return s
}

// typed is the Response of an answer the typed client received (its
// HTTPResponse and Body): status and raw body; the client decoded its own copy.
func typed(hr *http.Response, raw []byte) Response {
	r := Response{Status: hr.StatusCode, ContentType: hr.Header.Get("Content-Type"), Raw: raw}
	if len(bytes.TrimSpace(raw)) > 0 && strings.HasPrefix(r.ContentType, contentTypeJSON) {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err == nil {
			r.Body = m
		}
	}
	return r
}

// ctx is the context of one typed request.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), requestTimeout)
	t.Cleanup(cancel)
	return c
}

// checkedClient is the HTTP client of every request of the suite: each answer
// it receives, errors included, is checked against docs/openapi.yaml, and one
// that does not match fails t.
func checkedClient(t *testing.T) *http.Client {
	t.Helper()
	checkerOnce.Do(func() { checker, checkerErr = openapicheck.Load(docs.OpenAPI) })
	if checkerErr != nil {
		t.Fatalf("docs/openapi.yaml: %v", checkerErr)
	}
	tr := &openapicheck.Transport{Checker: checker, Report: func(err error) {
		t.Errorf("the answer does not match docs/openapi.yaml: %v", err)
	}}
	return &http.Client{Timeout: requestTimeout, Transport: tr}
}

// runServerCommand runs the binary with args and vars (on top of the stripped
// inherited environment) to completion, and returns its exit code and output.
func runServerCommand(t *testing.T, vars map[string]string, args ...string) (int, string) {
	t.Helper()
	return serverproc.Run(t, serverBin, commandTimeout, vars, args...)
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random: %v", err)
	}
	return hex.EncodeToString(b)
}

// randomPhone returns an E.164 Indonesian mobile number no other test uses.
func randomPhone(t *testing.T) string {
	t.Helper()
	b := make([]byte, 5)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random: %v", err)
	}
	n := uint64(b[0])<<32 | uint64(b[1])<<24 | uint64(b[2])<<16 | uint64(b[3])<<8 | uint64(b[4])
	return fmt.Sprintf("+6281%09d", n%1_000_000_000)
}

// ---------------------------------------------------------------- HTTP --

// Response is a decoded answer.
type Response struct {
	Status      int
	ContentType string
	Raw         []byte
	// Body is the decoded JSON object; nil when the body is empty or not an object.
	Body map[string]any
}

// do sends a request with a raw body (nil for none) and returns the answer.
func (s *Server) do(t *testing.T, method, path, token string, body io.Reader, contentType string) Response {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return s.send(t, req)
}

// send sends req and reads the answer.
func (s *Server) send(t *testing.T, req *http.Request) Response {
	t.Helper()
	what := req.Method + " " + req.URL.Path
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s: read body: %v", what, err)
	}
	r := Response{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), Raw: raw}
	if len(bytes.TrimSpace(raw)) > 0 && strings.HasPrefix(r.ContentType, contentTypeJSON) {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err == nil {
			r.Body = m
		}
	}
	return r
}

// doJSON sends body as JSON (a string or []byte is sent verbatim; nil sends no
// body) with an optional Bearer token, and returns the status and decoded object.
func (s *Server) doJSON(t *testing.T, method, path, token string, body any) (int, map[string]any) {
	t.Helper()
	r := s.request(t, method, path, token, body)
	return r.Status, r.Body
}

// request is doJSON returning the whole Response.
func (s *Server) request(t *testing.T, method, path, token string, body any) Response {
	t.Helper()
	var rd io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case string:
		rd, ct = strings.NewReader(b), contentTypeJSON
	case []byte:
		rd, ct = bytes.NewReader(b), contentTypeJSON
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("marshal request body: %v", err)
		}
		rd, ct = bytes.NewReader(data), contentTypeJSON
	}
	return s.do(t, method, path, token, rd, ct)
}

// get is a GET with an optional token.
func (s *Server) get(t *testing.T, path, token string) Response {
	t.Helper()
	return s.request(t, http.MethodGet, path, token, nil)
}

// wantStatus fails the test unless r has status want.
func wantStatus(t *testing.T, what string, r Response, want int) {
	t.Helper()
	if r.Status != want {
		t.Fatalf("%s: status %d, want %d; body: %s", what, r.Status, want, truncate(r.Raw))
	}
}

// wantError fails the test unless r is the error envelope
// {"error":{"code":code,"message":"..."}} with the given status. It returns the message.
func wantError(t *testing.T, what string, r Response, status int, code string) string {
	t.Helper()
	if r.Status != status {
		t.Fatalf("%s: status %d, want %d (%s); body: %s", what, r.Status, status, code, truncate(r.Raw))
	}
	if !strings.HasPrefix(r.ContentType, contentTypeJSON) {
		t.Fatalf("%s: Content-Type %q, want %s; body: %s", what, r.ContentType, contentTypeJSON, truncate(r.Raw))
	}
	var env struct {
		Error *struct {
			Code    *string `json:"code"`
			Message *string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(r.Raw, &env); err != nil || env.Error == nil || env.Error.Code == nil || env.Error.Message == nil {
		t.Fatalf("%s: body is not the error envelope {\"error\":{\"code\",\"message\"}}: %s", what, truncate(r.Raw))
	}
	if *env.Error.Code != code {
		t.Fatalf("%s: error code %q, want %q; body: %s", what, *env.Error.Code, code, truncate(r.Raw))
	}
	if strings.TrimSpace(*env.Error.Message) == "" {
		t.Fatalf("%s: empty error message; body: %s", what, truncate(r.Raw))
	}
	return *env.Error.Message
}

func truncate(b []byte) string {
	const max = 600
	if len(b) > max {
		return string(b[:max]) + fmt.Sprintf("… (%d bytes)", len(b))
	}
	return string(b)
}

// ------------------------------------------------------------- domain helpers --

// Tokens is the answer of login and refresh.
type Tokens struct {
	Access    string
	Refresh   string
	ExpiresIn int
	User      client.User
}

// signupCustomer creates a customer and returns its user view.
func (s *Server) signupCustomer(t *testing.T, phone, password, name string) client.User {
	t.Helper()
	resp, err := s.api.CreateCustomerWithResponse(ctx(t), client.CreateCustomerRequest{Phone: phone, Password: password, DisplayName: name})
	if err != nil {
		t.Fatalf("POST /api/customers: %v", err)
	}
	wantStatus(t, "POST /api/customers", typed(resp.HTTPResponse, resp.Body), http.StatusCreated)
	checkUUID(t, "signup: user.id", resp.JSON201.ID)
	return *resp.JSON201
}

// login logs in and returns the tokens; the login must succeed.
func (s *Server) login(t *testing.T, phone, password string) Tokens {
	t.Helper()
	resp, err := s.api.LoginWithResponse(ctx(t), client.LoginRequest{Phone: phone, Password: password})
	if err != nil {
		t.Fatalf("POST /api/auth/login: %v", err)
	}
	r := typed(resp.HTTPResponse, resp.Body)
	wantStatus(t, "POST /api/auth/login", r, http.StatusOK)
	return tokensOf(t, "login", r)
}

// refresh exchanges a refresh token; the exchange must succeed.
func (s *Server) refresh(t *testing.T, refreshToken string) Tokens {
	t.Helper()
	resp, err := s.api.RefreshWithResponse(ctx(t), client.RefreshRequest{RefreshToken: refreshToken})
	if err != nil {
		t.Fatalf("POST /api/auth/refresh: %v", err)
	}
	r := typed(resp.HTTPResponse, resp.Body)
	wantStatus(t, "POST /api/auth/refresh", r, http.StatusOK)
	return tokensOf(t, "refresh", r)
}

// refreshResponse sends a refresh without asserting the outcome.
func (s *Server) refreshResponse(t *testing.T, refreshToken string) Response {
	t.Helper()
	return s.request(t, http.MethodPost, "/api/auth/refresh", "", map[string]any{"refresh_token": refreshToken})
}

// adminToken logs in as the admin the server was started with.
func (s *Server) adminToken(t *testing.T) string {
	t.Helper()
	return s.login(t, adminPhone, adminPassword).Access
}

// createMitra creates a mitra as admin through the typed client and returns
// its mitra view.
func (s *Server) createMitra(t *testing.T, admin string, body client.CreateMitraRequest) client.Mitra {
	t.Helper()
	resp, err := s.api.CreateMitraWithResponse(ctx(t), body, client.WithToken(admin))
	if err != nil {
		t.Fatalf("POST /api/admin/mitras: %v", err)
	}
	wantStatus(t, "POST /api/admin/mitras", typed(resp.HTTPResponse, resp.Body), http.StatusCreated)
	checkMitra(t, "POST /api/admin/mitras", *resp.JSON201)
	return *resp.JSON201
}

// tokensOf checks a login or refresh answer (docs/contract.md §3): two
// different non-empty tokens, token_type Bearer, a positive expires_in, the
// user view.
func tokensOf(t *testing.T, what string, r Response) Tokens {
	t.Helper()
	v := decode[client.Tokens](t, what, r.Raw)
	if v.AccessToken == "" || v.RefreshToken == "" {
		t.Fatalf("%s: access_token and refresh_token must be non-empty strings: %s", what, truncate(r.Raw))
	}
	if v.AccessToken == v.RefreshToken {
		t.Fatalf("%s: access_token and refresh_token are the same string", what)
	}
	if v.TokenType != client.TokensTokenTypeBearer || v.ExpiresIn <= 0 {
		t.Fatalf("%s: token_type %q, expires_in %d; want Bearer and a positive number of seconds", what, v.TokenType, v.ExpiresIn)
	}
	checkUUID(t, what+": user.id", v.User.ID)
	return Tokens{Access: v.AccessToken, Refresh: v.RefreshToken, ExpiresIn: v.ExpiresIn, User: v.User}
}

// checkUUID asserts that v is a canonical UUID string.
func checkUUID(t *testing.T, what string, v any) {
	t.Helper()
	s, ok := v.(string)
	if !ok || len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		t.Fatalf("%s: %v is not a UUID", what, v)
	}
	if _, err := hex.DecodeString(strings.ReplaceAll(s, "-", "")); err != nil {
		t.Fatalf("%s: %v is not a UUID", what, v)
	}
}

// checkTime asserts that v is an RFC 3339 time in UTC ("Z").
func checkTime(t *testing.T, what string, v any) time.Time {
	t.Helper()
	s, ok := v.(string)
	if !ok || !strings.HasSuffix(s, "Z") {
		t.Fatalf("%s: %v is not an RFC 3339 time in UTC (…Z)", what, v)
	}
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("%s: %v is not an RFC 3339 time: %v", what, v, err)
	}
	return ts
}
