#!lua name=moonpost_cluster
-- The cluster registry (docs/cluster.md): which nodes are live, which node holds which user.
-- Loaded by the broker (cluster.c) on every connect. Every call but the location's declares one
-- key, the registry's "nodes" (cluster_registry_key: "<prefix>nodes", or
-- "<prefix>{registry}:nodes" on a Redis Cluster), and the other registry keys are named after
-- it here (they are named by node ids), so all of them share its hash slot. ARGV[1] is always redis_prefix. The functions publish
-- nothing: they return which node to tell, and the broker SPUBLISHes on that node's channel,
-- whose slot is its own (a function may touch only its keys' slot). Deadlines are Redis's own
-- clock (TIME), the one clock every node shares.

-- The prefix of the registry's keys: KEYS[1] without its "nodes".
local function registry(keys)
  return string.sub(keys[1], 1, -6)
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function alive(r, node, now)
  local deadline = redis.call('ZSCORE', r .. 'nodes', node)
  return deadline ~= false and tonumber(deadline) > now
end

-- "NODE SEQ" -> NODE, SEQ
local function owner(v)
  if not v then return nil end
  local node, seq = string.match(v, '^(%S+) (%d+)$')
  return node, seq
end

-- Forgets up to MAX users of NODE (whose process is gone); returns how many are left.
local function forget_users(r, node, max)
  local set = r .. 'nodeusers:' .. node
  local users = redis.call('ZRANGE', set, 0, max - 1)
  for _, u in ipairs(users) do
    if owner(redis.call('HGET', r .. 'online', u)) == node then
      redis.call('HDEL', r .. 'online', u)
    end
  end
  if #users > 0 then redis.call('ZREM', set, unpack(users)) end
  return redis.call('ZCARD', set)
end

-- One dead node (deadline passed) loses up to 1,000 of its users per beat of any live node;
-- readers check deadlines, so this is housekeeping, not correctness.
local function reap(r, now)
  local dead = redis.call('ZRANGEBYSCORE', r .. 'nodes', '-inf', now, 'LIMIT', 0, 1)
  for _, node in ipairs(dead) do
    if forget_users(r, node, 1000) == 0 then
      redis.call('ZREM', r .. 'nodes', node)
    end
  end
end

-- ARGV: prefix, node, instance, ttl ms, sessions, started ms, host, pid.
-- Returns {1, 0}: beat; {1, 1}: (re)joined (first beat, or after the deadline passed: the node
-- re-registers its sessions); {0, deadline}: the id is held by another instance whose deadline
-- has not passed (it may be a live node, or one that just died: the caller watches whether
-- the deadline moves).
redis.register_function('moonpost_node_beat', function(keys, a)
  local r = registry(keys)
  local node, instance, ttl = a[2], a[3], tonumber(a[4])
  local now = now_ms()
  local key = r .. 'node:' .. node
  local held = redis.call('HGET', key, 'instance')
  local deadline = tonumber(redis.call('ZSCORE', r .. 'nodes', node) or 0)
  if held and held ~= instance and deadline > now then return { 0, deadline } end
  local joined = 0
  if held ~= instance or deadline <= now then
    joined = 1
    -- a new instance of the id: the users of the old one are gone with it
    if held ~= instance then
      while forget_users(r, node, 10000) > 0 do end
    end
  end
  redis.call('ZADD', r .. 'nodes', now + ttl, node)
  redis.call('HSET', key, 'instance', instance, 'sessions', a[5], 'started', a[6],
             'host', a[7], 'pid', a[8])
  redis.call('PEXPIRE', key, ttl * 2)
  reap(r, now)
  return { 1, joined }
end)

-- ARGV: prefix, node, instance. A node that stops: its users and its entry go at once.
redis.register_function('moonpost_node_leave', function(keys, a)
  local r = registry(keys)
  local node = a[2]
  if redis.call('HGET', r .. 'node:' .. node, 'instance') ~= a[3] then return 0 end
  while forget_users(r, node, 10000) > 0 do end
  redis.call('ZREM', r .. 'nodes', node)
  redis.call('DEL', r .. 'node:' .. node)
  return 1
end)

-- ARGV: prefix, user, node. Points the user at NODE with the next claim seq. Returns {seq},
-- or {seq, old} when another live node OLD held the user before: the caller tells OLD to close
-- its session ("K<seq> <user>" on OLD's channel).
redis.register_function('moonpost_presence_claim', function(keys, a)
  local r = registry(keys)
  local user, node = a[2], a[3]
  local seq = redis.call('INCR', r .. 'claimseq')
  local old = owner(redis.call('HGET', r .. 'online', user))
  redis.call('HSET', r .. 'online', user, node .. ' ' .. seq)
  redis.call('ZADD', r .. 'nodeusers:' .. node, 0, user)
  if old and old ~= node then
    redis.call('ZREM', r .. 'nodeusers:' .. old, user)
    if alive(r, old, now_ms()) then return { seq, old } end
  end
  return { seq }
end)

-- ARGV: prefix, node, user, seq. Removes the user's entry if it is still this claim.
redis.register_function('moonpost_presence_release', function(keys, a)
  local r = registry(keys)
  local node, user, seq = a[2], a[3], a[4]
  if redis.call('HGET', r .. 'online', user) ~= node .. ' ' .. seq then return 0 end
  redis.call('HDEL', r .. 'online', user)
  redis.call('ZREM', r .. 'nodeusers:' .. node, user)
  return 1
end)

-- Putting a node's sessions back (after it rejoined or reconnected) is three steps, sent in
-- order on one connection: begin, renew (in batches), end. Whatever the registry says of the
-- node that the node no longer holds (a Redis that went back to an older copy) goes at the end.

-- ARGV: prefix, node. The node's user list moves aside; renew builds it again.
redis.register_function('moonpost_presence_renew_begin', function(keys, a)
  local r = registry(keys)
  local set = r .. 'nodeusers:' .. a[2]
  redis.call('DEL', set .. ':old')
  if redis.call('EXISTS', set) == 1 then redis.call('RENAME', set, set .. ':old') end
  return 1
end)

-- ARGV: prefix, node, then pairs user, seq: sessions the node holds. The newer claim wins: a
-- user held by another live node under an older claim is taken back (the caller tells that
-- node to close its session), under a newer one it is lost to it. The claim counter never
-- stays below a claim put back. Returns {lost users, {holder, user, seq, ...} to tell}.
redis.register_function('moonpost_presence_renew', function(keys, a)
  local r = registry(keys)
  local node = a[2]
  local now = now_ms()
  local lost, tell, highest = {}, {}, 0
  for i = 3, #a - 1, 2 do
    local user, seq = a[i], tonumber(a[i + 1])
    local holder, held_seq = owner(redis.call('HGET', r .. 'online', user))
    held_seq = tonumber(held_seq or 0)
    local other = holder and holder ~= node and alive(r, holder, now)
    if other and held_seq > seq then
      lost[#lost + 1] = user
    else
      if other then
        redis.call('ZREM', r .. 'nodeusers:' .. holder, user)
        tell[#tell + 1] = holder
        tell[#tell + 1] = user
        tell[#tell + 1] = seq
      end
      redis.call('HSET', r .. 'online', user, node .. ' ' .. seq)
      redis.call('ZADD', r .. 'nodeusers:' .. node, 0, user)
      if seq > highest then highest = seq end
    end
  end
  if highest > tonumber(redis.call('GET', r .. 'claimseq') or 0) then
    redis.call('SET', r .. 'claimseq', highest)
  end
  return { lost, tell }
end)

-- ARGV: prefix, node. The users of the old list the node did not renew (nor claim meanwhile)
-- leave the registry.
redis.register_function('moonpost_presence_renew_end', function(keys, a)
  local r = registry(keys)
  local node = a[2]
  local set = r .. 'nodeusers:' .. node
  for _, user in ipairs(redis.call('ZRANGE', set .. ':old', 0, -1)) do
    if not redis.call('ZSCORE', set, user) and
       owner(redis.call('HGET', r .. 'online', user)) == node then
      redis.call('HDEL', r .. 'online', user)
    end
  end
  redis.call('DEL', set .. ':old')
  return 1
end)

-- A user's location, P loc:USER (P loc:{USER} on a Redis Cluster: the user's slot, beside its
-- mailbox), "NODE SEQ": the node of its latest claim. The store of a private message reads it
-- (moonpost_store), so a live message finds its node without the registry. These two declare
-- the location key, not the registry's.

-- KEYS: the location. ARGV: prefix, node, seq. Points it at NODE unless it holds a newer claim
-- (two logins racing: their claims land in the registry's order, these in any). Returns 1 when
-- set.
redis.register_function('moonpost_loc_set', function(keys, a)
  local _, seq = owner(redis.call('GET', keys[1]))
  if seq and tonumber(seq) > tonumber(a[3]) then return 0 end
  redis.call('SET', keys[1], a[2] .. ' ' .. a[3])
  return 1
end)

-- KEYS: the location. ARGV: prefix, node, seq. Removes it if it is still this claim.
redis.register_function('moonpost_loc_clear', function(keys, a)
  if redis.call('GET', keys[1]) ~= a[2] .. ' ' .. a[3] then return 0 end
  redis.call('DEL', keys[1])
  return 1
end)

-- KEYS: the location. ARGV: prefix, node. Removes it if it names NODE, whatever the claim:
-- NODE got a message for the user and holds no session of it (a location left by a node that
-- died, or by an earlier process with its id).
redis.register_function('moonpost_loc_forget', function(keys, a)
  if owner(redis.call('GET', keys[1])) ~= a[2] then return 0 end
  redis.call('DEL', keys[1])
  return 1
end)

-- ARGV: prefix, user. The live node holding USER, or false.
redis.register_function{ function_name = 'moonpost_where', flags = { 'no-writes' },
  callback = function(keys, a)
    local r = registry(keys)
    local node = owner(redis.call('HGET', r .. 'online', a[2]))
    if node and alive(r, node, now_ms()) then return node end
    return false
  end }

-- ARGV: prefix, most, then user names (sorted). Returns those of them online on a live node
-- (at most MOST, in their order): the online members of a room, whose names rooms.lua read
-- first from the room's own slot.
redis.register_function{ function_name = 'moonpost_online_in', flags = { 'no-writes' },
  callback = function(keys, a)
    local r = registry(keys)
    local now, most, live, out = now_ms(), tonumber(a[2]), {}, {}
    for i = 3, #a do
      if #out >= most then break end
      local node = owner(redis.call('HGET', r .. 'online', a[i]))
      if node then
        if live[node] == nil then live[node] = alive(r, node, now) end
        if live[node] then out[#out + 1] = a[i] end
      end
    end
    return out
  end }

-- ARGV: prefix, limit. Returns {count, users}: how many users are online on the live nodes,
-- and at most LIMIT of them.
redis.register_function{ function_name = 'moonpost_users', flags = { 'no-writes' },
  callback = function(keys, a)
    local r = registry(keys)
    local limit = tonumber(a[2])
    local nodes = redis.call('ZRANGEBYSCORE', r .. 'nodes', '(' .. now_ms(), '+inf')
    local count, users = 0, {}
    for _, node in ipairs(nodes) do
      local set = r .. 'nodeusers:' .. node
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
  callback = function(keys, a)
    local r = registry(keys)
    local out = {}
    for _, node in ipairs(redis.call('ZRANGEBYSCORE', r .. 'nodes', '(' .. now_ms(), '+inf')) do
      local started = redis.call('HGET', r .. 'node:' .. node, 'started')
      out[#out + 1] = { node, redis.call('ZCARD', r .. 'nodeusers:' .. node),
                        tonumber(started or 0) }
    end
    return out
  end }
