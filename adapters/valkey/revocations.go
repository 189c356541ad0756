package valkey

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/valkey-io/valkey-go"

	"github.com/halobestie/mitra-availability/ports"
)

// Revocations is the ports.RevocationCache over Valkey: one sorted set,
// `<prefix>{auth}:revoked`, whose members are "<session id> <user id>
// <revoked at, Unix ms>" and whose score is when the entry was added (Unix
// ms, this process's clock). Readers ask by the time of adding, not of
// revoking, so an entry written late (retried after an outage) is still
// found by the next poll of every instance. Entries added more than keep ago
// are removed by each write. Every call runs under its own deadline.
type Revocations struct {
	c       valkey.Client
	key     string
	timeout time.Duration
	keep    time.Duration
	now     func() time.Time
}

var _ ports.RevocationCache = (*Revocations)(nil)

// NewRevocations returns the cache over client; keep is how long an entry is
// kept (the access-token lifetime and a margin), timeout the deadline of each
// call (DefaultTimeout when not positive).
func NewRevocations(client valkey.Client, prefix string, keep, timeout time.Duration) *Revocations {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &Revocations{c: client, key: prefix + "{auth}:revoked", timeout: timeout, keep: keep, now: time.Now}
}

// Key is the sorted set's name, for tools and tests.
func (r *Revocations) Key() string { return r.key }

// AddRevocations implements ports.RevocationCache.
func (r *Revocations) AddRevocations(ctx context.Context, revs []ports.Revocation) error {
	if len(revs) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	now := r.now().UnixMilli()
	add := r.c.B().Zadd().Key(r.key).ScoreMember()
	for _, v := range revs {
		add = add.ScoreMember(float64(now), v.SessionID+" "+v.UserID+" "+strconv.FormatInt(v.RevokedAt.UnixMilli(), 10))
	}
	cmds := valkey.Commands{
		add.Build(),
		r.c.B().Zremrangebyscore().Key(r.key).Min("-inf").Max("(" + strconv.FormatInt(now-r.keep.Milliseconds(), 10)).Build(),
	}
	for _, res := range r.c.DoMulti(ctx, cmds...) {
		if err := res.Error(); err != nil {
			return fmt.Errorf("valkey revocations: add: %w", err)
		}
	}
	return nil
}

// RevocationsSince implements ports.RevocationCache: the entries added at or
// after since.
func (r *Revocations) RevocationsSince(ctx context.Context, since time.Time) ([]ports.Revocation, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	members, err := r.c.Do(ctx, r.c.B().Zrangebyscore().Key(r.key).
		Min(strconv.FormatInt(since.UnixMilli(), 10)).Max("+inf").Build()).AsStrSlice()
	if err != nil {
		return nil, fmt.Errorf("valkey revocations: since: %w", err)
	}
	out := make([]ports.Revocation, 0, len(members))
	for _, m := range members {
		f := strings.Fields(m)
		if len(f) != 3 {
			continue // not ours
		}
		ms, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			continue
		}
		out = append(out, ports.Revocation{SessionID: f[0], UserID: f[1], RevokedAt: time.UnixMilli(ms).UTC()})
	}
	return out, nil
}
