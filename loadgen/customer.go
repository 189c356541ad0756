package loadgen

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/halobestie/mitra-availability/client"
)

// Customer states, for the progress line.
const (
	stateIdle int32 = iota
	stateSearching
	statePending
	stateActive
)

// customerActor simulates one customer app: it watches the beacon,
// requests a session, pays, and sometimes extends, reroutes, ends or
// cancels; it follows its session over the WebSocket and by polling.
type customerActor struct {
	r      *Runner
	u      *User
	frames chan Frame
	acts   chan custAction
	state  atomic.Int32
	gen    int // bumped for every session followed; owned by the actor
}

// custAction is a scheduled step of the session of generation gen, valid
// while the session is in phase phase.
type custAction struct {
	gen, phase int
	fn         func()
}

func newCustomerActor(r *Runner, u *User) *customerActor {
	return &customerActor{r: r, u: u, frames: make(chan Frame, actorQueue), acts: make(chan custAction, actorQueue)}
}

func (a *customerActor) deliver(f Frame) {
	select {
	case a.frames <- f:
	default:
		a.r.ws.Inc("dropped_by_actor")
	}
}

func (a *customerActor) call(ctx context.Context, method, route, path string, body, out any) error {
	return a.u.Call(ctx, a.r.client, a.r.randomURL(), method, route, path, body, out)
}

// sleep waits d or until ctx ends, draining frames meanwhile; false when ctx ended.
func (a *customerActor) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		case <-a.frames: // about no session being followed
		case <-a.acts: // left over from a previous session
		}
	}
}

// run simulates the customer until ctx ends.
func (a *customerActor) run(ctx context.Context) {
	if !a.sleep(ctx, rand.N(a.r.cfg.Think.Max+1)) {
		return
	}
	// A session left open by a previous run is followed first.
	if v, ok := a.openSession(ctx); ok {
		a.follow(ctx, v)
	}
	for ctx.Err() == nil {
		if !a.sleep(ctx, a.r.cfg.Think.Pick()) {
			return
		}
		// A queued request waits in the queue when nobody is available, so
		// it does not wait for the beacon.
		queue := rand.Float64() < a.r.cfg.QueueProbability
		if !queue && !a.waitForMitras(ctx) {
			return
		}
		var v SessionView
		body := client.CreateSessionRequest{DurationMinutes: a.r.cfg.SessionMinutes.Pick()}
		if queue {
			body.Queue = &queue
		}
		err := a.call(ctx, http.MethodPost, routeSessions, routeSessions, body, &v)
		switch code := ErrorCode(err); {
		case err == nil:
			a.r.sim.Inc("sessions_requested")
			if queue {
				a.r.sim.Inc("sessions_queued")
				if v.QueuePosition != nil {
					a.r.sim.Inc("sessions_queued_waiting")
				}
				a.r.checker.Queued(v)
			}
			a.r.checker.SessionView(v)
			a.follow(ctx, v)
		case code == "open_session_exists":
			if v, ok := a.openSession(ctx); ok {
				a.follow(ctx, v)
			}
		case code != "":
			a.r.sim.Inc("request_" + code)
		}
	}
}

// waitForMitras polls the beacon until it shows an available mitra (or, now
// and then, requests anyway); false when ctx ended.
func (a *customerActor) waitForMitras(ctx context.Context) bool {
	for {
		var b Beacon
		err := a.r.client.Do(ctx, a.r.randomURL(), http.MethodGet, routeAvailability, routeAvailability, "", nil, &b)
		if err == nil && (b.AvailableMitras > 0 || rand.Float64() < 0.1) {
			return true
		}
		if ctx.Err() != nil || errors.Is(err, errRequestBudget) {
			return false
		}
		if !a.sleep(ctx, jitter(a.r.cfg.BeaconEvery)) {
			return false
		}
	}
}

// openSession finds the customer's open session, if any.
func (a *customerActor) openSession(ctx context.Context) (SessionView, bool) {
	var list struct {
		Sessions []SessionView `json:"sessions"`
	}
	if err := a.call(ctx, http.MethodGet, routeSessions, routeSessions, nil, &list); err != nil {
		return SessionView{}, false
	}
	for _, v := range list.Sessions {
		if IsOpen(v) {
			a.r.checker.SessionView(v)
			return v, true
		}
	}
	return SessionView{}, false
}

