package loadgen

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is the outcome of a run, written as text and as JSON.
type Report struct {
	RunID     int          `json:"run_id"`
	URLs      []string     `json:"urls"`
	StartedAt time.Time    `json:"started_at"`
	Settings  ReportConfig `json:"settings"`
	Setup     SetupReport  `json:"setup"`
	Run       PhaseReport  `json:"run"`
	Final     PhaseReport  `json:"final_and_cleanup"`
	// Phases are the named spans of the simulation (StartPhase), if any.
	Phases     []PhaseFigures   `json:"phases"`
	WebSocket  WSReport         `json:"websocket"`
	Simulation map[string]int64 `json:"simulation"`
	Checks     CheckStats       `json:"checks"`
	Queue      QueueStats       `json:"queue"`
	Sources    []string         `json:"check_sources"`
	CheckError string           `json:"check_error,omitempty"`
	Violations []Violation      `json:"violations"`
	// Status5xx and TransportErrors count every phase.
	Status5xx       int64    `json:"status_5xx"`
	TransportErrors int64    `json:"transport_errors"`
	Pass            bool     `json:"pass"`
	Failures        []string `json:"failures"`
}

// ReportConfig is the part of the configuration worth recording.
type ReportConfig struct {
	Mitras          int     `json:"mitras"`
	Customers       int     `json:"customers"`
	DurationSeconds float64 `json:"duration_seconds"`
	HeartbeatSecond float64 `json:"heartbeat_seconds"`
	AcceptProb      float64 `json:"accept_probability"`
	SessionMinutes  string  `json:"session_minutes"`
	Capacity        string  `json:"capacity"`
	Deactivate      int     `json:"deactivate"`
	MaxRequests     int64   `json:"max_requests"`
	Max5xx          int64   `json:"max_5xx"`
	GraceSeconds    float64 `json:"grace_seconds"`
	ReseedSeconds   float64 `json:"reseed_interval_seconds"`
}

// SetupReport describes the setup phase.
type SetupReport struct {
	Seconds           float64      `json:"seconds"`
	Mitras            int          `json:"mitras"`
	MitrasCreated     int          `json:"mitras_created"`
	MitrasReactivated int          `json:"mitras_reactivated"`
	MitrasSkipped     int          `json:"mitras_skipped"`
	Customers         int          `json:"customers"`
	CustomersCreated  int          `json:"customers_created"`
	Failures          int          `json:"failures"`
	Routes            []RouteStats `json:"routes"`
}

// PhaseReport are the request figures of one phase.
type PhaseReport struct {
	Seconds         float64 `json:"seconds"`
	Requests        int64   `json:"requests"`
	PerSecond       float64 `json:"requests_per_second"`
	Status5xx       int64   `json:"status_5xx"`
	TransportErrors int64   `json:"transport_errors"`
	Latency         Latency `json:"latency"`
	// Transitions are the successful session transitions (IsTransition).
	Transitions TransitionFigures `json:"transitions"`
	Routes      []RouteStats      `json:"routes"`
}

// WSReport counts WebSocket connections and events.
type WSReport struct {
	Connects    int64            `json:"connects"`
	Disconnects int64            `json:"unexpected_disconnects"`
	DialErrors  int64            `json:"dial_errors"`
	Dropped     int64            `json:"frames_dropped_by_actors"`
	Events      map[string]int64 `json:"events"`
}

func phaseReport(rec *Recorder, seconds float64) PhaseReport {
	total, s5, tr := rec.Totals()
	p := PhaseReport{Seconds: round3(seconds), Requests: total, Status5xx: s5, TransportErrors: tr, Routes: rec.Routes()}
	if seconds > 0 {
		p.PerSecond = round3(float64(total) / seconds)
	}
	p.Latency = rec.Overall()
	p.Transitions = rec.Transitions()
	return p
}

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

