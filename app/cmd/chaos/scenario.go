package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/halobestie/mitra-availability/loadgen"

	"github.com/halobestie/mitra-availability/client"
)

// options are the settings of one chaos run.
type options struct {
	serverBin   string
	redisBin    string
	databaseURL string // of an existing database; the run creates its own next to it

	mitras, customers int
	heartbeat         time.Duration
	declineProb       float64 // loadgen.Config.DeclineProbability
	awayProb          float64 // loadgen.Config.AwayProbability

	warmup       time.Duration // the ramp-up: every mitra goes online, every customer requests
	steady       time.Duration // load before the first fault
	valkeyDown   time.Duration // Valkey killed, then restarted empty
	valkeyHang   time.Duration // Valkey stopped (SIGSTOP), then continued
	instanceDown time.Duration // server instance 2 killed, then restarted
	recovery     time.Duration // load after each fault ends
	reseed       time.Duration // the servers' VALKEY_ONLINE_MIRROR_SWEEP_SECONDS

	// transitionBound: the session transitions' p50 while Valkey hangs may
	// be at most this times the steady phase's; 0 reports without judging.
	transitionBound float64

	serverEnv []string // extra server environment (K=V)
	loadgen   func(*loadgen.Config)
	keepDir   bool
}

func defaultOptions() options {
	lg := loadgen.DefaultConfig()
	return options{
		mitras: 1000, customers: 100, heartbeat: 30 * time.Second,
		declineProb: lg.DeclineProbability, awayProb: lg.AwayProbability,
		warmup: 20 * time.Second, steady: 30 * time.Second, valkeyDown: 30 * time.Second, valkeyHang: 30 * time.Second,
		instanceDown: 15 * time.Second, recovery: 30 * time.Second, reseed: 30 * time.Second,
		transitionBound: defaultTransitionBound,
	}
}

// Fault names, also the names of the phases they start.
const (
	phaseWarmup            = "warmup"
	phaseSteady            = "steady"
	phaseValkeyKilled      = "valkey_killed"
	phaseValkeyRestarted   = "valkey_restarted_empty"
	phaseValkeyHung        = "valkey_hung"
	phaseValkeyContinued   = "valkey_continued"
	phaseInstanceKilled    = "instance_killed"
	phaseInstanceRestarted = "instance_restarted"
)

// faultFigures are the measurements of one fault.
type faultFigures struct {
	Fault string `json:"fault"`
	// DegradedAfter: from the fault until every live instance's /readyz
	// said cache "degraded" (Valkey faults only).
	DegradedAfter *float64 `json:"degraded_after_seconds"`
	// ReadyAfter: from the end of the fault until every instance's /readyz
	// said cache "ok" (and, for the restarted instance, answered 200).
	ReadyAfter *float64 `json:"ready_after_seconds"`
	// MirrorConvergedAfter: from the end of the fault until the mirror
	// matched Postgres (two comparisons in a row sharing no drift).
	MirrorConvergedAfter *float64 `json:"mirror_converged_after_seconds"`
	MirrorComparisons    int      `json:"mirror_comparisons"`
	ReadyzNot200         int      `json:"readyz_not_200"`
	Problems             []string `json:"problems"`
}

// result is the outcome of a chaos run, written as JSON too.
type result struct {
	Settings struct {
		Mitras, Customers   int
		WarmupSeconds       float64
		SteadySeconds       float64
		ValkeyDownSeconds   float64
		ValkeyHangSeconds   float64
		InstanceDownSeconds float64
		RecoverySeconds     float64
		ReseedSeconds       float64
	} `json:"settings"`
	Faults []*faultFigures `json:"faults"`
	Load   *loadgen.Report `json:"load"`
	// Transitions compares the session transitions while Valkey hung with
	// the steady phase.
	Transitions *transitionComparison `json:"transitions"`
	ServerExit  []string              `json:"server_exit_problems"`
	Pass        bool                  `json:"pass"`
	Failures    []string              `json:"failures"`
}

// cluster is what a run starts: one redis-server, two server instances.
type cluster struct {
	opts    options
	dir     string
	log     io.Writer
	env     []string
	redis   *proc
	vkAddr  string
	servers []*proc
	urls    []string
	addrs   []string
}

