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

// scriptHeartbeat records a heartbeat in one round trip.
//
// KEYS: free, full, deactivated, seeded. ARGV: id, ds.
// Returns 0 not seeded, 1 recorded, 2 not online, 3 deactivated.
var scriptHeartbeat = valkey.NewLuaScriptRetryable(`
if redis.call('EXISTS', KEYS[4]) == 0 then return 0 end
if redis.call('SISMEMBER', KEYS[3], ARGV[1]) == 1 then return 3 end
local key = KEYS[1]
local s = redis.call('ZSCORE', key, ARGV[1])
if not s then
  key = KEYS[2]
  s = redis.call('ZSCORE', key, ARGV[1])
end
if not s then return 2 end
s = tonumber(s)
local old = math.floor(s / 16384)
local ds = tonumber(ARGV[2])
if ds > old then
  redis.call('ZADD', key, string.format('%.0f', ds * 16384 + (s - old * 16384)), ARGV[1])
end
return 1
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
// KEYS: free, full, away. ARGV: id, ds, low, away ("1" or "0").
var scriptPutOnline = valkey.NewLuaScriptRetryable(`
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
return 1
`)

// scriptPutOffline takes a mitra offline.
//
// KEYS: free, full, away. ARGV: id.
var scriptPutOffline = valkey.NewLuaScriptRetryable(`
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[1])
return 1
`)

// scriptDeactivate adds a mitra to the deactivated set and takes it offline.
//
// KEYS: free, full, deactivated, away. ARGV: id.
var scriptDeactivate = valkey.NewLuaScriptRetryable(`
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[4], ARGV[1])
return 1
`)

// scriptSetLoad changes the load of an online mitra, keeping its heartbeat;
// an away mitra stays in the full set.
//
// KEYS: free, full, away. ARGV: id, low. Returns 1 when the mitra is online, else 0.
var scriptSetLoad = valkey.NewLuaScriptRetryable(`
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
return 1
`)

// scriptRemoveStale removes up to limit mitras whose score is below max,
// oldest first, from both sets (and from the away set).
//
// KEYS: free, full, seeded, away. ARGV: max (exclusive), limit.
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
    out[#out + 1] = a[i]
    out[#out + 1] = a[i + 1]
    i = i + 2
  else
    redis.call('ZREM', KEYS[2], b[j])
    redis.call('SREM', KEYS[4], b[j])
    out[#out + 1] = b[j]
    out[#out + 1] = b[j + 1]
    j = j + 2
  end
  n = n + 1
end
return out
`)

// scriptReseedApply applies one chunk of reseed corrections atomically, with
// a fixed number of commands per chunk (two ZMSCORE, then at most two ZREM,
// two ZADD, one SADD and one SREM). The caller computes the scores and the
// target set; the script only raises a score whose stored heartbeat is later
// (a heartbeat recorded since the reseed read the mirror).
//
// KEYS: free, full, deactivated. ARGV: nFree, nFull, nR, nD, nA, then nFree
// pairs (id, score) for the free set, nFull pairs for the full set, nR ids to
// take offline, nD ids to add to the deactivated set, nA ids to remove from it.
var scriptReseedApply = valkey.NewLuaScriptRetryable(`
local nFree, nFull = tonumber(ARGV[1]), tonumber(ARGV[2])
local nR, nD, nA = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local nP = nFree + nFull
local add = {{}, {}}
local rem = {{}, {}}
if nP > 0 then
  local ids = {}
  for k = 1, nP do ids[k] = ARGV[4 + 2 * k] end
  local stored = {redis.call('ZMSCORE', KEYS[1], unpack(ids)), redis.call('ZMSCORE', KEYS[2], unpack(ids))}
  for k = 1, nP do
    local id, score = ids[k], ARGV[5 + 2 * k]
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
  end
end
local i = 6 + 2 * nP
for k = i, i + nR - 1 do
  rem[1][#rem[1] + 1] = ARGV[k]
  rem[2][#rem[2] + 1] = ARGV[k]
end
i = i + nR
for j = 1, 2 do
  if #rem[j] > 0 then redis.call('ZREM', KEYS[j], unpack(rem[j])) end
end
for j = 1, 2 do
  if #add[j] > 0 then redis.call('ZADD', KEYS[j], unpack(add[j])) end
end
if nD > 0 then redis.call('SADD', KEYS[3], unpack(ARGV, i, i + nD - 1)) end
i = i + nD
if nA > 0 then redis.call('SREM', KEYS[3], unpack(ARGV, i, i + nA - 1)) end
return nP + nR + nD + nA
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
