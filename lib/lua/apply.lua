--[[
  Applies one slice's part of one log document (samples of one write batch in one period, already
  durable in MongoDB) to the slice's running totals and open buffers. Redis is the arbiter of
  repeats: the first sample of a (pk, interval) to reach this script is the point, in the totals and
  in the bucket written from the open buffer when the period closes. A second application of the same
  samples changes nothing (each is a repeat), so a retry, a reconcile or two nodes polling one pk
  need no record of which documents were applied. Every key is the slice's (one hash slot; names
  from lib/shared/keys.ts `sliceKeys`).

  KEYS[1]   T:m       the slice's marks (hash): since = the totals count every sample with at >=
            this (epoch ms), older ones are counted by the rebuild (missing: nothing is counted until
            a rebuild sets it); rb = a rebuild's cutoff while it runs; closing = start of the newest
            period whose close has begun; ckpt = the period of the slice's newest checkpoint
  KEYS[2]   T:st      hash pk -> 48 packed bytes '>dI4I4I4dI4I4dI4': latest interval (epoch ms),
            its followerCount and followingCount, samples, followerSum, min, max, previous interval
            (-1: none) and its followerCount (lib/storage/format/codec.ts packTotals)
  KEYS[3]   T:u       hash pk -> username
  KEYS[4]   T:pks:<P> set of the slice's pks with an open buffer in P
  KEYS[5..] T:o:<P>:<pk>, one per sample in ARGV[3]'s order: the pk's open buffer, 12-byte records
            (big-endian uint32 offset of the interval in P, followerCount, followingCount)
  ARGV[1]   P, the period start (epoch ms)
  ARGV[2]   'live' (the node that logged it), 'reconcile' (the period's close applies what may not
            have been applied) or 'refill' (a rebuild puts the points it counted back in the buffers)
  ARGV[3]   the samples, 20 bytes each, big-endian: pk (double), offset of the interval in P,
            followerCount, followingCount (uint32)
  ARGV[4]   how long (ms) an open buffer and the set of pks live from their creation: a bound on
            what a period that never closes leaves behind (lib/shared/keys.ts PERIOD_KEYS_TTL_MS)
  ARGV[5..] pairs for the samples that carry a username: the sample's index (1-based), the username

  Returns -2 (and changes nothing) while `since` is missing: the rebuild counts these samples.
  Returns -3 (and changes nothing) for a live call once P's close has begun, and for any call once
  the slice's checkpoint holds P (its buckets are written: what they lack was late, and stays so).
  Returns -4 (and changes nothing) for a reconcile while a rebuild runs: its refill comes first.
  Otherwise {stored, repeats, older, pk, pk, ...}: the samples stored, those whose (pk, interval)
  was stored already, those a live call left to the rebuild (older than `since`), and the pks that
  had no totals before.
  A sample older than `since` belongs to the rebuild: a live call leaves it alone; a refill puts it
  in the open buffer without counting it (the rebuild did); a reconcile puts it there and counts it
  (its document reached the log after the rebuild read it). The latest counts move only forward in
  time; "previous" is the newest point before the latest.
]]
local marks = redis.call('HMGET', KEYS[1], 'since', 'closing', 'ckpt', 'rb')
local since = tonumber(marks[1])
if since == nil then
  return -2
end
local period = tonumber(ARGV[1])
local mode = ARGV[2]
local closing = tonumber(marks[2])
local checkpoint = tonumber(marks[3])
-- a period closed again after Redis lost its marks: a bucket written then is never written again
if checkpoint ~= nil and period <= checkpoint then
  return -3
end
if mode == 'live' and closing ~= nil and period <= closing then
  return -3
end
if mode == 'reconcile' and marks[4] then
  return -4
end

local SAMPLE = '>dI4I4I4'
local SIZE = 20
local TOTALS = '>dI4I4I4dI4I4dI4'
local data = ARGV[3]
local count = #data / SIZE

local life = ARGV[4]
local names = {}
for i = 5, #ARGV, 2 do
  names[tonumber(ARGV[i])] = ARGV[i + 1]
end

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

-- adds a new point to its pk's totals (cur: the packed totals, or false); its username, if carried,
-- replaces the stored one when the point is the newest, else fills in a missing one
local function add(pk, cur, at, f, g, u)
  local lat, lf, lg, n, sum, mn, mx, pat, pf
  if cur then
    lat, lf, lg, n, sum, mn, mx, pat, pf = struct.unpack(TOTALS, cur)
  else
    fresh[#fresh + 1] = pk
    lat, lf, lg, n, sum, mn, mx, pat, pf = -1, 0, 0, 0, 0, f, f, -1, 0
  end
  n = n + 1
  sum = sum + f
  if f < mn then mn = f end
  if f > mx then mx = f end
  local newest = at > lat
  if newest then
    if lat >= 0 then pat, pf = lat, lf end
    lat, lf, lg = at, f, g
  elseif at > pat then
    -- an older point arriving late is the previous one if it is newer than the previous so far
    pat, pf = at, f
  end
  redis.call('HSET', KEYS[2], pk, struct.pack(TOTALS, lat, lf, lg, n, sum, mn, mx, pat, pf))
  if u and u ~= '' then
    if newest then redis.call('HSET', KEYS[3], pk, u) else redis.call('HSETNX', KEYS[3], pk, u) end
  end
end

local stored, repeats, older = 0, 0, 0
for i = 0, count - 1 do
  local pkNumber, offset, f, g = struct.unpack(SAMPLE, data, i * SIZE + 1)
  local pk = string.format('%.0f', pkNumber)
  local at = period + offset
  local open = KEYS[5 + i]
  local cur = false
  local new
  -- a value of another length is not this layout's (garbage, or another version's): replaced
  if at < since then
    if mode == 'live' then
      older = older + 1
    else
      new = not buffered(open, offset)
      if new and mode == 'reconcile' then cur = redis.call('HGET', KEYS[2], pk) end
      if cur and #cur ~= 48 then cur = false end
    end
  else
    cur = redis.call('HGET', KEYS[2], pk)
    if cur and #cur ~= 48 then cur = false end
    local latest = cur and struct.unpack('>d', cur) or nil
    if latest ~= nil and at == latest then
      new = false
    elseif latest == nil or at > latest then
      -- every stored point at or after `since` moved the latest: the buffer cannot hold this one
      new = true
    else
      new = not buffered(open, offset)
    end
  end
  if new then
    stored = stored + 1
    if redis.call('APPEND', open, struct.pack('>I4I4I4', offset, f, g)) == 12 then
      redis.call('PEXPIRE', open, life)
      if redis.call('SADD', KEYS[4], pk) == 1 then redis.call('PEXPIRE', KEYS[4], life) end
    end
    if at >= since or mode == 'reconcile' then add(pk, cur, at, f, g, names[i + 1]) end
  elseif new == false then
    repeats = repeats + 1
  end
end
table.insert(fresh, 1, older)
table.insert(fresh, 1, repeats)
table.insert(fresh, 1, stored)
return fresh
