package valkey

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/valkey-io/valkey-go"

	"github.com/halobestie/mitra-availability/ports"
)

// DefaultTimeout bounds every call of a Mirror whose timeout is not set.
const DefaultTimeout = 200 * time.Millisecond

// Mirror is the ports.AvailabilityMirror over Valkey (or Redis 7), standalone
// or cluster. docs/valkey-keys.md describes its keys. Every call runs under
// its own deadline (the timeout given to NewMirror), so a killed or hung
// server turns into an error instead of a hang. The client belongs to the
// caller, who closes it.
type Mirror struct {
	c       valkey.Client
	timeout time.Duration
	bulk    time.Duration // deadline of one reseed round trip
	k       keys
	hb      heartbeatQueue
}

var _ ports.AvailabilityMirror = (*Mirror)(nil)

// keys are the names of the mirror's keys.
type keys struct {
	free, full, deactivated, away, idle, load, snapshot, seeded, lockPrefix string

	heartbeat []string // the KEYS of scriptHeartbeat
}

func newKeys(prefix string) keys {
	base := prefix + "{avail}:"
	k := keys{
		free:        base + "free",
		full:        base + "full",
		deactivated: base + "deactivated",
		away:        base + "away",
		idle:        base + "idle",
		load:        base + "load",
		snapshot:    base + "snapshot",
		seeded:      base + "seeded",
		lockPrefix:  base + "lock:",
	}
	k.heartbeat = []string{k.free, k.full, k.deactivated, k.seeded}
	return k
}

// NewMirror returns a mirror over client whose keys all start with prefix
// (VALKEY_KEY_PREFIX). Every call gives up after timeout (DefaultTimeout when
// not positive); a reseed gives each of its round trips ten times as long.
func NewMirror(client valkey.Client, prefix string, timeout time.Duration) *Mirror {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &Mirror{c: client, timeout: timeout, bulk: 10 * timeout, k: newKeys(prefix)}
}

// Client returns the client the mirror uses.
func (m *Mirror) Client() valkey.Client { return m.c }

// Keys returns every fixed key of the mirror (lock keys excepted: they are
// the prefix Keys()[len-1] followed by the lock name), for tools and tests.
func (m *Mirror) Keys() []string {
	return []string{m.k.free, m.k.full, m.k.deactivated, m.k.snapshot, m.k.seeded, m.k.away, m.k.idle, m.k.load, m.k.lockPrefix}
}

func (m *Mirror) deadline(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, m.timeout)
}

func wrap(op string, err error) error {
	return fmt.Errorf("valkey mirror: %s: %w", op, err)
}

// PutOnline adds or updates an online mitra, away or not, keeping the later heartbeat.
func (m *Mirror) PutOnline(ctx context.Context, mm ports.MirrorMitra) error {
	ctx, cancel := m.deadline(ctx)
	defer cancel()
	away := "0"
	if mm.Away {
		away = "1"
	}
	err := scriptPutOnline.Exec(ctx, m.c, []string{m.k.free, m.k.full, m.k.away, m.k.idle, m.k.load},
		[]string{mm.ID, strconv.FormatInt(toDS(mm.LastHeartbeat), 10), strconv.FormatInt(loadBits(mm.OpenSessions, mm.Capacity), 10), away,
			idleArg(mm.IdleSince)}).Error()
	if err != nil {
		return wrap("put online", err)
	}
	return nil
}

// PutOffline removes a mitra from the online sets.
func (m *Mirror) PutOffline(ctx context.Context, id string) error {
	ctx, cancel := m.deadline(ctx)
	defer cancel()
	if err := scriptPutOffline.Exec(ctx, m.c, []string{m.k.free, m.k.full, m.k.away, m.k.idle, m.k.load}, []string{id}).Error(); err != nil {
		return wrap("put offline", err)
	}
	return nil
}

// Deactivate adds the mitra to the deactivated set and takes it offline, atomically.
func (m *Mirror) Deactivate(ctx context.Context, id string) error {
	ctx, cancel := m.deadline(ctx)
	defer cancel()
	err := scriptDeactivate.Exec(ctx, m.c, []string{m.k.free, m.k.full, m.k.deactivated, m.k.away, m.k.idle, m.k.load}, []string{id}).Error()
	if err != nil {
		return wrap("deactivate", err)
	}
	return nil
}

