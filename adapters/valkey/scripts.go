package valkey

import "github.com/valkey-io/valkey-go"

// The Lua scripts of the mirror. All but scriptRemoveStale are idempotent,
// so the client may retry them after a network error (within the call's
// deadline); a retried RemoveStale could lose the mitras it removed.
//
// Every script touches only keys of the {avail} hash tag, so it runs on
// Valkey Cluster too. Scores are exact integers below 2^53: the scripts split
// them with math.floor (the divisor is a power of two, so the division is
// exact) and format them with string.format('%.0f', n), because tostring
// would print them with 14 significant digits and lose the low ones.
//
// The load rule is the same everywhere: a mitra that is not away and whose
// packed load has open < capacity belongs in the free set, every other online
// mitra in the full set. The away set names the online mitras that are away.

// The routing ranks (docs/contract.md §11). Two sorted sets hold every
// online mitra ranked for the batched strategies, so that the first entries
// of a range are the candidates: idle, scored by its idle time (idle ds,
// deciseconds since the score epoch clamped to 0..2^36-1), and load, scored
// open*2^36 + idle ds. A mitra that is not in the free set has fullRank
// (2^44) added to both scores, so every free mitra ranks before every other.
// Every script that moves a mitra between the sets, changes its load or
// takes it offline updates its ranks in the same call (luaRank).

// luaRank defines rank(kFree, kFull, kIdle, kLoad, id, idle): it re-ranks
// one mitra from the free or full set it is in (removing its ranks when it
// is in neither), with the idle ds given (empty keeps the ranked one, or takes
// the heartbeat for a mitra not ranked yet).
const luaRank = `
local function rank(kFree, kFull, kIdle, kLoad, id, idle)
  local s = redis.call('ZSCORE', kFree, id)
  local off = 0
  if not s then
    s = redis.call('ZSCORE', kFull, id)
    off = 17592186044416
  end
  if not s then
    redis.call('ZREM', kIdle, id)
    redis.call('ZREM', kLoad, id)
    return
  end
  s = tonumber(s)
  local hb = math.floor(s / 16384)
  local open = math.floor((s - hb * 16384) / 128)
  local d
  if idle and idle ~= '' then
    d = tonumber(idle)
  else
    local r = redis.call('ZSCORE', kIdle, id)
    if r then
      d = tonumber(r)
      if d >= 17592186044416 then d = d - 17592186044416 end
    else
      d = hb
    end
  end
  if d < 0 then d = 0 end
  if d > 68719476735 then d = 68719476735 end
  redis.call('ZADD', kIdle, string.format('%.0f', off + d), id)
  redis.call('ZADD', kLoad, string.format('%.0f', off + open * 68719476736 + d), id)
end
`

// scriptHeartbeat records a batch of heartbeats in one round trip, each as
// a call of its own would, in order: a deactivated mitra is refused (even
// one the online sets still hold), one in neither online set is not online,
// and the heartbeat is rewritten only when later, keeping the load bits.
//
// It reads the whole batch with one SMISMEMBER and one ZMSCORE per online
// set, follows the batch's own rewrites in a table (a mitra may appear more
// than once), and writes them with one ZADD per set: about five commands a
// batch, against two or three a heartbeat when each was looked up alone.
//
// KEYS: free, full, deactivated, seeded. ARGV: id, ds, id, ds, ….
// Returns 0 when not seeded, else one code per heartbeat, in order:
// 1 recorded, 2 not online, 3 deactivated.
var scriptHeartbeat = valkey.NewLuaScriptRetryable(`
if redis.call('EXISTS', KEYS[4]) == 0 then return 0 end
local n = #ARGV / 2
local ids = {}
for k = 1, n do ids[k] = ARGV[2 * k - 1] end
local dead = redis.call('SMISMEMBER', KEYS[3], unpack(ids))
local free = redis.call('ZMSCORE', KEYS[1], unpack(ids))
local full = nil
local cur = {}
local out = {}
for k = 1, n do
  local r = 3
  if dead[k] == 0 then
    local id = ids[k]
    local c = cur[id]
    if not c then
      local key, s = 1, free[k]
      if not s then
        if not full then full = redis.call('ZMSCORE', KEYS[2], unpack(ids)) end
        key, s = 2, full[k]
      end
      if s then
        c = {key = key, score = tonumber(s), dirty = false}
        cur[id] = c
      end
    end
    if not c then
      r = 2
    else
      local old = math.floor(c.score / 16384)
      local ds = tonumber(ARGV[2 * k])
      if ds > old then
        c.score = ds * 16384 + (c.score - old * 16384)
        c.dirty = true
      end
      r = 1
    end
  end
  out[k] = r
end
local adds = {{}, {}}
for id, c in pairs(cur) do
  if c.dirty then
    local t = adds[c.key]
    t[#t + 1] = string.format('%.0f', c.score)
    t[#t + 1] = id
  end
end
if #adds[1] > 0 then redis.call('ZADD', KEYS[1], unpack(adds[1])) end
if #adds[2] > 0 then redis.call('ZADD', KEYS[2], unpack(adds[2])) end
return out
`)