func (c *cluster) logf(format string, args ...any) {
	fmt.Fprintf(c.log, "chaos: "+format+"\n", args...)
}

func (c *cluster) startRedis() error {
	p, err := startRedis(c.opts.redisBin, c.vkAddr, c.dir, filepath.Join(c.dir, "redis.log"))
	if err != nil {
		return err
	}
	c.redis = p
	return nil
}

func (c *cluster) startServer(i int) error {
	p, err := startProc(fmt.Sprintf("server %d", i+1), c.opts.serverBin, nil,
		append(slices.Clone(c.env), "HTTP_ADDR="+c.addrs[i]), filepath.Join(c.dir, fmt.Sprintf("server%d.log", i+1)))
	if err != nil {
		return err
	}
	c.servers[i] = p
	return nil
}

// waitReady polls /readyz of server i until it answers 200 with cache "ok".
func (c *cluster) waitReady(ctx context.Context, i int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		r, err := readyz(ctx, c.urls[i])
		if err == nil && r.status == 200 && r.Cache == client.ReadyCacheOk {
			return nil
		}
		if c.servers[i].exited() {
			return fmt.Errorf("server %d exited: %v\n%s", i+1, c.servers[i].err, c.servers[i].tail(20))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("server %d not ready within %s (last: %+v, %v)", i+1, timeout, r, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *cluster) close() {
	for _, s := range c.servers {
		if s != nil {
			s.kill()
		}
	}
	if c.redis != nil {
		_ = c.redis.signal(syscall.SIGCONT)
		c.redis.kill()
	}
}

// run starts the cluster, drives the load and the faults, and judges the run.
func run(ctx context.Context, opts options, progress io.Writer) (*result, error) {
	progress = loadgen.SyncWriter(progress) // shared by the timeline and the load generator
	dir, err := os.MkdirTemp("", "chaos-")
	if err != nil {
		return nil, err
	}
	if opts.keepDir {
		fmt.Fprintf(progress, "chaos: logs in %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	name := "chaos_" + strconv.FormatInt(time.Now().Unix(), 10) + "_" + randomHex(3)
	dsn, drop, err := createDatabase(ctx, opts.databaseURL, name)
	if err != nil {
		return nil, err
	}
	defer drop()

	c := &cluster{opts: opts, dir: dir, log: progress, servers: make([]*proc, 2)}
	defer c.close()
	if c.vkAddr, err = freeAddr(); err != nil {
		return nil, err
	}
	for range 2 {
		a, err := freeAddr()
		if err != nil {
			return nil, err
		}
		c.addrs = append(c.addrs, a)
		c.urls = append(c.urls, "http://"+a)
	}
	const adminPhone, adminPassword = "+620000000001", "chaos-admin-password"
	prefix := name + ":"
	valkeyURL := "redis://" + c.vkAddr
	c.env = append([]string{
		"APP_ENV=test", "JWT_SECRET=" + randomHex(32), "LOG_LEVEL=warn",
		"DATABASE_URL=" + dsn, "VALKEY_URL=" + valkeyURL, "VALKEY_KEY_PREFIX=" + prefix,
		"ADMIN_PHONE=" + adminPhone, "ADMIN_PASSWORD=" + adminPassword,
		"VALKEY_ONLINE_MIRROR_SWEEP_SECONDS=" + strconv.Itoa(int(opts.reseed.Seconds())),
		// Sessions of one to three minutes get their warning and expiry within the run.
		"SESSION_WARNING_LEAD_SECONDS=30", "PAIRING_TIMEOUT_SECONDS=30", "PAYMENT_TIMEOUT_SECONDS=60",
	}, opts.serverEnv...)

	if err := c.startRedis(); err != nil {
		return nil, err
	}
	for i := range 2 {
		if err := c.startServer(i); err != nil {
			return nil, err
		}
	}
	for i := range 2 {
		if err := c.waitReady(ctx, i, 60*time.Second); err != nil {
			return nil, err
		}
	}
	c.logf("redis-server on %s, servers on %s, database %s", c.vkAddr, strings.Join(c.urls, " and "), name)

	faultTime := opts.warmup + opts.steady + opts.valkeyDown + opts.valkeyHang + opts.instanceDown + 3*opts.recovery
	cfg := loadgen.DefaultConfig()
	cfg.URLs = c.urls
	cfg.AdminPhone, cfg.AdminPassword = adminPhone, adminPassword
	cfg.Mitras, cfg.Customers, cfg.Heartbeat = opts.mitras, opts.customers, opts.heartbeat
	cfg.DeclineProbability, cfg.AwayProbability = opts.declineProb, opts.awayProb
	cfg.RunID = 1
	cfg.Duration = 2*faultTime + 10*time.Minute // the timeline ends the simulation
	cfg.DatabaseURL, cfg.ValkeyURL, cfg.ValkeyPrefix = dsn, valkeyURL, prefix
	cfg.ReseedInterval = opts.reseed
	// A deactivation in the middle of the Valkey outage: it must hold, and
	// the deactivated set must be healed once Valkey is back.
	cfg.DeactivateAt = opts.warmup + opts.steady + opts.valkeyDown/2
	cfg.MaxTransportErrors = 1 << 40 // judged per phase and instance below
	cfg.Cleanup = false              // the database is dropped
	cfg.FirstPhase = phaseWarmup
	if opts.loadgen != nil {
		opts.loadgen(&cfg)
	}
	runner, err := loadgen.NewRunner(cfg, progress)
	if err != nil {
		return nil, err
	}

	res := &result{}
	res.Settings.Mitras, res.Settings.Customers = opts.mitras, opts.customers
	res.Settings.WarmupSeconds, res.Settings.SteadySeconds = opts.warmup.Seconds(), opts.steady.Seconds()
	res.Settings.ValkeyDownSeconds = opts.valkeyDown.Seconds()
	res.Settings.ValkeyHangSeconds, res.Settings.InstanceDownSeconds = opts.valkeyHang.Seconds(), opts.instanceDown.Seconds()
	res.Settings.RecoverySeconds, res.Settings.ReseedSeconds = opts.recovery.Seconds(), opts.reseed.Seconds()

	simCtx, endSim := context.WithCancel(ctx)
	defer endSim()
	var wg sync.WaitGroup
	var timelineErr error
	wg.Go(func() {
		defer endSim()
		select {
		case <-runner.Simulating():
		case <-simCtx.Done():
			return
		}
		timelineErr = c.timeline(simCtx, runner, res)
	})
	rep, runErr := runner.Run(simCtx)
	endSim()
	wg.Wait()
	if runErr != nil {
		return nil, runErr
	}
	res.Load = rep
	if timelineErr != nil {
		res.Failures = append(res.Failures, "timeline: "+timelineErr.Error())
	}

	// Every instance, the restarted one included, exits 0 on SIGTERM.
	for i, s := range c.servers {
		if err := s.stop(30 * time.Second); err != nil {
			res.ServerExit = append(res.ServerExit, err.Error())
			c.logf("server %d log:\n%s", i+1, s.tail(30))
		}
	}
	judge(res, c.urls[1], opts.reseed, opts.transitionBound)
	return res, nil
}

// timeline runs the phases and the faults, measuring each.
func (c *cluster) timeline(ctx context.Context, r *loadgen.Runner, res *result) error {
	sleepUntil := func(t time.Time) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Until(t)):
			return nil
		}
	}
	o := c.opts // the first phase, warmup, started with the simulation
	if err := sleepUntil(time.Now().Add(o.warmup)); err != nil {
		return err
	}
	r.StartPhase(phaseSteady)
	if err := sleepUntil(time.Now().Add(o.steady)); err != nil {
		return err
	}

	// Valkey killed, restarted empty on the same port.
	f := &faultFigures{Fault: "valkey killed for " + o.valkeyDown.String() + ", restarted empty"}
	res.Faults = append(res.Faults, f)
	r.StartPhase(phaseValkeyKilled)
	start := time.Now()
	c.redis.kill()
	c.logf("redis-server killed")
	c.measureDegraded(ctx, f, start, []int{0, 1})
	if err := sleepUntil(start.Add(o.valkeyDown)); err != nil {
		return err
	}
	if err := c.startRedis(); err != nil {
		return err
	}
	c.logf("redis-server restarted, empty")
	r.StartPhase(phaseValkeyRestarted)
	end := time.Now()
	c.measureRecovery(ctx, r, f, end, []int{0, 1})
	if err := sleepUntil(end.Add(o.recovery)); err != nil {
		return err
	}

	// Valkey hung (SIGSTOP), then continued.
	f = &faultFigures{Fault: "valkey hung (SIGSTOP) for " + o.valkeyHang.String()}
	res.Faults = append(res.Faults, f)
	r.StartPhase(phaseValkeyHung)
	start = time.Now()
	if err := c.redis.signal(syscall.SIGSTOP); err != nil {
		return err
	}
	c.logf("redis-server stopped (SIGSTOP)")
	c.measureDegraded(ctx, f, start, []int{0, 1})
	if err := sleepUntil(start.Add(o.valkeyHang)); err != nil {
		return err
	}
	if err := c.redis.signal(syscall.SIGCONT); err != nil {
		return err
	}
	c.logf("redis-server continued (SIGCONT)")
	r.StartPhase(phaseValkeyContinued)
	end = time.Now()
	c.measureRecovery(ctx, r, f, end, []int{0, 1})
	if err := sleepUntil(end.Add(o.recovery)); err != nil {
		return err
	}

	// Server instance 2 killed; the load balancer takes it out of the
	// rotation; restarted, back in once ready.
	f = &faultFigures{Fault: "server instance 2 killed (SIGKILL) for " + o.instanceDown.String() + ", restarted"}
	res.Faults = append(res.Faults, f)
	r.StartPhase(phaseInstanceKilled)
	start = time.Now()
	c.servers[1].kill()
	r.SetDown(c.urls[1], true)
	c.logf("server 2 killed")
	if err := sleepUntil(start.Add(o.instanceDown)); err != nil {
		return err
	}
	if err := c.startServer(1); err != nil {
		return err
	}
	end = time.Now()
	if err := c.waitReady(ctx, 1, 60*time.Second); err != nil {
		f.Problems = append(f.Problems, err.Error())
		return err
	}
	r.SetDown(c.urls[1], false)
	c.logf("server 2 restarted and ready")
	r.StartPhase(phaseInstanceRestarted)
	c.measureRecovery(ctx, r, f, end, []int{0, 1})
	return sleepUntil(time.Now().Add(o.recovery))
}

func secondsOf(p *float64) time.Duration {
	if p == nil {
		return 0
	}
	return time.Duration(*p * float64(time.Second))
}

func ptr(d time.Duration) *float64 {
	s := float64(d.Round(10*time.Millisecond)) / float64(time.Second)
	return &s
}

// measureDegraded polls the instances' /readyz until every one reports the
// cache degraded (at most 10 s), recording any answer but 200.
func (c *cluster) measureDegraded(ctx context.Context, f *faultFigures, since time.Time, instances []int) {
	deadline := since.Add(10 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		all := true
		for _, i := range instances {
			r, err := readyz(ctx, c.urls[i])
			if err == nil && r.status != 200 {
				f.ReadyzNot200++
			}
			if err != nil || r.Cache != client.ReadyCacheDegraded {
				all = false
			}
		}
		if all {
			f.DegradedAfter = ptr(time.Since(since))
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	f.Problems = append(f.Problems, "not every instance reported the cache degraded within 10 s")
}

// measureRecovery waits, from since, until every instance reports the cache
// ok, then until the mirror matches Postgres; each at most a reseed cycle
// and a half, so a failure to heal shows as a missing figure.
func (c *cluster) measureRecovery(ctx context.Context, r *loadgen.Runner, f *faultFigures, since time.Time, instances []int) {
	limit := since.Add(c.opts.reseed * 3 / 2)
	for time.Now().Before(limit) && ctx.Err() == nil && f.ReadyAfter == nil {
		all := true
		for _, i := range instances {
			rz, err := readyz(ctx, c.urls[i])
			if err == nil && rz.status != 200 {
				f.ReadyzNot200++
			}
			if err != nil || rz.status != 200 || rz.Cache != client.ReadyCacheOk {
				all = false
			}
		}
		if all {
			f.ReadyAfter = ptr(time.Since(since))
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if f.ReadyAfter == nil {
		f.Problems = append(f.Problems, "the instances did not all report the cache ok")
	}
	var prev map[string]bool
	for time.Now().Before(limit) && ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		drift, err := r.MirrorDrift(cctx)
		cancel()
		at := time.Now()
		if err == nil {
			f.MirrorComparisons++
			cur := make(map[string]bool, len(drift))
			shared := false
			for _, d := range drift {
				k := d.Kind + "|" + d.MitraID
				cur[k] = true
				shared = shared || prev[k]
			}
			if len(drift) == 0 || (prev != nil && !shared) {
				f.MirrorConvergedAfter = ptr(at.Sub(since))
				return
			}
			prev = cur
		}
		time.Sleep(500 * time.Millisecond)
	}
	f.Problems = append(f.Problems, "the mirror did not match Postgres within 1.5 reseed cycles")
}

// judge decides whether the run passed: no 5xx anywhere; requests without
// an answer only from the killed instance while it was killed; no invariant
// violation; the mirror matched Postgres within one reseed cycle after each
// fault; every instance exited 0 on SIGTERM.
func judge(res *result, killedURL string, reseed time.Duration, transitionBound float64) {
	rep := res.Load
	fail := func(format string, args ...any) { res.Failures = append(res.Failures, fmt.Sprintf(format, args...)) }
	if rep.Status5xx > 0 {
		fail("%d answers were 5xx", rep.Status5xx)
	}
	var setupTransport int64
	for _, rs := range rep.Setup.Routes {
		setupTransport += rs.ByStatus[strconv.Itoa(loadgen.StatusTransportError)]
	}
	if setupTransport > 0 || rep.Final.TransportErrors > 0 {
		fail("%d requests of setup and %d of the final checks got no answer", setupTransport, rep.Final.TransportErrors)
	}
	var phased int64
	for _, p := range rep.Phases {
		phased += p.Requests
		for u, n := range p.ByURL {
			if n.TransportErrors == 0 || (p.Name == phaseInstanceKilled && u == killedURL) {
				continue
			}
			fail("phase %s: %d requests to %s got no answer", p.Name, n.TransportErrors, u)
		}
	}
	if phased != rep.Run.Requests {
		fail("%d requests of the simulation fell outside the phases", rep.Run.Requests-phased)
	}
	if n := len(rep.Violations); n > 0 {
		fail("%d invariant violations", n)
	}
	if rep.CheckError != "" {
		fail("the final checks could not read: %s", rep.CheckError)
	}
	if rep.Setup.Failures > 0 {
		fail("%d setup failures", rep.Setup.Failures)
	}
	for _, f := range res.Faults {
		for _, p := range f.Problems {
			fail("%s: %s", f.Fault, p)
		}
		if f.ReadyzNot200 > 0 {
			fail("%s: /readyz answered other than 200 %d times (the store never failed)", f.Fault, f.ReadyzNot200)
		}
		if f.MirrorConvergedAfter != nil && *f.MirrorConvergedAfter > reseed.Seconds() {
			fail("%s: the mirror matched Postgres only after %.1fs, more than a reseed cycle (%s)", f.Fault, *f.MirrorConvergedAfter, reseed)
		}
	}
	judgeTransitions(res, transitionBound, fail)
	for _, e := range res.ServerExit {
		fail("%s", e)
	}
	if len(res.Faults) != 3 {
		fail("%d of the 3 faults ran", len(res.Faults))
	}
	res.Pass = len(res.Failures) == 0
	if res.Failures == nil {
		res.Failures = []string{}
	}
}

// defaultTransitionBound is how much slower the median session transition
// may be while Valkey hangs than while it is healthy (docs/contract.md §13:
// publishing never blocks a request; the bound is 20%).
const defaultTransitionBound = 1.2

// minTransitions is the fewest transitions a phase needs for its median to
// be compared.
const minTransitions = 20

// judgeTransitions compares the median latency of the successful session
// transitions (loadgen.IsTransition) while Valkey hung with the 30 s right
// after it continued: the same sessions in the same stages under the same
// load, with Valkey healthy. (The steady phase is no like for like: it
// follows the warm-up, when nearly every customer holds an active session,
// so its transitions are fewer and mostly the light ones.) It records the
// comparison, and the steady phase's figures for reference, in
// res.Transitions. A bound of 0 only records it.
func judgeTransitions(res *result, bound float64, fail func(string, ...any)) {
	var healthy, hung, steady *loadgen.PhaseFigures
	for i := range res.Load.Phases {
		switch p := &res.Load.Phases[i]; p.Name {
		case phaseValkeyContinued:
			healthy = p
		case phaseValkeyHung:
			hung = p
		case phaseSteady:
			steady = p
		}
	}
	if healthy == nil || hung == nil {
		fail("the valkey_hung or the valkey_continued phase is missing: no transition latency to compare")
		return
	}
	h, g := healthy.Transitions, hung.Transitions
	res.Transitions = &transitionComparison{
		HealthyP50: h.Latency.P50, HealthyP99: h.Latency.P99, HealthyCount: h.Count,
		HungP50: g.Latency.P50, HungP99: g.Latency.P99, HungCount: g.Count, Bound: bound,
	}
	if steady != nil {
		t := steady.Transitions
		res.Transitions.SteadyCount, res.Transitions.SteadyP50, res.Transitions.SteadyP99 = t.Count, t.Latency.P50, t.Latency.P99
	}
	if h.Latency.P50 > 0 {
		res.Transitions.Ratio = g.Latency.P50 / h.Latency.P50
	}
	if bound <= 0 {
		return
	}
	if h.Count < minTransitions || g.Count < minTransitions {
		fail("too few session transitions to compare (valkey_continued %d, valkey_hung %d; at least %d each)", h.Count, g.Count, minTransitions)
		return
	}
	if g.Latency.P50 > bound*h.Latency.P50 {
		fail("session transitions while Valkey hung: p50 %.1f ms, more than %.0f%% above the %.1f ms once it continued",
			g.Latency.P50, (bound-1)*100, h.Latency.P50)
	}
}

// transitionComparison is the session-transition latency healthy (the
// valkey_continued phase) and with Valkey hung, in milliseconds, and the
// steady phase's for reference.
type transitionComparison struct {
	SteadyCount  int64   `json:"steady_count"`
	SteadyP50    float64 `json:"steady_p50_ms"`
	SteadyP99    float64 `json:"steady_p99_ms"`
	HealthyCount int64   `json:"healthy_count"`
	HealthyP50   float64 `json:"healthy_p50_ms"`
	HealthyP99   float64 `json:"healthy_p99_ms"`
	HungCount    int64   `json:"hung_count"`
	HungP50      float64 `json:"hung_p50_ms"`
	HungP99      float64 `json:"hung_p99_ms"`
	Ratio        float64 `json:"p50_ratio"`
	Bound        float64 `json:"bound"` // 0: not judged
}

// writeText writes the per-phase and per-fault figures and the verdict.
func writeText(w io.Writer, res *result) error {
	var b strings.Builder
	if err := loadgen.WriteText(&b, res.Load); err != nil {
		return err
	}
	b.WriteString("\n== chaos: faults\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "fault\tcache degraded after\tready again after\tmirror = Postgres after\tcomparisons\t")
	for _, f := range res.Faults {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t\n", f.Fault, secs(f.DegradedAfter), secs(f.ReadyAfter), secs(f.MirrorConvergedAfter), f.MirrorComparisons)
	}
	tw.Flush()
	c := res.Load.Checks
	fmt.Fprintf(&b, "events received %d, lost %d, duplicated %d, resumes refused as gone %d (every fault phase checked, none excused)\n",
		c.Events, c.EventsLost, c.EventsDuplicated, c.StreamRestarts)
	if t := res.Transitions; t != nil {
		fmt.Fprintf(&b, "session transitions: valkey_hung %d, p50 %.1f ms, p99 %.1f ms; healthy (valkey_continued) %d, p50 %.1f ms, p99 %.1f ms; p50 ratio %.2f (bound %.2f); steady %d, p50 %.1f ms, p99 %.1f ms\n",
			t.HungCount, t.HungP50, t.HungP99, t.HealthyCount, t.HealthyP50, t.HealthyP99, t.Ratio, t.Bound, t.SteadyCount, t.SteadyP50, t.SteadyP99)
	}
	if res.Pass {
		b.WriteString("CHAOS PASS\n")
	} else {
		fmt.Fprintf(&b, "CHAOS FAIL:\n  - %s\n", strings.Join(res.Failures, "\n  - "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func secs(p *float64) string {
	if p == nil {
		return "—"
	}
	return fmt.Sprintf("%.2fs", *p)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
