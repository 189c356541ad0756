package presence

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/valkey-io/valkey-go"

	"github.com/halobestie/mitra-availability/ports"
)

// Defaults of the Valkey presence.
const (
	// DefaultTTL is how long an instance's entry for a user lasts without a
	// refresh: a killed instance's users stop counting as connected after at
	// most this long.
	DefaultTTL = 30 * time.Second
	// DefaultTimeout bounds every Valkey call.
	DefaultTimeout = 200 * time.Millisecond
	// refreshBatch is how many users one pipelined refresh round trip carries.
	refreshBatch = 500
)

// RefreshInterval is how often the owner should call Refresh for a given TTL:
// three times per TTL, so that two lost refreshes in a row still leave the
// entries alive.
func RefreshInterval(ttl time.Duration) time.Duration { return ttl / 3 }

// Valkey is a ports.Presence shared by the instances of a deployment through
// Valkey (or Redis).
//
// Each user with a connection on some instance has a sorted set
// <prefix>presence:{<user id>} whose members are the ids of the instances
// that hold a connection of the user, each scored with the time (the
// server's clock, in milliseconds) at which its entry expires. A user is
// online while some member's score is in the future. An instance adds its
// member when the user's first local connection opens, removes it when the
// last one closes, and Refresh pushes the expiry of all its members TTL ahead;
// an instance that dies without removing its members stops counting once
// their scores pass. The key itself expires TTL after the last write, so
// nothing is left behind.
//
// The instance keeps its own connection counts in memory: Online answers for
// users connected here without asking Valkey, and Refresh re-adds every local
// user after an outage or a lost write. Every Valkey call carries a deadline.
type Valkey struct {
	client   valkey.Client
	prefix   string
	instance string
	ttl      time.Duration
	timeout  time.Duration

	mu    sync.Mutex
	local map[string]int // this instance's connections, by user id; no entry for zero
}

var _ ports.Presence = (*Valkey)(nil)

// ValkeyOptions configure NewValkey; zero values take the defaults.
type ValkeyOptions struct {
	TTL     time.Duration // DefaultTTL
	Timeout time.Duration // DefaultTimeout (the app passes VALKEY_TIMEOUT)
}

// NewValkey returns this instance's presence over client, with keys under
// prefix (VALKEY_KEY_PREFIX). Its instance id is random.
func NewValkey(client valkey.Client, prefix string, opts ValkeyOptions) (*Valkey, error) {
	if client == nil {
		return nil, errors.New("presence: valkey client is nil")
	}
	if opts.TTL <= 0 {
		opts.TTL = DefaultTTL
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	return &Valkey{
		client:   client,
		prefix:   prefix,
		instance: rand.Text(),
		ttl:      opts.TTL,
		timeout:  opts.Timeout,
		local:    make(map[string]int),
	}, nil
}

// The Lua scripts read the server's clock, so that the expiry scores of all
// instances compare on one clock whatever the skew between their hosts.
// Scores are integers of milliseconds (below 2^53), formatted with %.0f.

// scriptMark adds or refreshes the instance's member and drops expired ones.
//
// KEYS: the user's set. ARGV: instance id, ttl in ms.
var scriptMark = valkey.NewLuaScriptRetryable(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now))
redis.call('ZADD', KEYS[1], string.format('%.0f', now + ttl), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
`)

// scriptCount counts the members that have not expired.
//
// KEYS: the user's set.
var scriptCount = valkey.NewLuaScriptRetryable(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], '(' .. string.format('%.0f', now), '+inf')
`)

// key is the sorted set of userID. The user id is the hash tag, so that a
// cluster spreads the sets over its shards.
func (v *Valkey) key(userID string) string {
	return v.prefix + "presence:{" + userID + "}"
}

// Connected implements ports.Presence. Only the user's first connection on
// this instance writes to Valkey. When that write fails, the connection still
// counts here, and the next Refresh writes it.
func (v *Valkey) Connected(ctx context.Context, userID string) error {
	v.mu.Lock()
	v.local[userID]++
	first := v.local[userID] == 1
	v.mu.Unlock()
	if !first {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, v.timeout)
	defer cancel()
	if err := v.mark(ctx, userID); err != nil {
		return fmt.Errorf("presence: connected %s: %w", userID, err)
	}
	return nil
}

