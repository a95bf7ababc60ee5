-- The Redis-side functions of moonpost (Redis >= 7 FUNCTION LOAD). The broker loads this
-- library on every connection, before any other command, so handlers can FCALL it. Each
-- function is one atomic step that would otherwise take several round trips.
return [[#!lua name=moonpost

-- KEYS: user hash. ARGV: password hash, display name, created (ms).
-- Returns 1 when created, 0 when the user exists: two racing registrations, exactly one wins.
redis.register_function('moonpost_register', function(keys, args)
  if redis.call('EXISTS', keys[1]) == 1 then return 0 end
  redis.call('HSET', keys[1], 'pw', args[1], 'name', args[2], 'created', args[3], 'mid', 0,
             'acked', 0)
  return 1
end)

-- The next mid after LAST (a number or nil): above LAST and at least 1024 per millisecond of
-- the later of Redis's clock and the broker's (BROKER_MS, ms since the epoch), so that a
-- counter that went back with lost writes (a restart without AOF, a failover, a restored
-- backup) never hands out a mid again: the clock has moved on since. Stays below 2^53, so the
-- mid is exact as a sorted-set score, until the year 2248. Returned as an integer string.
local function next_mid(last, broker_ms)
  local t = redis.call('TIME')
  local now = math.max(tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000),
                       tonumber(broker_ms) or 0)
  local mid = math.max((tonumber(last) or 0) + 1, now * 1024)
  if mid >= 9007199254740992 then return redis.error_reply('ERR mid out of range') end
  return string.format('%d', mid)
end

-- The newest mid in MAILBOX (a number), nil when it is empty.
local function newest_mid(mailbox)
  return tonumber(redis.call('ZRANGE', mailbox, -1, -1, 'WITHSCORES')[2])
end

-- prev for a store into MAILBOX: the newest message still waiting there (0 when none), which a
-- session must have been sent before the new one (docs/cluster.md: messages stored by many
-- nodes reach a session in mid order). Acks delete from the lowest mid up and moonpost_ack
-- keeps the highest it deleted (ACKED), so the last mid handed out (LAST) waits unless an ack
-- reached it. A user without ACKED (no ack since it was kept) is looked up in the mailbox.
local function newest_waiting(mailbox, last, acked)
  if acked then
    local n = tonumber(last)
    return n > tonumber(acked) and n or 0
  end
  return newest_mid(mailbox) or 0
end

-- KEYS: recipient's user hash, recipient's mailbox, the mailbox's per-sender counts, and
-- (optional) the recipient's location (P loc:USER, "NODE SEQ": the broker of its session,
-- written by the broker at login, docs/cluster.md).
-- ARGV: mailbox_max, message blob, the broker's clock (ms), mailbox_per_sender, sender.
-- Takes the recipient's next mid and stores "mid:sender:blob" with score mid (the sender in
-- plain text, so that an ack gives the sender's quota back without decoding the blob).
-- Returns {mid, prev, node} (prev: see newest_waiting; node: the location's node, false when
-- there is none; {mid, prev} without the key), -404 when the user does not exist, -507 when
-- the mailbox is full, -429 when the sender already has mailbox_per_sender unacked messages
-- in it. Numbers go to Redis as strings: each number converted costs a printf.
local function store(user_key, mailbox, senders, loc, mailbox_max, blob, broker_ms, per_sender,
                     from)
  local user = redis.call('HMGET', user_key, 'mid', 'acked')
  local last = user[1] -- every user has one (moonpost_register)
  if not last then return -404 end
  if redis.call('ZCARD', mailbox) >= tonumber(mailbox_max) then return -507 end
  local mid = next_mid(last, broker_ms)
  if type(mid) == 'table' then return mid end
  -- per-sender quota (given back by moonpost_ack): counted first and taken back when over, one
  -- call for a message that passes
  if redis.call('HINCRBY', senders, from, '1') > tonumber(per_sender) then
    redis.call('HINCRBY', senders, from, '-1')
    return -429
  end
  local prev = newest_waiting(mailbox, last, user[2])
  redis.call('HSET', user_key, 'mid', mid)
  redis.call('ZADD', mailbox, mid, mid .. ':' .. from .. ':' .. blob)
  if not loc then return { tonumber(mid), prev } end
  local at = redis.call('GET', loc)
  return { tonumber(mid), prev, at and string.match(at, '^(%S+) ') or false }
end

redis.register_function('moonpost_store', function(keys, args)
  return store(keys[1], keys[2], keys[3], keys[4], args[1], args[2], args[3], args[4], args[5])
end)

-- Many stores in one call, in order (one call per message costs Redis more in the call than
-- in the store). KEYS: four per message, as moonpost_store's. ARGV: mailbox_max,
-- mailbox_per_sender, the broker's clock (ms), then a blob and a sender per message. Returns
-- moonpost_store's reply for each message.
redis.register_function('moonpost_store_many', function(keys, args)
  local replies = {}
  for i = 1, #keys / 4 do
    local k, a = 4 * i - 3, 2 * i + 2
    replies[i] = store(keys[k], keys[k + 1], keys[k + 2], keys[k + 3], args[1], args[a],
                       args[3], args[2], args[a + 1])
  end
  return replies
end)