// scriptStatus reads one mitra's mirror state in one command (a MULTI of
// ZSCORE ×2, SISMEMBER and EXISTS would be six).
//
// KEYS: free, full, deactivated, seeded, away. ARGV: id.
// Returns {0} when not seeded, else {1, deactivated (0 or 1), score, away (0
// or 1)} where score is the ZSCORE reply as Valkey formats it, or ” when the
// mitra is in neither set.
var scriptStatus = valkey.NewLuaScriptRetryable(`
if redis.call('EXISTS', KEYS[4]) == 0 then return {0} end
local d = redis.call('SISMEMBER', KEYS[3], ARGV[1])
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not s then s = redis.call('ZSCORE', KEYS[2], ARGV[1]) end
if not s then s = '' end
return {1, d, s, redis.call('SISMEMBER', KEYS[5], ARGV[1])}
`)

// scriptPutOnline puts a mitra online with load low, keeping the later of ds
// and the stored heartbeat, in the set its load calls for; an away mitra
// goes to the full set, whatever its load, and into the away set.
//
// KEYS: free, full, away, idle, load. ARGV: id, ds, low, away ("1" or "0"),
// idle ds (empty keeps it).
var scriptPutOnline = valkey.NewLuaScriptRetryable(luaRank + `
local id, ds, low = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local a = redis.call('ZSCORE', KEYS[1], id)
local b = redis.call('ZSCORE', KEYS[2], id)
if a then ds = math.max(ds, math.floor(tonumber(a) / 16384)) end
if b then ds = math.max(ds, math.floor(tonumber(b) / 16384)) end
local open = math.floor(low / 128)
local dst, other = KEYS[2], KEYS[1]
if ARGV[4] == '1' then
  redis.call('SADD', KEYS[3], id)
else
  redis.call('SREM', KEYS[3], id)
  if open < low - open * 128 then dst, other = KEYS[1], KEYS[2] end
end
redis.call('ZREM', other, id)
redis.call('ZADD', dst, string.format('%.0f', ds * 16384 + low), id)
rank(KEYS[1], KEYS[2], KEYS[4], KEYS[5], id, ARGV[5])
return 1
`)

// scriptPutOffline takes a mitra offline.
//
// KEYS: free, full, away, idle, load. ARGV: id.
var scriptPutOffline = valkey.NewLuaScriptRetryable(`
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
return 1
`)

// scriptDeactivate adds a mitra to the deactivated set and takes it offline.
//
// KEYS: free, full, deactivated, away, idle, load. ARGV: id.
var scriptDeactivate = valkey.NewLuaScriptRetryable(`
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
redis.call('ZREM', KEYS[6], ARGV[1])
return 1
`)

// scriptSetLoad changes the load of an online mitra, keeping its heartbeat;
// an away mitra stays in the full set.
//
// KEYS: free, full, away, idle, load. ARGV: id, low, idle ds (empty keeps it).
// Returns 1 when the mitra is online, else 0.
var scriptSetLoad = valkey.NewLuaScriptRetryable(luaRank + `
local src = KEYS[1]
local s = redis.call('ZSCORE', src, ARGV[1])
if not s then
  src = KEYS[2]
  s = redis.call('ZSCORE', src, ARGV[1])
end
if not s then return 0 end
local ds = math.floor(tonumber(s) / 16384)
local low = tonumber(ARGV[2])
local open = math.floor(low / 128)
local dst = KEYS[2]
if open < low - open * 128 and redis.call('SISMEMBER', KEYS[3], ARGV[1]) == 0 then dst = KEYS[1] end
if dst ~= src then redis.call('ZREM', src, ARGV[1]) end
redis.call('ZADD', dst, string.format('%.0f', ds * 16384 + low), ARGV[1])
rank(KEYS[1], KEYS[2], KEYS[4], KEYS[5], ARGV[1], ARGV[3])
return 1
`)

