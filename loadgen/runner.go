package loadgen

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/halobestie/mitra-availability/client"
)

// finalTimeout bounds the final checks and the cleanup, beyond the mirror's
// final wait.
const finalTimeout = 2 * time.Minute

// Runner runs one load test. Build it with NewRunner, then call Run once.
type Runner struct {
	cfg      Config
	progress io.Writer

	client   *Client
	checker  *Checker
	pg       *PostgresReader
	vk       *ValkeyReader
	setupRec *Recorder
	runRec   *Recorder
	endRec   *Recorder
	sim      Counters // simulation outcomes
	ws       Counters // WebSocket connections and events
	wsOpen   atomic.Int64

	admin       *User
	mitras      []*mitraActor
	customers   []*customerActor
	setupReport SetupReport
	deactivated []string

	budget     context.CancelFunc // ends the simulation when the request budget is spent
	budgetOnce sync.Once

	simulating chan struct{} // closed when the simulation starts

	urlMu sync.Mutex
	down  map[string]bool          // URLs out of the rotation (SetDown)
	up    atomic.Pointer[[]string] // the URLs in the rotation

	phaseMu sync.Mutex
	current *phase         // nil before the first StartPhase
	phases  []PhaseFigures // of the ended phases
}

// NewRunner validates cfg and prepares a run; progress receives the
// progress lines (nil: none).
func NewRunner(cfg Config, progress io.Writer) (*Runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("loadgen: invalid configuration: %w", err)
	}
	if progress == nil {
		progress = io.Discard
	}
	progress = SyncWriter(progress) // the progress, check and actor goroutines all log
	urls := make([]string, len(cfg.URLs))
	for i, u := range cfg.URLs {
		urls[i] = strings.TrimRight(u, "/")
	}
	cfg.URLs = urls
	r := &Runner{
		cfg:      cfg,
		progress: progress,
		setupRec: NewRecorder(0),
		runRec:   NewRecorder(0),
		endRec:   NewRecorder(0),

		simulating: make(chan struct{}),
		down:       map[string]bool{},
	}
	r.up.Store(&urls)
	r.client = NewClient(cfg.RequestTimeout, r.setupRec, r.onBudget)
	return r, nil
}

func (r *Runner) onBudget() {
	r.sim.Inc("request_budget_spent")
	r.budgetOnce.Do(func() {
		if r.budget != nil {
			r.budget()
		}
	})
}

