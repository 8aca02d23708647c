--[[
  Merges totals rebuilt from MongoDB (every point of the slice older than its `since`, from the
  newest checkpoint and the log after it) into the slice's running totals, which count every newer
  sample: the two sets of points are disjoint, so adding them gives exact totals. Records the last pk
  merged in the same atomic step, so a rebuild that died half-way resumes after it instead of
  counting a pk twice. Fenced: a rebuilder that lost its lock (paused past its expiry) and comes back
  finds another owner in the marks and changes nothing. Every key is the slice's (one hash slot).

  KEYS[1]   T:m    the slice's marks (hash): rb = the rebuild's cutoff, owner = the rebuilder's
            token, rblast = the last pk merged
  KEYS[2]   T:st   hash pk -> packed totals (as in apply.lua)
  KEYS[3]   T:u    hash pk -> username
  KEYS[4]   T:sus  hash pk -> the daily is_suspicious answer, '<1|0>:<epoch ms>'
  ARGV[1]   the cutoff this rebuild counts below
  ARGV[2]   the rebuilder's token
  ARGV[3]   the rebuilt totals, 56 bytes a pk in pk order: the pk (double) then its packed totals
  ARGV[4..] triples for the pks that have them: the pk's index (1-based), its username ('' if
            unknown), its daily answer ('' if never checked)

  Returns the number of pks merged, or -1 if the cutoff or the owner does not match.
]]
local progress = redis.call('HMGET', KEYS[1], 'rb', 'owner')
if progress[1] ~= ARGV[1] or progress[2] ~= ARGV[2] then
  return -1
end
local TOTALS = '>dI4I4I4dI4I4dI4'
local SIZE = 56
local extras = {}
for i = 4, #ARGV, 3 do
  extras[tonumber(ARGV[i])] = { ARGV[i + 1], ARGV[i + 2] }
end
local data = ARGV[3]
local count = #data / SIZE
local last = nil
for i = 0, count - 1 do
  local pkNumber = struct.unpack('>d', data, i * SIZE + 1)
  local pk = string.format('%.0f', pkNumber)
  local rat, rf, rg, rn, rsum, rmn, rmx, rpat, rpf = struct.unpack(TOTALS, data, i * SIZE + 9)
  local extra = extras[i + 1] or { '', '' }
  local cur = redis.call('HGET', KEYS[2], pk)
  -- a value of another length is not this layout's (garbage, or another version's): replaced
  if cur and #cur ~= 48 then cur = false end
  local at, f, g, n, sum, mn, mx, pat, pf = rat, rf, rg, rn, rsum, rmn, rmx, rpat, rpf
  local rebuiltNewer = true
  if cur then
    local cat, cf, cg, cn, csum, cmn, cmx, cpat, cpf = struct.unpack(TOTALS, cur)
    n, sum = cn + rn, csum + rsum
    if cmn < mn then mn = cmn end
    if cmx > mx then mx = cmx end
    if cat >= rat then
      -- the running latest stays; the rebuilt latest may be what it replaced
      rebuiltNewer = false
      at, f, g, pat, pf = cat, cf, cg, cpat, cpf
      if rat > cpat then pat, pf = rat, rf end
    elseif cat > rpat then
      -- the rebuilt latest is newer: what it replaced is the newer of its own previous and the old latest
      pat, pf = cat, cf
    end
  end
  redis.call('HSET', KEYS[2], pk, struct.pack(TOTALS, at, f, g, n, sum, mn, mx, pat, pf))
  if extra[1] ~= '' then
    if rebuiltNewer then redis.call('HSET', KEYS[3], pk, extra[1]) else redis.call('HSETNX', KEYS[3], pk, extra[1]) end
  end
  -- a check stored since the loss is newer than the copy read by this rebuild
  if extra[2] ~= '' then
    local stored = redis.call('HGET', KEYS[4], pk)
    local sat = tonumber(string.match(extra[2], ':(.*)$'))
    if not stored or tonumber(string.match(stored, ':(.*)$')) < sat then redis.call('HSET', KEYS[4], pk, extra[2]) end
  end
  last = pk
end
if last then
  redis.call('HSET', KEYS[1], 'rblast', last)
end
return count