// report assembles the Report and decides whether the run passed.
func (r *Runner) report(simStart time.Time, simSeconds float64, res Result, checkErr error) *Report {
	cfg := r.cfg
	rep := &Report{
		RunID:     cfg.RunID,
		URLs:      cfg.URLs,
		StartedAt: simStart.UTC(),
		Settings: ReportConfig{
			Mitras: cfg.Mitras, Customers: cfg.Customers, DurationSeconds: cfg.Duration.Seconds(),
			HeartbeatSecond: cfg.Heartbeat.Seconds(), AcceptProb: cfg.AcceptProbability,
			SessionMinutes: cfg.SessionMinutes.String(), Capacity: cfg.Capacity.String(), Deactivate: cfg.Deactivate,
			MaxRequests: cfg.MaxRequests, Max5xx: cfg.Max5xx, GraceSeconds: cfg.Grace.Seconds(),
			ReseedSeconds: cfg.ReseedInterval.Seconds(),
		},
		Setup:      r.setupReport,
		Run:        phaseReport(r.runRec, simSeconds),
		Final:      phaseReport(r.endRec, 0),
		Simulation: r.sim.Snapshot(),
		Checks:     res.Stats,
		Queue:      res.Queue,
		Violations: res.Violations,
		Sources:    []string{SourceHTTP, SourceWebSocket},
		Failures:   []string{},
	}
	rep.Setup.Routes = r.setupRec.Routes()
	if r.pg != nil {
		rep.Sources = append(rep.Sources, SourcePostgres)
	}
	if r.vk != nil {
		rep.Sources = append(rep.Sources, SourceValkey)
	}
	ws := r.ws.Snapshot()
	rep.WebSocket = WSReport{Connects: ws["connects"], Disconnects: ws["disconnects"], DialErrors: ws["dial_errors"],
		Dropped: ws["dropped_by_actor"], Events: map[string]int64{}}
	for k, v := range ws {
		if t, ok := strings.CutPrefix(k, "event:"); ok {
			rep.WebSocket.Events[t] = v
		}
	}
	for _, rec := range []*Recorder{r.setupRec, r.runRec, r.endRec} {
		_, s5, tr := rec.Totals()
		rep.Status5xx += s5
		rep.TransportErrors += tr
	}
	if checkErr != nil {
		rep.CheckError = checkErr.Error()
	}
	if rep.Status5xx > cfg.Max5xx {
		rep.Failures = append(rep.Failures, fmt.Sprintf("%d answers were 5xx (allowed: %d)", rep.Status5xx, cfg.Max5xx))
	}
	if rep.TransportErrors > cfg.MaxTransportErrors {
		rep.Failures = append(rep.Failures, fmt.Sprintf("%d requests got no answer (allowed: %d)", rep.TransportErrors, cfg.MaxTransportErrors))
	}
	if n := len(rep.Violations); n > 0 {
		rep.Failures = append(rep.Failures, fmt.Sprintf("%d invariant violations", n))
	}
	if rep.Setup.Failures > 0 {
		rep.Failures = append(rep.Failures, fmt.Sprintf("%d setup failures", rep.Setup.Failures))
	}
	if n := rep.Checks.FramesWithoutEventID; n > 0 {
		rep.Failures = append(rep.Failures, fmt.Sprintf("%d event frames carried no event_id", n))
	}
	rep.Pass = len(rep.Failures) == 0
	return rep
}

