// Command chaos runs the service under load through a sequence of faults and
// judges how it held (issue: proof under load and faults).
//
// It starts its own redis-server (no persistence, a free loopback port) and
// two instances of the server binary on a fresh Postgres database created
// next to -database-url, drives them with the load generator (package
// loadgen: simulated mitras and customers over HTTP and WebSocket, with the
// invariant checker reading Postgres and the mirror), and injects, one after
// the other, each followed by a recovery phase:
//
//  1. Valkey killed (SIGKILL) for -valkey-down, then restarted empty;
//  2. Valkey hung (SIGSTOP) for -valkey-hang, then continued (SIGCONT);
//  3. server instance 2 killed (SIGKILL), taken out of the load generator's
//     rotation as a load balancer's health check would, restarted after
//     -instance-down and put back once /readyz answers.
//
// It prints the figures per phase (requests, latency, 5xx, requests without
// an answer by instance, violations) and per fault (time until /readyz said
// the cache was degraded, until it said ok again, until the mirror matched
// Postgres), and passes when: no answer was a 5xx; only requests to the
// killed instance while it was killed went unanswered; the invariant checker
// found no violation; the mirror matched Postgres within one reseed cycle
// after each fault; /readyz never failed; every instance exited 0 on SIGTERM.
//
//	go tool -modfile=tools/go.mod task chaos
//
// runs it with a private Postgres (scripts/with-services.sh) and a freshly
// built server. Exit code 0: passed; 1: ran and failed; 2: could not run.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(mainRun(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

var errHelp = errors.New("help")

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (options, string, error) {
	o := defaultOptions()
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: chaos -server PATH [flags]")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.serverBin, "server", "", "the server binary (go build ./app/cmd/server)")
	redis := getenv("TEST_REDIS_SERVER")
	if redis == "" {
		redis = "redis-server"
	}
	fs.StringVar(&o.redisBin, "redis-server", redis, "the redis-server (or valkey-server) binary to start (default $TEST_REDIS_SERVER or redis-server)")
	db := getenv("TEST_DATABASE_URL")
	if db == "" {
		db = getenv("DATABASE_URL")
	}
	fs.StringVar(&o.databaseURL, "database-url", db, "a Postgres DSN; the run creates and drops its own database next to it (default $TEST_DATABASE_URL, then $DATABASE_URL)")
	fs.IntVar(&o.mitras, "mitras", o.mitras, "mitras to simulate")
	fs.IntVar(&o.customers, "customers", o.customers, "customers to simulate")
	fs.DurationVar(&o.heartbeat, "heartbeat", o.heartbeat, "mitra heartbeat interval")
	fs.Float64Var(&o.declineProb, "decline-prob", o.declineProb, "chance that a mitra declines an offer it does not accept")
	fs.Float64Var(&o.awayProb, "away-prob", o.awayProb, "chance per heartbeat tick that a mitra goes away for a while")
	fs.DurationVar(&o.warmup, "warmup", o.warmup, "the ramp-up phase: every mitra goes online, every customer requests a session")
	fs.DurationVar(&o.steady, "steady", o.steady, "load before the first fault, after the warm-up")
	fs.DurationVar(&o.valkeyDown, "valkey-down", o.valkeyDown, "how long Valkey stays killed")
	fs.DurationVar(&o.valkeyHang, "valkey-hang", o.valkeyHang, "how long Valkey stays stopped (SIGSTOP)")
	fs.DurationVar(&o.instanceDown, "instance-down", o.instanceDown, "how long server instance 2 stays killed")
	fs.DurationVar(&o.recovery, "recovery", o.recovery, "load after each fault")
	fs.DurationVar(&o.reseed, "reseed", o.reseed, "the servers' reseed cycle (VALKEY_ONLINE_MIRROR_SWEEP_SECONDS); the mirror must match Postgres within it after each fault")
	fs.Float64Var(&o.transitionBound, "transition-bound", o.transitionBound, "fail when the median session transition while Valkey hangs exceeds this times the steady phase's (0: report only)")
	fs.BoolVar(&o.keepDir, "keep-logs", false, "keep the servers' and redis-server's logs (the directory is printed)")
	jsonPath := fs.String("json", "", "also write the result as JSON to this file")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, "", errHelp
		}
		return o, "", err
	}
	switch {
	case fs.NArg() > 0:
		return o, "", fmt.Errorf("unexpected arguments %q", fs.Args())
	case o.serverBin == "":
		return o, "", errors.New("-server is required (go build -o bin/server ./app/cmd/server)")
	case o.databaseURL == "":
		return o, "", errors.New("-database-url (or TEST_DATABASE_URL / DATABASE_URL) is required")
	case o.mitras < 1 || o.customers < 1:
		return o, "", errors.New("-mitras and -customers must be at least 1")
	case o.transitionBound < 0:
		return o, "", errors.New("-transition-bound must not be negative")
	case o.declineProb < 0 || o.declineProb > 1 || o.awayProb < 0 || o.awayProb > 1:
		return o, "", errors.New("-decline-prob and -away-prob must be from 0 to 1")
	case o.reseed.Seconds() < 1 || o.reseed%1e9 != 0:
		return o, "", errors.New("-reseed must be a whole number of seconds, at least 1s")
	case o.warmup <= 0 || o.steady <= 0 || o.valkeyDown <= 0 || o.valkeyHang <= 0 || o.instanceDown <= 0 || o.recovery <= 0 || o.heartbeat <= 0:
		return o, "", errors.New("every duration must be positive")
	}
	if _, err := exec.LookPath(o.redisBin); err != nil {
		return o, "", fmt.Errorf("-redis-server: %w (install redis-server, or valkey-server)", err)
	}
	return o, *jsonPath, nil
}

func mainRun(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	opts, jsonPath, err := parseFlags(args, getenv, stderr)
	if err != nil {
		if err == errHelp {
			return 0
		}
		fmt.Fprintf(stderr, "chaos: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := run(ctx, opts, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "chaos: %v\n", err)
		return 2
	}
	if err := writeText(stdout, res); err != nil {
		fmt.Fprintf(stderr, "chaos: writing the summary: %v\n", err)
	}
	if jsonPath != "" {
		data, err := json.MarshalIndent(res, "", "  ")
		if err == nil {
			err = os.WriteFile(jsonPath, append(data, '\n'), 0o644)
		}
		if err != nil {
			fmt.Fprintf(stderr, "chaos: writing %s: %v\n", jsonPath, err)
			return 2
		}
	}
	if !res.Pass {
		return 1
	}
	return 0
}
