--[[
  Applies one log document (the samples of one write batch in one period, already durable in
  MongoDB) to the running totals and the period's open buffers, exactly once per document.
  Redis is the arbiter of repeats: the first sample of a (pk, interval) to reach this script is the
  point, in the totals and in the bucket written from the open buffer when the period closes.

  KEYS[1]   <cluster>:applied:<P>   set of the tokens of P's log documents applied so far
  KEYS[2]   <cluster>:rank          sorted set: pk -> latest followerCount
  KEYS[3]   <cluster>:stats         hash: total = sum of every pk's latest followerCount
  KEYS[4]   <cluster>:growth        sorted set: pk -> latest followerCount minus the one it replaced
  KEYS[5]   <cluster>:totals:since  the totals count every sample with at >= this (epoch ms); older
            ones are counted by the rebuild from MongoDB. Missing: nothing is counted until a rebuild
            sets it (Redis lost its data, or a new cluster).
  KEYS[6]   <cluster>:closing       start of the newest period whose close has begun
  KEYS[7]   <cluster>:rebuilt:<P>   set of the tokens of P's log documents a rebuild counted
  KEYS[8..] three per sample (names from lib/shared/keys.ts): <cluster>:inf:<pk> (hash, fields as
            INFLUENCER_FIELDS in lib/shared/keys.ts: n samples, s followerSum, mn, mx, at latest
            interval ms, f / g latest counts, u username, pat / pf the interval and followerCount
            that "latest" replaced; sus / sat set elsewhere), <cluster>:open:<P>:<pk> (string of
            12-byte records: big-endian uint32 offset of the interval in P, followerCount,
            followingCount), <cluster>:pks:<P>:<slice> (set of the slice's pks with an open buffer)
  ARGV[1]   the log document's token
  ARGV[2]   P, the period start (epoch ms)
  ARGV[3]   'live', or 'reconcile' when the period's close applies what was not applied
  ARGV[4]   seconds to keep the applied set (it is deleted when P closes; this bounds a leak)
  ARGV[5..] five per sample, in KEYS order: pk, at, followerCount, followingCount, username ('' if unknown)

  Returns -2 (and changes nothing) while KEYS[5] is missing: the rebuild counts the document.
  Returns -3 (and changes nothing) for a live call once P's close has begun: the samples are late.
  Returns -1 if the document was applied before. Otherwise {repeats, pk, pk, ...}: the number of
  samples whose (pk, interval) was already stored, and the pks that had no totals before.
  A sample older than `since` belongs to the rebuild: a live call leaves it alone and marks the
  token <token>:old; the period's reconcile then puts it in the open buffer in log order (the order
  the rebuild counted in), and counts it only if its document is not one the rebuild counted (it
  reached the log after the rebuild read it). A reconcile of a token marked <token>:old applies only
  those samples. The latest counts (and so the rank, the growth
  and the total) move only forward in time; "previous" is the newest point before the latest.
]]
local since = tonumber(redis.call('GET', KEYS[5]))
if since == nil then
  return -2
end
local period = tonumber(ARGV[2])
local reconcile = ARGV[3] == 'reconcile'
local closing = tonumber(redis.call('GET', KEYS[6]))
if not reconcile and closing ~= nil and period <= closing then
  return -3
end
local whole, partial = ARGV[1], ARGV[1] .. ':old'
if redis.call('SISMEMBER', KEYS[1], whole) == 1 then
  return -1
end
local onlyOld = redis.call('SISMEMBER', KEYS[1], partial) == 1
if onlyOld and not reconcile then
  return -1
end
local anyOld = false
for i = 6, #ARGV, 5 do
  if tonumber(ARGV[i]) < since then anyOld = true end
end
redis.call('SADD', KEYS[1], (reconcile or not anyOld) and whole or partial)
redis.call('EXPIRE', KEYS[1], ARGV[4])
local rebuilt = redis.call('SISMEMBER', KEYS[7], ARGV[1]) == 1

