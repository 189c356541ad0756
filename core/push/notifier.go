package push

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/halobestie/mitra-availability/ports"
)

// Outcomes of one recipient's notification (ports.PushMetrics).
const (
	OutcomeSent         = "sent"
	OutcomeFailed       = "failed"
	OutcomeUnregistered = "unregistered"
	OutcomeDropped      = "dropped"
	OutcomeConnected    = "connected"
	OutcomeNoDevice     = "no_device"
	OutcomeLookupFailed = "lookup_failed"
)

// Outcomes lists every outcome, for metrics that show them all from the start.
var Outcomes = []string{OutcomeSent, OutcomeFailed, OutcomeUnregistered, OutcomeDropped,
	OutcomeConnected, OutcomeNoDevice, OutcomeLookupFailed}

// Config tunes the Notifier; zero values take the defaults.
type Config struct {
	Workers       int           // concurrent pushes; default 4
	QueueSize     int           // jobs waiting for a worker; default 1024
	LookupTimeout time.Duration // presence and device lookups of one job; default 2s
	PushTimeout   time.Duration // one push, its retries included; default 10s
}

func (c Config) withDefaults() Config {
	if c.Workers <= 0 {
		c.Workers = 4
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 1024
	}
	if c.LookupTimeout <= 0 {
		c.LookupTimeout = 2 * time.Second
	}
	if c.PushTimeout <= 0 {
		c.PushTimeout = 10 * time.Second
	}
	return c
}

// job is one event for one recipient.
type job struct {
	userID string
	event  ports.Event
}

// Notifier pushes events to the recipients no WebSocket reaches; see the
// package documentation.
type Notifier struct {
	presence ports.Presence
	devices  ports.DeviceStore
	pusher   ports.Pusher
	metrics  ports.PushMetrics
	log      *slog.Logger
	cfg      Config

	queue chan job

	mu      sync.Mutex
	running bool
	stopped bool
	cancel  context.CancelFunc // of the workers' context
	closing chan struct{}      // closed by Stop: drain the queue and return
	wg      sync.WaitGroup

	presenceLog throttle
	failureLog  throttle
}

