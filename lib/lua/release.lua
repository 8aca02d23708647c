--[[
  Deletes a member card only if it is this process's own. The caller removes the id from the member
  index after a 1 (readers drop ids whose card is gone anyway).

  KEYS[1]   the member key <cluster>:node:<id>
  ARGV[1]   this process's token

  Returns 1 deleted, 0 not ours or gone.
]]
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
local ok, card = pcall(cjson.decode, cur)
if ok and type(card) == 'table' and card.token == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
