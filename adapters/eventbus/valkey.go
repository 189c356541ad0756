package eventbus

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valkey-io/valkey-go"

	"github.com/halobestie/mitra-availability/ports"
)

// Timings of the Valkey bus.
const (
	// PublishTimeout bounds the PUBLISH of one event (its retry included), so
	// a hung or unreachable server delays a publisher by at most this long.
	PublishTimeout = 500 * time.Millisecond
	// minResubscribeDelay and maxResubscribeDelay bound the backoff between
	// subscription attempts after an error.
	minResubscribeDelay = 100 * time.Millisecond
	maxResubscribeDelay = 2 * time.Second
	// startWait bounds how long Start waits for the first subscription attempt.
	startWait = 2 * time.Second
	// publishQueue is how many events may wait for their PUBLISH; when it is
	// full (a server slower than the event rate), events are dropped.
	publishQueue = 4096
)

// Valkey is a ports.EventBus over a Valkey (or Redis) pub/sub channel, for
// several instances of the service.
//
// Publish delivers the event to this instance's subscribers at once, then
// queues an envelope {origin, id, event} that a publisher goroutine (started
// with the subscription loop) PUBLISHes on the channel, so that no caller
// ever waits on Valkey. While the bus is not subscribed (the server is down
// or hung) and when the queue is full, the envelope is dropped and counted
// (Dropped): the event is in the event log, from which every connection
// reads what the bus did not bring. The origin is
// drawn at random for each Valkey value (each process) and id numbers its
// envelopes. The subscription loop receives the envelopes of every instance
// and delivers to local subscribers those of other origins only, once per
// (origin, id): each subscriber gets each event exactly once, and a Valkey
// outage never loses local delivery.
//
// Pub/sub is at-most-once: events published by other instances while this
// one is not subscribed (during an outage, or before Start) are not received.
//
// Start runs the subscription loop on a dedicated connection; it re-subscribes
// after any error (server killed or restarted, failover) with a backoff, until
// Stop. The client belongs to the caller, who closes it after Stop. A client
// that connects in the background (adapters/valkey.Connector's Lazy, which
// has a Ready channel) is waited for before the first SUBSCRIBE.
type Valkey struct {
	client  valkey.Client
	channel string
	log     *slog.Logger
	origin  string
	local   *Memory

	lastID     atomic.Uint64 // of the envelopes published
	recent     recentSet     // envelopes received
	subscribed atomic.Bool
	queue      chan string   // envelopes waiting for their PUBLISH
	dropped    atomic.Uint64 // envelopes never published
	failed     atomic.Uint64 // PUBLISHes that failed

	mu     sync.Mutex
	cancel context.CancelFunc // of the running loop; nil when not started
	done   chan struct{}      // closed when the running loop returns
}

var _ ports.EventBus = (*Valkey)(nil)

// envelope is what travels on the channel. ID numbers the events of one
// origin, so that receivers drop the copy of a retried PUBLISH.
type envelope struct {
	Origin string      `json:"origin"`
	ID     uint64      `json:"id"`
	Event  ports.Event `json:"event"`
}

// dedupWindow is how many recent envelopes a receiver remembers to drop
// duplicates; a retried PUBLISH arrives right after the first one.
const dedupWindow = 1024

// envelopeKey identifies one envelope.
type envelopeKey struct {
	origin string
	id     uint64
}

// recentSet remembers the last dedupWindow envelope keys.
type recentSet struct {
	mu   sync.Mutex
	seen map[envelopeKey]struct{}
	ring [dedupWindow]envelopeKey
	next int
}

// add records k and reports whether it is new.
func (r *recentSet) add(k envelopeKey) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = make(map[envelopeKey]struct{}, dedupWindow)
	}
	if _, dup := r.seen[k]; dup {
		return false
	}
	if len(r.seen) == dedupWindow {
		delete(r.seen, r.ring[r.next])
	}
	r.seen[k] = struct{}{}
	r.ring[r.next] = k
	r.next = (r.next + 1) % dedupWindow
	return true
}

