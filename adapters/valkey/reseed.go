package valkey

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/valkey-io/valkey-go"

	"github.com/halobestie/mitra-availability/ports"
)

const (
	// reseedChunk is the number of corrections one script call applies
	// atomically: small enough to keep the server responsive between chunks.
	reseedChunk = 1000
	// reseedPipeline is the number of chunks sent in one round trip.
	reseedPipeline = 16
)

// entry is what the mirror holds of one online mitra, as the reseed reads it.
type entry struct {
	ds, low int64
	away    bool
	// inconsistent: in both sets, or in the set its load and away flag do not call for.
	inconsistent bool
	// seen: the truth lists the mitra (the diff marks it).
	seen bool
}

// corrections are the changes a reseed applies.
type corrections struct {
	free  []string // triples id, score, idle ds: put online in the free set, keeping a later stored heartbeat
	full  []string // triples id, score, idle ds: the same in the full set
	off   []string // ids to take offline
	deact []string // ids to add to the deactivated set
	react []string // ids to remove from it
}

// awayCorrections are the changes of the away set, applied before the others
// so that a SetLoad running between the two never moves a mitra that is away
// in the truth into the free set.
type awayCorrections struct {
	add, remove []string
}

// Reseed makes the mirror equal to the store's truth. It reads the mirror in
// one atomic round trip, computes the corrections in Go and applies only
// those, in atomic chunks of reseedChunk, reseedPipeline chunks per round
// trip. Putting a mitra online keeps the later of the truth's and the stored
// heartbeat inside the script, so a heartbeat recorded while the reseed runs
// is never lost. A mitra listed both online and deactivated is taken as
// deactivated; an id listed twice online counts once (the first). The marker
// is written last, once every chunk succeeded. Each round trip has ten times
// the mirror's timeout.
func (m *Mirror) Reseed(ctx context.Context, online []ports.MirrorMitra, deactivated []string) (ports.ReseedReport, error) {
	have, haveDeact, haveAway, ranked, err := m.readAll(ctx, len(online))
	if err != nil {
		return ports.ReseedReport{}, wrap("reseed", err)
	}
	wantDeact := make(map[string]struct{}, len(deactivated))
	for _, id := range deactivated {
		wantDeact[id] = struct{}{}
	}

	var rep ports.ReseedReport
	var c corrections
	var ac awayCorrections
	wantAway := make(map[string]struct{})
	for _, mm := range online {
		if _, d := wantDeact[mm.ID]; d {
			continue
		}
		if mm.Away {
			if _, dup := wantAway[mm.ID]; !dup {
				if _, ok := haveAway[mm.ID]; !ok {
					ac.add = append(ac.add, mm.ID)
				}
			}
			wantAway[mm.ID] = struct{}{}
		}
		ds, low := toDS(mm.LastHeartbeat), loadBits(mm.OpenSessions, mm.Capacity)
		h, ok := have[mm.ID]
		if ok && h.seen {
			continue
		}
		switch {
		case !ok:
			rep.Added++
		case h.inconsistent || h.low != low || h.away != mm.Away || ds > h.ds:
			rep.Updated++
		default:
			h.seen = true
			have[mm.ID] = h
			continue
		}
		have[mm.ID] = entry{seen: true}
		if hasRoom(low) && !mm.Away {
			c.free = append(c.free, mm.ID, scoreArg(packScore(ds, low)), idleArg(mm.IdleSince))
		} else {
			c.full = append(c.full, mm.ID, scoreArg(packScore(ds, low)), idleArg(mm.IdleSince))
		}
		rep.IDs = append(rep.IDs, mm.ID)
	}
	for id, h := range have {
		if !h.seen {
			rep.Removed++
			c.off = append(c.off, id)
			rep.IDs = append(rep.IDs, id)
		}
	}
	for id := range wantDeact {
		if _, ok := haveDeact[id]; !ok {
			rep.Deactivated++
			c.deact = append(c.deact, id)
			rep.IDs = append(rep.IDs, id)
		}
	}
	for id := range haveDeact {
		if _, ok := wantDeact[id]; !ok {
			rep.Deactivated++
			c.react = append(c.react, id)
			rep.IDs = append(rep.IDs, id)
		}
	}
	for id := range haveAway {
		if _, ok := wantAway[id]; !ok {
			ac.remove = append(ac.remove, id)
		}
	}
	slices.Sort(rep.IDs)
	rep.IDs = slices.Compact(rep.IDs) // taken offline and deactivated: one ID

	if err := m.applyAway(ctx, ac); err != nil {
		return ports.ReseedReport{}, wrap("reseed", err)
	}
	if err := m.apply(ctx, scriptReseedApply, c.chunks(reseedChunk, []string{m.k.free, m.k.full, m.k.deactivated, m.k.idle, m.k.load})); err != nil {
		return ports.ReseedReport{}, wrap("reseed", err)
	}
	if err := m.reseedRanks(ctx, online, wantDeact, rep.IDs, ranked); err != nil {
		return ports.ReseedReport{}, wrap("reseed", err)
	}
	sctx, cancel := context.WithTimeout(ctx, m.bulk)
	defer cancel()
	if err := m.c.Do(sctx, m.c.B().Set().Key(m.k.seeded).Value("1").Build()).Error(); err != nil {
		return ports.ReseedReport{}, wrap("reseed: marker", err)
	}
	return rep, nil
}

