--[[
  Refreshes a member card only if it is this process's own, and keeps its id in the member index.

  KEYS[1]   the member key <cluster>:node:<id> (the card's JSON, with a PX TTL)
  KEYS[2]   the member index <cluster>:members (set of ids)
  ARGV[1]   the new card JSON
  ARGV[2]   TTL in ms
  ARGV[3]   this process's token
  ARGV[4]   the id

  Returns 0 refreshed, 1 the key was gone and is claimed again, -1 another process holds it
  (untouched).
]]
local cur = redis.call('GET', KEYS[1])
if not cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  redis.call('SADD', KEYS[2], ARGV[4])
  return 1
end
local ok, card = pcall(cjson.decode, cur)
if ok and type(card) == 'table' and card.token == ARGV[3] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  redis.call('SADD', KEYS[2], ARGV[4])
  return 0
end
return -1
