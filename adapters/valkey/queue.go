package valkey

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/valkey-io/valkey-go"

	"github.com/halobestie/mitra-availability/ports"
)

// QueueMirror is the ports.QueueMirror over Valkey (or Redis ≥ 6.2),
// standalone or cluster: docs/valkey-keys.md ("Waiting queue") describes
// its keys. Every call runs under its own deadline.
type QueueMirror struct {
	c       valkey.Client
	timeout time.Duration
	bulk    time.Duration
	k       queueKeys
}

var _ ports.QueueMirror = (*QueueMirror)(nil)

type queueKeys struct {
	queue, matched, seeded, versionPrefix string
}

// NewQueueMirror returns a queue mirror over client whose keys start with
// prefix (VALKEY_KEY_PREFIX), in the availability mirror's hash slot. Every
// call gives up after timeout (DefaultTimeout when not positive); a reseed
// gives each of its round trips ten times as long.
func NewQueueMirror(client valkey.Client, prefix string, timeout time.Duration) *QueueMirror {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	base := prefix + "{avail}:queue"
	return &QueueMirror{c: client, timeout: timeout, bulk: 10 * timeout, k: queueKeys{
		queue: base, matched: base + ":matched", seeded: base + ":seeded", versionPrefix: base + ":v:",
	}}
}

// Keys returns the queue mirror's fixed keys and, last, the prefix of its
// per-session version keys, for tools and tests.
func (q *QueueMirror) Keys() []string {
	return []string{q.k.queue, q.k.matched, q.k.seeded, q.k.versionPrefix}
}

// The member of a waiting session: queued_at in microseconds since the Unix
// epoch (16 digits), its sequence (19 digits) and its id, so that members of
// one score sort as the queue does; the score is the priority negated, so a
// higher priority sorts first. ZRANK is the count ahead.
const (
	queuedAtDigits = 16
	seqDigits      = 19
	memberIDAt     = queuedAtDigits + 1 + seqDigits + 1
)

func queueMember(m ports.QueueMember) string {
	us := min(max(m.QueuedAt.UnixMicro(), 0), 9_999_999_999_999_999)
	return fmt.Sprintf("%0*d:%0*d:%s", queuedAtDigits, us, seqDigits, max(m.Seq, 0), m.ID)
}

func queueScore(m ports.QueueMember) string { return strconv.Itoa(-m.Priority) }

func (q *QueueMirror) versionKey(id string) string { return q.k.versionPrefix + id }

var versionKeepMS = strconv.FormatInt(ports.QueueVersionKeep.Milliseconds(), 10)

// scriptQueueJoin adds a member unless a version at or above its own was
// written for the session. KEYS: queue, version. ARGV: member, score,
// version, keep (ms).
var scriptQueueJoin = valkey.NewLuaScriptRetryable(`
local v = redis.call('GET', KEYS[2])
if v and tonumber(v) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
return 1
`)

// scriptQueueLeave removes a member unless a version above its own was
// written for the session. KEYS: queue, version. ARGV: member, version, keep (ms).
var scriptQueueLeave = valkey.NewLuaScriptRetryable(`
local v = redis.call('GET', KEYS[2])
if v and tonumber(v) > tonumber(ARGV[2]) then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return 1
`)

// scriptQueueMatched records a match and forgets the old ones. KEYS:
// matched. ARGV: id, at (ms), forget before (ms).
var scriptQueueMatched = valkey.NewLuaScriptRetryable(`
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
return 1
`)

// scriptQueueFigures answers the figures in one round trip; 0 when the
// queue is not seeded. The oldest entry is the least queued_at over the
// heads of the priority classes (one ZRANGEBYSCORE per class), not the
// queue's head. KEYS: queue, matched, seeded. ARGV: member (” for none),
// matched since (ms). Returns {found, ahead, length, oldest µs or ”, matched}.
var scriptQueueFigures = valkey.NewLuaScriptRetryable(`
if redis.call('EXISTS', KEYS[3]) == 0 then return 0 end
local found, ahead = 0, 0
if ARGV[1] ~= '' then
  local r = redis.call('ZRANK', KEYS[1], ARGV[1])
  if r then found, ahead = 1, r end
end
local oldest = ''
local head = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
while head[1] do
  local at = string.sub(head[1], 1, ` + strconv.Itoa(queuedAtDigits) + `)
  if oldest == '' or at < oldest then oldest = at end
  head = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. head[2], '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
end
return {found, ahead, redis.call('ZCARD', KEYS[1]), oldest, redis.call('ZCOUNT', KEYS[2], ARGV[2], '+inf')}
`)

