--[[
  Raises a numeric mark to a value, never lowers it (a mark that only moves forward in time).

  KEYS[1]   the key: a number, or a hash holding the mark in field ARGV[2] (missing: created)
  ARGV[1]   the value
  ARGV[2]   the hash field, or absent for a plain key

  Returns the mark's value after the call.
]]
local field = ARGV[2]
local cur
if field then
  cur = redis.call('HGET', KEYS[1], field)
else
  cur = redis.call('GET', KEYS[1])
end
local v = tonumber(ARGV[1])
if cur == false or tonumber(cur) < v then
  if field then
    redis.call('HSET', KEYS[1], field, ARGV[1])
  else
    redis.call('SET', KEYS[1], ARGV[1])
  end
  return ARGV[1]
end
return cur
