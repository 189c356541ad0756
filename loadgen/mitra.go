package loadgen

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"time"
)

// actorQueue is the buffer of frames and scheduled actions of one actor.
const actorQueue = 256

// mitraActor simulates one mitra app: online, heartbeats, offers accepted
// after a delay, sessions ended, an occasional pause offline.
type mitraActor struct {
	r        *Runner
	u        *User
	capacity int

	frames  chan Frame
	actions chan func()

	deactivated atomic.Bool
	online      atomic.Bool

	// Owned by the actor's goroutine.
	retrying bool            // an online retry is scheduled
	away     bool            // it went away and has not come back yet
	held     map[string]bool // sessions it holds (pending_payment or active)
	pending  map[string]bool // offers with an accept scheduled
	over     map[string]bool // sessions it saw end or leave it
}

func newMitraActor(r *Runner, u *User, capacity int) *mitraActor {
	return &mitraActor{
		r: r, u: u, capacity: capacity,
		frames:  make(chan Frame, actorQueue),
		actions: make(chan func(), actorQueue),
		held:    make(map[string]bool),
		pending: make(map[string]bool),
		over:    make(map[string]bool),
	}
}

// deliver hands a frame to the actor without blocking (frames beyond the
// queue are dropped for the simulation; the checker has seen them already).
func (a *mitraActor) deliver(f Frame) {
	select {
	case a.frames <- f:
	default:
		a.r.ws.Inc("dropped_by_actor")
	}
}

// after runs fn on the actor's goroutine after d (unless ctx ends first).
func (a *mitraActor) after(ctx context.Context, d time.Duration, fn func()) {
	time.AfterFunc(d, func() {
		select {
		case a.actions <- fn:
		case <-ctx.Done():
		}
	})
}

func (a *mitraActor) call(ctx context.Context, method, route, path string, body, out any) error {
	err := a.u.Call(ctx, a.r.client, a.r.randomURL(), method, route, path, body, out)
	if ErrorCode(err) == "account_deactivated" {
		a.deactivated.Store(true)
		a.online.Store(false)
	}
	return err
}

// run simulates the mitra until ctx ends or it is deactivated.
func (a *mitraActor) run(ctx context.Context) {
	// Start at a random point of the heartbeat cycle, as real apps do.
	select {
	case <-ctx.Done():
		return
	case <-time.After(rand.N(a.r.cfg.Heartbeat/4 + 1)):
	}
	a.goOnline(ctx)
	hb := time.NewTimer(jitter(a.r.cfg.Heartbeat))
	defer hb.Stop()
	for !a.deactivated.Load() {
		select {
		case <-ctx.Done():
			return
		case f := <-a.frames:
			a.onFrame(ctx, f)
		case fn := <-a.actions:
			fn()
		case <-hb.C:
			a.tick(ctx)
			hb.Reset(jitter(a.r.cfg.Heartbeat))
		}
	}
	a.r.sim.Inc("mitra_stopped_deactivated")
}

// goOnline puts the mitra online, retrying every few seconds on failure.
func (a *mitraActor) goOnline(ctx context.Context) {
	var v MitraView
	err := a.call(ctx, http.MethodPost, routeOnline, routeOnline, nil, &v)
	if err == nil {
		a.online.Store(true)
		a.capacity = v.Capacity
		a.r.checker.MitraView(v)
		a.r.sim.Inc("mitra_online")
		return
	}
	if ctx.Err() != nil || a.deactivated.Load() || errors.Is(err, errRequestBudget) {
		return
	}
	a.r.sim.Inc("mitra_online_failed")
	if !a.retrying {
		a.retrying = true
		a.after(ctx, 2*time.Second, func() {
			a.retrying = false
			if !a.online.Load() {
				a.goOnline(ctx)
			}
		})
	}
}

// tick is one heartbeat period: a heartbeat, or now and then a pause offline
// or away. An away mitra keeps heartbeating.
func (a *mitraActor) tick(ctx context.Context) {
	if !a.online.Load() {
		return
	}
	if !a.away && rand.Float64() < a.r.cfg.AwayProbability {
		var v MitraView
		if err := a.call(ctx, http.MethodPost, routeAway, routeAway, nil, &v); err == nil {
			a.away = true
			a.r.checker.Away(a.u.ID(), time.Now())
			a.r.checker.MitraView(v)
			a.r.sim.Inc("mitra_away")
			a.after(ctx, a.r.cfg.OfflineFor.Pick(), func() { a.comeBack(ctx) })
		}
		return
	}
	if !a.away && rand.Float64() < a.r.cfg.OfflineProbability {
		if err := a.call(ctx, http.MethodPost, routeOffline, routeOffline, nil, nil); err == nil {
			a.online.Store(false)
			a.r.sim.Inc("mitra_offline_pause")
			a.after(ctx, a.r.cfg.OfflineFor.Pick(), func() { a.goOnline(ctx) })
		}
		return
	}
	err := a.call(ctx, http.MethodPost, routeHeartbeat, routeHeartbeat, nil, nil)
	switch {
	case err == nil:
		a.r.sim.Inc("heartbeats")
	case ErrorCode(err) == "not_online":
		// Taken offline by the auto-offline sweep: the app goes online again.
		a.r.sim.Inc("heartbeat_not_online")
		a.online.Store(false)
		a.comeBack(ctx)
	}
}

