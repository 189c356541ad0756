package loadgen

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// IntRange is an inclusive range of integers, written "3" or "1-3".
type IntRange struct{ Min, Max int }

// ParseIntRange parses "N" or "A-B" (A ≤ B, both ≥ 0).
func ParseIntRange(s string) (IntRange, error) {
	lo, hi, ok := strings.Cut(strings.TrimSpace(s), "-")
	if !ok {
		hi = lo
	}
	a, err1 := strconv.Atoi(strings.TrimSpace(lo))
	b, err2 := strconv.Atoi(strings.TrimSpace(hi))
	if err1 != nil || err2 != nil || a < 0 || b < a {
		return IntRange{}, fmt.Errorf("%q is not a range such as 3 or 1-3", s)
	}
	return IntRange{a, b}, nil
}

func (r IntRange) String() string {
	if r.Min == r.Max {
		return strconv.Itoa(r.Min)
	}
	return fmt.Sprintf("%d-%d", r.Min, r.Max)
}

// Pick returns a uniformly random integer of the range.
func (r IntRange) Pick() int {
	if r.Max <= r.Min {
		return r.Min
	}
	return r.Min + rand.IntN(r.Max-r.Min+1)
}

// DurationRange is an inclusive range of durations, written "1s" or "200ms-2s".
type DurationRange struct{ Min, Max time.Duration }

// ParseDurationRange parses "D" or "A-B" (Go durations, 0 ≤ A ≤ B).
func ParseDurationRange(s string) (DurationRange, error) {
	lo, hi, ok := strings.Cut(strings.TrimSpace(s), "-")
	if !ok {
		hi = lo
	}
	a, err1 := time.ParseDuration(strings.TrimSpace(lo))
	b, err2 := time.ParseDuration(strings.TrimSpace(hi))
	if err1 != nil || err2 != nil || a < 0 || b < a {
		return DurationRange{}, fmt.Errorf("%q is not a range such as 1s or 200ms-2s", s)
	}
	return DurationRange{a, b}, nil
}

func (r DurationRange) String() string {
	if r.Min == r.Max {
		return r.Min.String()
	}
	return r.Min.String() + "-" + r.Max.String()
}

// Pick returns a uniformly random duration of the range.
func (r DurationRange) Pick() time.Duration {
	if r.Max <= r.Min {
		return r.Min
	}
	return r.Min + rand.N(r.Max-r.Min+1)
}