// NewNotifier returns a stopped notifier.
func NewNotifier(presence ports.Presence, devices ports.DeviceStore, pusher ports.Pusher, metrics ports.PushMetrics, log *slog.Logger, cfg Config) (*Notifier, error) {
	if presence == nil || devices == nil || pusher == nil || metrics == nil {
		return nil, errors.New("push: notifier needs presence, devices, pusher and metrics")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	return &Notifier{
		presence: presence, devices: devices, pusher: pusher, metrics: metrics,
		log: log.With(slog.String("component", "push")), cfg: cfg,
		queue:   make(chan job, cfg.QueueSize),
		closing: make(chan struct{}),
	}, nil
}

// Notify hands e over for each of its recipients (each user once) and
// returns at once. It is the single entry point of every event into push:
// call it once per event, on the instance where the event happened, after
// the event is recorded. A job that finds the queue full, or the notifier
// stopped, is dropped and counted.
func (n *Notifier) Notify(e ports.Event) {
	if !json.Valid(e.Payload) {
		n.log.Error("not pushing an event whose payload is not JSON", slog.String("type", e.Type))
		return
	}
	n.mu.Lock()
	stopped := n.stopped
	n.mu.Unlock()
	seen := make(map[string]struct{}, len(e.UserIDs)) // a blast names every mitra: no quadratic scan
	for i, userID := range e.UserIDs {
		if _, dup := seen[userID]; userID == "" || dup {
			continue
		}
		seen[userID] = struct{}{}
		if stopped {
			n.metrics.PushOutcome(OutcomeDropped)
			continue
		}
		select {
		case n.queue <- job{userID: userID, event: recipientEvent(e, i)}:
		default:
			n.metrics.PushOutcome(OutcomeDropped)
			if n.failureLog.allow() {
				n.log.Warn("push queue full: notification dropped", slog.String("type", e.Type), slog.String("user_id", userID))
			}
		}
	}
}

// recipientEvent is e as recipient i receives it: for a logged event, the
// frame a WebSocket client gets (with the recipient's event_id and at) and
// that id alone in Seqs; otherwise the payload as it is.
func recipientEvent(e ports.Event, i int) ports.Event {
	out := ports.Event{Type: e.Type, UserIDs: []string{e.UserIDs[i]}, Payload: e.Payload, At: e.At}
	if e.Logged() {
		le := e.For(i)
		out.Payload, out.Seqs = le.Frame(), []int64{le.Seq}
	}
	return out
}

// Start starts the workers. It fails when already started or stopped.
func (n *Notifier) Start(context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.running || n.stopped {
		return errors.New("push: notifier already started or stopped")
	}
	n.running = true
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	for range n.cfg.Workers {
		n.wg.Go(func() { n.work(ctx) })
	}
	return nil
}

// Stop refuses new jobs, lets the workers finish the queued ones, and waits
// for them. When ctx ends first, it cancels the pushes in flight, counts the
// jobs left as dropped and returns ctx's error. A stopped notifier cannot
// start again.
func (n *Notifier) Stop(ctx context.Context) error {
	n.mu.Lock()
	if n.stopped {
		n.mu.Unlock()
		return nil
	}
	n.stopped = true
	running, cancel := n.running, n.cancel
	n.mu.Unlock()
	if !running {
		return nil
	}
	close(n.closing)
	done := make(chan struct{})
	go func() {
		n.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		cancel()
		return nil
	case <-ctx.Done():
	}
	cancel()
	<-done
	return fmt.Errorf("push: stopping the notifier: %w", ctx.Err())
}

// work takes jobs until Stop, then drains the queue (quickly, once ctx is cancelled).
func (n *Notifier) work(ctx context.Context) {
	for {
		select {
		case j := <-n.queue:
			n.handle(ctx, j)
		case <-n.closing:
			for {
				select {
				case j := <-n.queue:
					n.handle(ctx, j)
				default:
					return
				}
			}
		}
	}
}

// handle decides and sends one recipient's notification; once Stop gave up
// waiting (ctx is cancelled), it only counts the job as dropped.
func (n *Notifier) handle(ctx context.Context, j job) {
	if ctx.Err() != nil {
		n.metrics.PushOutcome(OutcomeDropped)
		return
	}
	n.metrics.PushOutcome(n.deliver(ctx, j))
}

func (n *Notifier) deliver(ctx context.Context, j job) string {
	lctx, cancel := context.WithTimeout(ctx, n.cfg.LookupTimeout)
	defer cancel()
	online, err := n.presence.Online(lctx, []string{j.userID})
	if err != nil {
		n.metrics.PresenceFailed()
		if n.presenceLog.allow() {
			n.log.Warn("presence lookup failed: pushing as if not connected", slog.Any("error", err))
		}
	}
	if online[j.userID] {
		return OutcomeConnected
	}
	devices, err := n.devices.Devices(lctx, []string{j.userID})
	if err != nil {
		if n.failureLog.allow() {
			n.log.Warn("device lookup failed: notification not pushed",
				slog.String("type", j.event.Type), slog.String("user_id", j.userID), slog.Any("error", err))
		}
		return OutcomeLookupFailed
	}
	d, ok := devices[j.userID]
	if !ok {
		return OutcomeNoDevice
	}

	pctx, cancelPush := context.WithTimeout(ctx, n.cfg.PushTimeout)
	defer cancelPush()
	e := j.event
	err = n.pusher.Push(pctx, ports.Push{Device: d, Event: e})
	switch {
	case err == nil:
		return OutcomeSent
	case errors.Is(err, ports.ErrPushTokenUnregistered):
		dctx, cancelDrop := context.WithTimeout(ctx, n.cfg.LookupTimeout)
		defer cancelDrop()
		dropped, derr := n.devices.DropDeviceToken(dctx, j.userID, d.Token)
		n.log.Info("push token unregistered: device dropped",
			slog.String("user_id", j.userID), slog.Bool("dropped", dropped), slog.Any("drop_error", derr))
		return OutcomeUnregistered
	default:
		if n.failureLog.allow() {
			n.log.Warn("push failed", slog.String("type", e.Type), slog.String("user_id", j.userID), slog.Any("error", err))
		}
		return OutcomeFailed
	}
}

// throttle lets a repeated warning through at most once per throttleEvery,
// so that an outage logs a line now and then, not one per event.
type throttle struct{ last atomic.Int64 }

const throttleEvery = 10 * time.Second

func (t *throttle) allow() bool {
	now := time.Now().UnixNano()
	last := t.last.Load()
	return now-last >= int64(throttleEvery) && t.last.CompareAndSwap(last, now)
}