// Reactivate removes the mitra from the deactivated set; it stays offline.
func (m *Mirror) Reactivate(ctx context.Context, id string) error {
	ctx, cancel := m.deadline(ctx)
	defer cancel()
	if err := m.c.Do(ctx, m.c.B().Srem().Key(m.k.deactivated).Member(id).Build()).Error(); err != nil {
		return wrap("reactivate", err)
	}
	return nil
}

// SetLoad updates the load (and, unless zero, the idle time) of an online
// mitra, moves it between the free and full sets and re-ranks it; it does
// nothing for a mitra that is not online.
func (m *Mirror) SetLoad(ctx context.Context, id string, openSessions, capacity int, idleSince time.Time) error {
	ctx, cancel := m.deadline(ctx)
	defer cancel()
	err := scriptSetLoad.Exec(ctx, m.c, []string{m.k.free, m.k.full, m.k.away, m.k.idle, m.k.load},
		[]string{id, strconv.FormatInt(loadBits(openSessions, capacity), 10), idleArg(idleSince)}).Error()
	if err != nil {
		return wrap("set load", err)
	}
	return nil
}

// tx runs cmds in one MULTI/EXEC round trip and returns their replies.
func (m *Mirror) tx(ctx context.Context, cmds ...valkey.Completed) ([]valkey.ValkeyMessage, error) {
	all := make(valkey.Commands, 0, len(cmds)+2)
	all = append(all, m.c.B().Multi().Build())
	all = append(all, cmds...)
	all = append(all, m.c.B().Exec().Build())
	res := m.c.DoMulti(ctx, all...)
	for _, r := range res {
		if err := r.Error(); err != nil {
			return nil, err
		}
	}
	arr, err := res[len(res)-1].ToArray()
	if err != nil {
		return nil, fmt.Errorf("exec: %w", err)
	}
	if len(arr) != len(cmds) {
		return nil, fmt.Errorf("exec: %d replies for %d commands", len(arr), len(cmds))
	}
	for i := range arr {
		if err := arr[i].Error(); err != nil && !valkey.IsValkeyNil(err) {
			return nil, err
		}
	}
	return arr, nil
}

// seededReply reads the reply of an EXISTS of the marker.
func seededReply(msg valkey.ValkeyMessage) error {
	n, err := msg.AsInt64()
	if err != nil {
		return err
	}
	if n == 0 {
		return ports.ErrMirrorNotSeeded
	}
	return nil
}

// Status answers what the mirror knows of one mitra, in one atomic round trip.
func (m *Mirror) Status(ctx context.Context, id string) (ports.MirrorStatus, error) {
	ctx, cancel := m.deadline(ctx)
	defer cancel()
	r, err := scriptStatus.Exec(ctx, m.c, []string{m.k.free, m.k.full, m.k.deactivated, m.k.seeded, m.k.away}, []string{id}).ToArray()
	if err != nil {
		return ports.MirrorStatus{}, wrap("status", err)
	}
	if len(r) == 0 {
		return ports.MirrorStatus{}, wrap("status", errors.New("empty script answer"))
	}
	if err := seededReply(r[0]); err != nil {
		return ports.MirrorStatus{}, wrap("status", err)
	}
	if len(r) != 4 {
		return ports.MirrorStatus{}, wrap("status", fmt.Errorf("unexpected script answer of %d elements", len(r)))
	}
	var st ports.MirrorStatus
	d, err := r[1].AsInt64()
	if err != nil {
		return ports.MirrorStatus{}, wrap("status", err)
	}
	st.Deactivated = d == 1
	score, err := r[2].ToString()
	if err != nil {
		return ports.MirrorStatus{}, wrap("status", err)
	}
	if score != "" {
		f, err := strconv.ParseFloat(score, 64)
		if err != nil {
			return ports.MirrorStatus{}, wrap("status", fmt.Errorf("score %q: %w", score, err))
		}
		st.Online = true
		st.Mitra = toMitra(id, parseScore(f))
		a, err := r[3].AsInt64()
		if err != nil {
			return ports.MirrorStatus{}, wrap("status", err)
		}
		st.Mitra.Away = a == 1
	}
	return st, nil
}

// zscores decodes a ZRANGE … WITHSCORES reply into mitras.
func zscores(msg valkey.ValkeyMessage) ([]ports.MirrorMitra, error) {
	zs, err := msg.AsZScores()
	if err != nil {
		return nil, err
	}
	out := make([]ports.MirrorMitra, len(zs))
	for i, z := range zs {
		out[i] = toMitra(z.Member, parseScore(z.Score))
	}
	return out, nil
}

