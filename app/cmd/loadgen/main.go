// Command loadgen drives one or more running instances of the service with
// simulated mitras and customers and checks its invariants (package loadgen).
//
//	go run ./app/cmd/loadgen -urls http://127.0.0.1:8080,http://127.0.0.1:8081 \
//	    -admin-phone +620000000001 -admin-password X -mitras 1000 -customers 100 \
//	    -heartbeat 30s -duration 2m -json out.json \
//	    [-database-url postgres://… -valkey-url redis://… -valkey-prefix P]
//
// The servers must run with ADMIN_PHONE and ADMIN_PASSWORD. Progress lines go
// to stderr every few seconds, the summary to stdout at the end. The exit
// code is 0 when the run passed, 1 when it ran and failed (5xx beyond
// -max-5xx, requests without an answer beyond -max-transport-errors,
// invariant violations or setup failures), 2 on bad flags or when it could
// not run. A first interrupt (Ctrl-C, SIGTERM) ends the simulation early and
// still runs the checks; a second one exits at once.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/halobestie/mitra-availability/loadgen"
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
		if err == errHelp {
			return exitPass
		}
		fmt.Fprintf(stderr, "loadgen: %v\n", err)
		return exitCannot
	}
	runner, err := loadgen.NewRunner(opts.cfg, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "%v\n", err)
		return exitCannot
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // the next signal kills the process
	}()

	rep, err := runner.Run(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "%v\n", err)
		return exitCannot
	}
	if err := loadgen.WriteText(stdout, rep); err != nil {
		fmt.Fprintf(stderr, "loadgen: writing the summary: %v\n", err)
	}
	if opts.jsonPath != "" {
		if err := writeJSON(opts.jsonPath, rep); err != nil {
			fmt.Fprintf(stderr, "loadgen: %v\n", err)
			return exitCannot
		}
	}
	if !rep.Pass {
		return exitFail
	}
	return exitPass
}

func writeJSON(path string, rep *loadgen.Report) error {
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the report: %w", err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	return nil
}
