--[[
  Applies one batch of newly stored samples to the per-influencer running totals, the rank index,
  the growth index and the all-influencer total, exactly once per batch.

  KEYS[1]   batch marker <cluster>:batch:<token> (set here; a second run of the same batch is a no-op)
  KEYS[2]   rank index   <cluster>:rank   (sorted set: pk -> latest followerCount)
  KEYS[3]   cluster stats <cluster>:stats (hash: total = sum of every pk's latest followerCount)
  KEYS[4]   growth index <cluster>:growth (sorted set: pk -> latest followerCount minus the one
            it replaced; a pk enters it with its second sample)
  KEYS[5]   <cluster>:totals:since: the totals count every sample with at >= this (epoch ms);
            older samples are counted by the rebuild from MongoDB (lib/rebuild.ts). Missing
            (Redis lost its data, or a new cluster) means nothing is counted until a rebuild sets it.
  KEYS[6..] one per sample: <cluster>:inf:<pk> (hash: n samples, s followerSum, mn, mx,
            at latest interval ms, f latest followerCount, g latest followingCount, u username,
            pat / pf the interval ms and followerCount that "latest" replaced; sus / sat the daily
            is_suspicious answer and its epoch ms, set by Totals.setSuspicious, not here)
  ARGV[1]   seconds to keep the batch marker
  ARGV[2..] five per sample, in KEYS order: pk, at, followerCount, followingCount, username

  Returns -2 (and changes nothing) while KEYS[5] is missing: the caller retries the batch later.
  Returns -1 if this batch was applied before; otherwise the pks without totals before this batch
  (seen for the first time, or waiting for the rebuild).
  The latest counts (and so the rank score, the growth and the total) move only forward in time,
  so an older sample arriving late updates the average but not "latest" or the growth.
]]
local since = tonumber(redis.call('GET', KEYS[5]))
if since == nil then
  return -2
end
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return -1
end
local fresh = {}
local delta = 0
for i = 6, #KEYS do
  local a = 2 + (i - 6) * 5
  local pk, at, f, g, u = ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
  local fn = tonumber(f)
  local key = KEYS[i]
  local cur = redis.call('HMGET', key, 'n', 's', 'mn', 'mx', 'at', 'f')
  if not cur[1] then
    fresh[#fresh + 1] = pk
  end
  if at >= since then
    -- one HSET per sample: counts and sums written as integers ('%.0f': exact below 2^53, where
    -- tostring would switch to exponents past 1e14), min and max as the strings they came as
    local n = string.format('%.0f', (tonumber(cur[1]) or 0) + 1)
    local sum = string.format('%.0f', (tonumber(cur[2]) or 0) + fn)
    local mn = (cur[3] and tonumber(cur[3]) <= fn) and cur[3] or f
    local mx = (cur[4] and tonumber(cur[4]) >= fn) and cur[4] or f
    if not cur[5] or at > tonumber(cur[5]) then
      if cur[5] and cur[6] then
        redis.call('HSET', key, 'n', n, 's', sum, 'mn', mn, 'mx', mx, 'at', ARGV[a + 1], 'f', f, 'g', g, 'u', u, 'pat', cur[5], 'pf', cur[6])
        redis.call('ZADD', KEYS[4], fn - tonumber(cur[6]), pk)
      else
        redis.call('HSET', key, 'n', n, 's', sum, 'mn', mn, 'mx', mx, 'at', ARGV[a + 1], 'f', f, 'g', g, 'u', u)
      end
      redis.call('ZADD', KEYS[2], f, pk)
      delta = delta + fn - (tonumber(cur[6]) or 0)
    else
      redis.call('HSET', key, 'n', n, 's', sum, 'mn', mn, 'mx', mx)
    end
  end
end
if delta ~= 0 then
  redis.call('HINCRBY', KEYS[3], 'total', delta)
end
return fresh
