package push_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/adapters/memory"
	"github.com/halobestie/mitra-availability/adapters/presence"
	"github.com/halobestie/mitra-availability/core"
	"github.com/halobestie/mitra-availability/core/push"
	"github.com/halobestie/mitra-availability/ports"
)

// pusher records pushes; block makes each push wait until released or its
// context ends; fail is returned for the tokens it names.
type pusher struct {
	mu     sync.Mutex
	pushes []ports.Push
	fail   map[string]error
	block  chan struct{}
	sent   chan struct{}
}

func newPusher() *pusher { return &pusher{fail: map[string]error{}, sent: make(chan struct{}, 1000)} }

func (p *pusher) Push(ctx context.Context, x ports.Push) error {
	p.mu.Lock()
	block, err := p.block, p.fail[x.Device.Token]
	p.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	p.mu.Lock()
	p.pushes = append(p.pushes, x)
	p.mu.Unlock()
	p.sent <- struct{}{}
	return err
}

func (p *pusher) all() []ports.Push {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]ports.Push(nil), p.pushes...)
}

// metrics counts outcomes.
type metrics struct {
	mu       sync.Mutex
	outcomes map[string]int
	presence int
	changed  chan struct{}
}

func newMetrics() *metrics {
	return &metrics{outcomes: map[string]int{}, changed: make(chan struct{}, 1)}
}

func (m *metrics) PushOutcome(o string) {
	m.mu.Lock()
	m.outcomes[o]++
	m.mu.Unlock()
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

func (m *metrics) PresenceFailed() {
	m.mu.Lock()
	m.presence++
	m.mu.Unlock()
}

func (m *metrics) total() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, v := range m.outcomes {
		n += v
	}
	return n
}

func (m *metrics) get(o string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.outcomes[o]
}

// waitOutcomes waits until n outcomes were counted.
func (m *metrics) waitOutcomes(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for m.total() < n {
		select {
		case <-m.changed:
		case <-deadline:
			t.Fatalf("%d outcomes counted, want %d: %v", m.total(), n, m.outcomes)
		}
	}
}

// brokenPresence fails every lookup, knowing only local users.
type brokenPresence struct{ *presence.Memory }

func (b brokenPresence) Online(ctx context.Context, ids []string) (map[string]bool, error) {
	m, _ := b.Memory.Online(ctx, ids)
	return m, errors.New("valkey: connection refused")
}

// brokenDevices fails every read.
type brokenDevices struct{ ports.DeviceStore }

func (brokenDevices) Devices(context.Context, []string) (map[string]ports.Device, error) {
	return nil, fmt.Errorf("postgres: %w", ports.ErrStoreUnavailable)
}

type env struct {
	store    *memory.Store
	presence *presence.Memory
	pusher   *pusher
	metrics  *metrics
	notifier *push.Notifier
}

func newEnv(t *testing.T, cfg push.Config, wrap func(*env) (ports.Presence, ports.DeviceStore)) *env {
	t.Helper()
	e := &env{store: memory.NewStore(), presence: presence.NewMemory(), pusher: newPusher(), metrics: newMetrics()}
	var p ports.Presence = e.presence
	var d ports.DeviceStore = e.store
	if wrap != nil {
		p, d = wrap(e)
	}
	n, err := push.NewNotifier(p, d, e.pusher, e.metrics, nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = n.Stop(ctx)
	})
	e.notifier = n
	return e
}

// user creates a user with a device token ("" for none).
func (e *env) user(t *testing.T, token string) string {
	t.Helper()
	u, err := e.store.CreateUser(t.Context(), ports.NewUser{Role: ports.RoleMitra, Phone: fmt.Sprintf("+62812%08d", seq()), DisplayName: "M", PasswordHash: "h"})
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		if _, err := e.store.PutDevice(t.Context(), ports.Device{UserID: u.ID, Platform: ports.PlatformFCM, Token: token}); err != nil {
			t.Fatal(err)
		}
	}
	return u.ID
}

var (
	seqMu sync.Mutex
	seqN  int
)

func seq() int {
	seqMu.Lock()
	defer seqMu.Unlock()
	seqN++
	return seqN
}

func offerTo(users ...string) ports.Event {
	return ports.Event{Type: ports.EventSessionOffer, UserIDs: users,
		Payload: json.RawMessage(`{"type":"session_offer","session_id":"s1"}`)}
}

func TestPushesOnlyUnconnectedUsersWithADevice(t *testing.T) {
	e := newEnv(t, push.Config{}, nil)
	away := e.user(t, "token-away")
	connected := e.user(t, "token-connected")
	noDevice := e.user(t, "")
	if err := e.presence.Connected(t.Context(), connected); err != nil {
		t.Fatal(err)
	}
	e.notifier.Notify(offerTo(away, connected, noDevice, away))
	e.metrics.waitOutcomes(t, 3)

	pushes := e.pusher.all()
	if len(pushes) != 1 {
		t.Fatalf("%d pushes, want 1 (to the user with no connection): %+v", len(pushes), pushes)
	}
	p := pushes[0]
	if p.Device.Token != "token-away" || p.Device.UserID != away {
		t.Errorf("pushed to %+v, want %s's device", p.Device, away)
	}
	if p.Event.Type != ports.EventSessionOffer || string(p.Event.Payload) != `{"type":"session_offer","session_id":"s1"}` ||
		len(p.Event.UserIDs) != 1 || p.Event.UserIDs[0] != away {
		t.Errorf("pushed event %+v, want the offer for %s alone", p.Event, away)
	}
	for o, want := range map[string]int{push.OutcomeSent: 1, push.OutcomeConnected: 1, push.OutcomeNoDevice: 1} {
		if got := e.metrics.get(o); got != want {
			t.Errorf("outcome %s = %d, want %d", o, got, want)
		}
	}
}