// Config is everything a run needs. DefaultConfig fills in sane values.
type Config struct {
	// URLs of the server instances (http://host:port). Requests and
	// WebSocket connections are spread over them.
	URLs []string
	// AllowRemote permits URLs whose host is not a loopback address.
	AllowRemote bool
	// AdminPhone and AdminPassword are the servers' ADMIN_PHONE/ADMIN_PASSWORD.
	AdminPhone    string
	AdminPassword string

	// Mitras and Customers simulated.
	Mitras    int
	Customers int
	// RunID (0..9999) names the accounts: the same RunID reuses them.
	RunID int
	// Password of every simulated account; derived from RunID when empty.
	Password string
	// Capacity of the mitras the run creates.
	Capacity IntRange

	// Duration of the simulation (setup and final checks excluded).
	Duration time.Duration
	// MaxRequests ends the simulation once it sent this many requests (0: no
	// bound). Setup, final checks and cleanup are not counted: they send a
	// bounded number of requests per account.
	MaxRequests int64
	// RequestTimeout bounds each request.
	RequestTimeout time.Duration

	// Mitra behaviour.
	Heartbeat           time.Duration // interval of heartbeats, jittered by ±20%
	AcceptProbability   float64       // chance a free mitra accepts an offer
	AcceptDelay         DurationRange // how long it takes to accept
	MitraEndProbability float64       // chance a mitra ends a session it accepted
	MitraEndAfter       DurationRange // when it ends it
	OfflineProbability  float64       // chance per heartbeat tick to go offline for a while
	OfflineFor          DurationRange // how long it stays offline
	StatusProbability   float64       // chance to read its own status after an accept
	DeclineProbability  float64       // chance a free mitra declines an offer it does not accept
	AwayProbability     float64       // chance per heartbeat tick to go away for a while (as long as OfflineFor)

	// Customer behaviour.
	SessionMinutes     IntRange      // duration_minutes requested (1..240)
	Think              DurationRange // pause between sessions
	BeaconEvery        time.Duration // beacon poll interval while idle
	PayDelay           DurationRange // how long it takes to pay
	ExtendProbability  float64       // chance to extend an active session
	ExtendMinutes      IntRange      // by how much
	RerouteProbability float64       // chance to reroute a session (once)
	EndProbability     float64       // chance to end an active session early
	CancelProbability  float64       // chance to cancel a search
	QueueProbability   float64       // chance to request with queue: true (docs/contract.md §10)
	PollEvery          time.Duration // session poll interval while one is open

	// Deactivate this many mitras at DeactivateAt (0: Duration/3) and check
	// that none of them is offered a session afterwards.
	Deactivate   int
	DeactivateAt time.Duration

	// SetupConcurrency bounds the concurrent requests of setup and cleanup.
	SetupConcurrency int
	// WaitReady is how long to wait for every URL's /healthz before setup.
	WaitReady time.Duration
	// Progress is the interval of the progress line (0: none).
	Progress time.Duration
	// Settle is how long WebSockets keep listening after the simulation
	// stopped, before the final checks.
	Settle time.Duration
	// Cleanup: after the checks, end the open sessions, take the mitras
	// offline and reactivate the mitras the run deactivated.
	Cleanup bool

	// Invariant checker sources (optional) and timing.
	DatabaseURL     string
	ValkeyURL       string
	ValkeyPrefix    string
	CheckEvery      time.Duration // interval of the live checks
	Grace           time.Duration // see CheckerConfig.Grace
	ReseedInterval  time.Duration // the servers' VALKEY_ONLINE_MIRROR_SWEEP_SECONDS
	MirrorFinalWait time.Duration // see CheckerConfig.MirrorFinalWait
	QueueGrace      time.Duration // see CheckerConfig.QueueGrace
	QueueTimeout    time.Duration // the servers' QUEUE_TIMEOUT_SECONDS (0: no age check of queued sessions)
	PairingTimeout  time.Duration // the servers' PAIRING_TIMEOUT_SECONDS

	// Failure thresholds: more 5xx answers or transport errors than these fail the run.
	Max5xx             int64
	MaxTransportErrors int64
	// FirstPhase, when set, names a phase (StartPhase) that starts with the
	// simulation, so that every request of it falls in a named phase.
	FirstPhase string
}

// DefaultConfig returns the defaults of every setting (URLs and admin
// credentials excepted).
func DefaultConfig() Config {
	return Config{
		Mitras:              100,
		Customers:           20,
		RunID:               1,
		Capacity:            IntRange{1, 3},
		Duration:            time.Minute,
		MaxRequests:         2_000_000,
		RequestTimeout:      10 * time.Second,
		Heartbeat:           30 * time.Second,
		AcceptProbability:   0.3,
		AcceptDelay:         DurationRange{200 * time.Millisecond, 2 * time.Second},
		MitraEndProbability: 0.15,
		MitraEndAfter:       DurationRange{10 * time.Second, 90 * time.Second},
		OfflineProbability:  0.03,
		OfflineFor:          DurationRange{5 * time.Second, 20 * time.Second},
		StatusProbability:   0.5,
		DeclineProbability:  0.2,
		AwayProbability:     0.03,
		SessionMinutes:      IntRange{1, 3},
		Think:               DurationRange{time.Second, 5 * time.Second},
		BeaconEvery:         5 * time.Second,
		PayDelay:            DurationRange{300 * time.Millisecond, 2 * time.Second},
		ExtendProbability:   0.2,
		ExtendMinutes:       IntRange{1, 1},
		RerouteProbability:  0.1,
		EndProbability:      0.2,
		CancelProbability:   0.05,
		QueueProbability:    0.5,
		PollEvery:           5 * time.Second,
		Deactivate:          2,
		SetupConcurrency:    16,
		WaitReady:           30 * time.Second,
		Progress:            5 * time.Second,
		Settle:              3 * time.Second,
		Cleanup:             true,
		CheckEvery:          5 * time.Second,
		Grace:               DefaultGrace,
		QueueGrace:          DefaultQueueGrace,
		PairingTimeout:      60 * time.Second,
		ReseedInterval:      DefaultReseedInterval,
	}
}