-- whether the open buffer already holds the interval at this offset
local function buffered(key, offset)
  local s = redis.call('GET', key)
  if not s then return false end
  for i = 1, #s, 12 do
    if struct.unpack('>I4', s, i) == offset then return true end
  end
  return false
end

local fresh = {}
local repeats = 0
local delta = 0

-- adds a new point to its pk's totals (cur: n, s, mn, mx, at, f, pat as stored)
local function count(key, cur, pk, atText, at, f, g, u)
  local fn = tonumber(f)
  local latest = tonumber(cur[5])
  if not cur[1] then
    fresh[#fresh + 1] = pk
  end
  -- counts and sums written as integers ('%.0f': exact below 2^53), min and max as given
  local n = string.format('%.0f', (tonumber(cur[1]) or 0) + 1)
  local sum = string.format('%.0f', (tonumber(cur[2]) or 0) + fn)
  local mn = (cur[3] and tonumber(cur[3]) <= fn) and cur[3] or f
  local mx = (cur[4] and tonumber(cur[4]) >= fn) and cur[4] or f
  if latest == nil or at > latest then
    if latest ~= nil and cur[6] then
      redis.call('HSET', key, 'n', n, 's', sum, 'mn', mn, 'mx', mx, 'at', atText, 'f', f, 'g', g, 'pat', cur[5], 'pf', cur[6])
      redis.call('ZADD', KEYS[4], fn - tonumber(cur[6]), pk)
    else
      redis.call('HSET', key, 'n', n, 's', sum, 'mn', mn, 'mx', mx, 'at', atText, 'f', f, 'g', g)
    end
    -- a reconciled sample may come without a username: keep the one known
    if u ~= '' then redis.call('HSET', key, 'u', u) end
    redis.call('ZADD', KEYS[2], f, pk)
    delta = delta + fn - (tonumber(cur[6]) or 0)
  elseif not cur[7] or at > tonumber(cur[7]) then
    -- an older point arriving late is the previous one if it is newer than the previous so far
    redis.call('HSET', key, 'n', n, 's', sum, 'mn', mn, 'mx', mx, 'pat', atText, 'pf', f)
    redis.call('ZADD', KEYS[4], tonumber(cur[6]) - fn, pk)
  else
    redis.call('HSET', key, 'n', n, 's', sum, 'mn', mn, 'mx', mx)
  end
end

local function store(open, pks, pk, record)
  if redis.call('APPEND', open, record) == 12 then redis.call('SADD', pks, pk) end
end

for i = 8, #KEYS, 3 do
  local a = 5 + (i - 8) / 3 * 5
  local pk, atText, f, g, u = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
  local at = tonumber(atText)
  local key, open, pks = KEYS[i], KEYS[i + 1], KEYS[i + 2]
  local offset = at - period
  local record = struct.pack('>I4I4I4', offset, tonumber(f), tonumber(g))
  if at < since then
    if reconcile then
      if buffered(open, offset) then
        repeats = repeats + 1
      else
        store(open, pks, pk, record)
        if not rebuilt then count(key, redis.call('HMGET', key, 'n', 's', 'mn', 'mx', 'at', 'f', 'pat'), pk, atText, at, f, g, u) end
      end
    end
  elseif not onlyOld then
    local cur = redis.call('HMGET', key, 'n', 's', 'mn', 'mx', 'at', 'f', 'pat')
    local latest = tonumber(cur[5])
    local new
    if latest == nil or at > latest then
      new = true
    elseif at == latest then
      new = false
    else
      new = not buffered(open, offset)
    end
    if new then
      store(open, pks, pk, record)
      count(key, cur, pk, atText, at, f, g, u)
    else
      repeats = repeats + 1
    end
  end
end
if delta ~= 0 then
  redis.call('HINCRBY', KEYS[3], 'total', delta)
end
table.insert(fresh, 1, repeats)
return fresh