-- KEYS: the broadcast mid counter. ARGV: the broker's clock (ms). Returns the next broadcast
-- mid, by the same rule as mailbox mids.
redis.register_function('moonpost_broadcast_mid', function(keys, args)
  local mid = next_mid(redis.call('GET', keys[1]), args[1])
  if type(mid) == 'table' then return mid end
  redis.call('SET', keys[1], mid)
  return tonumber(mid)
end)

-- The sender of a mailbox member: "mid:sender:blob", or, for a member stored before the sender
-- was written out, "mid:blob" (the blob a MessagePack map, whose first byte is never one of a
-- user name's): its `from`. nil when neither can be read.
local function member_sender(member)
  local sender = string.match(member, '^%d+:([%w_.%-]+):')
  if sender then return sender end
  local ok, m = pcall(cmsgpack.unpack,
                      string.sub(member, (string.find(member, ':', 1, true) or 0) + 1))
  if ok and type(m) == 'table' and type(m.from) == 'string' then return m.from end
  return nil
end

-- Deletes the BATCH lowest members of MAILBOX with mid <= UPTO and adds one per sender to
-- FREED; returns how many it deleted and the highest mid deleted (a string, nil if none).
local function ack_batch(mailbox, upto, batch, freed)
  local members = redis.call('ZRANGEBYSCORE', mailbox, '-inf', upto, 'LIMIT', 0, batch)
  for _, member in ipairs(members) do
    local from = member_sender(member)
    if from then freed[from] = (freed[from] or 0) + 1 end
  end
  if #members == 0 then return 0, nil end
  redis.call('ZREMRANGEBYRANK', mailbox, 0, #members - 1)
  return #members, string.match(members[#members], '^(%d+):')
end

-- KEYS: a mailbox, its per-sender counts, and (optional) the user's hash. ARGV: upto.
-- Deletes the messages with mid <= upto and gives their senders' quota back (in batches, so
-- that a large mailbox is never copied whole into the script). An emptied mailbox drops its
-- counts, so they cannot drift for good. The highest mid deleted goes to the user's `acked`
-- (see newest_waiting). Returns how many messages were deleted. An ack that reaches the newest
-- message (a client acking all it was sent, the common case) deletes the mailbox and its
-- counts whole, with no member read. Runs when Redis is out of memory (allow-oom): deleting
-- is how memory comes back.
local function ack(mailbox, senders, user_key, upto)
  local newest = newest_mid(mailbox)
  if newest and newest <= tonumber(upto) then
    local deleted = redis.call('ZCARD', mailbox)
    redis.call('DEL', mailbox, senders)
    if user_key then redis.call('HSET', user_key, 'acked', string.format('%d', newest)) end
    return deleted
  end
  local batch, deleted, freed, highest = 100, 0, {}, nil
  repeat
    local n, top = ack_batch(mailbox, upto, batch, freed)
    deleted = deleted + n
    highest = top or highest
  until n < batch
  -- only after a deletion: a user deleted with its mailbox is not written back by a late ack
  if highest and user_key then redis.call('HSET', user_key, 'acked', highest) end
  if redis.call('EXISTS', mailbox) == 0 then
    redis.call('DEL', senders) -- emptied: no count is left to give back
    return deleted
  end
  for from, n in pairs(freed) do
    if redis.call('HINCRBY', senders, from, -n) <= 0 then redis.call('HDEL', senders, from) end
  end
  return deleted
end

redis.register_function{function_name = 'moonpost_ack', flags = {'allow-oom'},
                        callback = function(keys, args)
  return ack(keys[1], keys[2], keys[3], args[1])
end}

-- Many acks in one call, in order. KEYS: three per ack, as moonpost_ack's (the user's hash
-- required). ARGV: upto per ack. Returns how many messages each deleted.
redis.register_function{function_name = 'moonpost_ack_many', flags = {'allow-oom'},
                        callback = function(keys, args)
  local deleted = {}
  for i = 1, #args do
    deleted[i] = ack(keys[3 * i - 2], keys[3 * i - 1], keys[3 * i], args[i])
  end
  return deleted
end}