// A logged event is pushed as the recipient's frame: its own event_id and
// at, as its WebSocket would have received it.
func TestPushCarriesTheRecipientsEventID(t *testing.T) {
	e := newEnv(t, push.Config{}, nil)
	a, b := e.user(t, "token-a"), e.user(t, "token-b")
	at := time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
	ev := offerTo(a, b)
	ev.At, ev.Seqs = at, []int64{7, 12}
	e.notifier.Notify(ev)
	e.metrics.waitOutcomes(t, 2)
	got := map[string]ports.Event{}
	for _, p := range e.pusher.all() {
		got[p.Device.UserID] = p.Event
	}
	for user, id := range map[string]string{a: "7", b: "12"} {
		p := got[user]
		want := `{"event_id":"` + id + `","at":"2031-01-02T03:04:05Z","type":"session_offer","session_id":"s1"}`
		if string(p.Payload) != want || len(p.Seqs) != 1 || strconv.FormatInt(p.Seqs[0], 10) != id {
			t.Errorf("pushed to %s: %s %v, want %s", user, p.Payload, p.Seqs, want)
		}
	}
}

func TestUnregisteredTokenIsDropped(t *testing.T) {
	e := newEnv(t, push.Config{}, nil)
	stale := e.user(t, "stale")
	e.pusher.fail["stale"] = fmt.Errorf("fcm: %w", ports.ErrPushTokenUnregistered)
	e.notifier.Notify(offerTo(stale))
	e.metrics.waitOutcomes(t, 1)
	if got := e.metrics.get(push.OutcomeUnregistered); got != 1 {
		t.Errorf("unregistered = %d, want 1", got)
	}
	if ds, _ := e.store.Devices(t.Context(), []string{stale}); len(ds) != 0 {
		t.Errorf("devices after UNREGISTERED = %+v, want none", ds)
	}
}

// A push failure is counted and changes nothing else; the device stays.
func TestFailedPushIsCounted(t *testing.T) {
	e := newEnv(t, push.Config{}, nil)
	u := e.user(t, "flaky")
	e.pusher.fail["flaky"] = errors.New("fcm: HTTP 500")
	e.notifier.Notify(offerTo(u))
	e.metrics.waitOutcomes(t, 1)
	if got := e.metrics.get(push.OutcomeFailed); got != 1 {
		t.Errorf("failed = %d, want 1", got)
	}
	if ds, _ := e.store.Devices(t.Context(), []string{u}); len(ds) != 1 {
		t.Errorf("the device was dropped after a plain failure")
	}
}

// While presence cannot answer, a user not connected here is pushed
// (pushed when unsure); one connected here is not.
func TestPresenceFailurePushes(t *testing.T) {
	e := newEnv(t, push.Config{}, func(e *env) (ports.Presence, ports.DeviceStore) {
		return brokenPresence{e.presence}, e.store
	})
	elsewhere := e.user(t, "token-elsewhere")
	here := e.user(t, "token-here")
	if err := e.presence.Connected(t.Context(), here); err != nil {
		t.Fatal(err)
	}
	e.notifier.Notify(offerTo(elsewhere, here))
	e.metrics.waitOutcomes(t, 2)
	if p := e.pusher.all(); len(p) != 1 || p[0].Device.UserID != elsewhere {
		t.Errorf("pushes = %+v, want one to %s", p, elsewhere)
	}
	e.metrics.mu.Lock()
	defer e.metrics.mu.Unlock()
	if e.metrics.presence != 2 {
		t.Errorf("presence failures = %d, want 2", e.metrics.presence)
	}
}

func TestDeviceLookupFailure(t *testing.T) {
	e := newEnv(t, push.Config{}, func(e *env) (ports.Presence, ports.DeviceStore) {
		return e.presence, brokenDevices{e.store}
	})
	e.notifier.Notify(offerTo(e.user(t, "t")))
	e.metrics.waitOutcomes(t, 1)
	if got := e.metrics.get(push.OutcomeLookupFailed); got != 1 || len(e.pusher.all()) != 0 {
		t.Errorf("lookup_failed = %d, pushes %d; want 1 and 0", got, len(e.pusher.all()))
	}
}

