#!lua name=moonpost_cluster
-- The cluster registry (docs/cluster.md): which nodes are live, which node holds which user.
-- Loaded by the broker (cluster.c) on every connect. ARGV[1] is always redis_prefix; the keys
-- are named by node ids, so they are built here. Deadlines are Redis's own clock (TIME), the
-- one clock every node shares.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function alive(p, node, now)
  local deadline = redis.call('ZSCORE', p .. 'nodes', node)
  return deadline ~= false and tonumber(deadline) > now
end

-- "NODE SEQ" -> NODE, SEQ
local function owner(v)
  if not v then return nil end
  local node, seq = string.match(v, '^(%S+) (%d+)$')
  return node, seq
end

-- Forgets up to MAX users of NODE (whose process is gone); returns how many are left.
local function forget_users(p, node, max)
  local set = p .. 'nodeusers:' .. node
  local users = redis.call('ZRANGE', set, 0, max - 1)
  for _, u in ipairs(users) do
    if owner(redis.call('HGET', p .. 'online', u)) == node then
      redis.call('HDEL', p .. 'online', u)
    end
  end
  if #users > 0 then redis.call('ZREM', set, unpack(users)) end
  return redis.call('ZCARD', set)
end

-- One dead node (deadline passed) loses up to 1,000 of its users per beat of any live node;
-- readers check deadlines, so this is housekeeping, not correctness.
local function reap(p, now)
  local dead = redis.call('ZRANGEBYSCORE', p .. 'nodes', '-inf', now, 'LIMIT', 0, 1)
  for _, node in ipairs(dead) do
    if forget_users(p, node, 1000) == 0 then
      redis.call('ZREM', p .. 'nodes', node)
    end
  end
end

-- ARGV: prefix, node, instance, ttl ms, sessions, started ms, host, pid.
-- Returns {1, 0}: beat; {1, 1}: (re)joined (first beat, or after the deadline passed: the node
-- re-registers its sessions); {0, deadline}: the id is held by another instance whose deadline
-- has not passed (it may be a live node, or one that just died: the caller watches whether
-- the deadline moves).
redis.register_function('moonpost_node_beat', function(_, a)
  local p, node, instance, ttl = a[1], a[2], a[3], tonumber(a[4])
  local now = now_ms()
  local key = p .. 'node:' .. node
  local held = redis.call('HGET', key, 'instance')
  local deadline = tonumber(redis.call('ZSCORE', p .. 'nodes', node) or 0)
  if held and held ~= instance and deadline > now then return { 0, deadline } end
  local joined = 0
  if held ~= instance or deadline <= now then
    joined = 1
    -- a new instance of the id: the users of the old one are gone with it
    if held ~= instance then
      while forget_users(p, node, 10000) > 0 do end
    end
  end
  redis.call('ZADD', p .. 'nodes', now + ttl, node)
  redis.call('HSET', key, 'instance', instance, 'sessions', a[5], 'started', a[6],
             'host', a[7], 'pid', a[8])
  redis.call('PEXPIRE', key, ttl * 2)
  reap(p, now)
  return { 1, joined }
end)

-- ARGV: prefix, node, instance. A node that stops: its users and its entry go at once.
redis.register_function('moonpost_node_leave', function(_, a)
  local p, node = a[1], a[2]
  if redis.call('HGET', p .. 'node:' .. node, 'instance') ~= a[3] then return 0 end
  while forget_users(p, node, 10000) > 0 do end
  redis.call('ZREM', p .. 'nodes', node)
  redis.call('DEL', p .. 'node:' .. node)
  return 1
end)

-- ARGV: prefix, user, node. Points the user at NODE with the next claim seq; the node that
-- held it before, if another live one, is told "K<seq> <user>" on its channel. Returns seq.
redis.register_function('moonpost_presence_claim', function(_, a)
  local p, user, node = a[1], a[2], a[3]
  local seq = redis.call('INCR', p .. 'claimseq')
  local old = owner(redis.call('HGET', p .. 'online', user))
  redis.call('HSET', p .. 'online', user, node .. ' ' .. seq)
  redis.call('ZADD', p .. 'nodeusers:' .. node, 0, user)
  if old and old ~= node then
    redis.call('ZREM', p .. 'nodeusers:' .. old, user)
    if alive(p, old, now_ms()) then
      redis.call('PUBLISH', p .. 'node:' .. old, 'K' .. seq .. ' ' .. user)
    end
  end
  return seq
end)

-- ARGV: prefix, node, user, seq. Removes the user's entry if it is still this claim.
redis.register_function('moonpost_presence_release', function(_, a)
  local p, node, user, seq = a[1], a[2], a[3], a[4]
  if redis.call('HGET', p .. 'online', user) ~= node .. ' ' .. seq then return 0 end
  redis.call('HDEL', p .. 'online', user)
  redis.call('ZREM', p .. 'nodeusers:' .. node, user)
  return 1
end)

-- Putting a node's sessions back (after it rejoined or reconnected) is three steps, sent in
-- order on one connection: begin, renew (in batches), end. Whatever the registry says of the
-- node that the node no longer holds (a Redis that went back to an older copy) goes at the end.

