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
// JWT_SECRET. A test may kill an instance with SIGKILL (Server.kill); the
// cleanup then leaves it alone and stops the others as usual. Tests that
// need Valkey skip without TEST_VALKEY_URL, or fail under REQUIRE_INTEGRATION=1.
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"github.com/valkey-io/valkey-go"
)

// Environment variables the harness reads.
const (
	envDatabaseURL        = "TEST_DATABASE_URL"
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
	readyTimeout    = 30 * time.Second
	stopTimeout     = 10 * time.Second
	requestTimeout  = 30 * time.Second
	dbSetupTimeout  = 60 * time.Second
	commandTimeout  = 60 * time.Second
	modulePath      = "github.com/halobestie/mitra-availability"
	serverPkg       = "./app/cmd/server"
	oneMiB          = 1 << 20
	contentTypeJSON = "application/json"
)

// serverBin is the path of the binary TestMain built; empty when it built none.
var serverBin string

// configVars are the variables the server reads. The harness removes them from
// the inherited environment so that only what a test sets reaches the server.
var configVars = []string{
	"HTTP_ADDR", "APP_ENV", "STORE_BACKEND", "DATABASE_URL", "MIGRATE_ON_START",
	"CACHE_BACKEND", "VALKEY_URL", "VALKEY_KEY_PREFIX", "VALKEY_TIMEOUT",
	"JWT_SECRET", "ACCESS_TOKEN_TTL", "REFRESH_TOKEN_TTL", "ADMIN_PHONE", "ADMIN_PASSWORD",
	"DEFAULT_MITRA_CAPACITY", "HEARTBEAT_STALE_SECONDS", "MITRA_AUTO_OFFLINE_SWEEP_SECONDS",
	"HEARTBEAT_MIRROR_INTERVAL_SECONDS", "VALKEY_ONLINE_MIRROR_SWEEP_SECONDS",
	"AVAILABILITY_SNAPSHOT_TTL_SECONDS", "PAIRING_TIMEOUT_SECONDS", "PAYMENT_TIMEOUT_SECONDS",
	"SESSION_WARNING_LEAD_SECONDS", "SHUTDOWN_TIMEOUT", "LOG_LEVEL",
}

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
	bin, err := buildServer(dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	serverBin = bin
	return m.Run()
}

// buildServer builds ./app/cmd/server into dir and returns the binary's path.
func buildServer(dir string) (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "server")
	args := []string{"build"}
	if raceEnabled() && os.Getenv(envRace) != "0" {
		args = append(args, "-race")
	}
	args = append(args, "-o", bin, serverPkg)
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return bin, nil
}

// raceEnabled reports whether this test binary was built with -race.
func raceEnabled() bool {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range info.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// repoRoot walks up from the working directory to the go.mod of this module.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(data), "module "+modulePath+"\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of module %s above the working directory", modulePath)
		}
		dir = parent
	}
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

// adminDSN returns TEST_DATABASE_URL, skipping the test when it is unset (or
// failing it when REQUIRE_INTEGRATION=1).
func adminDSN(t *testing.T) string {
	t.Helper()
	requireBinary(t)
	dsn := os.Getenv(envDatabaseURL)
	if dsn != "" {
		return dsn
	}
	if os.Getenv(envRequireIntegration) == "1" {
		t.Fatalf("%s is not set but %s=1: the e2e tests need a Postgres server (run them through scripts/with-services.sh)",
			envDatabaseURL, envRequireIntegration)
	}
	t.Skipf("skipping e2e test: set %s to a Postgres admin DSN, or run it through scripts/with-services.sh", envDatabaseURL)
	return ""
}