-- Login attempts, counted on two sides: (user, address) and the address. Each side is its own
-- call with its own keys (one hash slot of a Redis Cluster); the caller reserves the user's
-- side, then the address's (docs/redis-cluster-keys.md).
-- KEYS: failures, attempts in flight, and optionally a count to return (the user's failures).
-- ARGV: most failures, window (s).
-- Returns {0, seconds until the window ends} when the failures are at their limit; {-1, 1}
-- when they would be with the attempts in flight (they may all fail: busy, retry in a second);
-- else counts the attempt in flight (moonpost_login_done ends it) and returns {1, the count of
-- KEYS[3], 0 without it}. One step per counter, so parallel attempts cannot all pass its
-- check: failures never exceed the limits.
redis.register_function('moonpost_login_attempt', function(keys, args)
  local max = tonumber(args[1])
  local failures = tonumber(redis.call('GET', keys[1]) or 0)
  if failures >= max then
    local ttl = redis.call('TTL', keys[1])
    return { 0, ttl > 0 and ttl or tonumber(args[2]) }
  end
  if failures + tonumber(redis.call('GET', keys[2]) or 0) >= max then return { -1, 1 } end
  redis.call('INCR', keys[2])
  -- a broker that dies mid-attempt leaks it for 60 s at most (NX: traffic does not renew it)
  redis.call('EXPIRE', keys[2], 60, 'NX')
  return { 1, keys[3] and tonumber(redis.call('GET', keys[3]) or 0) or 0 }
end)

-- Ends an attempt of moonpost_login_attempt. KEYS: failures, attempts in flight, then any
-- other failure counters of the same slot (the user's). ARGV: "fail" (counted in every failure
-- counter, within the window ARGV[2]), "ok" (clears KEYS[1]) or "none" (neither: busy, client
-- gone, or the other side refused).
-- Runs when Redis is out of memory (allow-oom), so that no attempt stays counted in flight.
redis.register_function{function_name = 'moonpost_login_done', flags = {'allow-oom'},
                        callback = function(keys, args)
  if tonumber(redis.call('GET', keys[2]) or 0) > 0 then redis.call('DECR', keys[2]) end
  if args[1] == 'fail' then
    for i = 1, #keys do
      if i ~= 2 then
        redis.call('INCR', keys[i])
        redis.call('EXPIRE', keys[i], tonumber(args[2]), 'NX')
      end
    end
  elseif args[1] == 'ok' then
    redis.call('DEL', keys[1])
  end
  return 1
end}

-- KEYS: counters. Takes back one reserved registration from each (one that hashed nothing).
redis.register_function('moonpost_unreserve', function(keys)
  for _, key in ipairs(keys) do
    if tonumber(redis.call('GET', key) or 0) > 0 then redis.call('DECR', key) end
  end
  return 1
end)

-- Registrations. KEYS: the address's registrations this hour. ARGV: most per address per hour
-- (0 = no limit). (register.lua answers a taken name before, with its own read: the user's
-- key is in another slot of a Redis Cluster.)
-- Returns {0, seconds to wait} when the address is at its limit, else counts the registration
-- and returns {1, 0}.
redis.register_function('moonpost_register_attempt', function(keys, args)
  local max = tonumber(args[1])
  if max > 0 then
    local n = redis.call('INCR', keys[1])
    redis.call('EXPIRE', keys[1], 3600, 'NX')
    if n > max then
      redis.call('DECR', keys[1])
      local ttl = redis.call('TTL', keys[1])
      return { 0, ttl > 0 and ttl or 3600 }
    end
  end
  return { 1, 0 }
end)

-- Resume tokens. KEYS: the token, the user's set of tokens (score: expiry in ms).
-- ARGV: user, token_ttl (s), now (ms), most tokens per user, 1 = renew an existing token
-- only, prefix of the user's token keys (in the user's slot), token.
-- Returns 1, or 0 when renewing a token that was revoked meanwhile. Expired tokens leave the
-- set; past the most per user, the oldest are revoked.
redis.register_function('moonpost_token_add', function(keys, args)
  local ttl, now, max = tonumber(args[2]), tonumber(args[3]), tonumber(args[4])
  local set = args[5] == '1' and 'XX' or 'NX'
  if not redis.call('SET', keys[1], args[1], 'EX', ttl, set) then return 0 end
  redis.call('ZREMRANGEBYSCORE', keys[2], '-inf', now)
  -- scores strictly increase, so that the oldest token is the lowest even within one ms
  local newest = redis.call('ZRANGE', keys[2], -1, -1, 'WITHSCORES')[2]
  redis.call('ZADD', keys[2], math.max(now + ttl * 1000, (tonumber(newest) or 0) + 1), args[7])
  redis.call('EXPIRE', keys[2], ttl)
  local extra = redis.call('ZCARD', keys[2]) - max
  if extra > 0 then
    local oldest = redis.call('ZPOPMIN', keys[2], extra) -- member, score, member, score...
    for i = 1, #oldest, 2 do redis.call('DEL', args[6] .. oldest[i]) end
  end
  return 1
end)

-- KEYS: the user's set of tokens. ARGV: prefix of the user's token keys, the token to revoke,
-- or "" for every token of the user. Returns how many were revoked.
-- Runs when Redis is out of memory (allow-oom): a logout must always revoke.
redis.register_function{function_name = 'moonpost_token_revoke', flags = {'allow-oom'},
                        callback = function(keys, args)
  local tokens = args[2] == '' and redis.call('ZRANGE', keys[1], 0, -1) or { args[2] }
  for _, token in ipairs(tokens) do
    redis.call('DEL', args[1] .. token)
    redis.call('ZREM', keys[1], token)
  end
  return #tokens
end}
]]