func sortByID(ms []ports.MirrorMitra) {
	slices.SortFunc(ms, func(a, b ports.MirrorMitra) int { return strings.Compare(a.ID, b.ID) })
}

// AvailableMitraIDs lists the free mitras whose heartbeat is not before
// freshSince: one score range of the free set, only the members.
func (m *Mirror) AvailableMitraIDs(ctx context.Context, freshSince time.Time) ([]string, error) {
	ctx, cancel := m.deadline(ctx)
	defer cancel()
	b := m.c.B()
	r, err := m.tx(ctx,
		b.Exists().Key(m.k.seeded).Build(),
		b.Zrangebyscore().Key(m.k.free).Min(scoreArg(minScore(freshSince))).Max("+inf").Build(),
	)
	if err == nil {
		err = seededReply(r[0])
	}
	if err != nil {
		return nil, wrap("available mitra ids", err)
	}
	ids, err := r[1].AsStrSlice()
	if err != nil {
		return nil, wrap("available mitra ids", err)
	}
	return ids, nil
}

// Candidates answers the routing read (docs/contract.md §11) in one script
// call: the first q.Limit free, fresh, not excluded mitras of the idle or
// load rank, or a random sample of the free set (scriptSample). Neither
// walks the online mitras.
func (m *Mirror) Candidates(ctx context.Context, q ports.CandidateQuery) ([]ports.Candidate, error) {
	var key string
	switch q.Order {
	case ports.OrderRandom:
	case ports.OrderLongestIdle:
		key = m.k.idle
	case ports.OrderLeastLoaded:
		key = m.k.load
	default:
		return nil, wrap("candidates", fmt.Errorf("unknown order %d", q.Order))
	}
	ctx, cancel := m.deadline(ctx)
	defer cancel()
	args := make([]string, 0, 3+len(q.Exclude))
	args = append(args, scoreArg(minScore(q.FreshSince)), strconv.Itoa(max(q.Limit, 0)), strconv.Itoa(len(q.Exclude)))
	args = append(args, q.Exclude...)
	if key == "" {
		arr, err := scriptSample.Exec(ctx, m.c, []string{m.k.free, m.k.seeded}, args).AsStrSlice()
		if err != nil {
			return nil, wrap("candidates", err)
		}
		return sampleReply(arr, q.Limit)
	}
	arr, err := scriptCandidates.Exec(ctx, m.c, []string{key, m.k.free, m.k.seeded}, args).AsStrSlice()
	if err != nil {
		return nil, wrap("candidates", err)
	}
	if len(arr) == 0 || len(arr)%3 != 1 {
		return nil, wrap("candidates", fmt.Errorf("unexpected script answer of %d items", len(arr)))
	}
	if arr[0] == "0" {
		return nil, wrap("candidates", ports.ErrMirrorNotSeeded)
	}
	out := make([]ports.Candidate, 0, len(arr)/3)
	for i := 1; i < len(arr); i += 3 {
		r, err1 := strconv.ParseFloat(arr[i+1], 64)
		f, err2 := strconv.ParseFloat(arr[i+2], 64)
		if err := errors.Join(err1, err2); err != nil {
			return nil, wrap("candidates", err)
		}
		out = append(out, candidate(arr[i], parseScore(r), parseScore(f)))
	}
	return out, nil
}

// sampleReply decodes scriptSample's answer, drawing limit at random when it
// answered every candidate.
func sampleReply(arr []string, limit int) ([]ports.Candidate, error) {
	if len(arr) == 0 || (arr[0] == "1" && len(arr)%2 != 0) {
		return nil, wrap("candidates", fmt.Errorf("unexpected script answer of %d items", len(arr)))
	}
	if arr[0] == "0" {
		return nil, wrap("candidates", ports.ErrMirrorNotSeeded)
	}
	out := make([]ports.Candidate, 0, (len(arr)-2)/2)
	for i := 2; i < len(arr); i += 2 {
		f, err := strconv.ParseFloat(arr[i+1], 64)
		if err != nil {
			return nil, wrap("candidates", err)
		}
		_, low := unpackScore(parseScore(f))
		out = append(out, ports.Candidate{ID: arr[i], OpenSessions: int(low / openFactor)})
	}
	if arr[1] == "a" && len(out) > limit {
		for i := range limit { // a partial Fisher–Yates shuffle
			j := i + mrand.IntN(len(out)-i)
			out[i], out[j] = out[j], out[i]
		}
		out = out[:limit]
	}
	return out, nil
}