// NewValkey returns a bus on channel (the app passes VALKEY_KEY_PREFIX +
// "events") over client. log receives subscription errors and undecodable
// messages; nil discards. Nothing is subscribed until Start.
func NewValkey(client valkey.Client, channel string, log *slog.Logger) (*Valkey, error) {
	if client == nil {
		return nil, errors.New("eventbus: valkey client is nil")
	}
	if channel == "" {
		return nil, errors.New("eventbus: valkey channel is empty")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Valkey{
		client:  client,
		channel: channel,
		log:     log.With(slog.String("component", "eventbus"), slog.String("channel", channel)),
		origin:  rand.Text(),
		local:   NewMemory(),
		queue:   make(chan string, publishQueue),
	}, nil
}

// Dropped counts the events not sent to the other instances: queued while
// the bus was not subscribed or the queue was full, or whose PUBLISH failed.
func (v *Valkey) Dropped() uint64 { return v.dropped.Load() + v.failed.Load() }

// Publish delivers e to this instance's subscribers, then queues it for the
// other instances and returns at once (see the type's documentation). The
// only error is a Payload that is not valid JSON, before any delivery; ctx
// is not consulted, so that an event is not lost because the request that
// caused it went away.
func (v *Valkey) Publish(_ context.Context, e ports.Event) error {
	if err := validate(e); err != nil {
		return err
	}
	msg, err := encodeEnvelope(envelope{Origin: v.origin, ID: v.lastID.Add(1), Event: e})
	if err != nil {
		return fmt.Errorf("eventbus: encoding event %q: %w", e.Type, err)
	}
	v.local.deliver(e)
	if !v.Subscribed() {
		v.dropped.Add(1)
		return nil
	}
	select {
	case v.queue <- msg:
		return nil
	default:
	}
	// Full: drop the oldest waiting envelope rather than this one (the
	// newest events matter most to the clients waiting for them; the older
	// ones reach them from the log).
	select {
	case <-v.queue:
		v.dropped.Add(1)
	default:
	}
	select {
	case v.queue <- msg:
	default:
		v.dropped.Add(1)
	}
	return nil
}

// publishBatch bounds the PUBLISHes sent in one round trip.
const publishBatch = 256

// runPublisher PUBLISHes the queued envelopes until ctx ends: whatever is
// waiting, up to publishBatch, in one pipelined round trip under a deadline
// of PublishTimeout.
func (v *Valkey) runPublisher(ctx context.Context, done chan struct{}) {
	defer close(done)
	batch := make([]string, 0, publishBatch)
	for {
		select {
		case <-ctx.Done():
			return
		case msg := <-v.queue:
			batch = append(batch[:0], msg)
		}
	more:
		for len(batch) < publishBatch {
			select {
			case msg := <-v.queue:
				batch = append(batch, msg)
			default:
				break more
			}
		}
		if failed := v.publishAll(ctx, batch); failed > 0 && ctx.Err() == nil {
			v.failed.Add(uint64(failed))
			v.log.Debug("event bus: PUBLISH failed; connections read the events from the log", slog.Int("events", failed))
		}
	}
}

// publishAll PUBLISHes msgs in one round trip, once more after a connection
// error, and returns how many failed.
func (v *Valkey) publishAll(ctx context.Context, msgs []string) int {
	ctx, cancel := context.WithTimeout(ctx, PublishTimeout)
	defer cancel()
	send := func() (failed int, retry bool) {
		cmds := make(valkey.Commands, len(msgs))
		for i, m := range msgs {
			cmds[i] = v.client.B().Publish().Channel(v.channel).Message(m).Build()
		}
		for _, res := range v.client.DoMulti(ctx, cmds...) {
			if err := res.Error(); err != nil {
				failed++
				var serverErr *valkey.ValkeyError
				retry = retry || !errors.As(err, &serverErr)
			}
		}
		return failed, retry
	}
	failed, retry := send()
	// The first command on a connection the server dropped (a restart, a
	// failover) fails although a new connection would work: try once more.
	// Should the first attempt have reached the server after all, receivers
	// drop the copies by their envelope ids.
	if failed > 0 && retry && ctx.Err() == nil {
		failed, _ = send()
	}
	return failed
}

// encodeEnvelope marshals env without escaping <, > and &, so that payloads
// reach other instances byte for byte (compacted).
func encodeEnvelope(env envelope) (string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(env); err != nil {
		return "", err
	}
	return string(bytes.TrimSuffix(buf.Bytes(), []byte("\n"))), nil
}

// Subscribe registers handler for every event of every instance until the
// returned function is called; see Memory.Subscribe for the guarantees.
// handler must not block: it runs on the publisher's goroutine for local
// events and on the subscription loop for remote ones.
func (v *Valkey) Subscribe(handler func(ports.Event)) (unsubscribe func()) {
	return v.local.Subscribe(handler)
}

// Subscribed reports whether the SUBSCRIBE is active now, for readiness
// checks and tests.
func (v *Valkey) Subscribed() bool { return v.subscribed.Load() }

// Start starts the subscription loop. It waits (at most two seconds, and not
// beyond ctx) for the first SUBSCRIBE to be confirmed or to fail, so that an
// instance is normally subscribed when it starts serving; an unreachable
// server is not an error (local delivery works, and the loop keeps trying).
// It fails only when the bus is already started.
func (v *Valkey) Start(ctx context.Context) error {
	v.mu.Lock()
	if v.cancel != nil {
		v.mu.Unlock()
		return errors.New("eventbus: valkey bus already started")
	}
	runCtx, cancel := context.WithCancel(context.Background())
	loopDone, pubDone := make(chan struct{}), make(chan struct{})
	done := make(chan struct{})
	go func() {
		<-loopDone
		<-pubDone
		close(done)
	}()
	firstAttempt := make(chan struct{})
	v.cancel, v.done = cancel, done
	go v.run(runCtx, loopDone, firstAttempt)
	go v.runPublisher(runCtx, pubDone)
	v.mu.Unlock()

	timer := time.NewTimer(startWait)
	defer timer.Stop()
	select {
	case <-firstAttempt:
	case <-timer.C:
	case <-ctx.Done():
	}
	if !v.Subscribed() {
		v.log.WarnContext(ctx, "event bus not subscribed yet; events of other instances are missed until it is")
	}
	return nil
}

// Stop ends the subscription loop and the publisher (events still queued
// are dropped: they are in the event log) and waits for them to return, or for ctx to
// end (then it returns ctx's error and the loop finishes on its own shortly:
// at worst after the client's dial timeout). Stopping a bus that is not
// started is a no-op; a stopped bus may be started again.
func (v *Valkey) Stop(ctx context.Context) error {
	v.mu.Lock()
	cancel, done := v.cancel, v.done
	v.cancel, v.done = nil, nil
	v.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("eventbus: stopping the subscription loop: %w", ctx.Err())
	}
}