// SyncWriter returns a writer that passes each Write to w under a lock, so
// that goroutines sharing it do not interleave or race.
func SyncWriter(w io.Writer) io.Writer {
	if s, ok := w.(*syncWriter); ok {
		return s
	}
	return &syncWriter{w: w}
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (r *Runner) logf(format string, args ...any) {
	fmt.Fprintf(r.progress, "loadgen: "+format+"\n", args...)
}

// Run runs the load test: setup, simulation for cfg.Duration (or until ctx
// ends or the request budget is spent), final checks and cleanup. The report
// is returned even when the run fails after setup; the error says why it
// could not run or check.
func (r *Runner) Run(ctx context.Context) (*Report, error) {
	defer r.client.Close()

	if err := r.waitReady(ctx); err != nil {
		return nil, err
	}
	if err := r.openSources(ctx); err != nil {
		return nil, err
	}
	defer r.closeSources()

	since := time.Now().Add(-time.Second)
	chk, err := NewChecker(CheckerConfig{
		Store:           r.storeReader(),
		Mirror:          r.mirrorReader(),
		Since:           since,
		Grace:           r.cfg.Grace,
		ReseedInterval:  r.cfg.ReseedInterval,
		MirrorFinalWait: r.cfg.MirrorFinalWait,
		QueueGrace:      r.cfg.QueueGrace,
		QueueTimeout:    r.cfg.QueueTimeout,
		PairingTimeout:  r.cfg.PairingTimeout,
	})
	if err != nil {
		return nil, err
	}
	r.checker = chk

	setupStart := time.Now()
	if err := r.setup(ctx); err != nil {
		return nil, err
	}
	r.setupReport.Seconds = time.Since(setupStart).Seconds()
	r.logf("setup done in %.1fs: %d mitras (%d created), %d customers (%d created)", r.setupReport.Seconds,
		len(r.mitras), r.setupReport.MitrasCreated, len(r.customers), r.setupReport.CustomersCreated)

	// The simulation, bounded in time and in requests.
	r.client.SetRecorder(r.runRec)
	simCtx, stopSim := context.WithTimeout(ctx, r.cfg.Duration)
	defer stopSim()
	r.budget = stopSim
	r.client.SetBudget(r.cfg.MaxRequests)
	if r.cfg.FirstPhase != "" {
		r.StartPhase(r.cfg.FirstPhase)
	}
	wsCtx, closeWS := context.WithCancel(context.WithoutCancel(ctx))
	defer closeWS()
	var wsWG, actorWG, bgWG sync.WaitGroup
	for _, a := range r.mitras {
		wsWG.Go(func() { r.holdWebSocket(wsCtx, a.u, a.deliver) })
		actorWG.Go(func() { a.run(simCtx) })
	}
	for _, a := range r.customers {
		wsWG.Go(func() { r.holdWebSocket(wsCtx, a.u, a.deliver) })
		actorWG.Go(func() { a.run(simCtx) })
	}
	simStart := time.Now()
	close(r.simulating)
	bgWG.Go(func() { r.progressLoop(simCtx, simStart) })
	bgWG.Go(func() { r.checkLoop(simCtx) })
	bgWG.Go(func() { r.deactivationPlan(simCtx) })
	<-simCtx.Done()
	actorWG.Wait()
	bgWG.Wait()
	simEnd := time.Now()
	simSeconds := simEnd.Sub(simStart).Seconds()
	phases := r.endPhases(simEnd, r.endRec)
	r.logf("simulation stopped after %.1fs; settling for %s", simSeconds, r.cfg.Settle)

	// Final checks and cleanup: a bounded number of requests, one or two per
	// user, in a time budget that starts now; they run even when ctx ended
	// the simulation early.
	finalCtx, cancelFinal := context.WithTimeout(context.WithoutCancel(ctx), r.finalBudget())
	defer cancelFinal()
	r.client.SetBudget(0)
	r.client.SetRecorder(r.endRec)
	select {
	case <-time.After(r.cfg.Settle):
	case <-finalCtx.Done():
	}
	r.fetchFinalViews(finalCtx)
	res, checkErr := r.checker.Final(finalCtx)
	closeWS()
	wsWG.Wait()
	if checkErr != nil {
		r.logf("final checks: %v", checkErr)
	}
	if r.cfg.Cleanup {
		r.cleanup(finalCtx)
	}
	rep := r.report(simStart, simSeconds, res, checkErr)
	rep.Phases = phases
	return rep, nil
}

func (r *Runner) finalBudget() time.Duration {
	wait := r.cfg.MirrorFinalWait
	if wait == 0 {
		wait = r.cfg.ReseedInterval + r.cfg.Grace
	}
	return max(wait, 0) + r.cfg.Settle + finalTimeout
}

// waitReady polls every URL's /healthz until it answers 200. These polls
// are not recorded: refused connections before a server listens are expected.
func (r *Runner) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(r.cfg.WaitReady)
	poll := func(base string) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+routeHealthz, nil)
		if err != nil {
			return err
		}
		resp, err := r.client.hc.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /healthz: HTTP %d", resp.StatusCode)
		}
		return nil
	}
	for _, u := range r.cfg.URLs {
		for {
			err := poll(u)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("loadgen: %s is not ready: %w", u, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return nil
}

func (r *Runner) openSources(ctx context.Context) error {
	if r.cfg.DatabaseURL != "" {
		pg, err := OpenPostgres(ctx, r.cfg.DatabaseURL)
		if err != nil {
			return err
		}
		r.pg = pg
	}
	if r.cfg.ValkeyURL != "" {
		vk, err := OpenValkey(ctx, r.cfg.ValkeyURL, r.cfg.ValkeyPrefix)
		if err != nil {
			r.closeSources()
			return err
		}
		r.vk = vk
	}
	return nil
}

func (r *Runner) closeSources() {
	if r.pg != nil {
		r.pg.Close()
	}
	if r.vk != nil {
		r.vk.Close()
	}
}

// storeReader and mirrorReader return nil interfaces (not typed nils) when absent.
func (r *Runner) storeReader() StoreReader {
	if r.pg == nil {
		return nil
	}
	return r.pg
}

func (r *Runner) mirrorReader() MirrorReader {
	if r.vk == nil {
		return nil
	}
	return r.vk
}

// forEach runs fn(i) for i in [0, n) with at most SetupConcurrency at once.
func (r *Runner) forEach(ctx context.Context, n int, fn func(i int)) {
	sem := make(chan struct{}, r.cfg.SetupConcurrency)
	var wg sync.WaitGroup
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			fn(i)
		})
	}
	wg.Wait()
}

