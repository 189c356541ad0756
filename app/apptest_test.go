package app_test

// The harness of the app's integration tests: it runs the real fx graph
// (app.Options) against a fresh Postgres database per test and a Valkey
// server — the shared test server under a prefix of the test's own, or a
// private redis-server the test starts, kills, freezes and restarts — and talks
// to it over HTTP as the apps do.
//
// Environment: TEST_DATABASE_URL (a Postgres admin DSN), TEST_VALKEY_URL (the
// shared Valkey/Redis), TEST_REDIS_SERVER (or redis-server/valkey-server on
// PATH) for the private servers. Without them the tests skip, or fail when
// REQUIRE_INTEGRATION=1. scripts/with-services.sh sets all of them.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/uptrace/bun"
	"github.com/valkey-io/valkey-go"
	"go.uber.org/fx"

	"github.com/halobestie/mitra-availability/adapters/httpapi"
	"github.com/halobestie/mitra-availability/adapters/postgres"
	"github.com/halobestie/mitra-availability/adapters/postgres/pgtest"
	"github.com/halobestie/mitra-availability/app"
	"github.com/halobestie/mitra-availability/app/config"
	"github.com/halobestie/mitra-availability/client"
	"github.com/halobestie/mitra-availability/core/mirror"
	"github.com/halobestie/mitra-availability/core/mitras"
	"github.com/halobestie/mitra-availability/internal/redisproc"
)

// Environment variables the harness reads.
const (
	envDatabaseURL = "TEST_DATABASE_URL"
	envValkeyURL   = "TEST_VALKEY_URL"
	envRequire     = "REQUIRE_INTEGRATION"
	envLog         = "APPTEST_LOG" // "debug" or "info" shows the app's log of a failed test
)

// Credentials of the admin every instance ensures at start.
const (
	adminPhone    = "+6280000000001"
	adminPassword = "admin-password"
	userPassword  = "password-123"
)

// missing skips the test for a missing dependency, or fails it under REQUIRE_INTEGRATION=1.
func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv(envRequire) == "1" {
		t.Fatalf("REQUIRE_INTEGRATION=1 but "+format, args...)
	}
	t.Skipf("skipping integration test: "+format, args...)
}