// scriptQueueReseedAdd adds the members that are absent and whose session
// has no version at or above theirs. KEYS: queue, then one version key per
// member. ARGV: keep (ms), then member, score, version per member. Returns
// how many it added.
var scriptQueueReseedAdd = valkey.NewLuaScriptRetryable(`
local n = 0
for i = 2, #KEYS do
  local j = 2 + (i - 2) * 3
  if not redis.call('ZSCORE', KEYS[1], ARGV[j]) then
    local v = redis.call('GET', KEYS[i])
    if not v or tonumber(v) < tonumber(ARGV[j + 2]) then
      redis.call('ZADD', KEYS[1], ARGV[j + 1], ARGV[j])
      redis.call('SET', KEYS[i], ARGV[j + 2], 'PX', ARGV[1])
      n = n + 1
    end
  end
end
return n
`)

// scriptQueueReseedRemove removes the members still present, and forgets
// their versions (so that the session may join again). KEYS: queue, then
// one version key per member. ARGV: the members. Returns how many it removed.
var scriptQueueReseedRemove = valkey.NewLuaScriptRetryable(`
local n = 0
for i = 2, #KEYS do
  if redis.call('ZREM', KEYS[1], ARGV[i - 1]) == 1 then
    redis.call('DEL', KEYS[i])
    n = n + 1
  end
end
return n
`)

// QueueJoin implements ports.QueueMirror.
func (q *QueueMirror) QueueJoin(ctx context.Context, m ports.QueueMember) error {
	ctx, cancel := context.WithTimeout(ctx, q.timeout)
	defer cancel()
	err := scriptQueueJoin.Exec(ctx, q.c, []string{q.k.queue, q.versionKey(m.ID)},
		[]string{queueMember(m), queueScore(m), strconv.FormatInt(m.Version, 10), versionKeepMS}).Error()
	if err != nil {
		return wrap("queue join", err)
	}
	return nil
}

// QueueLeave implements ports.QueueMirror.
func (q *QueueMirror) QueueLeave(ctx context.Context, m ports.QueueMember) error {
	ctx, cancel := context.WithTimeout(ctx, q.timeout)
	defer cancel()
	err := scriptQueueLeave.Exec(ctx, q.c, []string{q.k.queue, q.versionKey(m.ID)},
		[]string{queueMember(m), strconv.FormatInt(m.Version, 10), versionKeepMS}).Error()
	if err != nil {
		return wrap("queue leave", err)
	}
	return nil
}

// QueueMatched implements ports.QueueMirror.
func (q *QueueMirror) QueueMatched(ctx context.Context, id string, at, forgetBefore time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, q.timeout)
	defer cancel()
	err := scriptQueueMatched.Exec(ctx, q.c, []string{q.k.matched},
		[]string{id, strconv.FormatInt(at.UnixMilli(), 10), strconv.FormatInt(forgetBefore.UnixMilli(), 10)}).Error()
	if err != nil {
		return wrap("queue matched", err)
	}
	return nil
}

// QueueFigures implements ports.QueueMirror.
func (q *QueueMirror) QueueFigures(ctx context.Context, of *ports.QueueMember, matchedSince time.Time) (ports.QueueFigures, error) {
	ctx, cancel := context.WithTimeout(ctx, q.timeout)
	defer cancel()
	member := ""
	if of != nil {
		member = queueMember(*of)
	}
	res := scriptQueueFigures.Exec(ctx, q.c, []string{q.k.queue, q.k.matched, q.k.seeded},
		[]string{member, strconv.FormatInt(matchedSince.UnixMilli(), 10)})
	if n, err := res.AsInt64(); err == nil && n == 0 {
		return ports.QueueFigures{}, ports.ErrMirrorNotSeeded
	}
	vals, err := res.ToArray()
	if err != nil {
		return ports.QueueFigures{}, wrap("queue figures", err)
	}
	if len(vals) != 5 {
		return ports.QueueFigures{}, wrap("queue figures", fmt.Errorf("%d values, want 5", len(vals)))
	}
	var ints [5]int64
	for _, i := range []int{0, 1, 2, 4} {
		if ints[i], err = vals[i].AsInt64(); err != nil {
			return ports.QueueFigures{}, wrap("queue figures", err)
		}
	}
	f := ports.QueueFigures{Found: ints[0] == 1, Ahead: int(ints[1]), Waiting: int(ints[2]), MatchedSince: int(ints[4])}
	if oldest, err := vals[3].ToString(); err == nil && oldest != "" {
		us, err := strconv.ParseInt(oldest, 10, 64)
		if err != nil {
			return ports.QueueFigures{}, wrap("queue figures", err)
		}
		t := time.UnixMicro(us).UTC()
		f.OldestQueuedAt = &t
	}
	return f, nil
}