// setup logs the admin in, then creates (or finds) and logs in every mitra
// and customer, spreading them over the URLs.
func (r *Runner) setup(ctx context.Context) error {
	r.admin = &User{Role: "admin", Phone: r.cfg.AdminPhone, Password: r.cfg.AdminPassword}
	if err := r.admin.Login(ctx, r.client, r.cfg.URLs[0]); err != nil {
		return fmt.Errorf("loadgen: admin login: %w", err)
	}
	pw := r.cfg.password()
	var mu sync.Mutex
	var firstErr error
	fail := func(what string, err error) {
		mu.Lock()
		defer mu.Unlock()
		r.setupReport.Failures++
		if firstErr == nil {
			firstErr = fmt.Errorf("%s: %w", what, err)
		}
	}

	mitras := make([]*mitraActor, r.cfg.Mitras)
	var leftovers []int // deactivated by an earlier run of this run id
	r.forEach(ctx, r.cfg.Mitras, func(i int) {
		u := &User{Role: "mitra", Phone: MitraPhone(r.cfg.RunID, i), Password: pw}
		base := r.cfg.URLs[i%len(r.cfg.URLs)]
		capacity := r.cfg.Capacity.Pick()
		body := client.CreateMitraRequest{Phone: u.Phone, Password: pw, Capacity: &capacity,
			DisplayName: fmt.Sprintf("Loadgen mitra %d/%d", r.cfg.RunID, i)}
		var v MitraView
		err := r.admin.Call(ctx, r.client, base, http.MethodPost, routeAdminMitras, routeAdminMitras, body, &v)
		switch {
		case err == nil:
			mu.Lock()
			r.setupReport.MitrasCreated++
			mu.Unlock()
		case ErrorCode(err) == "phone_taken":
		default:
			fail("creating mitra "+u.Phone, err)
			return
		}
		if err := u.Login(ctx, r.client, base); err != nil {
			if ErrorCode(err) == "account_deactivated" {
				mu.Lock()
				leftovers = append(leftovers, i)
				mu.Unlock()
				return
			}
			fail("logging in mitra "+u.Phone, err)
			return
		}
		mitras[i] = newMitraActor(r, u, capacity)
	})
	if len(leftovers) > 0 {
		r.reviveLeftovers(ctx, leftovers, mitras)
	}
	for _, a := range mitras {
		if a != nil {
			r.mitras = append(r.mitras, a)
		}
	}

	customers := make([]*customerActor, r.cfg.Customers)
	r.forEach(ctx, r.cfg.Customers, func(i int) {
		u := &User{Role: "customer", Phone: CustomerPhone(r.cfg.RunID, i), Password: pw}
		base := r.cfg.URLs[i%len(r.cfg.URLs)]
		body := client.CreateCustomerRequest{Phone: u.Phone, Password: pw,
			DisplayName: fmt.Sprintf("Loadgen customer %d/%d", r.cfg.RunID, i)}
		err := r.client.Do(ctx, base, http.MethodPost, routeCustomers, routeCustomers, "", body, nil)
		switch {
		case err == nil:
			mu.Lock()
			r.setupReport.CustomersCreated++
			mu.Unlock()
		case ErrorCode(err) == "phone_taken":
		default:
			fail("creating customer "+u.Phone, err)
			return
		}
		if err := u.Login(ctx, r.client, base); err != nil {
			fail("logging in customer "+u.Phone, err)
			return
		}
		customers[i] = newCustomerActor(r, u)
	})
	for _, a := range customers {
		if a != nil {
			r.customers = append(r.customers, a)
		}
	}
	r.setupReport.Mitras = len(r.mitras)
	r.setupReport.Customers = len(r.customers)
	r.setupReport.MitrasSkipped = r.cfg.Mitras - len(r.mitras)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if firstErr != nil {
		r.logf("setup: %d failures, the first: %v", r.setupReport.Failures, firstErr)
	}
	if len(r.mitras) == 0 || (r.cfg.Customers > 0 && len(r.customers) == 0) {
		return fmt.Errorf("loadgen: setup failed: %d mitras and %d customers ready (%w)", len(r.mitras), len(r.customers), firstErr)
	}
	return nil
}

// reviveLeftovers reactivates the mitras an interrupted earlier run left
// deactivated (their ids come from Postgres; without it they sit out).
func (r *Runner) reviveLeftovers(ctx context.Context, idx []int, mitras []*mitraActor) {
	if r.pg == nil {
		r.logf("setup: %d mitras of run %d are deactivated (an interrupted run?); they sit out (pass -database-url to reactivate them)", len(idx), r.cfg.RunID)
		return
	}
	phones := make([]string, len(idx))
	for k, i := range idx {
		phones[k] = MitraPhone(r.cfg.RunID, i)
	}
	ids, err := r.pg.MitraIDsByPhone(ctx, phones)
	if err != nil {
		r.logf("setup: finding deactivated mitras: %v", err)
		return
	}
	for k, i := range idx {
		id, ok := ids[phones[k]]
		if !ok {
			continue
		}
		body := client.PatchMitraRequest{IsActive: ptrTo(true)}
		if err := r.admin.Call(ctx, r.client, r.randomURL(), http.MethodPatch, routeAdminMitra, "/api/admin/mitras/"+id, body, nil); err != nil {
			continue
		}
		u := &User{Role: "mitra", Phone: phones[k], Password: r.cfg.password()}
		if err := u.Login(ctx, r.client, r.randomURL()); err == nil {
			mitras[i] = newMitraActor(r, u, r.cfg.Capacity.Min)
			r.setupReport.MitrasReactivated++
		}
	}
}