// requireServices checks that both test services are configured.
func requireServices(t testing.TB) {
	t.Helper()
	if os.Getenv(envDatabaseURL) == "" || os.Getenv(envValkeyURL) == "" {
		missing(t, "%s and %s must both be set (run through scripts/with-services.sh)", envDatabaseURL, envValkeyURL)
	}
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// ---------------------------------------------------------------- setup --

// setup is what the instances of one test share: the database, the Valkey
// server and key prefix, the JWT secret (so client.Tokens cross instances), and a raw
// Valkey client to inspect the mirror's keys.
type setup struct {
	t         *testing.T
	dsn       string
	valkeyURL string
	prefix    string
	jwtSecret string
	redis     *redisServer // nil on the shared server
	kv        valkey.Client
	bun       *bun.DB // a pool of the test's own on the database, for assertions
}

// newSetup prepares a test: a fresh, migrated database and the shared Valkey
// server with a prefix of its own (private false), or a private
// redis-server that the test may kill (private true).
func newSetup(t *testing.T, private bool) *setup {
	t.Helper()
	requireServices(t)
	s := &setup{t: t, prefix: "apptest:" + randomHex(t, 6) + ":", jwtSecret: randomHex(t, 32)}
	s.dsn = pgtest.NewDSN(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := postgres.Open(ctx, s.dsn)
	if err != nil {
		t.Fatalf("open test pool: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() }) // registered after the drop: runs before it
	s.bun = db

	if private {
		s.redis = startRedis(t)
		s.valkeyURL = "redis://" + s.redis.addr()
	} else {
		s.valkeyURL = os.Getenv(envValkeyURL)
	}
	opt, err := valkey.ParseURL(s.valkeyURL)
	if err != nil {
		t.Fatalf("parse %s: %v", s.valkeyURL, err)
	}
	opt.DisableCache = true
	opt.Dialer.Timeout = time.Second
	opt.ConnWriteTimeout = time.Second
	kv, err := valkey.NewClient(opt)
	if err != nil {
		t.Fatalf("valkey client: %v", err)
	}
	s.kv = kv
	t.Cleanup(func() {
		if !private {
			s.deleteKeys()
		}
		kv.Close()
	})
	return s
}

// deleteKeys removes the test's keys from the shared server.
func (s *setup) deleteKeys() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var cursor uint64
	for {
		e, err := s.kv.Do(ctx, s.kv.B().Scan().Cursor(cursor).Match(s.prefix+"*").Count(1000).Build()).AsScanEntry()
		if err != nil {
			s.t.Logf("cleaning keys %s*: %v", s.prefix, err)
			return
		}
		for _, k := range e.Elements {
			_ = s.kv.Do(ctx, s.kv.B().Del().Key(k).Build()).Error()
		}
		if cursor = e.Cursor; cursor == 0 {
			return
		}
	}
}

// key is the full name of one of the mirror's keys (docs/valkey-keys.md).
func (s *setup) key(name string) string { return s.prefix + "{avail}:" + name }

// exec runs a raw Valkey command, failing the test on error.
func (s *setup) exec(args ...string) valkey.ValkeyResult {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r := s.kv.Do(ctx, s.kv.B().Arbitrary(args[0]).Args(args[1:]...).Build())
	if err := r.Error(); err != nil && !valkey.IsValkeyNil(err) {
		s.t.Fatalf("valkey %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// sql runs a statement on the test's own pool.
func (s *setup) sql(query string, args ...any) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.bun.ExecContext(ctx, query, args...); err != nil {
		s.t.Fatalf("sql %q: %v", query, err)
	}
}

// pgMitra is a mitras row as the assertions read it.
type pgMitra struct {
	ID              string     `bun:"id"`
	IsActive        bool       `bun:"is_active"`
	IsOnline        bool       `bun:"is_online"`
	Capacity        int        `bun:"capacity"`
	LastHeartbeatAt *time.Time `bun:"last_heartbeat_at"`
}

// row reads one mitra from Postgres.
func (s *setup) row(id string) pgMitra {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var m pgMitra
	err := s.bun.NewRaw(`SELECT id, is_active, is_online, capacity, last_heartbeat_at FROM mitras WHERE id = ?`, id).Scan(ctx, &m)
	if err != nil {
		s.t.Fatalf("read mitra %s: %v", id, err)
	}
	return m
}

// ------------------------------------------------------- mirror contents --

// scoreEpoch is the origin of the heartbeat deciseconds in a score (docs/valkey-keys.md).
var scoreEpoch = time.Date(2025, time.January, 1, 0, 0, 0, 0, time.UTC)

// mentry is one online mitra as the free/full sorted sets hold it.
type mentry struct {
	HB        time.Time
	Open, Cap int
}

// encodeScore packs a heartbeat and a load as the mirror does.
func encodeScore(hb time.Time, open, capacity int) string {
	ms := hb.UnixMilli() - scoreEpoch.UnixMilli()
	ds := ms / 100
	if ms%100 < 0 {
		ds--
	}
	return strconv.FormatInt(ds*16384+int64(open)*128+int64(capacity), 10)
}

func decodeScore(f float64) mentry {
	score := int64(f)
	ds, low := score/16384, score%16384
	if low < 0 {
		ds--
		low += 16384
	}
	return mentry{HB: scoreEpoch.Add(time.Duration(ds) * 100 * time.Millisecond), Open: int(low / 128), Cap: int(low % 128)}
}

// floorHB is a heartbeat at the mirror's 100 ms precision.
func floorHB(t time.Time) time.Time {
	score, err := strconv.ParseInt(encodeScore(t, 0, 0), 10, 64)
	if err != nil {
		panic(err)
	}
	return decodeScore(float64(score)).HB
}

// mstate is everything the mirror holds, read with the raw client.
type mstate struct {
	Free, Full  map[string]mentry
	Deactivated map[string]bool
	Seeded      bool
}

// online returns the entry of id in free or full.
func (m mstate) online(id string) (mentry, bool) {
	if e, ok := m.Free[id]; ok {
		return e, true
	}
	e, ok := m.Full[id]
	return e, ok
}

// tryMirror reads the mirror's keys in one MULTI/EXEC, so it sees one
// state; an error when the server does not answer.
func (s *setup) tryMirror() (mstate, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	b := s.kv.B()
	res := s.kv.DoMulti(ctx,
		b.Multi().Build(),
		b.Zrange().Key(s.key("free")).Min("0").Max("-1").Withscores().Build(),
		b.Zrange().Key(s.key("full")).Min("0").Max("-1").Withscores().Build(),
		b.Smembers().Key(s.key("deactivated")).Build(),
		b.Exists().Key(s.key("seeded")).Build(),
		b.Exec().Build(),
	)
	for _, r := range res {
		if err := r.Error(); err != nil {
			return mstate{}, err
		}
	}
	replies, err := res[len(res)-1].ToArray()
	if err != nil {
		return mstate{}, err
	}
	if len(replies) != 4 {
		return mstate{}, fmt.Errorf("EXEC answered %d replies", len(replies))
	}
	st := mstate{Free: map[string]mentry{}, Full: map[string]mentry{}, Deactivated: map[string]bool{}}
	for i, set := range []map[string]mentry{st.Free, st.Full} {
		zs, err := replies[i].AsZScores()
		if err != nil {
			return mstate{}, err
		}
		for _, z := range zs {
			set[z.Member] = decodeScore(z.Score)
		}
	}
	members, err := replies[2].AsStrSlice()
	if err != nil {
		return mstate{}, err
	}
	for _, id := range members {
		st.Deactivated[id] = true
	}
	n, err := replies[3].AsInt64()
	if err != nil {
		return mstate{}, err
	}
	st.Seeded = n == 1
	return st, nil
}

// mirror reads the mirror's keys, failing the test when the server does not answer.
func (s *setup) mirror() mstate {
	s.t.Helper()
	st, err := s.tryMirror()
	if err != nil {
		s.t.Fatalf("reading the mirror: %v", err)
	}
	return st
}

// truthDiff compares the mirror with Postgres: the same online mitras in the
// set their load calls for, with their load; the deactivated set equal to the
// inactive mitras; the marker present. It returns "" when they agree.
func (s *setup) truthDiff(st mstate) string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var rows []struct {
		ID       string `bun:"id"`
		IsActive bool   `bun:"is_active"`
		IsOnline bool   `bun:"is_online"`
		Capacity int    `bun:"capacity"`
		Open     int    `bun:"open"`
	}
	err := s.bun.NewRaw(`SELECT m.id, m.is_active, m.is_online, m.capacity,
		(SELECT count(*) FROM chat_sessions c WHERE c.mitra_id = m.id AND c.status IN ('pending_payment', 'active'))::int AS open
		FROM mitras m`).Scan(ctx, &rows)
	if err != nil {
		s.t.Fatalf("reading the truth: %v", err)
	}
	var diffs []string
	if !st.Seeded {
		diffs = append(diffs, "seeded marker missing")
	}
	known := map[string]bool{}
	for _, r := range rows {
		known[r.ID] = true
		e, inFree := st.Free[r.ID]
		f, inFull := st.Full[r.ID]
		switch {
		case !r.IsActive:
			if inFree || inFull {
				diffs = append(diffs, r.ID+": deactivated but online in the mirror")
			}
			if !st.Deactivated[r.ID] {
				diffs = append(diffs, r.ID+": deactivated but not in the deactivated set")
			}
			continue
		case st.Deactivated[r.ID]:
			diffs = append(diffs, r.ID+": active but in the deactivated set")
		}
		if !r.IsOnline {
			if inFree || inFull {
				diffs = append(diffs, r.ID+": offline but online in the mirror")
			}
			continue
		}
		room := r.Open < r.Capacity
		switch {
		case inFree && inFull:
			diffs = append(diffs, r.ID+": in both free and full")
		case room && !inFree:
			diffs = append(diffs, fmt.Sprintf("%s: online with room (%d/%d) but not in free", r.ID, r.Open, r.Capacity))
		case !room && !inFull:
			diffs = append(diffs, fmt.Sprintf("%s: online and full (%d/%d) but not in full", r.ID, r.Open, r.Capacity))
		}
		if inFull {
			e = f
		}
		if (inFree || inFull) && (e.Open != r.Open || e.Cap != r.Capacity) {
			diffs = append(diffs, fmt.Sprintf("%s: load %d/%d in the mirror, %d/%d in the store", r.ID, e.Open, e.Cap, r.Open, r.Capacity))
		}
	}
	for _, set := range []map[string]mentry{st.Free, st.Full} {
		for id := range set {
			if !known[id] {
				diffs = append(diffs, id+": in the mirror but not in the store")
			}
		}
	}
	for id := range st.Deactivated {
		if !known[id] {
			diffs = append(diffs, id+": deactivated in the mirror but not in the store")
		}
	}
	slices.Sort(diffs)
	if len(diffs) > 10 {
		diffs = append(diffs[:10], fmt.Sprintf("and %d more", len(diffs)-10))
	}
	return strings.Join(diffs, "; ")
}

// eventually polls cond every 50 ms until it returns "" or timeout passes,
// and fails the test with its last answer.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %s", what, timeout, msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ---------------------------------------------------------- redis-server --

// redisServer is a private redis-server (internal/redisproc) the test owns,
// with the test's failures built in.
type redisServer struct {
	*redisproc.Server
	t *testing.T
}

// startRedis starts a private server; it is killed when the test ends.
func startRedis(t *testing.T) *redisServer {
	t.Helper()
	return &redisServer{Server: redisproc.StartForTest(t), t: t}
}

func (r *redisServer) addr() string { return r.Addr() }

// kill kills the server by its PID; idempotent.
func (r *redisServer) kill() { r.Kill() }

// restart starts the server again, empty, on the same port.
func (r *redisServer) restart() {
	r.t.Helper()
	if err := r.Start(); err != nil {
		r.t.Fatal(err)
	}
}

// signal sends sig (SIGSTOP, SIGCONT) to the server's PID.
func (r *redisServer) signal(sig syscall.Signal) {
	r.t.Helper()
	if err := r.Signal(sig); err != nil {
		r.t.Fatal(err)
	}
}

// ------------------------------------------------------------- instances --

// instance is one running app (the real fx graph) and what the test needs of it.
type instance struct {
	t      *testing.T
	s      *setup
	cfg    config.Config
	app    *fx.App
	Mitras *mitras.Service
	Sweeps *mirror.Sweeps
	Seeder *mirror.Seeder
	Health *mirror.Health
	DB     *bun.DB
	Stmts  *stmtLog // nil unless asked for
	api    *api
	logs   *logBuffer

	adminOnce  sync.Once
	adminToken string
}

// opts are the options of one instance.
type opts struct {
	// env overrides the harness's configuration variables ("" removes one).
	env map[string]string
	// statements records every Postgres statement with the stack that ran it.
	statements bool
}

// baseEnv is the configuration of every instance: long sweep cadences (the
// tests call the sweeps themselves), the test's database, Valkey and prefix.
func (s *setup) baseEnv() map[string]string {
	return map[string]string{
		"HTTP_ADDR":                          "127.0.0.1:0",
		"APP_ENV":                            config.EnvTest,
		"STORE_BACKEND":                      config.StorePostgres,
		"DATABASE_URL":                       s.dsn,
		"MIGRATE_ON_START":                   "false",
		"CACHE_BACKEND":                      config.CacheValkey,
		"VALKEY_URL":                         s.valkeyURL,
		"VALKEY_KEY_PREFIX":                  s.prefix,
		"JWT_SECRET":                         s.jwtSecret,
		"ADMIN_PHONE":                        adminPhone,
		"ADMIN_PASSWORD":                     adminPassword,
		"MITRA_AUTO_OFFLINE_SWEEP_SECONDS":   "3600",
		"HEARTBEAT_MIRROR_INTERVAL_SECONDS":  "3600",
		"VALKEY_ONLINE_MIRROR_SWEEP_SECONDS": "3600",
		"PAIRING_TIMEOUT_SECONDS":            "3600",
		"PAYMENT_TIMEOUT_SECONDS":            "3600",
	}
}

// start builds and starts an instance; it is stopped when the test ends.
func (s *setup) start(o opts) *instance {
	t := s.t
	t.Helper()
	env := s.baseEnv()
	maps.Copy(env, o.env)
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	logs := newLogBuffer()
	in := &instance{t: t, s: s, cfg: cfg, logs: logs}
	var srv *httpapi.HTTPServer
	options := []fx.Option{
		app.Options(cfg, slog.New(logs.handler())),
		fx.Populate(&in.Mitras, &in.Sweeps, &in.Seeder, &in.Health, &srv),
	}
	if cfg.StoreBackend == config.StorePostgres {
		options = append(options, fx.Populate(&in.DB))
		if o.statements {
			in.Stmts = &stmtLog{QueryCounter: postgres.NewQueryCounter()}
			// Added before Start: bun's hook list is not safe to change while queries run.
			options = append(options, fx.Invoke(func(db *bun.DB) { db.AddQueryHook(in.Stmts) }))
		}
	}
	in.app = fx.New(options...)
	if err := in.app.Err(); err != nil {
		t.Fatalf("building the app: %v\n%s", err, logs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := in.app.Start(ctx); err != nil {
		t.Fatalf("starting the app: %v\n%s", err, logs)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := in.app.Stop(ctx); err != nil {
			t.Errorf("stopping the app: %v", err)
		}
		if t.Failed() && os.Getenv(envLog) != "" {
			t.Logf("log of the instance on %s:\n%s", in.api.base, logs)
		}
	})
	in.api = newAPI(t, "http://"+srv.Addr())
	return in
}

// ------------------------------------------------------------ statements --

// stmt is one Postgres statement: its text and the functions on the stack
// that ran it (only the module's and net/http's, outermost last).
type stmt struct {
	Query string
	Stack []string
}

// from reports whether one of the statement's frames contains fn.
func (s stmt) from(fn string) bool {
	return slices.ContainsFunc(s.Stack, func(f string) bool { return strings.Contains(f, fn) })
}

// onRequestPath: the statement ran in an HTTP request's goroutine.
func (s stmt) onRequestPath() bool { return s.from("net/http.(*conn).serve") }

// stmtLog is a bun.QueryHook that counts every statement (the embedded
// postgres.QueryCounter) and records each with its stack, so a test can count
// only the statements of one code path while background workers also query.
type stmtLog struct {
	*postgres.QueryCounter
	mu    sync.Mutex
	stmts []stmt
}

var _ bun.QueryHook = (*stmtLog)(nil)

// AfterQuery records the statement and counts it.
func (l *stmtLog) AfterQuery(ctx context.Context, e *bun.QueryEvent) {
	l.QueryCounter.AfterQuery(ctx, e)
	pcs := make([]uintptr, 256)
	n := runtime.Callers(2, pcs)
	frames := runtime.CallersFrames(pcs[:n])
	var stack []string
	for {
		f, more := frames.Next()
		if strings.Contains(f.Function, "mitra-availability/") && !strings.Contains(f.Function, "app_test") ||
			strings.HasPrefix(f.Function, "net/http.") {
			stack = append(stack, strings.TrimPrefix(f.Function, "github.com/halobestie/mitra-availability/"))
		}
		if !more {
			break
		}
	}
	q := e.Query
	if len(q) > 200 {
		q = q[:200]
	}
	l.mu.Lock()
	l.stmts = append(l.stmts, stmt{Query: q, Stack: stack})
	l.mu.Unlock()
}

// mark is the position of the next statement.
func (l *stmtLog) mark() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.stmts)
}

// since returns the statements recorded from mark on that satisfy keep.
func (l *stmtLog) since(mark int, keep func(stmt) bool) []stmt {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []stmt
	for _, s := range l.stmts[mark:] {
		if keep(s) {
			out = append(out, s)
		}
	}
	return out
}

func describe(ss []stmt) string {
	var b strings.Builder
	for _, s := range ss {
		fmt.Fprintf(&b, "\n  %s\n    via %s", strings.Join(strings.Fields(s.Query), " "), strings.Join(s.Stack, " < "))
	}
	return b.String()
}

// -------------------------------------------------------------- logging --

// logBuffer keeps an instance's log lines (shown for a failed test when
// APPTEST_LOG is set); goroutines may log after the test ended, so it never
// writes to testing.T.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func newLogBuffer() *logBuffer { return &logBuffer{} }

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buf.Len() > 4<<20 { // bounded: keep the start
		return len(p), nil
	}
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) handler() slog.Handler {
	level := slog.LevelWarn
	switch os.Getenv(envLog) {
	case "debug":
		level = slog.LevelDebug
	case "info":
		level = slog.LevelInfo
	}
	return slog.NewTextHandler(l, &slog.HandlerOptions{Level: level})
}

// ------------------------------------------------------------------ HTTP --

// api is a small client of the service.
type api struct {
	t    *testing.T
	base string
	hc   *http.Client
}

func newAPI(t *testing.T, base string) *api {
	tr := &http.Transport{MaxIdleConns: 128, MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	return &api{t: t, base: base, hc: &http.Client{Transport: tr, Timeout: 20 * time.Second}}
}

// reply is one HTTP answer.
type reply struct {
	Status int
	Body   []byte
	Took   time.Duration
}

// code is the error code of an error envelope, "" otherwise.
func (r reply) code() string {
	var env struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(r.Body, &env)
	return env.Error.Code
}

func (r reply) String() string { return fmt.Sprintf("%d %s", r.Status, bytes.TrimSpace(r.Body)) }

// call sends one request; safe from any goroutine.
func (a *api) call(method, path, token string, body any) (reply, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return reply{}, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, a.base+path, rd)
	if err != nil {
		return reply{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	start := time.Now()
	resp, err := a.hc.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, err
	}
	return reply{Status: resp.StatusCode, Body: raw, Took: time.Since(start)}, nil
}

// do sends one request from the test goroutine and fails the test unless the
// status is want; out, when not nil, receives the decoded body.
func (a *api) do(method, path, token string, body any, want int, out any) reply {
	a.t.Helper()
	r, err := a.call(method, path, token, body)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	if r.Status != want {
		a.t.Fatalf("%s %s: got %s, want status %d", method, path, r, want)
	}
	if out != nil {
		if err := json.Unmarshal(r.Body, out); err != nil {
			a.t.Fatalf("%s %s: decoding %s: %v", method, path, r.Body, err)
		}
	}
	return r
}

// wantError checks a status and an error code.
func (a *api) wantError(method, path, token string, body any, status int, code string) {
	a.t.Helper()
	r, err := a.call(method, path, token, body)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	if r.Status != status || r.code() != code {
		a.t.Fatalf("%s %s: got %s, want %d %s", method, path, r, status, code)
	}
}

// account is a user the test created, logged in.
type account struct {
	ID, Phone, Access, Refresh string
}

var phoneSeq atomic.Int64

func newPhone() string { return fmt.Sprintf("+6281%09d", phoneSeq.Add(1)) }

// login logs a user in.
func (in *instance) login(phone, password string) client.Tokens {
	in.t.Helper()
	var tk client.Tokens
	in.api.do(http.MethodPost, "/api/auth/login", "", map[string]string{"phone": phone, "password": password}, http.StatusOK, &tk)
	return tk
}

// admin is the admin's access token.
func (in *instance) admin() string {
	in.t.Helper()
	in.adminOnce.Do(func() { in.adminToken = in.login(adminPhone, adminPassword).AccessToken })
	if in.adminToken == "" {
		in.t.Fatal("admin login failed")
	}
	return in.adminToken
}

// createMitra creates a mitra (capacity nil: the default) and logs it in.
func (in *instance) createMitra(capacity *int) account {
	in.t.Helper()
	body := map[string]any{"phone": newPhone(), "password": userPassword, "display_name": "Mitra"}
	if capacity != nil {
		body["capacity"] = *capacity
	}
	var v client.Mitra
	in.api.do(http.MethodPost, "/api/admin/mitras", in.admin(), body, http.StatusCreated, &v)
	tk := in.login(body["phone"].(string), userPassword)
	return account{ID: v.ID, Phone: body["phone"].(string), Access: tk.AccessToken, Refresh: tk.RefreshToken}
}

// createCustomer signs a customer up and logs it in.
func (in *instance) createCustomer() account {
	in.t.Helper()
	phone := newPhone()
	in.api.do(http.MethodPost, "/api/customers", "", map[string]string{"phone": phone, "password": userPassword, "display_name": "Customer"}, http.StatusCreated, nil)
	tk := in.login(phone, userPassword)
	return account{ID: tk.User.ID, Phone: phone, Access: tk.AccessToken, Refresh: tk.RefreshToken}
}

func (in *instance) online(m account) client.Mitra {
	in.t.Helper()
	var v client.Mitra
	in.api.do(http.MethodPost, "/api/mitra/status/online", m.Access, nil, http.StatusOK, &v)
	return v
}

func (in *instance) offline(m account) client.Mitra {
	in.t.Helper()
	var v client.Mitra
	in.api.do(http.MethodPost, "/api/mitra/status/offline", m.Access, nil, http.StatusOK, &v)
	return v
}

func (in *instance) heartbeat(m account) {
	in.t.Helper()
	in.api.do(http.MethodPost, "/api/mitra/status/heartbeat", m.Access, nil, http.StatusNoContent, nil)
}

func (in *instance) patch(id string, body map[string]any) client.Mitra {
	in.t.Helper()
	var v client.Mitra
	in.api.do(http.MethodPatch, "/api/admin/mitras/"+id, in.admin(), body, http.StatusOK, &v)
	return v
}

func (in *instance) availability(id string) client.MitraAvailability {
	in.t.Helper()
	var v client.MitraAvailability
	in.api.do(http.MethodGet, "/api/mitras/"+id+"/availability", in.admin(), nil, http.StatusOK, &v)
	return v
}

func (in *instance) beacon() client.Beacon {
	in.t.Helper()
	var v client.Beacon
	in.api.do(http.MethodGet, "/api/availability", "", nil, http.StatusOK, &v)
	return v
}

func (in *instance) dashboard() client.Dashboard {
	in.t.Helper()
	var v client.Dashboard
	in.api.do(http.MethodGet, "/api/admin/dashboard", in.admin(), nil, http.StatusOK, &v)
	return v
}

func (in *instance) status(m account) client.Mitra {
	in.t.Helper()
	var v client.Mitra
	in.api.do(http.MethodGet, "/api/mitra/status", m.Access, nil, http.StatusOK, &v)
	return v
}

// requestSession makes customer c request a session (of mitra, when not "").
func (in *instance) requestSession(c account, mitra string) client.Session {
	in.t.Helper()
	body := map[string]any{"duration_minutes": 30}
	if mitra != "" {
		body["mitra_id"] = mitra
	}
	var v client.Session
	in.api.do(http.MethodPost, "/api/sessions", c.Access, body, http.StatusCreated, &v)
	return v
}

// accept makes mitra m accept session id.
func (in *instance) accept(m account, id string) client.Session {
	in.t.Helper()
	var v client.Session
	in.api.do(http.MethodPost, "/api/sessions/"+id+"/accept", m.Access, nil, http.StatusOK, &v)
	return v
}

// end ends session id on behalf of a.
func (in *instance) end(a account, id string) client.Session {
	in.t.Helper()
	var v client.Session
	in.api.do(http.MethodPost, "/api/sessions/"+id+"/end", a.Access, nil, http.StatusOK, &v)
	return v
}

// readyCache is the cache field of /readyz.
func (in *instance) readyCache() string {
	in.t.Helper()
	var v struct {
		Cache string `json:"cache"`
	}
	in.api.do(http.MethodGet, "/readyz", "", nil, http.StatusOK, &v)
	return v.Cache
}

// metric sums the samples of a metric whose labels include want, from /metrics.
func (in *instance) metric(name string, want map[string]string) float64 {
	in.t.Helper()
	r := in.api.do(http.MethodGet, "/metrics", "", nil, http.StatusOK, nil)
	v, err := sumMetric(string(r.Body), name, want)
	if err != nil {
		in.t.Fatalf("metric %s: %v", name, err)
	}
	return v
}

// sumMetric parses the Prometheus text format enough for counters.
func sumMetric(text, name string, want map[string]string) (float64, error) {
	var sum float64
	for line := range strings.SplitSeq(text, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		series, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		metric, labelText, _ := strings.Cut(series, "{")
		if metric != name {
			continue
		}
		labels := map[string]string{}
		for pair := range strings.SplitSeq(strings.TrimSuffix(labelText, "}"), ",") {
			if k, v, ok := strings.Cut(pair, "="); ok {
				labels[k] = strings.Trim(v, `"`)
			}
		}
		match := true
		for k, v := range want {
			if labels[k] != v {
				match = false
			}
		}
		if !match {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			return 0, fmt.Errorf("parsing %q: %w", line, err)
		}
		sum += f
	}
	return sum, nil
}

// waitClean waits until the instance's mirror is trusted again (seeded since
// the last fault) and equal to the truth.
func (in *instance) waitClean(timeout time.Duration) {
	in.t.Helper()
	eventually(in.t, timeout, "mirror reseeded", func() string {
		if in.Health.Dirty() {
			return "the mirror is still dirty"
		}
		st, err := in.s.tryMirror()
		if err != nil {
			return err.Error()
		}
		return in.s.truthDiff(st)
	})
}

func intp(n int) *int { return &n }

func jsonDecode(raw []byte, v any) error { return json.Unmarshal(raw, v) }

// problems keeps the first few problems of a concurrent run.
type problems struct {
	mu   sync.Mutex
	list []string
	n    int
}

func (p *problems) add(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	if len(p.list) < 20 {
		p.list = append(p.list, fmt.Sprintf(format, args...))
	}
}

func (p *problems) err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n == 0 {
		return nil
	}
	return fmt.Errorf("%d problems, first ones:\n  %s", p.n, strings.Join(p.list, "\n  "))
}