// CountMitras answers the dashboard counts in one atomic round trip; none of
// its commands walks the online mitras.
func (m *Mirror) CountMitras(ctx context.Context, freshSince time.Time) (ports.MitraCounts, error) {
	ctx, cancel := m.deadline(ctx)
	defer cancel()
	b := m.c.B()
	r, err := m.tx(ctx,
		b.Exists().Key(m.k.seeded).Build(),
		b.Zcard().Key(m.k.free).Build(),
		b.Zcard().Key(m.k.full).Build(),
		b.Zcount().Key(m.k.free).Min(scoreArg(minScore(freshSince))).Max("+inf").Build(),
		b.Scard().Key(m.k.deactivated).Build(),
	)
	if err == nil {
		err = seededReply(r[0])
	}
	if err != nil {
		return ports.MitraCounts{}, wrap("count mitras", err)
	}
	var n [4]int64
	for i := range n {
		if n[i], err = r[i+1].AsInt64(); err != nil {
			return ports.MitraCounts{}, wrap("count mitras", err)
		}
	}
	return ports.MitraCounts{Online: int(n[0] + n[1]), Available: int(n[2]), Deactivated: int(n[3])}, nil
}

// snapshotJSON is the stored form of the beacon snapshot.
type snapshotJSON struct {
	AvailableMitras int    `json:"available_mitras"`
	AsOf            string `json:"as_of"`
}

// LoadSnapshot returns the shared beacon snapshot; ok is false when there is none.
func (m *Mirror) LoadSnapshot(ctx context.Context) (ports.Snapshot, bool, error) {
	ctx, cancel := m.deadline(ctx)
	defer cancel()
	raw, err := m.c.Do(ctx, m.c.B().Get().Key(m.k.snapshot).Build()).AsBytes()
	if valkey.IsValkeyNil(err) {
		return ports.Snapshot{}, false, nil
	}
	if err != nil {
		return ports.Snapshot{}, false, wrap("load snapshot", err)
	}
	var sj snapshotJSON
	if err := json.Unmarshal(raw, &sj); err != nil {
		return ports.Snapshot{}, false, wrap("load snapshot", err)
	}
	asOf, err := time.Parse(time.RFC3339Nano, sj.AsOf)
	if err != nil {
		return ports.Snapshot{}, false, wrap("load snapshot", err)
	}
	return ports.Snapshot{AvailableMitras: sj.AvailableMitras, AsOf: asOf.UTC()}, true, nil
}

// SaveSnapshot stores the shared beacon snapshot for ttl (at least 1 ms).
func (m *Mirror) SaveSnapshot(ctx context.Context, s ports.Snapshot, ttl time.Duration) error {
	if ttl < time.Millisecond {
		return wrap("save snapshot", fmt.Errorf("ttl %v below 1ms", ttl))
	}
	raw, err := json.Marshal(snapshotJSON{AvailableMitras: s.AvailableMitras, AsOf: s.AsOf.UTC().Format(time.RFC3339Nano)})
	if err != nil {
		return wrap("save snapshot", err)
	}
	ctx, cancel := m.deadline(ctx)
	defer cancel()
	err = m.c.Do(ctx, m.c.B().Set().Key(m.k.snapshot).Value(valkey.BinaryString(raw)).PxMilliseconds(ttl.Milliseconds()).Build()).Error()
	if err != nil {
		return wrap("save snapshot", err)
	}
	return nil
}

// TryLock takes the lock name for ttl (at least 1 ms) with SET NX PX and a
// random token; release deletes it only while it still holds that token.
func (m *Mirror) TryLock(ctx context.Context, name string, ttl time.Duration) (func(context.Context) error, bool, error) {
	if ttl < time.Millisecond {
		return nil, false, wrap("lock", fmt.Errorf("ttl %v below 1ms", ttl))
	}
	var buf [16]byte
	if _, err := rand.Read(buf[:]); err != nil {
		return nil, false, wrap("lock", err)
	}
	token := hex.EncodeToString(buf[:])
	key := m.k.lockPrefix + name
	ctx, cancel := m.deadline(ctx)
	defer cancel()
	err := m.c.Do(ctx, m.c.B().Set().Key(key).Value(token).Nx().PxMilliseconds(ttl.Milliseconds()).Build()).Error()
	if valkey.IsValkeyNil(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, wrap("lock", err)
	}
	release := func(ctx context.Context) error {
		ctx, cancel := m.deadline(ctx)
		defer cancel()
		if err := scriptUnlock.Exec(ctx, m.c, []string{key}, []string{token}).Error(); err != nil {
			return wrap("unlock", err)
		}
		return nil
	}
	return release, true, nil
}

