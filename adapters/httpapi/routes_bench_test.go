package httpapi

// Allocations and CPU per request of the Echo handler chain, in process: the
// whole middleware stack (request id, metrics, access log at the default
// level, recover, body limit), authentication and the handler, on the
// in-memory store with the in-memory mirror or the Valkey mirror on
// miniredis (whose allocations, in the same process, count too) or on a real
// Valkey/Redis at TEST_VALKEY_URL. The network and net/http's own per-connection work are not in
// it (task bench:http measures those). Allocations are deterministic, so
// allocs/op is a reliable figure even on a loaded machine:
//
//	go test -run '^$' -bench '^BenchmarkRoute$' -benchmem ./adapters/httpapi/

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/halobestie/mitra-availability/adapters/clock"
	"github.com/halobestie/mitra-availability/adapters/eventbus"
	"github.com/halobestie/mitra-availability/adapters/memory"
	"github.com/halobestie/mitra-availability/adapters/password"
	"github.com/halobestie/mitra-availability/adapters/token"
	vk "github.com/halobestie/mitra-availability/adapters/valkey"
	"github.com/halobestie/mitra-availability/core/auth"
	"github.com/halobestie/mitra-availability/core/mirror"
	"github.com/halobestie/mitra-availability/core/mitras"
	"github.com/halobestie/mitra-availability/core/push"
	"github.com/halobestie/mitra-availability/core/sessions"
	"github.com/halobestie/mitra-availability/ports"
)

// benchServer is the whole API on one mirror, with a mitra online and a customer.
type benchServer struct {
	e        *echo.Echo
	mitraID  string
	mitra    string // access token
	customer string // access token
}

