--[[
  Raises a numeric key to a value, never lowers it (a mark that only moves forward in time).

  KEYS[1]   the key (a number, or missing)
  ARGV[1]   the value

  Returns the key's value after the call.
]]
local cur = tonumber(redis.call('GET', KEYS[1]))
local v = tonumber(ARGV[1])
if cur == nil or cur < v then
  redis.call('SET', KEYS[1], ARGV[1])
  return ARGV[1]
end
return redis.call('GET', KEYS[1])
