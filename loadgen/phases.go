package loadgen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// This file holds what a fault-injection run (./app/cmd/chaos) drives
// while the simulation runs: named phases whose requests are counted apart,
// per instance; taking an instance out of the rotation, as a load
// balancer's health check does; and the mirror comparison on demand.

// phase is a named span of the simulation. Every request sent while it is
// current is recorded in rec as well as in the run's recorder.
type phase struct {
	name       string
	start      time.Time
	rec        *Recorder
	violations int // the checker's count when the phase started
	// the checker's event counters when the phase started
	events, lost, dups int

	mu    sync.Mutex
	byURL map[string]*URLCounts
}

// URLCounts are the requests of one phase sent to one instance.
type URLCounts struct {
	Requests        int64 `json:"requests"`
	Status5xx       int64 `json:"status_5xx"`
	TransportErrors int64 `json:"transport_errors"`
}

func (p *phase) record(base, method, route string, status int, code string, latency time.Duration) {
	p.rec.Record(method, route, status, code, latency)
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.byURL[base]
	if c == nil {
		c = &URLCounts{}
		p.byURL[base] = c
	}
	c.Requests++
	switch {
	case status == StatusTransportError:
		c.TransportErrors++
	case status >= 500:
		c.Status5xx++
	}
}

// PhaseFigures are the figures of one named phase of the simulation.
type PhaseFigures struct {
	Name string `json:"name"`
	PhaseReport
	// ByURL splits the requests by the instance they were sent to.
	ByURL map[string]URLCounts `json:"by_url"`
	// Violations is how many invariant violations were recorded during the phase.
	Violations int `json:"violations"`
	// Events, EventsLost and EventsDuplicated count the event frames received
	// during the phase, and the ids found skipped or repeated in it.
	Events           int `json:"events_received"`
	EventsLost       int `json:"events_lost"`
	EventsDuplicated int `json:"events_duplicated"`
}

// StartPhase ends the current phase, if any, and starts one named name.
// Phases are meant for the simulation: call it once Simulating is closed.
func (r *Runner) StartPhase(name string) {
	now := time.Now()
	p := &phase{name: name, start: now, rec: NewRecorder(0), byURL: map[string]*URLCounts{}, violations: len(r.checker.Violations())}
	p.events, p.lost, p.dups = r.checker.EventCounts()
	r.phaseMu.Lock()
	defer r.phaseMu.Unlock()
	prev := r.current
	r.client.setPhase(p) // the requests go to p from here, none to prev any more
	r.current = p
	r.closePhase(prev, now)
	r.logf("phase %q", name)
}

// closePhase records the figures of p, ended at end, which no request is
// recorded in any more. r.phaseMu must be held.
func (r *Runner) closePhase(p *phase, end time.Time) {
	if p == nil {
		return
	}
	f := PhaseFigures{Name: p.name, PhaseReport: phaseReport(p.rec, end.Sub(p.start).Seconds()),
		ByURL: map[string]URLCounts{}, Violations: len(r.checker.Violations()) - p.violations}
	events, lost, dups := r.checker.EventCounts()
	f.Events, f.EventsLost, f.EventsDuplicated = events-p.events, lost-p.lost, dups-p.dups
	p.mu.Lock()
	for u, c := range p.byURL {
		f.ByURL[u] = *c
	}
	p.mu.Unlock()
	r.phases = append(r.phases, f)
}

// endPhases closes the last phase at end and returns the figures of all.
// The requests from then on (the final checks, a WebSocket that reconnects)
// go to final.
func (r *Runner) endPhases(end time.Time, final *Recorder) []PhaseFigures {
	r.phaseMu.Lock()
	defer r.phaseMu.Unlock()
	prev := r.current
	r.client.setSinks(final, nil)
	r.current = nil
	r.closePhase(prev, end)
	return append([]PhaseFigures{}, r.phases...)
}

// Simulating is closed when the simulation starts (setup is done).
func (r *Runner) Simulating() <-chan struct{} { return r.simulating }

// SetDown takes the instance at base out of the rotation (down) or puts it
// back: requests and new WebSocket connections go to the other URLs only,
// as behind a load balancer whose health check ejected it. Requests already
// on their way are not affected.
func (r *Runner) SetDown(base string, down bool) {
	r.urlMu.Lock()
	defer r.urlMu.Unlock()
	if down {
		r.down[base] = true
	} else {
		delete(r.down, base)
	}
	up := make([]string, 0, len(r.cfg.URLs))
	for _, u := range r.cfg.URLs {
		if !r.down[u] {
			up = append(up, u)
		}
	}
	if len(up) == 0 {
		up = r.cfg.URLs // every instance down: keep trying them all
	}
	r.up.Store(&up)
}

// randomURL returns one of the URLs in the rotation, at random.
func (r *Runner) randomURL() string {
	up := *r.up.Load()
	return up[rand.IntN(len(up))]
}

// MirrorDrift compares the Valkey mirror with Postgres now and returns every
// difference (CompareMirror). It needs -database-url and -valkey-url.
func (r *Runner) MirrorDrift(ctx context.Context) ([]Drift, error) {
	if r.pg == nil || r.vk == nil {
		return nil, fmt.Errorf("loadgen: the mirror comparison needs the database and Valkey URLs")
	}
	ms, err := r.vk.MirrorState(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the mirror: %w", err)
	}
	mitras, err := r.pg.Mitras(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading mitras: %w", err)
	}
	return CompareMirror(mitras, ms), nil
}