// deactivationPlan deactivates cfg.Deactivate random mitras at DeactivateAt.
func (r *Runner) deactivationPlan(ctx context.Context) {
	if r.cfg.Deactivate == 0 {
		return
	}
	at := r.cfg.DeactivateAt
	if at == 0 {
		at = r.cfg.Duration / 3
	}
	select {
	case <-ctx.Done():
		return
	case <-time.After(at):
	}
	for _, k := range rand.Perm(len(r.mitras))[:min(r.cfg.Deactivate, len(r.mitras))] {
		a := r.mitras[k]
		var v MitraView
		body := client.PatchMitraRequest{IsActive: ptrTo(false)}
		err := r.admin.Call(ctx, r.client, r.randomURL(), http.MethodPatch, routeAdminMitra, "/api/admin/mitras/"+a.u.ID(), body, &v)
		if err != nil {
			r.logf("deactivating mitra %s: %v", a.u.ID(), err)
			continue
		}
		r.checker.Deactivated(a.u.ID(), time.Now())
		r.deactivated = append(r.deactivated, a.u.ID())
		r.sim.Inc("mitras_deactivated")
		if v.IsActive || v.IsOnline {
			r.logf("deactivated mitra %s still shows is_active=%t is_online=%t", v.ID, v.IsActive, v.IsOnline)
		}
	}
}

// checkLoop runs the checker's live pass every CheckEvery.
func (r *Runner) checkLoop(ctx context.Context) {
	if r.pg == nil {
		return
	}
	t := time.NewTicker(r.cfg.CheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := r.checker.Sample(ctx); err != nil && ctx.Err() == nil {
				r.logf("live check: %v", err)
			}
		}
	}
}

// progressLoop prints one line every Progress.
func (r *Runner) progressLoop(ctx context.Context, start time.Time) {
	if r.cfg.Progress <= 0 {
		return
	}
	t := time.NewTicker(r.cfg.Progress)
	defer t.Stop()
	last := start
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			w := r.runRec.Window()
			_, total5xx, transport := r.runRec.Totals()
			var searching, pending, active int
			for _, c := range r.customers {
				switch c.state.Load() {
				case stateSearching:
					searching++
				case statePending:
					pending++
				case stateActive:
					active++
				}
			}
			online := 0
			for _, m := range r.mitras {
				if m.online.Load() {
					online++
				}
			}
			fmt.Fprintf(r.progress, "t=%4.0fs rps=%7.1f p95=%7.1fms 5xx=%d(+%d) neterr=%d sessions s/p/a=%d/%d/%d online=%d ws=%d violations=%d\n",
				now.Sub(start).Seconds(), float64(w.Requests)/now.Sub(last).Seconds(), ms(w.P95), total5xx, w.Status5xx,
				transport, searching, pending, active, online, r.wsOpen.Load(), len(r.checker.Violations()))
			last = now
		}
	}
}

// fetchFinalViews reads every customer's session list for the final checks.
func (r *Runner) fetchFinalViews(ctx context.Context) {
	r.forEach(ctx, len(r.customers), func(i int) {
		c := r.customers[i]
		var list struct {
			Sessions []SessionView `json:"sessions"`
		}
		if err := c.call(ctx, http.MethodGet, routeSessions, routeSessions, nil, &list); err == nil {
			r.checker.FinalViews(list.Sessions)
		}
	})
}

// cleanup ends the customers' open sessions, takes the mitras offline and
// reactivates the mitras the run deactivated, so that the next run with the
// same run id starts from a quiet state.
func (r *Runner) cleanup(ctx context.Context) {
	r.forEach(ctx, len(r.customers), func(i int) {
		c := r.customers[i]
		if v, ok := c.openSession(ctx); ok {
			_ = c.call(ctx, http.MethodPost, routeEnd, sessionPath(v.ID, "end"), nil, nil)
		}
	})
	r.forEach(ctx, len(r.mitras), func(i int) {
		m := r.mitras[i]
		if !m.deactivated.Load() {
			_ = m.call(ctx, http.MethodPost, routeOffline, routeOffline, nil, nil)
		}
	})
	for _, id := range r.deactivated {
		body := client.PatchMitraRequest{IsActive: ptrTo(true)}
		if err := r.admin.Call(ctx, r.client, r.randomURL(), http.MethodPatch, routeAdminMitra, "/api/admin/mitras/"+id, body, nil); err != nil {
			r.logf("reactivating mitra %s: %v", id, err)
		}
	}
}
