-- The Redis-side functions of moonpost (Redis >= 7 FUNCTION LOAD). The broker loads this
-- library on every connection, before any other command, so handlers can FCALL it. Each
-- function is one atomic step that would otherwise take several round trips.
return [[#!lua name=moonpost

-- KEYS: user hash. ARGV: password hash, display name, created (ms).
-- Returns 1 when created, 0 when the user exists: two racing registrations, exactly one wins.
redis.register_function('moonpost_register', function(keys, args)
  if redis.call('EXISTS', keys[1]) == 1 then return 0 end
  redis.call('HSET', keys[1], 'pw', args[1], 'name', args[2], 'created', args[3], 'mid', 0)
  return 1
end)

-- KEYS: recipient's user hash, recipient's mailbox. ARGV: mailbox_max, message blob.
-- Takes the recipient's next mid and stores "mid:blob" with score mid.
-- Returns the mid, -404 when the user does not exist, -507 when the mailbox is full.
redis.register_function('moonpost_store', function(keys, args)
  if redis.call('EXISTS', keys[1]) == 0 then return -404 end
  if redis.call('ZCARD', keys[2]) >= tonumber(args[1]) then return -507 end
  local mid = redis.call('HINCRBY', keys[1], 'mid', 1)
  redis.call('ZADD', keys[2], mid, mid .. ':' .. args[2])
  return mid
end)
]]