// applyAway adds and removes the away set's members in one round trip.
func (m *Mirror) applyAway(ctx context.Context, ac awayCorrections) error {
	if len(ac.add)+len(ac.remove) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, m.bulk)
	defer cancel()
	var cmds valkey.Commands
	if len(ac.add) > 0 {
		cmds = append(cmds, m.c.B().Sadd().Key(m.k.away).Member(ac.add...).Build())
	}
	if len(ac.remove) > 0 {
		cmds = append(cmds, m.c.B().Srem().Key(m.k.away).Member(ac.remove...).Build())
	}
	for _, r := range m.c.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil {
			return fmt.Errorf("away set: %w", err)
		}
	}
	return nil
}

// members reads a SET reply into a set.
func members(msg valkey.ValkeyMessage) (map[string]struct{}, error) {
	ids, err := msg.AsStrSlice()
	if err != nil {
		return nil, err
	}
	out := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		out[id] = struct{}{}
	}
	return out, nil
}

// readAll reads both online sets, the deactivated set, the away set and the
// idle rank atomically. hint sizes the map for the mitras the truth may add.
func (m *Mirror) readAll(ctx context.Context, hint int) (map[string]entry, map[string]struct{}, map[string]struct{}, map[string]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, m.bulk)
	defer cancel()
	b := m.c.B()
	r, err := m.tx(ctx,
		b.Zrange().Key(m.k.free).Min("0").Max("-1").Withscores().Build(),
		b.Zrange().Key(m.k.full).Min("0").Max("-1").Withscores().Build(),
		b.Smembers().Key(m.k.deactivated).Build(),
		b.Smembers().Key(m.k.away).Build(),
		b.Zrange().Key(m.k.idle).Min("0").Max("-1").Withscores().Build(),
	)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("read: %w", err)
	}
	zs, err := r[4].AsZScores()
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("read: %w", err)
	}
	ranked := make(map[string]int64, len(zs))
	for _, z := range zs {
		ranked[z.Member] = parseScore(z.Score)
	}
	free, err := r[0].AsZScores()
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("read: %w", err)
	}
	full, err := r[1].AsZScores()
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("read: %w", err)
	}
	haveDeact, err := members(r[2])
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("read: %w", err)
	}
	haveAway, err := members(r[3])
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("read: %w", err)
	}
	have := make(map[string]entry, max(hint, len(free)+len(full)))
	for i, zs := range [][]valkey.ZScore{free, full} {
		inFree := i == 0
		for _, z := range zs {
			ds, low := unpackScore(parseScore(z.Score))
			_, away := haveAway[z.Member]
			e := entry{ds: ds, low: low, away: away, inconsistent: (hasRoom(low) && !away) != inFree}
			if prev, dup := have[z.Member]; dup { // in both sets: keep the later heartbeat
				e.ds = max(e.ds, prev.ds)
				e.inconsistent = true
			}
			have[z.Member] = e
		}
	}
	return have, haveDeact, haveAway, ranked, nil
}