// freshDatabase creates an empty database e2e_<random> on TEST_DATABASE_URL and
// returns its DSN. The database is dropped WITH (FORCE) when the test ends.
func freshDatabase(t *testing.T) string {
	t.Helper()
	admin := adminDSN(t)
	name := "e2e_" + randomHex(t, 8)

	db, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatalf("open %s: %v", envDatabaseURL, err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), dbSetupTimeout)
	defer cancel()
	if _, err := db.ExecContext(ctx, `CREATE DATABASE "`+name+`"`); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("pgx", admin)
		if err != nil {
			t.Errorf("drop database %s: %v", name, err)
			return
		}
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), dbSetupTimeout)
		defer cancel()
		if _, err := db.ExecContext(ctx, `DROP DATABASE IF EXISTS "`+name+`" WITH (FORCE)`); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})

	dsn, err := withDatabase(admin, name)
	if err != nil {
		t.Fatal(err)
	}
	return dsn
}

// withDatabase returns dsn pointed at database name (URL or key=value form).
func withDatabase(dsn, name string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("parse %s: %w", envDatabaseURL, err)
		}
		u.Path = "/" + name
		u.RawPath = ""
		return u.String(), nil
	}
	return "", fmt.Errorf("%s must be a postgres:// URL (the server's DATABASE_URL is one)", envDatabaseURL)
}

// Server is one running server process.
type Server struct {
	// URL is the base URL, http://127.0.0.1:PORT.
	URL string
	// DSN is the server's own database.
	DSN string

	client  *http.Client
	cmd     *exec.Cmd
	out     *syncBuffer
	done    chan struct{}
	waitErr error
	killed  atomic.Bool // set by kill: the process is meant to be dead
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

// startProcess starts the binary with exactly vars (on top of the inherited
// environment stripped of the server's variables) and HTTP_ADDR on a free
// loopback port, and waits until GET /readyz answers 200. It is stopped with
// SIGTERM when the test ends and must exit 0 within 10 s.
func startProcess(t *testing.T, vars map[string]string) *Server {
	t.Helper()
	requireBinary(t)
	addr := freeAddr(t)
	all := map[string]string{"HTTP_ADDR": addr}
	for k, v := range vars {
		all[k] = v
	}
	s := &Server{
		URL:    "http://" + addr,
		client: &http.Client{Timeout: requestTimeout},
		out:    &syncBuffer{},
		done:   make(chan struct{}),
	}
	s.cmd = exec.Command(serverBin)
	s.cmd.Env = serverEnv(all)
	s.cmd.Stdout = s.out
	s.cmd.Stderr = s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start server: %v", err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.done)
	}()
	// Cleanups run last-in first-out: stop, then show the output on failure.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server output:\n%s", s.out.String())
		}
	})
	t.Cleanup(func() { s.stop(t) })
	s.waitReady(t)
	return s
}

// waitReady polls GET /readyz until it answers 200.
func (s *Server) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(readyTimeout)
	client := &http.Client{Timeout: time.Second}
	last := "no answer"
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			t.Fatalf("server exited before it was ready: %v (its output follows)", s.waitErr)
		default:
		}
		resp, err := client.Get(s.URL + "/readyz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, body)
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("GET /readyz did not answer 200 within %s (last: %s; the server's output follows)", readyTimeout, last)
}

// stop sends SIGTERM and asserts that the server exits 0 within stopTimeout.
func (s *Server) stop(t *testing.T) {
	t.Helper()
	select {
	case <-s.done:
		if s.killed.Load() {
			return // killed on purpose: nothing to stop
		}
		if !t.Failed() { // a failed start has said so already
			t.Errorf("server exited before the test ended: %v", s.waitErr)
		}
		return
	default:
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("SIGTERM: %v", err)
	}
	select {
	case <-s.done:
		if s.waitErr != nil {
			t.Errorf("server did not exit 0 after SIGTERM: %v", s.waitErr)
		}
	case <-time.After(stopTimeout):
		_ = s.cmd.Process.Kill()
		<-s.done
		t.Errorf("server did not exit within %s of SIGTERM", stopTimeout)
	}
}