func (v *Valkey) mark(ctx context.Context, userID string) error {
	return scriptMark.Exec(ctx, v.client, []string{v.key(userID)},
		[]string{v.instance, strconv.FormatInt(v.ttl.Milliseconds(), 10)}).Error()
}

// Disconnected implements ports.Presence. Only the user's last connection on
// this instance writes to Valkey; when that write fails, other instances see
// the user online until the entry expires (at most the TTL).
func (v *Valkey) Disconnected(ctx context.Context, userID string) error {
	v.mu.Lock()
	n := v.local[userID]
	switch {
	case n > 1:
		v.local[userID] = n - 1
	case n == 1:
		delete(v.local, userID)
	}
	v.mu.Unlock()
	if n != 1 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, v.timeout)
	defer cancel()
	err := v.client.Do(ctx, v.client.B().Zrem().Key(v.key(userID)).Member(v.instance).Build()).Error()
	// A connection of the user that opened while the member was being removed
	// wrote its member before the removal: write it again.
	if err == nil && v.connectedHere(userID) {
		err = v.mark(ctx, userID)
	}
	if err != nil {
		return fmt.Errorf("presence: disconnected %s: %w", userID, err)
	}
	return nil
}

func (v *Valkey) connectedHere(userID string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.local[userID] > 0
}

// Online implements ports.Presence: users connected to this instance are
// online without a Valkey call; the others are asked of Valkey in one
// pipelined round trip. On error the map holds the users known to be online.
func (v *Valkey) Online(ctx context.Context, userIDs []string) (map[string]bool, error) {
	out := make(map[string]bool)
	var ask []string
	v.mu.Lock()
	for _, id := range userIDs {
		switch {
		case v.local[id] > 0:
			out[id] = true
		case !out[id]:
			ask = append(ask, id)
		}
	}
	v.mu.Unlock()
	if len(ask) == 0 {
		return out, nil
	}
	ctx, cancel := context.WithTimeout(ctx, v.timeout)
	defer cancel()
	execs := make([]valkey.LuaExec, len(ask))
	for i, id := range ask {
		execs[i] = valkey.LuaExec{Keys: []string{v.key(id)}}
	}
	var firstErr error
	for i, r := range scriptCount.ExecMulti(ctx, v.client, execs...) {
		n, err := r.AsInt64()
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("presence: online: %w", err)
			}
			continue
		}
		if n > 0 {
			out[ask[i]] = true
		}
	}
	return out, firstErr
}

// Refresh pushes the expiry of this instance's entries TTL ahead, writing
// again any that a failed write or a Valkey restart lost. The owner calls it
// every RefreshInterval(TTL). Each pipelined batch has its own deadline.
func (v *Valkey) Refresh(ctx context.Context) error {
	v.mu.Lock()
	users := make([]string, 0, len(v.local))
	for id := range v.local {
		users = append(users, id)
	}
	v.mu.Unlock()

	ttl := strconv.FormatInt(v.ttl.Milliseconds(), 10)
	var firstErr error
	for start := 0; start < len(users); start += refreshBatch {
		batch := users[start:min(start+refreshBatch, len(users))]
		execs := make([]valkey.LuaExec, len(batch))
		for i, id := range batch {
			execs[i] = valkey.LuaExec{Keys: []string{v.key(id)}, Args: []string{v.instance, ttl}}
		}
		bctx, cancel := context.WithTimeout(ctx, v.timeout)
		for _, r := range scriptMark.ExecMulti(bctx, v.client, execs...) {
			if err := r.Error(); err != nil && firstErr == nil {
				firstErr = fmt.Errorf("presence: refresh: %w", err)
			}
		}
		// A user whose last connection closed since the snapshot was marked
		// again above: remove that mark.
		for _, id := range batch {
			if !v.connectedHere(id) {
				if err := v.client.Do(bctx, v.client.B().Zrem().Key(v.key(id)).Member(v.instance).Build()).Error(); err != nil && firstErr == nil {
					firstErr = fmt.Errorf("presence: refresh: %w", err)
				}
			}
		}
		cancel()
		if ctx.Err() != nil {
			break
		}
	}
	return firstErr
}
