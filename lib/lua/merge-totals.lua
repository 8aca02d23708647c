--[[
  Merges totals rebuilt from MongoDB (every point older than <cluster>:totals:since, from the
  newest checkpoints and the log after them) into the running totals, which count every newer
  sample: the two sets of points are disjoint, so adding them gives exact totals. Records the last
  pk merged in the same atomic step, so a rebuild that died half-way resumes after it instead of
  counting a pk twice. Fenced: a rebuilder that lost its lock (paused past its expiry) and comes back
  finds another owner in the progress hash and changes nothing.

  KEYS[1]   rank index <cluster>:rank
  KEYS[2]   cluster stats <cluster>:stats (hash: total)
  KEYS[3]   rebuild progress <cluster>:totals:rebuild (hash: T = cutoff, owner = the rebuilder's
            token, last = last pk merged)
  KEYS[4]   growth index <cluster>:growth
  KEYS[5..] one per pk: <cluster>:inf:<pk> (fields as INFLUENCER_FIELDS in lib/shared/keys.ts)
  ARGV[1]   the cutoff this rebuild counts below
  ARGV[2]   the rebuilder's token
  ARGV[3..] thirteen per pk, in KEYS order: pk, samples, followerSum, min, max, latest at, latest
            followerCount, latest followingCount, previous at (-1: none), previous
            followerCount, username ('' if unknown), the daily suspicious flag ('1' / '0') and its
            epoch ms (-1: never checked)

  Returns the number of pks merged, or -1 if the cutoff or the owner does not match.
]]
local progress = redis.call('HMGET', KEYS[3], 'T', 'owner')
if progress[1] ~= ARGV[1] or progress[2] ~= ARGV[2] then
  return -1
end
local delta = 0
local last = nil
for i = 5, #KEYS do
  local a = 3 + (i - 5) * 13
  local pk, n, s = ARGV[a], ARGV[a + 1], ARGV[a + 2]
  local mn, mx, at = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5])
  local f, g, pat, pf, u = ARGV[a + 6], ARGV[a + 7], tonumber(ARGV[a + 8]), ARGV[a + 9], ARGV[a + 10]
  local sus, sat = ARGV[a + 11], tonumber(ARGV[a + 12])
  local key = KEYS[i]
  local cur = redis.call('HMGET', key, 'mn', 'mx', 'at', 'f', 'pat', 'sat')
  redis.call('HINCRBY', key, 'n', n)
  redis.call('HINCRBY', key, 's', s)
  if not cur[1] or mn < tonumber(cur[1]) then redis.call('HSET', key, 'mn', mn) end
  if not cur[2] or mx > tonumber(cur[2]) then redis.call('HSET', key, 'mx', mx) end
  if not cur[3] or at > tonumber(cur[3]) then
    -- the rebuilt latest is newer: what it replaced is the newer of its own previous and the old latest
    redis.call('HSET', key, 'at', at, 'f', f, 'g', g)
    if u ~= '' then redis.call('HSET', key, 'u', u) end
    redis.call('ZADD', KEYS[1], f, pk)
    delta = delta + tonumber(f) - (tonumber(cur[4]) or 0)
    local prevAt, prevF = pat, pf
    if cur[3] and tonumber(cur[3]) > pat then prevAt, prevF = tonumber(cur[3]), cur[4] end
    if prevAt >= 0 then
      redis.call('HSET', key, 'pat', prevAt, 'pf', prevF)
      redis.call('ZADD', KEYS[4], tonumber(f) - tonumber(prevF), pk)
    end
  else
    if u ~= '' then redis.call('HSETNX', key, 'u', u) end
    -- the running latest stays; the rebuilt latest may be what it replaced
    if not cur[5] or at > tonumber(cur[5]) then
      redis.call('HSET', key, 'pat', at, 'pf', f)
      redis.call('ZADD', KEYS[4], tonumber(cur[4]) - tonumber(f), pk)
    end
  end
  -- a check stored since the loss is newer than the copy read by this rebuild
  if sat >= 0 and (not cur[6] or sat > tonumber(cur[6])) then
    redis.call('HSET', key, 'sus', sus, 'sat', sat)
  end
  last = pk
end
if delta ~= 0 then
  redis.call('HINCRBY', KEYS[2], 'total', delta)
end
if last then
  redis.call('HSET', KEYS[3], 'last', last)
end
return #KEYS - 4
