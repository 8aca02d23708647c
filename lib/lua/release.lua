--[[
  Deletes a member card only if it is this process's own, and its id from the member index.

  KEYS[1]   the member key <cluster>:node:<id>
  KEYS[2]   the member index <cluster>:members
  ARGV[1]   this process's token
  ARGV[2]   the id

  Returns 1 deleted, 0 not ours or gone.
]]
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
local ok, card = pcall(cjson.decode, cur)
if ok and type(card) == 'table' and card.token == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], ARGV[2])
  return 1
end
return 0
