package bench

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/valkey-io/valkey-go"

	"github.com/halobestie/mitra-availability/ports"
)

// isoLayout is JavaScript's Date.prototype.toISOString, the format the
// original design stored heartbeats in.
const isoLayout = "2006-01-02T15:04:05.000Z"

// seedBatch is the number of commands the seeders send per pipeline.
const seedBatch = 10_000

// original is the Valkey side of the original Node design, for comparison:
//
//	mitras:online         SET    ids of the online mitras
//	mitras:deactivated    SET    ids of the deactivated mitras
//	mitra:capacity:<id>   STRING open (pending_payment + active) sessions
//	mitra:heartbeat:<id>  STRING ISO timestamp of the last heartbeat
//
// Every read walks the online set: findAvailableMitras is SDIFF online
// deactivated plus one pipelined GET of the capacity and the heartbeat key of
// each member, filtered in the application, and the beacon count is the same
// walk counted. The session limit of a mitra is not in Valkey: like the
// original service, the filter compares against one configured capacity.
type original struct {
	c           valkey.Client
	prefix      string
	online      string
	deactivated string
	capacity    int
}

func newOriginal(c valkey.Client, prefix string, capacity int) *original {
	return &original{c: c, prefix: prefix, online: prefix + "mitras:online",
		deactivated: prefix + "mitras:deactivated", capacity: capacity}
}

func (o *original) capacityKey(id string) string  { return o.prefix + "mitra:capacity:" + id }
func (o *original) heartbeatKey(id string) string { return o.prefix + "mitra:heartbeat:" + id }

// do sends cmds in pipelines of seedBatch commands and fails on any error.
func (o *original) do(ctx context.Context, cmds valkey.Commands) error {
	for len(cmds) > 0 {
		n := min(seedBatch, len(cmds))
		for _, r := range o.c.DoMulti(ctx, cmds[:n]...) {
			if err := r.Error(); err != nil {
				return err
			}
		}
		cmds = cmds[n:]
	}
	return nil
}

// seed writes the online and deactivated mitras, pipelined: SADD in chunks of
// 1000 members, and the two per-mitra strings of each online mitra.
func (o *original) seed(ctx context.Context, online []ports.MirrorMitra, deactivated []string) error {
	b := o.c.B()
	cmds := make(valkey.Commands, 0, 2*len(online)+len(online)/1000+len(deactivated)/1000+2)
	ids := make([]string, len(online))
	for i, m := range online {
		ids[i] = m.ID
	}
	for chunk := range slices.Chunk(ids, 1000) {
		cmds = append(cmds, b.Sadd().Key(o.online).Member(chunk...).Build())
	}
	for chunk := range slices.Chunk(deactivated, 1000) {
		cmds = append(cmds, b.Sadd().Key(o.deactivated).Member(chunk...).Build())
	}
	for _, m := range online {
		cmds = append(cmds,
			b.Set().Key(o.capacityKey(m.ID)).Value(strconv.Itoa(m.OpenSessions)).Build(),
			b.Set().Key(o.heartbeatKey(m.ID)).Value(m.LastHeartbeat.UTC().Format(isoLayout)).Build())
	}
	if err := o.do(ctx, cmds); err != nil {
		return fmt.Errorf("original: seed: %w", err)
	}
	return nil
}

// heartbeat is the original heartbeat: SISMEMBER deactivated, SISMEMBER
// online and SET of the heartbeat key in one pipeline.
func (o *original) heartbeat(ctx context.Context, id string, at time.Time) (ports.HeartbeatOutcome, error) {
	b := o.c.B()
	r := o.c.DoMulti(ctx,
		b.Sismember().Key(o.deactivated).Member(id).Build(),
		b.Sismember().Key(o.online).Member(id).Build(),
		b.Set().Key(o.heartbeatKey(id)).Value(at.UTC().Format(isoLayout)).Build())
	deact, err := r[0].AsBool()
	if err != nil {
		return 0, fmt.Errorf("original: heartbeat: %w", err)
	}
	online, err := r[1].AsBool()
	if err != nil {
		return 0, fmt.Errorf("original: heartbeat: %w", err)
	}
	if err := r[2].Error(); err != nil {
		return 0, fmt.Errorf("original: heartbeat: %w", err)
	}
	switch {
	case deact:
		return ports.HeartbeatDeactivated, nil
	case !online:
		return ports.HeartbeatNotOnline, nil
	}
	return ports.HeartbeatRecorded, nil
}