// scriptRemoveStale removes up to limit mitras whose score is below max,
// oldest first, from both sets (and from the away set).
//
// KEYS: free, full, seeded, away, idle, load. ARGV: max (exclusive), limit.
// Returns {'0'} when not seeded, else {'1', id, score, id, score, ...}.
var scriptRemoveStale = valkey.NewLuaScript(`
if redis.call('EXISTS', KEYS[3]) == 0 then return {'0'} end
local limit = tonumber(ARGV[2])
local out = {'1'}
if limit <= 0 then return out end
local max = '(' .. ARGV[1]
local a = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', max, 'WITHSCORES', 'LIMIT', 0, limit)
local b = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', max, 'WITHSCORES', 'LIMIT', 0, limit)
local i, j, n = 1, 1, 0
while n < limit and (i <= #a or j <= #b) do
  local fromA
  if i > #a then fromA = false
  elseif j > #b then fromA = true
  else fromA = tonumber(a[i + 1]) <= tonumber(b[j + 1]) end
  if fromA then
    redis.call('ZREM', KEYS[1], a[i])
    redis.call('SREM', KEYS[4], a[i])
    redis.call('ZREM', KEYS[5], a[i])
    redis.call('ZREM', KEYS[6], a[i])
    out[#out + 1] = a[i]
    out[#out + 1] = a[i + 1]
    i = i + 2
  else
    redis.call('ZREM', KEYS[2], b[j])
    redis.call('SREM', KEYS[4], b[j])
    redis.call('ZREM', KEYS[5], b[j])
    redis.call('ZREM', KEYS[6], b[j])
    out[#out + 1] = b[j]
    out[#out + 1] = b[j + 1]
    j = j + 2
  end
  n = n + 1
end
return out
`)

// scriptReseedApply applies one chunk of reseed corrections atomically, with
// a fixed number of commands per chunk (three ZMSCORE, then at most two
// ZREM, four ZADD, two rank ZREM, one SADD and one SREM). The caller
// computes the scores and the target set; the script only raises a score
// whose stored heartbeat is later (a heartbeat recorded since the reseed
// read the mirror). Each mitra it puts online is ranked (idle and load) in
// the same call, with the idle ds given (empty keeps the ranked one, or takes
// the heartbeat); the mitras it takes offline lose their ranks.
//
// KEYS: free, full, deactivated, idle, load. ARGV: nFree, nFull, nR, nD, nA,
// then nFree triples (id, score, idle ds) for the free set, nFull triples for
// the full set, nR ids to take offline, nD ids to add to the deactivated
// set, nA ids to remove from it.
var scriptReseedApply = valkey.NewLuaScriptRetryable(`
local nFree, nFull = tonumber(ARGV[1]), tonumber(ARGV[2])
local nR, nD, nA = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local nP = nFree + nFull
local add = {{}, {}}
local rem = {{}, {}}
local rIdle, rLoad = {}, {}
if nP > 0 then
  local ids = {}
  for k = 1, nP do ids[k] = ARGV[3 + 3 * k] end
  local stored = {redis.call('ZMSCORE', KEYS[1], unpack(ids)), redis.call('ZMSCORE', KEYS[2], unpack(ids))}
  local ranked = redis.call('ZMSCORE', KEYS[4], unpack(ids))
  for k = 1, nP do
    local id, score, idle = ids[k], ARGV[4 + 3 * k], ARGV[5 + 3 * k]
    local dst = 1
    if k > nFree then dst = 2 end
    local a, b = stored[1][k], stored[2][k]
    if a or b then
      local s = tonumber(score)
      local ds = math.floor(s / 16384)
      local old = ds
      if a then old = math.max(old, math.floor(tonumber(a) / 16384)) end
      if b then old = math.max(old, math.floor(tonumber(b) / 16384)) end
      if old > ds then score = string.format('%.0f', old * 16384 + (s - ds * 16384)) end
      if stored[3 - dst][k] then rem[3 - dst][#rem[3 - dst] + 1] = id end
    end
    local t = add[dst]
    t[#t + 1] = score
    t[#t + 1] = id
    local s = tonumber(score)
    local hb = math.floor(s / 16384)
    local open = math.floor((s - hb * 16384) / 128)
    local d
    if idle ~= '' then
      d = tonumber(idle)
    elseif ranked[k] then
      d = tonumber(ranked[k])
      if d >= 17592186044416 then d = d - 17592186044416 end
    else
      d = hb
    end
    if d < 0 then d = 0 end
    if d > 68719476735 then d = 68719476735 end
    local off = 0
    if dst == 2 then off = 17592186044416 end
    rIdle[#rIdle + 1] = string.format('%.0f', off + d)
    rIdle[#rIdle + 1] = id
    rLoad[#rLoad + 1] = string.format('%.0f', off + open * 68719476736 + d)
    rLoad[#rLoad + 1] = id
  end
end
local i = 6 + 3 * nP
for k = i, i + nR - 1 do
  rem[1][#rem[1] + 1] = ARGV[k]
  rem[2][#rem[2] + 1] = ARGV[k]
end
if nR > 0 then
  redis.call('ZREM', KEYS[4], unpack(ARGV, i, i + nR - 1))
  redis.call('ZREM', KEYS[5], unpack(ARGV, i, i + nR - 1))
end
i = i + nR
for j = 1, 2 do
  if #rem[j] > 0 then redis.call('ZREM', KEYS[j], unpack(rem[j])) end
end
for j = 1, 2 do
  if #add[j] > 0 then redis.call('ZADD', KEYS[j], unpack(add[j])) end
end
if #rIdle > 0 then
  redis.call('ZADD', KEYS[4], unpack(rIdle))
  redis.call('ZADD', KEYS[5], unpack(rLoad))
end
if nD > 0 then redis.call('SADD', KEYS[3], unpack(ARGV, i, i + nD - 1)) end
i = i + nD
if nA > 0 then redis.call('SREM', KEYS[3], unpack(ARGV, i, i + nA - 1)) end
return nP + nR + nD + nA
`)