-- ARGV: prefix, node. The node's user list moves aside; renew builds it again.
redis.register_function('moonpost_presence_renew_begin', function(_, a)
  local set = a[1] .. 'nodeusers:' .. a[2]
  redis.call('DEL', set .. ':old')
  if redis.call('EXISTS', set) == 1 then redis.call('RENAME', set, set .. ':old') end
  return 1
end)

-- ARGV: prefix, node, then pairs user, seq: sessions the node holds. The newer claim wins: a
-- user held by another live node under an older claim is taken back (that node is told to
-- close its session), under a newer one it is lost to it. The claim counter never stays below
-- a claim put back. Returns the lost users.
redis.register_function('moonpost_presence_renew', function(_, a)
  local p, node = a[1], a[2]
  local now = now_ms()
  local lost, highest = {}, 0
  for i = 3, #a - 1, 2 do
    local user, seq = a[i], tonumber(a[i + 1])
    local holder, held_seq = owner(redis.call('HGET', p .. 'online', user))
    held_seq = tonumber(held_seq or 0)
    local other = holder and holder ~= node and alive(p, holder, now)
    if other and held_seq > seq then
      lost[#lost + 1] = user
    else
      if other then
        redis.call('ZREM', p .. 'nodeusers:' .. holder, user)
        redis.call('PUBLISH', p .. 'node:' .. holder, 'K' .. seq .. ' ' .. user)
      end
      redis.call('HSET', p .. 'online', user, node .. ' ' .. seq)
      redis.call('ZADD', p .. 'nodeusers:' .. node, 0, user)
      if seq > highest then highest = seq end
    end
  end
  if highest > tonumber(redis.call('GET', p .. 'claimseq') or 0) then
    redis.call('SET', p .. 'claimseq', highest)
  end
  return lost
end)

-- ARGV: prefix, node. The users of the old list the node did not renew (nor claim meanwhile)
-- leave the registry.
redis.register_function('moonpost_presence_renew_end', function(_, a)
  local p, node = a[1], a[2]
  local set = p .. 'nodeusers:' .. node
  for _, user in ipairs(redis.call('ZRANGE', set .. ':old', 0, -1)) do
    if not redis.call('ZSCORE', set, user) and
       owner(redis.call('HGET', p .. 'online', user)) == node then
      redis.call('HDEL', p .. 'online', user)
    end
  end
  redis.call('DEL', set .. ':old')
  return 1
end)

-- ARGV: prefix, user, message. PUBLISHes MESSAGE to the channel of the live node holding USER.
-- Returns 1 when it was sent, 0 when the user is online nowhere.
redis.register_function('moonpost_route', function(_, a)
  local p = a[1]
  local node = owner(redis.call('HGET', p .. 'online', a[2]))
  if not node or not alive(p, node, now_ms()) then return 0 end
  redis.call('PUBLISH', p .. 'node:' .. node, a[3])
  return 1
end)

-- ARGV: prefix, user. The live node holding USER, or false.
redis.register_function{ function_name = 'moonpost_where', flags = { 'no-writes' },
  callback = function(_, a)
    local node = owner(redis.call('HGET', a[1] .. 'online', a[2]))
    if node and alive(a[1], node, now_ms()) then return node end
    return false
  end }

-- ARGV: prefix, a set of user names (a key), most. Returns those of its users online on a live
-- node (at most MOST, sorted): the online members of a room in one step.
redis.register_function{ function_name = 'moonpost_online_in', flags = { 'no-writes' },
  callback = function(_, a)
    local p, now, most = a[1], now_ms(), tonumber(a[3])
    local users, live, out = redis.call('SMEMBERS', a[2]), {}, {}
    table.sort(users)
    for _, user in ipairs(users) do
      if #out >= most then break end
      local node = owner(redis.call('HGET', p .. 'online', user))
      if node then
        if live[node] == nil then live[node] = alive(p, node, now) end
        if live[node] then out[#out + 1] = user end
      end
    end
    return out
  end }

-- ARGV: prefix, limit. Returns {count, users}: how many users are online on the live nodes,
-- and at most LIMIT of them.
redis.register_function{ function_name = 'moonpost_users', flags = { 'no-writes' },
  callback = function(_, a)
    local p, limit = a[1], tonumber(a[2])
    local nodes = redis.call('ZRANGEBYSCORE', p .. 'nodes', '(' .. now_ms(), '+inf')
    local count, users = 0, {}
    for _, node in ipairs(nodes) do
      local set = p .. 'nodeusers:' .. node
      count = count + redis.call('ZCARD', set)
      if #users < limit then
        for _, u in ipairs(redis.call('ZRANGE', set, 0, limit - #users - 1)) do
          users[#users + 1] = u
        end
      end
    end
    return { count, users }
  end }

-- ARGV: prefix. Every live node as {node, sessions (users logged in there), started}.
redis.register_function{ function_name = 'moonpost_nodes', flags = { 'no-writes' },
  callback = function(_, a)
    local p = a[1]
    local out = {}
    for _, node in ipairs(redis.call('ZRANGEBYSCORE', p .. 'nodes', '(' .. now_ms(), '+inf')) do
      local started = redis.call('HGET', p .. 'node:' .. node, 'started')
      out[#out + 1] = { node, redis.call('ZCARD', p .. 'nodeusers:' .. node),
                        tonumber(started or 0) }
    end
    return out
  end }