// Notify never waits for a push: with every worker stuck on a hung push
// service, it returns at once and drops what does not fit in the queue.
func TestNotifyNeverBlocks(t *testing.T) {
	e := newEnv(t, push.Config{Workers: 1, QueueSize: 2, PushTimeout: 10 * time.Second}, nil)
	e.pusher.block = make(chan struct{})
	users := []string{e.user(t, "t1"), e.user(t, "t2"), e.user(t, "t3"), e.user(t, "t4"), e.user(t, "t5")}
	start := time.Now()
	for _, u := range users {
		e.notifier.Notify(offerTo(u))
	}
	if took := time.Since(start); took > 50*time.Millisecond {
		t.Errorf("Notify ×5 with a hung pusher took %v", took)
	}
	// One in the worker, two queued: at least two dropped.
	e.metrics.waitOutcomes(t, 2)
	if got := e.metrics.get(push.OutcomeDropped); got < 2 {
		t.Errorf("dropped = %d, want at least 2", got)
	}
	close(e.pusher.block)
	e.metrics.waitOutcomes(t, 5)
	if sent, dropped := e.metrics.get(push.OutcomeSent), e.metrics.get(push.OutcomeDropped); sent+dropped != 5 {
		t.Errorf("sent %d + dropped %d, want 5", sent, dropped)
	}
}

// Stop sends what is queued, then refuses more (counted as dropped).
func TestStopDrainsThenDrops(t *testing.T) {
	e := newEnv(t, push.Config{Workers: 1}, nil)
	e.pusher.block = make(chan struct{})
	a, b := e.user(t, "ta"), e.user(t, "tb")
	e.notifier.Notify(offerTo(a, b))
	go func() { time.Sleep(50 * time.Millisecond); close(e.pusher.block) }()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := e.notifier.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if n := len(e.pusher.all()); n != 2 {
		t.Errorf("%d pushes after Stop, want the 2 queued", n)
	}
	e.notifier.Notify(offerTo(a))
	if got := e.metrics.get(push.OutcomeDropped); got != 1 {
		t.Errorf("dropped after Stop = %d, want 1", got)
	}
}

// A Stop whose context ends cancels the push in flight and returns.
func TestStopCutsAHungPush(t *testing.T) {
	e := newEnv(t, push.Config{Workers: 1, PushTimeout: time.Minute}, nil)
	e.pusher.block = make(chan struct{}) // never released
	e.notifier.Notify(offerTo(e.user(t, "t1"), e.user(t, "t2")))
	time.Sleep(20 * time.Millisecond)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := e.notifier.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Stop = %v, want DeadlineExceeded", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("Stop took %v", took)
	}
	if f, d := e.metrics.get(push.OutcomeFailed), e.metrics.get(push.OutcomeDropped); f != 1 || d != 1 {
		t.Errorf("failed %d, dropped %d; want 1 and 1", f, d)
	}
}

func TestNotifyIgnoresInvalidPayload(t *testing.T) {
	e := newEnv(t, push.Config{}, nil)
	e.notifier.Notify(ports.Event{Type: "x", UserIDs: []string{e.user(t, "t")}, Payload: json.RawMessage(`{`)})
	time.Sleep(20 * time.Millisecond)
	if e.metrics.total() != 0 {
		t.Errorf("an invalid event produced outcomes: %v", e.metrics.outcomes)
	}
}

func TestDevicesValidation(t *testing.T) {
	st := memory.NewStore()
	d, err := push.NewDevices(st)
	if err != nil {
		t.Fatal(err)
	}
	u, err := st.CreateUser(t.Context(), ports.NewUser{Role: ports.RoleCustomer, Phone: "+6281200000001", DisplayName: "C", PasswordHash: "h"})
	if err != nil {
		t.Fatal(err)
	}
	bad := map[string]struct{ platform, token, field string }{
		"unknown platform": {"apns", "t", "platform"},
		"empty platform":   {"", "t", "platform"},
		"empty token":      {"fcm", "", "token"},
		"oversized token":  {"fcm", strings.Repeat("é", 4097), "token"},
		"control char":     {"fcm", "abc\x00def", "token"},
		"newline":          {"fcm", "abc\ndef", "token"},
	}
	for name, c := range bad {
		err := d.Register(t.Context(), u.ID, c.platform, c.token)
		var ve *core.ValidationError
		if !errors.As(err, &ve) || ve.Field != c.field {
			t.Errorf("%s: Register = %v, want a validation error naming %s", name, err, c.field)
		}
	}
	if ds, _ := st.Devices(t.Context(), []string{u.ID}); len(ds) != 0 {
		t.Fatalf("bad input stored a device: %+v", ds)
	}
	long := strings.Repeat("é", 4096)
	if err := d.Register(t.Context(), u.ID, "fcm", long); err != nil {
		t.Fatalf("Register(4096 characters): %v", err)
	}
	if ds, _ := st.Devices(t.Context(), []string{u.ID}); ds[u.ID].Token != long {
		t.Errorf("stored %+v", ds)
	}
	if err := d.Unregister(t.Context(), u.ID); err != nil {
		t.Fatal(err)
	}
	if ds, _ := st.Devices(t.Context(), []string{u.ID}); len(ds) != 0 {
		t.Errorf("Unregister left %+v", ds)
	}
}