// walk is the read of findAvailableMitras: SDIFF online deactivated, then one
// pipeline of GET capacity and GET heartbeat per member. It calls fn for each
// available mitra (open < capacity, heartbeat not before freshSince).
func (o *original) walk(ctx context.Context, freshSince time.Time, fn func(id string)) error {
	b := o.c.B()
	ids, err := o.c.Do(ctx, b.Sdiff().Key(o.online, o.deactivated).Build()).AsStrSlice()
	if err != nil {
		return fmt.Errorf("original: sdiff: %w", err)
	}
	if len(ids) == 0 {
		return nil
	}
	cmds := make(valkey.Commands, 0, 2*len(ids))
	for _, id := range ids {
		cmds = append(cmds, b.Get().Key(o.capacityKey(id)).Build(), b.Get().Key(o.heartbeatKey(id)).Build())
	}
	res := o.c.DoMulti(ctx, cmds...)
	for i, id := range ids {
		open, err := res[2*i].AsInt64()
		if valkey.IsValkeyNil(err) {
			open, err = 0, nil
		}
		if err != nil {
			return fmt.Errorf("original: get capacity: %w", err)
		}
		raw, err := res[2*i+1].ToString()
		if valkey.IsValkeyNil(err) {
			continue // no heartbeat: not reachable
		}
		if err != nil {
			return fmt.Errorf("original: get heartbeat: %w", err)
		}
		hb, err := time.Parse(time.RFC3339Nano, raw)
		if err != nil {
			return fmt.Errorf("original: heartbeat of %s: %w", id, err)
		}
		if open < int64(o.capacity) && !hb.Before(freshSince) {
			fn(id)
		}
	}
	return nil
}

// availableMitras is findAvailableMitras, ordered by id.
func (o *original) availableMitras(ctx context.Context, freshSince time.Time) ([]string, error) {
	var out []string
	if err := o.walk(ctx, freshSince, func(id string) { out = append(out, id) }); err != nil {
		return nil, err
	}
	slices.Sort(out)
	return out, nil
}

// countAvailable is the original beacon count: the same walk, counted.
func (o *original) countAvailable(ctx context.Context, freshSince time.Time) (int, error) {
	n := 0
	err := o.walk(ctx, freshSince, func(string) { n++ })
	return n, err
}

// sweep is the original auto-offline sweep: SMEMBERS online, one pipeline of
// GET heartbeat per member, then SREM and DEL of the stale ones (no
// heartbeat, or one before staleBefore) in one pipeline. It returns the ids
// it took offline.
func (o *original) sweep(ctx context.Context, staleBefore time.Time) ([]string, error) {
	b := o.c.B()
	ids, err := o.c.Do(ctx, b.Smembers().Key(o.online).Build()).AsStrSlice()
	if err != nil {
		return nil, fmt.Errorf("original: smembers: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	cmds := make(valkey.Commands, len(ids))
	for i, id := range ids {
		cmds[i] = b.Get().Key(o.heartbeatKey(id)).Build()
	}
	var stale []string
	for i, r := range o.c.DoMulti(ctx, cmds...) {
		raw, err := r.ToString()
		if valkey.IsValkeyNil(err) {
			stale = append(stale, ids[i])
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("original: get heartbeat: %w", err)
		}
		hb, err := time.Parse(time.RFC3339Nano, raw)
		if err != nil || hb.Before(staleBefore) {
			stale = append(stale, ids[i])
		}
	}
	if len(stale) == 0 {
		return nil, nil
	}
	keys := make([]string, len(stale))
	for i, id := range stale {
		keys[i] = o.heartbeatKey(id)
	}
	for _, r := range o.c.DoMulti(ctx, b.Srem().Key(o.online).Member(stale...).Build(), b.Del().Key(keys...).Build()) {
		if err := r.Error(); err != nil {
			return nil, fmt.Errorf("original: take stale offline: %w", err)
		}
	}
	return stale, nil
}