// comeBack ends an away pause (if any) and goes online. The checker forgets
// the pause before the request is sent: offers may arrive from then on.
func (a *mitraActor) comeBack(ctx context.Context) {
	if a.away {
		a.away = false
		a.r.checker.Back(a.u.ID())
		a.r.sim.Inc("mitra_back_from_away")
	}
	a.goOnline(ctx)
}

func (a *mitraActor) onFrame(ctx context.Context, f Frame) {
	id := f.Subject()
	switch f.Type {
	case EventSessionOffer:
		a.r.sim.Inc("offers_received")
		if !a.online.Load() || a.away || a.over[id] || len(a.held)+len(a.pending) >= a.capacity {
			return
		}
		if rand.Float64() >= a.r.cfg.AcceptProbability {
			if rand.Float64() < a.r.cfg.DeclineProbability {
				a.after(ctx, a.r.cfg.AcceptDelay.Pick(), func() { a.decline(ctx, id) })
			}
			return
		}
		a.pending[id] = true
		a.after(ctx, a.r.cfg.AcceptDelay.Pick(), func() { a.accept(ctx, id) })
	case EventSessionTaken:
		if a.pending[id] {
			delete(a.pending, id)
			a.r.sim.Inc("accepts_skipped_taken")
		}
	case EventSessionUpdate:
		if f.Session == nil || a.over[id] {
			return
		}
		if Held(*f.Session) && *f.Session.MitraID == a.u.ID() {
			a.held[id] = true
		} else if a.held[id] {
			// Rerouted away from this mitra: never offered to it again.
			delete(a.held, id)
			a.over[id] = true
		}
	case EventSessionEnded:
		delete(a.held, id)
		delete(a.pending, id)
		a.over[id] = true
	}
}

// decline declines an offer; the checker then fails any later offer of the
// session to this mitra.
func (a *mitraActor) decline(ctx context.Context, id string) {
	if a.over[id] {
		return
	}
	err := a.call(ctx, http.MethodPost, routeDecline, sessionPath(id, "decline"), nil, nil)
	switch {
	case err == nil:
		a.r.checker.Declined(a.u.ID(), id, time.Now())
		a.r.sim.Inc("declined")
		a.over[id] = true
	case ErrorCode(err) != "":
		a.r.sim.Inc("decline_" + ErrorCode(err))
	}
}

// accept accepts an offer that is still pending.
func (a *mitraActor) accept(ctx context.Context, id string) {
	if !a.pending[id] {
		return
	}
	delete(a.pending, id)
	if !a.online.Load() || len(a.held) >= a.capacity {
		return
	}
	var v SessionView
	err := a.call(ctx, http.MethodPost, routeAccept, sessionPath(id, "accept"), nil, &v)
	if err != nil {
		if code := ErrorCode(err); code != "" {
			a.r.sim.Inc("accept_" + code)
		}
		return
	}
	a.r.sim.Inc("accept_won")
	a.r.checker.SessionView(v)
	a.held[id] = true
	if rand.Float64() < a.r.cfg.StatusProbability {
		var mv MitraView
		if err := a.call(ctx, http.MethodGet, routeMitraStatus, routeMitraStatus, nil, &mv); err == nil {
			a.r.checker.MitraView(mv)
		}
	}
	if rand.Float64() < a.r.cfg.MitraEndProbability {
		a.after(ctx, a.r.cfg.MitraEndAfter.Pick(), func() { a.end(ctx, id) })
	}
}

// end ends a session the mitra still holds.
func (a *mitraActor) end(ctx context.Context, id string) {
	if !a.held[id] {
		return
	}
	var v SessionView
	err := a.call(ctx, http.MethodPost, routeEnd, sessionPath(id, "end"), nil, &v)
	if err == nil {
		a.r.checker.SessionView(v)
		a.r.sim.Inc("mitra_ended")
	}
	if err == nil || ErrorCode(err) == "invalid_state" || ErrorCode(err) == "not_found" {
		delete(a.held, id)
		a.over[id] = true
	}
}
