package valkey

import (
	"strconv"
	"time"

	"github.com/halobestie/mitra-availability/ports"
)

// Score packing of the free and full sorted sets. One exact integer (below
// 2^53, so a float64 and Lua's numbers hold it exactly) carries the heartbeat
// and the load of a mitra:
//
//	score = ds*16384 + open*128 + capacity
//
// ds is the heartbeat in deciseconds since scoreEpoch (floored, so the mirror
// keeps heartbeats with a precision of 100 ms), open and capacity are clamped
// to 0..127. Ordering by score orders by heartbeat first, so every freshness
// question is a score range.
const (
	// dsFactor is the weight of one decisecond in a score (2^14).
	dsFactor = 16384
	// openFactor is the weight of one open session in a score (2^7).
	openFactor = 128
	// maxLoad is the largest open-session count and capacity a score holds.
	maxLoad = 127
	// maxDS bounds ds to ±2^38 (about ±870 years around the epoch), which
	// keeps every score below 2^53 in magnitude.
	maxDS = 1 << 38
	// precision is the heartbeat precision of the mirror.
	precision = 100 * time.Millisecond
)

// scoreEpoch is the origin of ds: 2025-01-01T00:00:00Z.
var scoreEpoch = time.Date(2025, time.January, 1, 0, 0, 0, 0, time.UTC)

var scoreEpochMilli = scoreEpoch.UnixMilli()

// toDS returns the deciseconds since scoreEpoch of t, floored and clamped.
func toDS(t time.Time) int64 {
	ms := t.UnixMilli() - scoreEpochMilli // UnixMilli floors
	ds := ms / 100
	if ms%100 < 0 {
		ds--
	}
	return min(max(ds, -maxDS), maxDS)
}

// fromDS is the time of ds, in UTC.
func fromDS(ds int64) time.Time {
	return time.UnixMilli(scoreEpochMilli + ds*100).UTC() // a Duration would overflow past 292 years
}

// clampLoad clamps an open-session count or a capacity to 0..maxLoad.
func clampLoad(n int) int64 {
	return int64(min(max(n, 0), maxLoad))
}

// loadBits packs open and capacity into the low 14 bits of a score.
func loadBits(open, capacity int) int64 {
	return clampLoad(open)*openFactor + clampLoad(capacity)
}

// hasRoom tells from the packed load whether a mitra belongs in the free set.
// It is the same rule as the Lua scripts apply (open < capacity after clamping).
func hasRoom(low int64) bool {
	return low/openFactor < low%openFactor
}

// packScore returns the score of a heartbeat ds and a packed load.
func packScore(ds, low int64) int64 { return ds*dsFactor + low }

// unpackScore splits a score into its ds and its packed load.
func unpackScore(score int64) (ds, low int64) {
	ds = score / dsFactor
	low = score % dsFactor
	if low < 0 {
		ds--
		low += dsFactor
	}
	return ds, low
}

// minScore is the lowest score of a heartbeat not before t.
func minScore(t time.Time) int64 { return packScore(toDS(t), 0) }

// scoreArg formats a score for a command argument or a script.
func scoreArg(score int64) string { return strconv.FormatInt(score, 10) }

// parseScore turns a score as a reply carries it back into an integer.
func parseScore(f float64) int64 { return int64(f) }

// toMitra decodes one sorted-set member.
func toMitra(id string, score int64) ports.MirrorMitra {
	ds, low := unpackScore(score)
	return ports.MirrorMitra{
		ID:            id,
		LastHeartbeat: fromDS(ds),
		OpenSessions:  int(low / openFactor),
		Capacity:      int(low % openFactor),
	}
}

// Routing ranks (scripts.go): fullRank is added to the ranks of a mitra that
// is not free; loadRank is the weight of one open session in the load rank;
// maxIdleDS bounds the idle ds (2^36-1 deciseconds: about 218 years after
// the score epoch; an earlier idle time counts as the epoch).
const (
	fullRank  = 1 << 44
	loadRank  = 1 << 36
	maxIdleDS = loadRank - 1
)

// idleDS is the clamped idle ds of t.
func idleDS(t time.Time) int64 { return min(max(toDS(t), 0), maxIdleDS) }

// idleArg formats an idle time for a script: empty for zero (keep the ranked one).
func idleArg(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return strconv.FormatInt(idleDS(t), 10)
}

// candidate decodes one entry of scriptCandidates: its rank score (idle or
// load) and its free score.
func candidate(id string, rank, free int64) ports.Candidate {
	_, low := unpackScore(free)
	return ports.Candidate{ID: id, IdleSince: fromDS(rank % loadRank), OpenSessions: int(low / openFactor)}
}