// follow drives one session until it is over (or ctx ends).
func (a *customerActor) follow(ctx context.Context, v SessionView) {
	a.gen++
	gen, phase := a.gen, 0
	cur := SessionView{}
	rerouted := false
	defer a.state.Store(stateIdle)

	schedule := func(d time.Duration, fn func()) {
		act := custAction{gen: gen, phase: phase, fn: fn}
		time.AfterFunc(d, func() {
			select {
			case a.acts <- act:
			case <-ctx.Done():
			}
		})
	}
	// step runs an action on the session and applies the view it answers.
	var apply func(SessionView)
	step := func(route, action, counter string, body any) {
		var nv SessionView
		err := a.call(ctx, http.MethodPost, route, sessionPath(cur.ID, action), body, &nv)
		if err != nil {
			if code := ErrorCode(err); code != "" {
				a.r.sim.Inc(action + "_" + code)
			}
			return
		}
		a.r.sim.Inc(counter)
		a.r.checker.SessionView(nv)
		apply(nv)
	}
	refresh := func() {
		var nv SessionView
		if err := a.call(ctx, http.MethodGet, routeSession, sessionPath(cur.ID, ""), nil, &nv); err == nil {
			a.r.checker.SessionView(nv)
			apply(nv)
		}
	}
	apply = func(nv SessionView) {
		if nv.Status == cur.Status && nv.ID == cur.ID {
			cur = nv
			return
		}
		cur = nv
		phase++
		cfg := a.r.cfg
		switch string(cur.Status) {
		case StatusSearching:
			a.state.Store(stateSearching)
			if rand.Float64() < cfg.CancelProbability {
				schedule(time.Second+rand.N(9*time.Second), func() { step(routeEnd, "end", "searches_cancelled", nil) })
			}
		case StatusPendingPayment:
			a.state.Store(statePending)
			a.r.sim.Inc("sessions_matched")
			if !rerouted && rand.Float64() < cfg.RerouteProbability/2 {
				rerouted = true
				schedule(cfg.PayDelay.Pick(), func() { step(routeReroute, "reroute", "reroutes_before_payment", nil) })
				return
			}
			schedule(cfg.PayDelay.Pick(), func() { step(routePay, "pay", "sessions_paid", nil) })
		case StatusActive:
			a.state.Store(stateActive)
			left := cfg.PollEvery
			if cur.ExpiresAt != nil {
				left = max(time.Until(*cur.ExpiresAt), time.Second)
			}
			if rand.Float64() < cfg.ExtendProbability {
				body := client.ExtendSessionRequest{Minutes: cfg.ExtendMinutes.Pick()}
				schedule(rand.N(left/2), func() { step(routeExtend, "extend", "sessions_extended", body) })
			}
			switch {
			case !rerouted && rand.Float64() < cfg.RerouteProbability/2:
				rerouted = true
				schedule(rand.N(left/2), func() { step(routeReroute, "reroute", "reroutes_while_active", nil) })
			case rand.Float64() < cfg.EndProbability:
				schedule(rand.N(left*4/5), func() { step(routeEnd, "end", "customer_ended", nil) })
			}
		}
	}

	apply(v)
	poll := time.NewTicker(jitter(a.r.cfg.PollEvery))
	defer poll.Stop()
	for IsOpen(cur) {
		select {
		case <-ctx.Done():
			return
		case f := <-a.frames:
			if f.Subject() != cur.ID {
				continue
			}
			switch f.Type {
			case EventSessionWarning:
				a.r.sim.Inc("warnings_received")
			case EventQueueUpdate:
				a.r.sim.Inc("queue_updates_received")
			case EventSessionUpdate, EventSessionEnded:
				refresh() // a push means "fetch the session", as the app does
			}
		case act := <-a.acts:
			if act.gen == gen && act.phase == phase {
				act.fn()
			}
		case <-poll.C:
			refresh()
		}
	}
	reason := string(cur.Status)
	if cur.EndReason != nil {
		reason = string(*cur.EndReason)
	}
	a.r.sim.Inc("sessions_over_" + reason)
}
