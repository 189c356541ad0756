package valkey

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/valkey-io/valkey-go"

	"github.com/halobestie/mitra-availability/ports"
)

// Limiter is the ports.Limiter shared by every instance: one sorted set per
// key, scored by attempt time in milliseconds, read and written by one Lua
// script (scriptTake), so concurrent attempts on any instance are counted
// exactly. The key is <prefix>limit:{<sha256 of the key, 32 hex digits>}:
// bounded in length whatever the client sent, free of personal data, and its
// own hash tag, so the script's one key is Valkey-Cluster-safe and the keys
// spread over the slots. Every call carries the limiter's deadline.
type Limiter struct {
	c       valkey.Client
	prefix  string
	timeout time.Duration
}

var _ ports.Limiter = (*Limiter)(nil)

// NewLimiter returns a limiter over client whose keys start with prefix
// (VALKEY_KEY_PREFIX); timeout bounds every call (DefaultTimeout when <= 0).
func NewLimiter(client valkey.Client, prefix string, timeout time.Duration) *Limiter {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &Limiter{c: client, prefix: prefix, timeout: timeout}
}

// Key returns the Valkey key of a limiter key, for tools and tests.
func (l *Limiter) Key(key string) string {
	sum := sha256.Sum256([]byte(key))
	return l.prefix + "limit:{" + hex.EncodeToString(sum[:16]) + "}"
}

// scriptTake counts one attempt unless limit attempts are in the window.
// Not retryable: a retry after a lost reply would count the attempt twice.
//
// KEYS: the sorted set. ARGV: now (ms), window (ms), limit, member (unique).
// Returns 0 when counted, else the milliseconds until one more would be.
var scriptTake = valkey.NewLuaScript(`
local now, window, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local n = redis.call('ZCARD', KEYS[1])
if n >= limit then
  local edge = redis.call('ZRANGE', KEYS[1], n - limit, n - limit, 'WITHSCORES')
  return math.max(tonumber(edge[2]) + window - now, 1)
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], window)
return 0
`)

// Take implements ports.Limiter. Times are kept to the millisecond.
func (l *Limiter) Take(ctx context.Context, key string, now time.Time, limit int, window time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	ms := now.UnixMilli()
	member := strconv.FormatInt(ms, 10) + ":" + rand.Text()
	n, err := scriptTake.Exec(ctx, l.c, []string{l.Key(key)}, []string{
		strconv.FormatInt(ms, 10), strconv.FormatInt(window.Milliseconds(), 10), strconv.Itoa(limit), member,
	}).AsInt64()
	if err != nil {
		return 0, fmt.Errorf("valkey limiter: take: %w", err)
	}
	return time.Duration(n) * time.Millisecond, nil
}

// Reset implements ports.Limiter.
func (l *Limiter) Reset(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	if err := l.c.Do(ctx, l.c.B().Del().Key(l.Key(key)).Build()).Error(); err != nil {
		return fmt.Errorf("valkey limiter: reset: %w", err)
	}
	return nil
}
