// Command httpbench measures the HTTP throughput of one running server, as a
// separate load process (docs/benchmarks.md, "HTTP throughput").
//
//	go run ./app/cmd/httpbench -url http://127.0.0.1:8080 \
//	    -admin-phone +620000000001 -admin-password X \
//	    [-floor-url http://127.0.0.1:9090 -floor-pid P -server-pid S -valkey-url redis://…] \
//	    [-mitras 1000 -concurrency 32 -duration 10s -warmup 2s -rate 2000 -json out.json]
//	go run ./app/cmd/httpbench -serve-floor 127.0.0.1:9090
//
// It waits for GET /readyz, then sets up its fixtures over the public API:
// the admin logs in and creates -mitras mitras, each mitra logs in and goes
// online, and -concurrency customers sign up and log in. It then measures,
// one after the other, each for -warmup (not counted) and then -duration:
//
//	plain net/http 204                 the floor (-floor-url), a server that does nothing
//	plain net/http /healthz answer     the same server giving GET /healthz's answer byte for byte
//	GET  /healthz                      the service's own floor
//	GET  /api/availability             the beacon
//	POST /api/mitra/status/heartbeat   rotating over the mitras' tokens (204)
//	GET  /api/mitras/{id}/availability the customer's token, rotating over the mitras
//	GET  /api/mitra/status             rotating over the mitras' tokens
//	the last two again at -rate requests/s (open loop)
//	session create+accept+end          worker w: customer w requests mitra w, who accepts; the customer ends it
//
// The closed-loop targets run on wrk when it is installed (-wrk), else on
// this program's own closed-loop workers; the fixed-rate and session targets
// always on its own. Before the heartbeat and session targets every mitra
// goes online again (not measured), so that no auto-offline sweep in between
// turns heartbeats into 409s. At the end the mitras go offline. Per target it
// prints the tool, requests/s, the p50, p95 and p99 latency, the non-2xx
// answers, the transport errors, the server's CPU time per request (from
// /proc/<pid>/stat of -server-pid, or -floor-pid for the floor), the ratios
// of its requests/s to those of the floor and of /healthz in the same run,
// and with -valkey-url what Valkey processed meanwhile (INFO commandstats).
//
// The access tokens live ACCESS_TOKEN_TTL (15 min by default): the whole run
// (setup, every target's -warmup + -duration) must fit in it.
//
// With -compare A.json,B.json,… it measures nothing and prints the JSON
// reports of earlier runs (of the same targets against differently configured
// servers) as Markdown tables: req/s and the ratio to /healthz per report, the
// ratio of the first report's req/s to the second's, and the latencies.
//
// Exit codes: 0 when every measured request got a 2xx answer; 1 when one got
// a non-2xx answer or none (a transport error); 2 on bad flags, or when it
// could not run (server not ready, a setup request failed, interrupted).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// Exit codes.
const (
	exitPass   = 0
	exitFail   = 1
	exitCannot = 2
)

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	opts, err := parseFlags(args, getenv, stderr)
	if err != nil {
		if errors.Is(err, errHelp) {
			return exitPass
		}
		fmt.Fprintf(stderr, "httpbench: %v\n", err)
		return exitCannot
	}

	if len(opts.compare) > 0 {
		reps := make([]*Report, len(opts.compare))
		for i, path := range opts.compare {
			if reps[i], err = readReport(path); err != nil {
				fmt.Fprintf(stderr, "httpbench: %v\n", err)
				return exitCannot
			}
		}
		if err := writeMarkdown(stdout, reps); err != nil {
			fmt.Fprintf(stderr, "httpbench: %v\n", err)
			return exitCannot
		}
		return exitPass
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if opts.serveFloor != "" {
		if err := serveFloor(ctx, opts.serveFloor, stdout); err != nil {
			fmt.Fprintf(stderr, "httpbench: %v\n", err)
			return exitCannot
		}
		return exitPass
	}

	rep, err := bench(ctx, opts, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "httpbench: %v\n", err)
		return exitCannot
	}
	if err := writeText(stdout, rep); err != nil {
		fmt.Fprintf(stderr, "httpbench: writing the table: %v\n", err)
		return exitCannot
	}
	if opts.jsonPath != "" {
		if err := writeJSON(opts.jsonPath, rep); err != nil {
			fmt.Fprintf(stderr, "httpbench: %v\n", err)
			return exitCannot
		}
	}
	if !rep.Pass {
		fmt.Fprintln(stderr, "httpbench: FAIL: some requests got a non-2xx answer or none")
		return exitFail
	}
	return exitPass
}
