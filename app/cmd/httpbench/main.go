// Command httpbench measures the HTTP throughput of one running server, as a
// separate closed-loop load process (docs/benchmarks.md, "HTTP throughput").
//
//	go run ./app/cmd/httpbench -url http://127.0.0.1:8080 \
//	    -admin-phone +620000000001 -admin-password X \
//	    [-mitras 1000 -concurrency 32 -duration 10s -warmup 2s -json out.json]
//
// It waits for GET /readyz, then sets up its fixtures over the public API:
// the admin logs in and creates -mitras mitras, each mitra logs in and goes
// online, and one customer signs up and logs in. It then measures, one after
// the other, each for -warmup (not counted) and then -duration, with
// -concurrency workers that each send one request, wait for the whole answer
// and send the next:
//
//	GET  /healthz                      the bare endpoint: the baseline, 1.0x
//	GET  /api/availability             the beacon
//	POST /api/mitra/status/heartbeat   rotating over the mitras' tokens (204)
//	GET  /api/mitras/{id}/availability the customer's token, rotating over the mitras
//	GET  /api/mitra/status             rotating over the mitras' tokens
//
// Before the heartbeat target every mitra goes online again (not measured), so
// that no auto-offline sweep in between turns heartbeats into 409s. At the
// end the mitras go offline. Per target it prints requests/s, the p50, p95
// and p99 latency, the non-2xx answers, the transport errors and the ratio of
// its requests/s to those of /healthz in the same run.
//
// The access tokens live ACCESS_TOKEN_TTL (15 min by default): the whole run
// (setup, five targets of -warmup + -duration) must fit in it.
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