// kill sends SIGKILL (no graceful stop: no deferred work, no close frames,
// no unsubscribe) and waits until the process is gone. The test's cleanup then
// leaves it alone; the other processes of the test and its database are
// stopped and dropped as usual.
func (s *Server) kill(t *testing.T) {
	t.Helper()
	select {
	case <-s.done:
		t.Fatalf("kill: the server had already exited: %v", s.waitErr)
	default:
	}
	s.killed.Store(true)
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL: %v", err)
	}
	select {
	case <-s.done:
	case <-time.After(stopTimeout):
		t.Fatalf("the server did not die within %s of SIGKILL", stopTimeout)
	}
	var exit *exec.ExitError
	if !errors.As(s.waitErr, &exit) {
		t.Fatalf("after SIGKILL the server exited with %v, want death by signal", s.waitErr)
	}
	if ws, ok := exit.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("after SIGKILL the server exited with %v, want death by SIGKILL", s.waitErr)
	}
}

// Output returns what the server has written to stdout and stderr so far.
func (s *Server) Output() string { return s.out.String() }

// serverEnv is the inherited environment without the server's configuration
// variables, plus vars.
func serverEnv(vars map[string]string) []string {
	drop := make(map[string]bool, len(configVars))
	for _, k := range configVars {
		drop[k] = true
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !drop[k] {
			env = append(env, kv)
		}
	}
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	return env
}

// runServerCommand runs the binary with args and vars (on top of the stripped
// inherited environment) to completion, and returns its exit code and output.
func runServerCommand(t *testing.T, vars map[string]string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, serverBin, args...)
	cmd.Env = serverEnv(vars)
	var out syncBuffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("server %v did not exit within %s; output:\n%s", args, commandTimeout, out.String())
	}
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String()
	case errors.As(err, &exit):
		return exit.ExitCode(), out.String()
	default:
		t.Fatalf("run server %v: %v", args, err)
		return 0, ""
	}
}

// freeAddr returns a loopback address with a port nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatalf("free port: %v", err)
	}
	return addr
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

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a process's
// stdout and stderr copiers and the reads of a test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
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
	Access  string
	Refresh string
	Body    map[string]any
}

// signupCustomer creates a customer and returns its user view.
func (s *Server) signupCustomer(t *testing.T, phone, password, name string) map[string]any {
	t.Helper()
	r := s.request(t, http.MethodPost, "/api/customers", "", map[string]any{
		"phone": phone, "password": password, "display_name": name,
	})
	wantStatus(t, "POST /api/customers", r, http.StatusCreated)
	return r.Body
}

// login logs in and returns the tokens; the login must succeed.
func (s *Server) login(t *testing.T, phone, password string) Tokens {
	t.Helper()
	r := s.request(t, http.MethodPost, "/api/auth/login", "", map[string]any{"phone": phone, "password": password})
	wantStatus(t, "POST /api/auth/login", r, http.StatusOK)
	return tokensOf(t, "login", r)
}