// chunks cuts the corrections into script calls of at most size corrections
// each, in the argument layout of scriptReseedApply.
func (c corrections) chunks(size int, keys []string) []valkey.LuaExec {
	var out []valkey.LuaExec
	f, u, r, d, a := c.free, c.full, c.off, c.deact, c.react
	for len(f)+len(u)+len(r)+len(d)+len(a) > 0 {
		room := size
		take := func(n int) int {
			n = min(room, n)
			room -= n
			return n
		}
		nf := take(len(f) / 3)
		nu := take(len(u) / 3)
		nr := take(len(r))
		nd := take(len(d))
		na := take(len(a))
		args := make([]string, 0, 5+3*(nf+nu)+nr+nd+na)
		args = append(args, strconv.Itoa(nf), strconv.Itoa(nu), strconv.Itoa(nr), strconv.Itoa(nd), strconv.Itoa(na))
		args = append(args, f[:3*nf]...)
		args = append(args, u[:3*nu]...)
		args = append(args, r[:nr]...)
		args = append(args, d[:nd]...)
		args = append(args, a[:na]...)
		f, u, r, d, a = f[3*nf:], u[3*nu:], r[nr:], d[nd:], a[na:]
		out = append(out, valkey.LuaExec{Keys: keys, Args: args})
	}
	return out
}

// apply runs the chunks of script, reseedPipeline of them per round trip.
func (m *Mirror) apply(ctx context.Context, script *valkey.Lua, execs []valkey.LuaExec) error {
	for len(execs) > 0 {
		n := min(reseedPipeline, len(execs))
		if err := m.applyGroup(ctx, script, execs[:n]); err != nil {
			return err
		}
		execs = execs[n:]
	}
	return nil
}

func (m *Mirror) applyGroup(ctx context.Context, script *valkey.Lua, execs []valkey.LuaExec) error {
	ctx, cancel := context.WithTimeout(ctx, m.bulk)
	defer cancel()
	for _, r := range script.ExecMulti(ctx, m.c, execs...) {
		if err := r.Error(); err != nil {
			return fmt.Errorf("apply: %w", err)
		}
	}
	return nil
}

// reseedRanks is the reseed's last pass, for the mitras its corrections did
// not touch (those were ranked by scriptReseedApply): it re-ranks
// (scriptRank) every truth mitra whose idle rank was missing, on the wrong
// side of fullRank or held another idle time when the reseed read the
// mirror, and every ranked mitra the truth does not list online (which
// loses its ranks unless it came online since), in atomic chunks.
func (m *Mirror) reseedRanks(ctx context.Context, online []ports.MirrorMitra, deact map[string]struct{}, changed []string, ranked map[string]int64) error {
	listed := make(map[string]struct{}, len(online)+len(changed))
	for _, id := range changed {
		listed[id] = struct{}{}
	}
	var args []string
	for _, mm := range online {
		if _, d := deact[mm.ID]; d {
			continue
		}
		if _, done := listed[mm.ID]; done {
			continue
		}
		listed[mm.ID] = struct{}{}
		r, ok := ranked[mm.ID]
		free := hasRoom(loadBits(mm.OpenSessions, mm.Capacity)) && !mm.Away
		switch {
		case !ok, (r < fullRank) != free:
		case !mm.IdleSince.IsZero() && r%fullRank != idleDS(mm.IdleSince):
		default:
			continue
		}
		args = append(args, mm.ID, idleArg(mm.IdleSince))
	}
	for id := range ranked {
		if _, ok := listed[id]; !ok {
			args = append(args, id, "")
		}
	}
	var execs []valkey.LuaExec
	keys := []string{m.k.free, m.k.full, m.k.idle, m.k.load}
	for len(args) > 0 {
		n := min(len(args), 2*reseedChunk)
		execs = append(execs, valkey.LuaExec{Keys: keys, Args: args[:n]})
		args = args[n:]
	}
	return m.apply(ctx, scriptRank, execs)
}