// queueReseedChunk bounds the members one reseed script handles.
const queueReseedChunk = 500

// QueueReseed implements ports.QueueMirror: it reads the members, adds the
// missing ones and removes the others in chunks (each atomic and checking
// the versions written meanwhile), records the matches, then writes the
// marker.
func (q *QueueMirror) QueueReseed(ctx context.Context, t ports.QueueTruth) (int, error) {
	rctx, cancel := context.WithTimeout(ctx, q.bulk)
	current, err := q.c.Do(rctx, q.c.B().Zrange().Key(q.k.queue).Min("0").Max("-1").Build()).AsStrSlice()
	cancel()
	if err != nil {
		return 0, wrap("queue reseed: read", err)
	}
	want := make(map[string]bool, len(t.Waiting))
	var addKeys, addArgs []string
	have := make(map[string]bool, len(current))
	for _, s := range current {
		have[s] = true
	}
	for _, m := range t.Waiting {
		s := queueMember(m)
		want[s] = true
		if !have[s] {
			addKeys = append(addKeys, q.versionKey(m.ID))
			addArgs = append(addArgs, s, queueScore(m), strconv.FormatInt(m.Version, 10))
		}
	}
	var remKeys, remArgs []string
	for _, s := range current {
		if !want[s] {
			remKeys = append(remKeys, q.versionKey(idOfMember(s)))
			remArgs = append(remArgs, s)
		}
	}
	n := 0
	for i := 0; i < len(remKeys); i += queueReseedChunk {
		j := min(i+queueReseedChunk, len(remKeys))
		c, err := q.exec(ctx, scriptQueueReseedRemove, append([]string{q.k.queue}, remKeys[i:j]...), remArgs[i:j])
		if err != nil {
			return n, wrap("queue reseed: remove", err)
		}
		n += c
	}
	for i := 0; i < len(addKeys); i += queueReseedChunk {
		j := min(i+queueReseedChunk, len(addKeys))
		c, err := q.exec(ctx, scriptQueueReseedAdd, append([]string{q.k.queue}, addKeys[i:j]...),
			append([]string{versionKeepMS}, addArgs[3*i:3*j]...))
		if err != nil {
			return n, wrap("queue reseed: add", err)
		}
		n += c
	}
	cmds := valkey.Commands{}
	for i := 0; i < len(t.Matched); i += queueReseedChunk {
		add := q.c.B().Zadd().Key(q.k.matched).ScoreMember()
		for _, x := range t.Matched[i:min(i+queueReseedChunk, len(t.Matched))] {
			add = add.ScoreMember(float64(x.At.UnixMilli()), x.ID)
		}
		cmds = append(cmds, add.Build())
	}
	cmds = append(cmds,
		q.c.B().Zremrangebyscore().Key(q.k.matched).Min("-inf").Max("("+strconv.FormatInt(t.MatchedSince.UnixMilli(), 10)).Build(),
		q.c.B().Set().Key(q.k.seeded).Value("1").Build())
	rctx, cancel = context.WithTimeout(ctx, q.bulk)
	defer cancel()
	for _, res := range q.c.DoMulti(rctx, cmds...) {
		if err := res.Error(); err != nil {
			return n, wrap("queue reseed: matches", err)
		}
	}
	return n, nil
}

// exec runs one reseed script under the bulk deadline and returns its count.
func (q *QueueMirror) exec(ctx context.Context, s *valkey.Lua, keys, args []string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, q.bulk)
	defer cancel()
	n, err := s.Exec(ctx, q.c, keys, args).AsInt64()
	return int(n), err
}

// idOfMember returns the session id of a member ("" for a malformed one).
func idOfMember(s string) string {
	if len(s) <= memberIDAt {
		return ""
	}
	return s[memberIDAt:]
}