// refresh exchanges a refresh token; the exchange must succeed.
func (s *Server) refresh(t *testing.T, refreshToken string) Tokens {
	t.Helper()
	r := s.request(t, http.MethodPost, "/api/auth/refresh", "", map[string]any{"refresh_token": refreshToken})
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

// createMitra creates a mitra as admin and returns its mitra view.
func (s *Server) createMitra(t *testing.T, admin string, body map[string]any) map[string]any {
	t.Helper()
	r := s.request(t, http.MethodPost, "/api/admin/mitras", admin, body)
	wantStatus(t, "POST /api/admin/mitras", r, http.StatusCreated)
	return r.Body
}

// mitraView fetches a mitra view as admin.
func (s *Server) mitraView(t *testing.T, admin, id string) map[string]any {
	t.Helper()
	r := s.get(t, "/api/admin/mitras/"+id, admin)
	wantStatus(t, "GET /api/admin/mitras/{id}", r, http.StatusOK)
	return r.Body
}

// tokensOf checks the shape of a login or refresh answer (docs/contract.md §3).
func tokensOf(t *testing.T, what string, r Response) Tokens {
	t.Helper()
	b := r.Body
	if b == nil {
		t.Fatalf("%s: not a JSON object: %s", what, truncate(r.Raw))
	}
	access, _ := b["access_token"].(string)
	refresh, _ := b["refresh_token"].(string)
	if access == "" || refresh == "" {
		t.Fatalf("%s: access_token and refresh_token must be non-empty strings: %s", what, truncate(r.Raw))
	}
	if access == refresh {
		t.Fatalf("%s: access_token and refresh_token are the same string", what)
	}
	if b["token_type"] != "Bearer" {
		t.Fatalf("%s: token_type %v, want \"Bearer\"", what, b["token_type"])
	}
	if n, ok := b["expires_in"].(float64); !ok || n <= 0 || n != float64(int64(n)) {
		t.Fatalf("%s: expires_in %v, want a positive whole number of seconds", what, b["expires_in"])
	}
	user, ok := b["user"].(map[string]any)
	if !ok {
		t.Fatalf("%s: user must be a user view object: %s", what, truncate(r.Raw))
	}
	checkUserView(t, what+": user", user)
	return Tokens{Access: access, Refresh: refresh, Body: b}
}

// checkUserView asserts that every field of a user view is present and typed.
func checkUserView(t *testing.T, what string, v map[string]any) {
	t.Helper()
	for _, k := range []string{"id", "role", "phone", "display_name"} {
		if _, ok := v[k]; !ok {
			t.Fatalf("%s: field %q missing from user view %v", what, k, v)
		}
	}
	checkUUID(t, what+".id", v["id"])
	switch v["role"] {
	case "customer", "mitra", "admin":
	default:
		t.Fatalf("%s: role %v, want customer, mitra or admin", what, v["role"])
	}
	if _, ok := v["phone"].(string); !ok {
		t.Fatalf("%s: phone %v is not a string", what, v["phone"])
	}
	for _, k := range []string{"password", "password_hash"} {
		if _, ok := v[k]; ok {
			t.Fatalf("%s: user view exposes %q", what, k)
		}
	}
}

// mitraViewFields are the fields of a mitra view (docs/contract.md §4).
var mitraViewFields = []string{
	"id", "display_name", "phone", "is_active", "is_online", "capacity",
	"active_sessions", "last_heartbeat_at", "reachable", "available",
}

// checkMitraView asserts that every field of a mitra view is present and typed.
func checkMitraView(t *testing.T, what string, v map[string]any) {
	t.Helper()
	if v == nil {
		t.Fatalf("%s: no mitra view", what)
	}
	for _, k := range mitraViewFields {
		if _, ok := v[k]; !ok {
			t.Fatalf("%s: field %q missing from mitra view %v (unknown values are null, never omitted)", what, k, v)
		}
	}
	checkUUID(t, what+".id", v["id"])
	for _, k := range []string{"display_name", "phone"} {
		if _, ok := v[k].(string); !ok {
			t.Fatalf("%s: %s %v is not a string", what, k, v[k])
		}
	}
	for _, k := range []string{"is_active", "is_online", "reachable", "available"} {
		if _, ok := v[k].(bool); !ok {
			t.Fatalf("%s: %s %v is not a boolean", what, k, v[k])
		}
	}
	for _, k := range []string{"capacity", "active_sessions"} {
		if n, ok := v[k].(float64); !ok || n < 0 || n != float64(int64(n)) {
			t.Fatalf("%s: %s %v is not a non-negative integer", what, k, v[k])
		}
	}
	if hb := v["last_heartbeat_at"]; hb != nil {
		checkTime(t, what+".last_heartbeat_at", hb)
	}
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

// num reads a JSON number field.
func num(t *testing.T, what string, v map[string]any, key string) float64 {
	t.Helper()
	n, ok := v[key].(float64)
	if !ok {
		t.Fatalf("%s: %s is %v, want a number", what, key, v[key])
	}
	return n
}
