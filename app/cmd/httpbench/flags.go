package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// errHelp: -h was asked for; the usage is printed.
var errHelp = errors.New("help requested")

// maxMitras bounds -mitras: the mitras' phone numbers carry a six-digit index.
const maxMitras = 999_999

type options struct {
	baseURL          string
	adminPhone       string
	adminPassword    string
	allowRemote      bool
	mitras           int
	concurrency      int
	setupConcurrency int
	duration         time.Duration
	warmup           time.Duration
	timeout          time.Duration
	wait             time.Duration
	label            string
	jsonPath         string
	compare          []string // -compare: JSON reports to tabulate; nothing is measured

	floorURL   string  // the plain net/http server measured as the floor
	floorPID   int     // its pid, for its CPU time
	serverPID  int     // the service's pid, for its CPU time
	rate       float64 // fixed rate of the open-loop targets (0: none)
	sessions   bool    // measure the session cycle
	wrk        string  // "auto", "off" or the path of wrk
	wrkThreads int
	valkeyURL  string // the service's Valkey, for INFO commandstats
	serveFloor string // -serve-floor: run the floor server on this address; nothing is measured
	only       *regexp.Regexp
}

// parseFlags reads and checks the flags. The admin credentials default to
// ADMIN_PHONE and ADMIN_PASSWORD.
func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("httpbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: httpbench -url URL -admin-phone P -admin-password X [flags]
       httpbench -compare A.json,B.json[,…]

       httpbench -serve-floor ADDR

Measures the requests/s, latency and server CPU per request of a plain net/http 204 server
(-floor-url, the floor) and of its GET /healthz (the service's answer, byte for byte), GET /healthz (the service's own floor), GET /api/availability,
POST /api/mitra/status/heartbeat, GET /api/mitras/{id}/availability and GET /api/mitra/status
of one running server with closed-loop workers (wrk when installed), then the last two at a
fixed -rate and the session cycle, after creating its fixtures over the API.
-serve-floor runs the floor server itself until interrupted.
Exit 0: every measured request got a 2xx; 1: some did not; 2: bad flags or could not run.

`)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.baseURL, "url", "http://127.0.0.1:8080", "base URL of the server")
	fs.BoolVar(&o.allowRemote, "allow-remote", false, "allow a URL whose host is not a loopback address (the run creates and puts online -mitras mitras)")
	fs.StringVar(&o.adminPhone, "admin-phone", "", "admin phone (the server's ADMIN_PHONE; default $ADMIN_PHONE)")
	fs.StringVar(&o.adminPassword, "admin-password", "", "admin password (default $ADMIN_PASSWORD)")
	fs.IntVar(&o.mitras, "mitras", 1000, "mitras to create, log in and put online")
	fs.IntVar(&o.concurrency, "concurrency", 32, "concurrent workers (and connections) per target")
	fs.IntVar(&o.setupConcurrency, "setup-concurrency", 16, "concurrent requests of the fixture setup")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured time per target")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured load before each target's measurement")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "timeout of one request")
	fs.DurationVar(&o.wait, "wait", 30*time.Second, "how long to wait for GET /readyz to answer 200")
	fs.StringVar(&o.label, "label", "", "name of the server's configuration, printed and kept in the JSON")
	fs.StringVar(&o.jsonPath, "json", "", "also write the report as JSON to this file")
	fs.StringVar(&o.floorURL, "floor-url", "", "base URL of a plain net/http server answering 204 (httpbench -serve-floor), measured first as the floor")
	fs.IntVar(&o.floorPID, "floor-pid", 0, "pid of the floor server, for its CPU time per request (/proc)")
	fs.IntVar(&o.serverPID, "server-pid", 0, "pid of the server, for its CPU time per request (/proc)")
	fs.Float64Var(&o.rate, "rate", 2000, "requests/s of the fixed-rate (open-loop) status and availability targets; 0 skips them")
	fs.BoolVar(&o.sessions, "sessions", true, "measure the session cycle (create to one mitra, accept, end); needs -mitras >= -concurrency")
	fs.StringVar(&o.wrk, "wrk", "auto", "wrk for the closed-loop targets: auto (when on PATH), off, or the path of the binary")
	fs.IntVar(&o.wrkThreads, "wrk-threads", 1, "wrk threads")
	fs.StringVar(&o.valkeyURL, "valkey-url", "", "the server's Valkey: report INFO commandstats per target")
	fs.StringVar(&o.serveFloor, "serve-floor", "", "measure nothing: serve the plain net/http floor (204, and GET /healthz's answer) on this address until interrupted")
	only := fs.String("only", "", "measure only the targets whose name matches this regular expression (e.g. heartbeat)")
	compare := fs.String("compare", "", "measure nothing: print the JSON reports FILE[,FILE…] of earlier runs as one Markdown table,\n"+
		"with each target's req/s per report, its ratio to /healthz in that report and the ratio of the first report's req/s to the second's")

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, errHelp
		}
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if *compare != "" {
		for f := range strings.SplitSeq(*compare, ",") {
			if f = strings.TrimSpace(f); f != "" {
				o.compare = append(o.compare, f)
			}
		}
		if len(o.compare) == 0 {
			return o, errors.New("-compare needs at least one file")
		}
		return o, nil
	}
	if o.serveFloor != "" {
		return o, nil
	}
	if *only != "" {
		re, err := regexp.Compile(*only)
		if err != nil {
			return o, fmt.Errorf("-only: %w", err)
		}
		o.only = re
	}
	// Taken from the environment after parsing, so that -h never prints them.
	if o.adminPhone == "" {
		o.adminPhone = getenv("ADMIN_PHONE")
	}
	if o.adminPassword == "" {
		o.adminPassword = getenv("ADMIN_PASSWORD")
	}
	o.baseURL = strings.TrimRight(strings.TrimSpace(o.baseURL), "/")
	if err := checkURL(o.baseURL, o.allowRemote); err != nil {
		return o, err
	}
	switch {
	case o.adminPhone == "" || o.adminPassword == "":
		return o, errors.New("the admin credentials are required: -admin-phone and -admin-password (or ADMIN_PHONE and ADMIN_PASSWORD)")
	case o.mitras < 1 || o.mitras > maxMitras:
		return o, fmt.Errorf("-mitras must be 1..%d, not %d", maxMitras, o.mitras)
	case o.concurrency < 1 || o.concurrency > 10_000:
		return o, fmt.Errorf("-concurrency must be 1..10000, not %d", o.concurrency)
	case o.setupConcurrency < 1 || o.setupConcurrency > 1000:
		return o, fmt.Errorf("-setup-concurrency must be 1..1000, not %d", o.setupConcurrency)
	case o.duration <= 0:
		return o, fmt.Errorf("-duration must be positive, not %s", o.duration)
	case o.warmup < 0:
		return o, fmt.Errorf("-warmup must not be negative, not %s", o.warmup)
	case o.timeout <= 0:
		return o, fmt.Errorf("-timeout must be positive, not %s", o.timeout)
	case o.wait < 0:
		return o, fmt.Errorf("-wait must not be negative, not %s", o.wait)
	case o.floorPID < 0 || o.serverPID < 0:
		return o, errors.New("-floor-pid and -server-pid must not be negative")
	case o.rate < 0 || o.rate > 1e6:
		return o, fmt.Errorf("-rate must be 0..1000000, not %v", o.rate)
	case o.wrkThreads < 1 || o.wrkThreads > 64:
		return o, fmt.Errorf("-wrk-threads must be 1..64, not %d", o.wrkThreads)
	}
	if o.floorURL != "" {
		o.floorURL = strings.TrimRight(strings.TrimSpace(o.floorURL), "/")
		if err := checkURL(o.floorURL, o.allowRemote); err != nil {
			return o, fmt.Errorf("-floor-url: %w", err)
		}
	}
	return o, nil
}

// checkURL accepts an absolute http(s) URL without query or fragment, whose
// host is a loopback address unless remote hosts are allowed.
func checkURL(raw string, allowRemote bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("-url: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("-url must be http(s)://HOST[:PORT][/PATH], not %q", raw)
	}
	if allowRemote {
		return nil
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("-url host %q is not a loopback address: the run creates %s; pass -allow-remote to do that on purpose",
			host, "mitras and puts them online")
	}
	return nil
}
