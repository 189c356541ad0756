package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/halobestie/mitra-availability/loadgen"
)

// errHelp: -h was asked for; the usage is printed.
var errHelp = errors.New("help requested")

type options struct {
	cfg      loadgen.Config
	jsonPath string
}

// intRange and durationRange are flag.Values over the loadgen ranges.
type intRange struct{ r *loadgen.IntRange }

func (f intRange) String() string {
	if f.r == nil {
		return ""
	}
	return f.r.String()
}

func (f intRange) Set(s string) error {
	v, err := loadgen.ParseIntRange(s)
	if err != nil {
		return err
	}
	*f.r = v
	return nil
}

type durationRange struct{ r *loadgen.DurationRange }

func (f durationRange) String() string {
	if f.r == nil {
		return ""
	}
	return f.r.String()
}

func (f durationRange) Set(s string) error {
	v, err := loadgen.ParseDurationRange(s)
	if err != nil {
		return err
	}
	*f.r = v
	return nil
}

// parseFlags reads the flags. The admin credentials default to ADMIN_PHONE
// and ADMIN_PASSWORD; the database and Valkey URLs are never taken from the
// environment, so that the checks read only what they are pointed at.
func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	o := options{cfg: loadgen.DefaultConfig()}
	c := &o.cfg
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: loadgen -urls URL[,URL…] -admin-phone P -admin-password X [flags]")
		fs.PrintDefaults()
	}

	urls := fs.String("urls", "http://127.0.0.1:8080", "comma-separated base URLs of the server instances")
	fs.BoolVar(&c.AllowRemote, "allow-remote", false, "allow URLs whose host is not a loopback address")
	fs.StringVar(&c.AdminPhone, "admin-phone", getenv("ADMIN_PHONE"), "admin phone (the servers' ADMIN_PHONE; default $ADMIN_PHONE)")
	fs.StringVar(&c.AdminPassword, "admin-password", getenv("ADMIN_PASSWORD"), "admin password (default $ADMIN_PASSWORD)")

	fs.IntVar(&c.Mitras, "mitras", c.Mitras, "mitras to simulate")
	fs.IntVar(&c.Customers, "customers", c.Customers, "customers to simulate")
	fs.IntVar(&c.RunID, "run-id", c.RunID, "run id 0..9999: names the accounts, so that a rerun with the same id reuses them")
	fs.StringVar(&c.Password, "password", "", "password of the simulated accounts (default derived from the run id)")
	fs.Var(intRange{&c.Capacity}, "capacity", "capacity of the mitras created, N or A-B")

	fs.DurationVar(&c.Duration, "duration", c.Duration, "how long to simulate (setup and checks excluded)")
	fs.Int64Var(&c.MaxRequests, "max-requests", c.MaxRequests, "stop the simulation after this many requests (0: no bound)")
	fs.DurationVar(&c.RequestTimeout, "request-timeout", c.RequestTimeout, "timeout of one request")

	fs.DurationVar(&c.Heartbeat, "heartbeat", c.Heartbeat, "mitra heartbeat interval (jittered ±20%)")
	fs.Float64Var(&c.AcceptProbability, "accept-prob", c.AcceptProbability, "chance that a free mitra accepts an offer")
	fs.Var(durationRange{&c.AcceptDelay}, "accept-delay", "delay before a mitra accepts, D or A-B")
	fs.Float64Var(&c.MitraEndProbability, "mitra-end-prob", c.MitraEndProbability, "chance that a mitra ends a session it accepted")
	fs.Var(durationRange{&c.MitraEndAfter}, "mitra-end-after", "when a mitra ends it, after accepting, D or A-B")
	fs.Float64Var(&c.OfflineProbability, "offline-prob", c.OfflineProbability, "chance per heartbeat tick that a mitra goes offline for a while")
	fs.Float64Var(&c.AwayProbability, "away-prob", c.AwayProbability, "chance per heartbeat tick that a mitra goes away for a while (as long as an offline pause)")
	fs.Float64Var(&c.DeclineProbability, "decline-prob", c.DeclineProbability, "chance that a mitra declines an offer it does not accept")
	fs.Var(durationRange{&c.OfflineFor}, "offline-for", "how long a mitra stays offline, D or A-B")
	fs.Float64Var(&c.StatusProbability, "status-prob", c.StatusProbability, "chance that a mitra reads its status after an accept")

	fs.Var(intRange{&c.SessionMinutes}, "session-minutes", "duration_minutes of the sessions requested, N or A-B")
	fs.Var(durationRange{&c.Think}, "think", "customer pause between sessions, D or A-B")
	fs.DurationVar(&c.BeaconEvery, "beacon-every", c.BeaconEvery, "beacon poll interval of an idle customer")
	fs.Var(durationRange{&c.PayDelay}, "pay-delay", "delay before a customer pays, D or A-B")
	fs.Float64Var(&c.ExtendProbability, "extend-prob", c.ExtendProbability, "chance that a customer extends an active session")
	fs.Var(intRange{&c.ExtendMinutes}, "extend-minutes", "minutes of an extension, N or A-B")
	fs.Float64Var(&c.RerouteProbability, "reroute-prob", c.RerouteProbability, "chance that a customer reroutes a session (at most once)")
	fs.Float64Var(&c.EndProbability, "end-prob", c.EndProbability, "chance that a customer ends an active session early")
	fs.Float64Var(&c.CancelProbability, "cancel-prob", c.CancelProbability, "chance that a customer cancels a search")
	fs.Float64Var(&c.QueueProbability, "queue-prob", c.QueueProbability, "chance that a customer requests with queue: true (waits in the queue instead of 409)")
	fs.DurationVar(&c.PollEvery, "poll-every", c.PollEvery, "session poll interval of a customer with an open session")

	fs.IntVar(&c.Deactivate, "deactivate", c.Deactivate, "mitras to deactivate during the run (checked: never offered a session afterwards)")
	fs.DurationVar(&c.DeactivateAt, "deactivate-at", 0, "when to deactivate them (default a third of -duration)")

	fs.IntVar(&c.SetupConcurrency, "setup-concurrency", c.SetupConcurrency, "concurrent requests of setup and cleanup")
	fs.DurationVar(&c.WaitReady, "wait-ready", c.WaitReady, "how long to wait for every URL's /healthz")
	fs.DurationVar(&c.Progress, "progress", c.Progress, "interval of the progress line on stderr (0: none)")
	fs.DurationVar(&c.Settle, "settle", c.Settle, "how long WebSockets keep listening after the simulation, before the final checks")
	fs.BoolVar(&c.Cleanup, "cleanup", c.Cleanup, "after the checks, end open sessions, take mitras offline, reactivate the deactivated ones")

	fs.StringVar(&c.DatabaseURL, "database-url", "", "Postgres DSN of the servers' database, for the invariant checks (optional)")
	fs.StringVar(&c.ValkeyURL, "valkey-url", "", "Valkey URL of the servers' mirror, for the mirror check (optional; needs -database-url)")
	fs.StringVar(&c.ValkeyPrefix, "valkey-prefix", "", "the servers' VALKEY_KEY_PREFIX")
	fs.DurationVar(&c.CheckEvery, "check-every", c.CheckEvery, "interval of the live invariant checks")
	fs.DurationVar(&c.Grace, "grace", c.Grace, "slack of the timing checks (timer lateness, event delivery)")
	fs.DurationVar(&c.ReseedInterval, "reseed-interval", c.ReseedInterval, "the servers' VALKEY_ONLINE_MIRROR_SWEEP_SECONDS: drift may last this long")
	fs.DurationVar(&c.MirrorFinalWait, "mirror-final-wait", 0, "how long the final check waits for a mirror drift to heal (default reseed interval + grace; negative: no wait)")
	fs.DurationVar(&c.QueueGrace, "queue-grace", c.QueueGrace, "slack of the queue's FIFO check: sessions queued or offered closer than this are not compared")
	fs.DurationVar(&c.QueueTimeout, "queue-timeout", 0, "the servers' QUEUE_TIMEOUT_SECONDS: a queued session still searching longer than it + the pairing timeout + grace is lost (0: no age check)")
	fs.DurationVar(&c.PairingTimeout, "pairing-timeout", c.PairingTimeout, "the servers' PAIRING_TIMEOUT_SECONDS")

	fs.Int64Var(&c.Max5xx, "max-5xx", 0, "5xx answers allowed before the run fails")
	fs.Int64Var(&c.MaxTransportErrors, "max-transport-errors", 0, "requests without an answer allowed before the run fails")
	fs.StringVar(&o.jsonPath, "json", "", "also write the report as JSON to this file")

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, errHelp
		}
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	c.URLs = nil
	for u := range strings.SplitSeq(*urls, ",") {
		if u = strings.TrimSpace(u); u != "" {
			c.URLs = append(c.URLs, strings.TrimRight(u, "/"))
		}
	}
	if err := c.Validate(); err != nil {
		return o, err
	}
	return o, nil
}
