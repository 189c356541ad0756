package app

import (
	"io"
	"log/slog"
	"net/http"
	"testing"

	"go.uber.org/fx/fxtest"

	"github.com/halobestie/mitra-availability/app/config"
)

// PPROF_ADDR serves the profiler on a listener of its own while the app
// runs, and stops it with the app; unset, nothing is started.
func TestPprofListener(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	if srv := addPprof(fxtest.NewLifecycle(t), config.Config{}, log); srv != nil {
		t.Fatal("PPROF_ADDR unset: a profiler server was made")
	}

	lc := fxtest.NewLifecycle(t)
	srv := addPprof(lc, config.Config{PprofAddr: "127.0.0.1:0"}, log)
	lc.RequireStart()
	url := "http://" + srv.Addr() + "/debug/pprof/cmdline"
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(b) == 0 {
		t.Fatalf("GET %s: %d %q", url, resp.StatusCode, b)
	}
	lc.RequireStop()
	if _, err := http.Get(url); err == nil {
		t.Fatalf("GET %s answered after the app stopped", url)
	}
}