// run subscribes until ctx ends, re-subscribing after every error with a
// backoff that restarts from the minimum after a subscription that worked.
// firstAttempt is closed once the first attempt is confirmed or has failed.
func (v *Valkey) run(ctx context.Context, done, firstAttempt chan struct{}) {
	defer close(done)
	var firstOnce sync.Once
	first := func() { firstOnce.Do(func() { close(firstAttempt) }) }
	defer first()

	if !v.awaitClient(ctx, first) {
		return
	}
	delay := minResubscribeDelay
	for {
		confirmed, err := v.receive(ctx, first)
		v.subscribed.Store(false)
		first()
		if ctx.Err() != nil {
			return
		}
		if confirmed {
			delay = minResubscribeDelay
		}
		v.log.WarnContext(ctx, "event bus subscription lost; re-subscribing",
			slog.Duration("retry_in", delay), slog.Any("error", err))

		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(2*delay, maxResubscribeDelay)
	}
}

// connecting is implemented by a client that connects in the background
// (the lazy client of adapters/valkey.Connector): Ready is closed once it is
// connected.
type connecting interface {
	Ready() <-chan struct{}
}

// awaitClient waits until the client is connected, when it connects in the
// background, and reports false if ctx ended first. Start does not wait for
// it: firstAttempt is closed at once when the client is not connected yet.
func (v *Valkey) awaitClient(ctx context.Context, firstAttempt func()) bool {
	c, ok := v.client.(connecting)
	if !ok {
		return true
	}
	select {
	case <-c.Ready():
		return true
	default:
	}
	firstAttempt()
	select {
	case <-c.Ready():
		return true
	case <-ctx.Done():
		return false
	}
}

// receive runs one SUBSCRIBE on a dedicated connection until it ends, and
// reports whether the server confirmed it. onConfirm is called at the
// confirmation (on the client's pipeline goroutine: it must be quick).
func (v *Valkey) receive(ctx context.Context, onConfirm func()) (confirmed bool, err error) {
	var ok atomic.Bool
	hookCtx := valkey.WithOnSubscriptionHook(ctx, func(s valkey.PubSubSubscription) {
		if s.Channel != v.channel {
			return
		}
		switch s.Kind {
		case "subscribe":
			ok.Store(true)
			v.subscribed.Store(true)
			onConfirm()
		case "unsubscribe":
			v.subscribed.Store(false)
		}
	})
	err = v.client.Dedicated(func(c valkey.DedicatedClient) error {
		return c.Receive(hookCtx, c.B().Subscribe().Channel(v.channel).Build(), v.onMessage)
	})
	if err == nil {
		err = errors.New("subscription ended by the server")
	}
	return ok.Load(), err
}

// onMessage delivers the event of another instance to local subscribers.
func (v *Valkey) onMessage(m valkey.PubSubMessage) {
	var env envelope
	if err := json.Unmarshal([]byte(m.Message), &env); err != nil {
		v.log.Warn("event bus: dropping an undecodable message", slog.Any("error", err))
		return
	}
	if env.Origin == v.origin {
		return // delivered locally by Publish already
	}
	if env.Origin == "" || !json.Valid(env.Event.Payload) {
		v.log.Warn("event bus: dropping a malformed envelope", slog.String("type", env.Event.Type))
		return
	}
	if !v.recent.add(envelopeKey{env.Origin, env.ID}) {
		return // the copy of a retried PUBLISH
	}
	v.local.deliver(env.Event)
}