// newBenchServer builds the API as the server does (an info-level JSON logger
// writing to io.Discard, so the access log is built and encoded as in
// production) on the in-memory store and the given mirror, seeds the mirror
// and puts one mitra online.
func newBenchServer(b *testing.B, backend string, m ports.AvailabilityMirror) *benchServer {
	b.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	e, err := New(Options{
		Logger:   log,
		Registry: prometheus.NewRegistry(),
		Ready:    func(context.Context) ReadyStatus { return ReadyStatus{StoreOK: true, CacheOK: true} },
	})
	if err != nil {
		b.Fatal(err)
	}
	st := memory.NewStore()
	h, err := password.NewBcrypt(4)
	if err != nil {
		b.Fatal(err)
	}
	sg, err := token.NewSigner([]byte("bench-secret-bench-secret-bench-secret"))
	if err != nil {
		b.Fatal(err)
	}
	clk := clock.System{}
	as, err := auth.NewService(st, st, st, h, sg, clk, auth.Config{AccessTTL: time.Hour, RefreshTTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	health := mirror.NewHealth(backend, true)
	metrics := memory.NewMetrics()
	ms, err := mitras.NewService(mitras.Deps{Store: st, Queries: st, AuthDB: st, Stats: st,
		Mirror: m, Health: health, Metrics: metrics, Hasher: h, Clock: clk, Log: log},
		mitras.Config{DefaultCapacity: 1, HeartbeatStale: 90 * time.Second, SnapshotTTL: 10 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	bus := eventbus.NewMemory()
	ss, err := sessions.NewService(st, ms, bus, clk, log,
		sessions.Config{PairingTimeout: time.Hour, PaymentTimeout: time.Hour, WarningLead: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	ds, err := push.NewDevices(st)
	if err != nil {
		b.Fatal(err)
	}
	if err := RegisterRoutes(e, Services{Auth: as, Mitras: ms, Sessions: ss, Devices: ds, Hub: NewHub(bus, st, log, HubOptions{}), Events: st}); err != nil {
		b.Fatal(err)
	}
	if _, err := mirror.NewSeeder(m, st, health, metrics, log).Seed(ctx, mirror.ReasonStart); err != nil {
		b.Fatal(err)
	}

	const pw = "bench-password"
	v, err := ms.Create(ctx, auth.NewAccount{Phone: "+628111000001", Password: pw, DisplayName: "Bench Mitra"}, nil)
	if err != nil {
		b.Fatal(err)
	}
	mt, err := as.Login(ctx, "+628111000001", pw)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := ms.GoOnline(ctx, v.ID); err != nil {
		b.Fatal(err)
	}
	if _, err := as.SignupCustomer(ctx, auth.NewAccount{Phone: "+628122000001", Password: pw, DisplayName: "Bench Customer"}); err != nil {
		b.Fatal(err)
	}
	ct, err := as.Login(ctx, "+628122000001", pw)
	if err != nil {
		b.Fatal(err)
	}
	return &benchServer{e: e, mitraID: v.ID, mitra: mt.AccessToken, customer: ct.AccessToken}
}

// benchWriter is a ResponseWriter that keeps the status and body of the last
// answer and is reset between requests, so that the benchmark counts the
// server's allocations, not a fresh recorder's.
type benchWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *benchWriter) Header() http.Header { return w.header }
func (w *benchWriter) WriteHeader(s int) {
	if w.status == 0 {
		w.status = s
	}
}
func (w *benchWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.body.Write(p)
}
func (w *benchWriter) reset() {
	clear(w.header)
	w.status = 0
	w.body.Reset()
}

// benchBody is a request body that can be re-read.
type benchBody struct{ bytes.Reader }

func (benchBody) Close() error { return nil }

// benchRequest is one reusable request of a route.
type benchRequest struct {
	req  *http.Request
	body []byte
	rd   *benchBody
	want int
}

func newBenchRequest(method, path, token string, body any, want int) *benchRequest {
	r := &benchRequest{want: want}
	req, err := http.NewRequest(method, path, nil)
	if err != nil {
		panic(err)
	}
	req.RemoteAddr = "127.0.0.1:40000"
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		r.body, _ = json.Marshal(body)
		r.rd = &benchBody{}
		req.Header.Set("Content-Type", "application/json")
		req.ContentLength = int64(len(r.body))
	}
	r.req = req
	return r
}

// serve sends the request and checks the status; it returns the body.
func (s *benchServer) serve(b *testing.B, w *benchWriter, r *benchRequest) []byte {
	w.reset()
	if r.rd != nil {
		r.rd.Reset(r.body)
		r.req.Body = r.rd
	}
	s.e.ServeHTTP(w, r.req)
	if w.status != r.want {
		b.Fatalf("%s %s: status %d, want %d: %s", r.req.Method, r.req.URL.Path, w.status, r.want, w.body.String())
	}
	return w.body.Bytes()
}

// BenchmarkRoute measures each hot route through the whole handler chain;
// session_cycle is one create (direct to the mitra), accept and end: three
// requests per op.
func BenchmarkRoute(b *testing.B) {
	backends := []struct {
		name   string
		mirror func(b *testing.B) ports.AvailabilityMirror
	}{
		{"memory", func(*testing.B) ports.AvailabilityMirror { return memory.NewMirror() }},
		{"miniredis", func(b *testing.B) ports.AvailabilityMirror {
			mr := miniredis.RunT(b)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := vk.Open(ctx, vk.Config{URL: "redis://" + mr.Addr()})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(c.Close)
			return vk.NewMirror(c, "bench:", time.Second)
		}},
		// A real server in its own process (TEST_VALKEY_URL, as
		// scripts/with-services.sh sets it): only the client's allocations
		// count, where miniredis adds its own (its Lua interpreter above all).
		{"valkey", func(b *testing.B) ports.AvailabilityMirror {
			url := os.Getenv("TEST_VALKEY_URL")
			if url == "" {
				b.Skip("TEST_VALKEY_URL is not set (run through scripts/with-services.sh)")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := vk.Open(ctx, vk.Config{URL: url})
			if err != nil {
				b.Fatal(err)
			}
			var rnd [6]byte
			_, _ = rand.Read(rnd[:])
			prefix := "bench:" + hex.EncodeToString(rnd[:]) + ":"
			m := vk.NewMirror(c, prefix, time.Second)
			b.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = c.Do(ctx, c.B().Del().Key(m.Keys()[:5]...).Build()).Error()
				c.Close()
			})
			return m
		}},
	}
	for _, be := range backends {
		b.Run("mirror="+be.name, func(b *testing.B) {
			s := newBenchServer(b, be.name, be.mirror(b))
			w := &benchWriter{header: http.Header{}}
			simple := []struct {
				name string
				req  *benchRequest
			}{
				{"healthz", newBenchRequest(http.MethodGet, "/healthz", "", nil, http.StatusOK)},
				{"beacon", newBenchRequest(http.MethodGet, "/api/availability", "", nil, http.StatusOK)},
				{"heartbeat", newBenchRequest(http.MethodPost, "/api/mitra/status/heartbeat", s.mitra, nil, http.StatusNoContent)},
				{"mitra_availability", newBenchRequest(http.MethodGet, "/api/mitras/"+s.mitraID+"/availability", s.customer, nil, http.StatusOK)},
				{"status", newBenchRequest(http.MethodGet, "/api/mitra/status", s.mitra, nil, http.StatusOK)},
			}
			for _, r := range simple {
				b.Run("route="+r.name, func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						s.serve(b, w, r.req)
					}
				})
			}
			b.Run("route=session_cycle", func(b *testing.B) {
				create := newBenchRequest(http.MethodPost, "/api/sessions", s.customer,
					map[string]any{"duration_minutes": 30, "mitra_id": s.mitraID}, http.StatusCreated)
				b.ReportAllocs()
				for b.Loop() {
					var v struct {
						ID string `json:"id"`
					}
					body := s.serve(b, w, create)
					// Not counted: decoding the answer and building the next
					// requests, whose paths carry the new session's id.
					b.StopTimer()
					if err := json.Unmarshal(body, &v); err != nil {
						b.Fatal(err)
					}
					accept := newBenchRequest(http.MethodPost, fmt.Sprintf("/api/sessions/%s/accept", v.ID), s.mitra, nil, http.StatusOK)
					end := newBenchRequest(http.MethodPost, fmt.Sprintf("/api/sessions/%s/end", v.ID), s.customer, nil, http.StatusOK)
					b.StartTimer()
					s.serve(b, w, accept)
					s.serve(b, w, end)
				}
			})
		})
	}
}