// maxAccounts bounds Mitras and Customers: the phone scheme has six digits.
const maxAccounts = 999_999

// Validate checks the configuration.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(c.URLs) == 0 {
		bad("at least one URL is required")
	}
	for _, u := range c.URLs {
		if err := checkURL(u, c.AllowRemote); err != nil {
			errs = append(errs, err)
		}
	}
	if c.AdminPhone == "" || c.AdminPassword == "" {
		bad("the admin phone and password are required (the servers' ADMIN_PHONE and ADMIN_PASSWORD)")
	}
	if c.Mitras < 1 || c.Mitras > maxAccounts {
		bad("mitras must be from 1 to %d", maxAccounts)
	}
	if c.Customers < 0 || c.Customers > maxAccounts {
		bad("customers must be from 0 to %d", maxAccounts)
	}
	if c.RunID < 0 || c.RunID > 9999 {
		bad("run id must be from 0 to 9999")
	}
	if c.Password != "" && len(c.Password) < 8 {
		bad("the password must have at least 8 characters")
	}
	if c.Capacity.Max > 100 {
		bad("capacity must be at most 100")
	}
	if c.SessionMinutes.Min < 1 || c.SessionMinutes.Max > 240 {
		bad("session minutes must be within 1-240")
	}
	if c.ExtendMinutes.Min < 1 || c.ExtendMinutes.Max > 120 {
		bad("extend minutes must be within 1-120")
	}
	if c.Duration <= 0 {
		bad("duration must be positive")
	}
	for name, d := range map[string]time.Duration{
		"heartbeat": c.Heartbeat, "request timeout": c.RequestTimeout, "beacon interval": c.BeaconEvery,
		"poll interval": c.PollEvery, "check interval": c.CheckEvery,
	} {
		if d <= 0 {
			bad("%s must be positive", name)
		}
	}
	for name, p := range map[string]float64{
		"accept probability": c.AcceptProbability, "mitra end probability": c.MitraEndProbability,
		"offline probability": c.OfflineProbability, "status probability": c.StatusProbability,
		"decline probability": c.DeclineProbability, "away probability": c.AwayProbability,
		"extend probability": c.ExtendProbability, "reroute probability": c.RerouteProbability,
		"end probability": c.EndProbability, "cancel probability": c.CancelProbability,
		"queue probability": c.QueueProbability,
	} {
		if p < 0 || p > 1 {
			bad("%s must be within 0..1", name)
		}
	}
	if c.Deactivate < 0 || c.Deactivate > c.Mitras {
		bad("deactivate must be from 0 to the number of mitras")
	}
	if c.DeactivateAt < 0 || c.DeactivateAt >= c.Duration && c.Deactivate > 0 {
		bad("deactivate-at must be within the duration")
	}
	if c.SetupConcurrency < 1 {
		bad("setup concurrency must be at least 1")
	}
	if c.ValkeyURL != "" && c.DatabaseURL == "" {
		bad("the mirror check needs the database URL as well as the Valkey URL")
	}
	if c.Max5xx < 0 || c.MaxTransportErrors < 0 || c.MaxRequests < 0 {
		bad("thresholds and bounds must not be negative")
	}
	return errors.Join(errs...)
}

// checkURL accepts an http(s) URL, on a loopback host unless allowRemote.
func checkURL(raw string, allowRemote bool) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http:// or https:// URL", raw)
	}
	if allowRemote {
		return nil
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%q is not a loopback address (pass -allow-remote to load another host)", raw)
}

// password of the simulated accounts.
func (c Config) password() string {
	if c.Password != "" {
		return c.Password
	}
	return fmt.Sprintf("loadgen-run-%04d", c.RunID)
}

// MitraPhone is the phone of mitra i of run id: +6281, the run id on four
// digits, i on six (E.164, 14 digits).
func MitraPhone(runID, i int) string { return fmt.Sprintf("+6281%04d%06d", runID, i) }

// CustomerPhone is the phone of customer i of run id (+6282…).
func CustomerPhone(runID, i int) string { return fmt.Sprintf("+6282%04d%06d", runID, i) }

// jitter returns d ±20%.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}
