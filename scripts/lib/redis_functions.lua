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

-- KEYS: recipient's user hash, recipient's mailbox, the mailbox's per-sender counts.
-- ARGV: mailbox_max, message blob, mailbox_per_sender, sender.
-- Takes the recipient's next mid and stores "mid:blob" with score mid.
-- Returns the mid, -404 when the user does not exist, -507 when the mailbox is full, -429
-- when the sender already has mailbox_per_sender unacked messages in it.
redis.register_function('moonpost_store', function(keys, args)
  if redis.call('EXISTS', keys[1]) == 0 then return -404 end
  if redis.call('ZCARD', keys[2]) >= tonumber(args[1]) then return -507 end
  -- per-sender quota (given back by moonpost_ack)
  if tonumber(redis.call('HGET', keys[3], args[4]) or 0) >= tonumber(args[3]) then return -429 end
  local mid = redis.call('HINCRBY', keys[1], 'mid', 1)
  redis.call('ZADD', keys[2], mid, mid .. ':' .. args[2])
  redis.call('HINCRBY', keys[3], args[4], 1)
  return mid
end)

-- The sender of a mailbox member "mid:blob" (blob: a MessagePack map with `from`), or nil
-- for a member that is not one.
local function member_sender(member)
  local colon = string.find(member, ':', 1, true)
  if not colon then return nil end
  local ok, m = pcall(cmsgpack.unpack, string.sub(member, colon + 1))
  if ok and type(m) == 'table' and type(m.from) == 'string' then return m.from end
  return nil
end

-- Deletes the BATCH lowest members of MAILBOX with mid <= UPTO and adds one per sender to
-- FREED; returns how many it deleted.
local function ack_batch(mailbox, upto, batch, freed)
  local members = redis.call('ZRANGEBYSCORE', mailbox, '-inf', upto, 'LIMIT', 0, batch)
  for _, member in ipairs(members) do
    local from = member_sender(member)
    if from then freed[from] = (freed[from] or 0) + 1 end
  end
  if #members > 0 then redis.call('ZREMRANGEBYRANK', mailbox, 0, #members - 1) end
  return #members
end

-- KEYS: a mailbox, its per-sender counts. ARGV: upto.
-- Deletes the messages with mid <= upto and gives their senders' quota back (in batches, so
-- that a large mailbox is never copied whole into the script). An emptied mailbox drops its
-- counts, so they cannot drift for good. Returns how many messages were deleted. Runs when
-- Redis is out of memory (allow-oom): deleting is how memory comes back.
redis.register_function{function_name = 'moonpost_ack', flags = {'allow-oom'},
                        callback = function(keys, args)
  local batch, deleted, freed = 100, 0, {}
  repeat
    local n = ack_batch(keys[1], args[1], batch, freed)
    deleted = deleted + n
  until n < batch
  for from, n in pairs(freed) do
    if redis.call('HINCRBY', keys[2], from, -n) <= 0 then redis.call('HDEL', keys[2], from) end
  end
  if redis.call('EXISTS', keys[1]) == 0 then redis.call('DEL', keys[2]) end
  return deleted
end}
]]