// scriptRank re-ranks mitras (the reseed's last pass, for the mitras whose
// availability it did not change): each from the set it is in, with the
// idle ds given (empty keeps the ranked one); a mitra in neither set loses
// its ranks.
//
// KEYS: free, full, idle, load. ARGV: pairs id, idle ds.
var scriptRank = valkey.NewLuaScriptRetryable(luaRank + `
for k = 1, #ARGV, 2 do
  rank(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[k], ARGV[k + 1])
end
return #ARGV / 2
`)

// scriptCandidates reads the first limit free, fresh mitras of a rank (idle
// or load), skipping the excluded ones: a walk of the rank from its start,
// in chunks, that stops at the first mitra that is not free. Its cost grows
// with limit, the excluded and the stale free mitras ranked before them.
//
// KEYS: rank, free, seeded. ARGV: min free score (fresh), limit, nX, then nX
// excluded ids. Returns {'0'} when not seeded, else {'1', id, rank score,
// free score, ...}.
var scriptCandidates = valkey.NewLuaScriptRetryable(`
if redis.call('EXISTS', KEYS[3]) == 0 then return {'0'} end
local minFree, limit, nX = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local ex = {}
for i = 4, 3 + nX do ex[ARGV[i]] = true end
local out = {'1'}
local n, start, chunk = 0, 0, limit + nX + 16
local done = limit <= 0
while not done do
  local r = redis.call('ZRANGE', KEYS[1], start, start + chunk - 1, 'WITHSCORES')
  if #r == 0 then break end
  for i = 1, #r, 2 do
    if tonumber(r[i + 1]) >= 17592186044416 then done = true break end
    local id = r[i]
    if not ex[id] then
      local f = redis.call('ZSCORE', KEYS[2], id)
      if f and tonumber(f) >= minFree then
        out[#out + 1] = id
        out[#out + 1] = r[i + 1]
        out[#out + 1] = f
        n = n + 1
        if n >= limit then done = true break end
      end
    end
  end
  start = start + chunk
end
return out
`)

// scriptSample draws up to limit free, fresh mitras at random, none of the
// excluded: ZRANDMEMBER (distinct members) a few times, so its cost grows
// with limit and not with the free set. When the free set is small, or the
// draws found too few (most free mitras stale or excluded), it answers every
// fresh free mitra instead and the caller draws from them.
//
// KEYS: free, seeded. ARGV: min free score (fresh), limit, nX, then nX
// excluded ids. Returns {'0'} when not seeded, else {'1', mode, id, score,
// ...} where mode 's' is a sample of at most limit and 'a' every candidate.
var scriptSample = valkey.NewLuaScriptRetryable(`
if redis.call('EXISTS', KEYS[2]) == 0 then return {'0'} end
local minFree, limit, nX = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local ex = {}
for i = 4, 3 + nX do ex[ARGV[i]] = true end
local total = redis.call('ZCARD', KEYS[1])
local out = {'1', 's'}
if limit <= 0 or total == 0 then return out end
if total > 2 * (limit + nX) + 64 then
  local seen, n = {}, 0
  for try = 1, 6 do
    local r = redis.call('ZRANDMEMBER', KEYS[1], math.min(total, 2 * (limit - n) + nX + 16), 'WITHSCORES')
    for i = 1, #r, 2 do
      local id = r[i]
      if n < limit and not seen[id] and not ex[id] and tonumber(r[i + 1]) >= minFree then
        seen[id] = true
        out[#out + 1] = id
        out[#out + 1] = r[i + 1]
        n = n + 1
      end
    end
    if n >= limit then return out end
  end
end
out = {'1', 'a'}
local r = redis.call('ZRANGEBYSCORE', KEYS[1], minFree, '+inf', 'WITHSCORES')
for i = 1, #r, 2 do
  if not ex[r[i]] then
    out[#out + 1] = r[i]
    out[#out + 1] = r[i + 1]
  end
end
return out
`)

// scriptUnlock deletes a lock only while it still holds our token.
//
// KEYS: lock. ARGV: token. Returns 1 when it deleted the lock.
var scriptUnlock = valkey.NewLuaScriptRetryable(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)