// RemoveStale atomically removes up to limit online mitras whose heartbeat
// is before staleBefore, oldest first, and returns them. Only the stale range
// of each set is read. ErrMirrorNotSeeded when the mirror lost its data, so a
// sweep never acts on a partial mirror.
func (m *Mirror) RemoveStale(ctx context.Context, staleBefore time.Time, limit int) ([]ports.MirrorMitra, error) {
	ctx, cancel := m.deadline(ctx)
	defer cancel()
	arr, err := scriptRemoveStale.Exec(ctx, m.c, []string{m.k.free, m.k.full, m.k.seeded, m.k.away, m.k.idle, m.k.load},
		[]string{scoreArg(minScore(staleBefore)), strconv.Itoa(max(limit, 0))}).AsStrSlice()
	if err != nil {
		return nil, wrap("remove stale", err)
	}
	if len(arr) == 0 || len(arr)%2 != 1 {
		return nil, wrap("remove stale", fmt.Errorf("unexpected script answer of %d items", len(arr)))
	}
	if arr[0] == "0" {
		return nil, wrap("remove stale", ports.ErrMirrorNotSeeded)
	}
	out := make([]ports.MirrorMitra, 0, len(arr)/2)
	for i := 1; i < len(arr); i += 2 {
		f, err := strconv.ParseFloat(arr[i+1], 64)
		if err != nil {
			return nil, wrap("remove stale", err)
		}
		out = append(out, toMitra(arr[i], parseScore(f)))
	}
	return out, nil
}

// Heartbeats returns the online mitras whose heartbeat is not before since,
// ordered by ID: one score range of each set, in one atomic round trip.
func (m *Mirror) Heartbeats(ctx context.Context, since time.Time) ([]ports.MirrorMitra, error) {
	ctx, cancel := m.deadline(ctx)
	defer cancel()
	b := m.c.B()
	lo := scoreArg(minScore(since))
	r, err := m.tx(ctx,
		b.Exists().Key(m.k.seeded).Build(),
		b.Zrangebyscore().Key(m.k.free).Min(lo).Max("+inf").Withscores().Build(),
		b.Zrangebyscore().Key(m.k.full).Min(lo).Max("+inf").Withscores().Build(),
		b.Smembers().Key(m.k.away).Build(),
	)
	if err == nil {
		err = seededReply(r[0])
	}
	if err != nil {
		return nil, wrap("heartbeats", err)
	}
	free, err := zscores(r[1])
	if err != nil {
		return nil, wrap("heartbeats", err)
	}
	full, err := zscores(r[2])
	if err != nil {
		return nil, wrap("heartbeats", err)
	}
	away, err := members(r[3])
	if err != nil {
		return nil, wrap("heartbeats", err)
	}
	for i := range full { // an away mitra is always in the full set
		_, full[i].Away = away[full[i].ID]
	}
	out := append(free, full...)
	sortByID(out)
	return out, nil
}

// Seeded reports whether the marker exists.
func (m *Mirror) Seeded(ctx context.Context) (bool, error) {
	ctx, cancel := m.deadline(ctx)
	defer cancel()
	msg, err := m.c.Do(ctx, m.c.B().Exists().Key(m.k.seeded).Build()).ToMessage()
	if err == nil {
		err = seededReply(msg)
	}
	if errors.Is(err, ports.ErrMirrorNotSeeded) {
		return false, nil
	}
	if err != nil {
		return false, wrap("seeded", err)
	}
	return true, nil
}

// Ping checks that the server answers.
func (m *Mirror) Ping(ctx context.Context) error {
	ctx, cancel := m.deadline(ctx)
	defer cancel()
	if err := m.c.Do(ctx, m.c.B().Ping().Build()).Error(); err != nil {
		return wrap("ping", err)
	}
	return nil
}
