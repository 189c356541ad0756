package main

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// floorName is the plain net/http target: the machine's floor for an HTTP
// request over loopback with the same load generator.
const floorName = "plain net/http 204"

// answerFloorName is the plain net/http server giving GET /healthz's answer
// byte for byte as the service does (status, headers, body) and doing
// nothing else: the floor of that answer, so that GET /healthz against it is
// what the service's stack (Echo, the request id's checks, metrics, the
// access log) costs over writing the same bytes.
const answerFloorName = "plain net/http /healthz answer"

// healthzAnswer is the service's GET /healthz body (docs/contract.md §9);
// TestAgainstRealServer checks that the floor's answer matches the server's.
var healthzAnswer = []byte("{\"status\":\"ok\"}\n")

var (
	jsonContentType = []string{"application/json"}
	// floorIDs numbers the floor's request ids, each as long as the service's
	// (a UUID's 36 characters), without reading randomness.
	floorIDs atomic.Uint64
)

// floorHandler answers GET /healthz as the service does, with a fresh
// X-Request-Id, and 204 to every other request.
func floorHandler(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/healthz" {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	var id [36]byte
	var n [8]byte
	copy(id[:], "00000000-0000-8000-8000-")
	binary.BigEndian.PutUint64(n[:], floorIDs.Add(1))
	hex.Encode(id[24:], n[2:])
	h := w.Header()
	h["X-Request-Id"] = []string{string(id[:])}
	h["Content-Type"] = jsonContentType
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(healthzAnswer)
}

// serveFloor runs the floor server on addr until ctx ends: a bare net/http
// server (floorHandler) with the service's server settings (keep-alive,
// header timeout) and nothing else. It prints "listening on ADDR" once bound.
func serveFloor(ctx context.Context, addr string, stdout io.Writer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("floor server: %w", err)
	}
	srv := &http.Server{
		Handler:           http.HandlerFunc(floorHandler),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	fmt.Fprintf(stdout, "listening on %s\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("floor server: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	if serveErr := <-errc; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, serveErr)
	}
	return err
}