// WriteText writes the human summary of rep.
func WriteText(w io.Writer, rep *Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "\n== loadgen run %d against %s\n", rep.RunID, strings.Join(rep.URLs, ", "))
	fmt.Fprintf(&b, "setup: %.1fs, %d mitras (%d created, %d reactivated, %d skipped), %d customers (%d created), %d failures\n",
		rep.Setup.Seconds, rep.Setup.Mitras, rep.Setup.MitrasCreated, rep.Setup.MitrasReactivated, rep.Setup.MitrasSkipped,
		rep.Setup.Customers, rep.Setup.CustomersCreated, rep.Setup.Failures)
	fmt.Fprintf(&b, "run: %.1fs, %d requests (%.1f/s), 5xx %d, no answer %d, latency p50 %.1fms p95 %.1fms p99 %.1fms max %.1fms\n\n",
		rep.Run.Seconds, rep.Run.Requests, rep.Run.PerSecond, rep.Run.Status5xx, rep.Run.TransportErrors,
		rep.Run.Latency.P50, rep.Run.Latency.P95, rep.Run.Latency.P99, rep.Run.Latency.Max)

	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "method\troute\tcount\tp50 ms\tp95 ms\tp99 ms\tmax ms\tstatuses\t")
	for _, rs := range rep.Run.Routes {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%s\t\n", rs.Method, rs.Route, rs.Count,
			rs.Latency.P50, rs.Latency.P95, rs.Latency.P99, rs.Latency.Max, statusList(rs))
	}
	tw.Flush()

	fmt.Fprintf(&b, "\nwebsocket: %d connects, %d unexpected disconnects, %d dial errors; events:%s\n",
		rep.WebSocket.Connects, rep.WebSocket.Disconnects, rep.WebSocket.DialErrors, counterList(rep.WebSocket.Events))
	fmt.Fprintf(&b, "simulation:%s\n", counterList(rep.Simulation))
	c := rep.Checks
	fmt.Fprintf(&b, "checks (%s): %d passes, %d mirror comparisons (drift seen %d, healed %d, unresolved %d), %d sessions, %d holds, %d mitra views, %d offers (%d delivered later than the grace, longest %.0f ms after it was made), %d warnings, %d session_ended (%d deliveries verified), %d deactivations, read errors store %d mirror %d\n",
		strings.Join(rep.Sources, "+"), c.Passes, c.MirrorComparisons, c.MirrorDriftSeen, c.MirrorDriftResolved, len(c.UnresolvedDrift),
		c.SessionsChecked, c.HoldsObserved, c.MitraViewsChecked, c.OffersSeen, c.OffersLate, c.OfferLagMax, c.WarningsSeen, c.EndedSeen, c.EndedDelivered,
		c.Deactivations, c.StoreErrors, c.MirrorErrors)
	q := rep.Queue
	fmt.Fprintf(&b, "queue: %d queued (%d waited), %d offered, %d matched, %d cancelled, %d unmatched, %d open at the end; FIFO: %d pairs checked, %d violations; %d lost; %d queue_update; longest wait for an offer %.1fs\n",
		q.Queued, q.Waited, q.Offered, q.Matched, q.Cancelled, q.Unmatched, q.Open, q.PairsChecked, q.Violations, q.Lost, q.Updates, q.MaxWaitSeconds)
	if len(rep.Phases) > 0 {
		b.WriteString("\n")
		WritePhases(&b, rep.Phases)
		b.WriteString("\n")
	}
	if rep.CheckError != "" {
		fmt.Fprintf(&b, "check error: %s\n", rep.CheckError)
	}
	byInv := map[string]int{}
	for _, v := range rep.Violations {
		byInv[v.Invariant]++
	}
	fmt.Fprintf(&b, "invariant violations: %d\n", len(rep.Violations))
	for _, inv := range Invariants {
		fmt.Fprintf(&b, "  %-32s %d\n", inv, byInv[inv])
	}
	const shown = 20
	for i, v := range rep.Violations {
		if i == shown {
			fmt.Fprintf(&b, "  … %d more in the JSON report\n", len(rep.Violations)-shown)
			break
		}
		fmt.Fprintf(&b, "  - [%s/%s] %s (%s): %s\n", v.Invariant, v.Kind, v.Subject, v.Source, v.Detail)
	}
	fmt.Fprintf(&b, "5xx (all phases): %d, no answer: %d\n", rep.Status5xx, rep.TransportErrors)
	if rep.Pass {
		b.WriteString("PASS\n")
	} else {
		fmt.Fprintf(&b, "FAIL: %s\n", strings.Join(rep.Failures, "; "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WritePhases writes one line per phase: its requests, latency, 5xx and
// unanswered requests by instance, and violations.
func WritePhases(w io.Writer, phases []PhaseFigures) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "phase\tseconds\trequests\treq/s\tp50 ms\tp95 ms\tp99 ms\tmax ms\ttransitions\tp50 ms\tp99 ms\t5xx\tno answer\tviolations\tevents\tlost\tduplicated\t")
	for _, p := range phases {
		t := p.Transitions
		fmt.Fprintf(tw, "%s\t%.1f\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%d\t%.1f\t%.1f\t%d\t%s\t%d\t%d\t%d\t%d\t\n", p.Name, p.Seconds, p.Requests, p.PerSecond,
			p.Latency.P50, p.Latency.P95, p.Latency.P99, p.Latency.Max, t.Count, t.Latency.P50, t.Latency.P99,
			p.Status5xx, byURLList(p), p.Violations, p.Events, p.EventsLost, p.EventsDuplicated)
	}
	tw.Flush()
}

// byURLList is "N" or, when some went unanswered, "N (url: n, …)".
func byURLList(p PhaseFigures) string {
	if p.TransportErrors == 0 {
		return "0"
	}
	urls := make([]string, 0, len(p.ByURL))
	for u, c := range p.ByURL {
		if c.TransportErrors > 0 {
			urls = append(urls, fmt.Sprintf("%s: %d", u, c.TransportErrors))
		}
	}
	sort.Strings(urls)
	return fmt.Sprintf("%d (%s)", p.TransportErrors, strings.Join(urls, ", "))
}

func statusList(rs RouteStats) string {
	keys := make([]string, 0, len(rs.ByStatus))
	for k := range rs.ByStatus {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s:%d", k, rs.ByStatus[k]))
	}
	s := strings.Join(parts, " ")
	if len(rs.ByCode) > 0 {
		s += " (" + strings.TrimSpace(counterList(rs.ByCode)) + ")"
	}
	return s
}

func counterList(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%d", k, m[k])
	}
	return b.String()
}
