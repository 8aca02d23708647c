--[[
  Refreshes a member card only if it is this process's own (or claims it again when it is gone).
  The card is the only key, so on a Redis Cluster the script runs wherever the card's slot lives;
  the caller adds the id to the member index (a set) with its own command after a 0 or a 1.

  KEYS[1]   the member key <cluster>:node:<id> (the card's JSON, with a PX TTL)
  ARGV[1]   the new card JSON
  ARGV[2]   TTL in ms
  ARGV[3]   this process's token

  Returns 0 refreshed, 1 the key was gone and is claimed again, -1 another process holds it
  (untouched).
]]
local cur = redis.call('GET', KEYS[1])
if not cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
local ok, card = pcall(cjson.decode, cur)
if ok and type(card) == 'table' and card.token == ARGV[3] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 0
end
return -1
