-- The Redis functions of rooms (scripts/rooms.lua; keys in docs/data-model.md). Each is one
-- atomic step: the checks of a request and its writes can never interleave with another's.
-- A failed check returns a word that rooms.lua turns into the protocol's code ("no room",
-- "not member", ...); success returns a number or an array.
-- A function touches either one room's keys (hash tag {room}) or one user's (in the user's
-- slot on a Redis Cluster), never both: rooms.lua chains them in an order that a crash between
-- them leaves harmless (docs/redis-cluster-keys.md). The invariant: a room in a user's list
-- (which the user's sessions follow at login) is a room the user is a member of; a member may
-- miss from the list (a crash between the steps), which only means no pushes after the next
-- login until the user joins again.
return [[#!lua name=moonpost_rooms

-- Has the session of a follow envelope (s:follow_envelope: CHANNEL, HEADER) follow TOPICS from
-- this point of Redis's order on: no message published after it is missed, none before it
-- is pushed.
local function follow(channel, header, topics)
  if #topics == 0 then return end
  local parts = { header }
  for _, t in ipairs(topics) do parts[#parts + 1] = string.char(#t) .. t end
  redis.call('PUBLISH', channel, table.concat(parts))
end

-- The user's side of a create or a join, before the room's. KEYS: the user's rooms, the user's
-- count of created rooms. ARGV: room name, rooms_per_user, rooms_per_creator (-1: a join).
-- Returns 0 when the user is already a member (no check: the room's step answers), 1 when
-- the limits allow it; a create also counts itself (2: given back with moonpost_unreserve
-- when the room turns out to exist). Or "too many rooms", "too many created".
redis.register_function('moonpost_room_reserve', function(keys, args)
  if redis.call('HEXISTS', keys[1], args[1]) == 1 then return 0 end
  if redis.call('HLEN', keys[1]) >= tonumber(args[2]) then return 'too many rooms' end
  local max_created = tonumber(args[3])
  if max_created < 0 then return 1 end
  if tonumber(redis.call('GET', keys[2]) or 0) >= max_created then return 'too many created' end
  redis.call('INCR', keys[2])
  return 2
end)

-- The user's side after a create or a join: the room enters the user's list with read cursor
-- SEQ, unless it is there already (a member joining again keeps its cursor). KEYS: the user's
-- rooms. ARGV: room name, seq. Returns 1.
redis.register_function('moonpost_room_listed', function(keys, args)
  redis.call('HSETNX', keys[1], args[1], args[2])
  return 1
end)

-- KEYS: room, members. ARGV: user, title, private (1/0), now (ms), then the follow envelope
-- (channel, header) and the room's topic. (moonpost_room_reserve checked the creator's limits.)
-- Returns 1, or "exists".
redis.register_function('moonpost_room_create', function(keys, args)
  if redis.call('EXISTS', keys[1]) == 1 then return 'exists' end
  redis.call('HSET', keys[1], 'title', args[2], 'private', args[3], 'creator', args[1],
             'created', args[4], 'seq', 0)
  redis.call('SADD', keys[2], args[1])
  follow(args[5], args[6], { args[7] })
  return 1
end)

-- KEYS: room, members, invited. ARGV: user, room_members_max, then the follow envelope
-- (channel, header) and the room's topic. (moonpost_room_reserve checked rooms_per_user.) A
-- new member's read cursor starts at the room's last seq (what came before the join is
-- history, not unread). An invitation is used up by the join. The session follows the room
-- from here (also when the user was a member already).
-- Returns the room's last seq, or "no room", "private", "full".
redis.register_function('moonpost_room_join', function(keys, args)
  local seq = redis.call('HGET', keys[1], 'seq')
  if not seq then return 'no room' end
  if redis.call('SISMEMBER', keys[2], args[1]) == 1 then
    follow(args[3], args[4], { args[5] })
    return tonumber(seq)
  end
  if redis.call('HGET', keys[1], 'private') == '1' and
     redis.call('SISMEMBER', keys[3], args[1]) == 0 then
    return 'private'
  end
  if redis.call('SCARD', keys[2]) >= tonumber(args[2]) then return 'full' end
  redis.call('SADD', keys[2], args[1])
  redis.call('SREM', keys[3], args[1])
  follow(args[3], args[4], { args[5] })
  return tonumber(seq)
end)

-- KEYS: the user's rooms. ARGV: the follow envelope (channel, header), the prefix of room
-- topics. The session follows every room of the user (at login). Returns how many.
redis.register_function('moonpost_room_follow', function(keys, args)
  local topics = redis.call('HKEYS', keys[1])
  for i, name in ipairs(topics) do topics[i] = args[3] .. name end
  follow(args[1], args[2], topics)
  return #topics
end)

-- KEYS: the room's members. ARGV: user, the follow envelope (channel, header), the room's
-- topic. The session follows the room when the user is a member. Returns 1, or 0.
-- On a Redis Cluster a login follows each room with this, from the room's own master: the
-- room's messages and the follow then reach the node by one path, in Redis's order (a follow
-- published from the user's master could overtake a message the room's master sent before).
redis.register_function('moonpost_room_follow_member', function(keys, args)
  if redis.call('SISMEMBER', keys[1], args[1]) == 0 then return 0 end
  follow(args[2], args[3], { args[4] })
  return 1
end)

-- KEYS: room, members, invited. ARGV: user, invitee, 1 when the invitee exists (read before,
-- from the invitee's slot). Returns 1, or "no room", "not member", "no user". Inviting to a
-- public room, or a member, changes nothing.
redis.register_function('moonpost_room_invite', function(keys, args)
  local private = redis.call('HGET', keys[1], 'private')
  if not private then return 'no room' end
  if redis.call('SISMEMBER', keys[2], args[1]) == 0 then return 'not member' end
  if args[3] ~= '1' then return 'no user' end
  if private == '1' and redis.call('SISMEMBER', keys[2], args[2]) == 0 then
    redis.call('SADD', keys[3], args[2])
  end
  return 1
end)

-- KEYS: members. ARGV: user. Returns 1, or "not member". (rooms.lua took the room out of the
-- user's list first.) The room stays when its last member leaves (its seq is never reused).
redis.register_function('moonpost_room_leave', function(keys, args)
  if redis.call('SREM', keys[1], args[1]) == 0 then return 'not member' end
  return 1
end)

-- Checks that ROOM exists and USER is a member: nil, or the failure word.
local function check_member(room, members, user)
  if redis.call('EXISTS', room) == 0 then return 'no room' end
  if redis.call('SISMEMBER', members, user) == 0 then return 'not member' end
  return nil
end

-- KEYS: room, members, messages. ARGV: user, the room.msg frame without its seq (a MessagePack
-- map of 6 entries whose 5 first are written: its body is kept byte for byte, str or bin),
-- room_history_max, channel, envelope header (mp.topic_envelope).
-- Takes the next seq, stores the frame with it (score: seq), trims the history and PUBLISHes
-- the frame to every node, in the order of the seqs. Returns the seq, or the failure word.
redis.register_function('moonpost_room_send', function(keys, args)
  local failed = check_member(keys[1], keys[2], args[1])
  if failed then return failed end
  local seq = redis.call('HINCRBY', keys[1], 'seq', 1)
  local frame = args[2] .. '\163seq' .. cmsgpack.pack(seq) -- \163: fixstr of 3 bytes
  redis.call('ZADD', keys[3], seq, frame)
  local max = tonumber(args[3])
  if redis.call('ZCARD', keys[3]) > max then
    redis.call('ZREMRANGEBYRANK', keys[3], 0, -max - 1)
  end
  redis.call('PUBLISH', args[4], args[5] .. frame)
  return seq
end)

-- KEYS: room, members, messages. ARGV: user, before (a seq, or "+inf"), limit.
-- Returns the stored frames with seq < before, the newest LIMIT of them, in increasing seq
-- order, or the failure word.
redis.register_function{ function_name = 'moonpost_room_history', flags = { 'no-writes' },
  callback = function(keys, args)
    local failed = check_member(keys[1], keys[2], args[1])
    if failed then return failed end
    local rows = redis.call('ZREVRANGEBYSCORE', keys[3], '(' .. args[2], '-inf', 'LIMIT', 0,
                            tonumber(args[3]))
    local out = {}
    for i = #rows, 1, -1 do out[#out + 1] = rows[i] end
    return out
  end }

-- KEYS: room, members. ARGV: user. The room's last seq, or the failure word: the room's side
-- of room.read.
redis.register_function{ function_name = 'moonpost_room_seq', flags = { 'no-writes' },
  callback = function(keys, args)
    local failed = check_member(keys[1], keys[2], args[1])
    if failed then return failed end
    return tonumber(redis.call('HGET', keys[1], 'seq'))
  end }

-- KEYS: the user's rooms. ARGV: room name, seq, the room's last seq (moonpost_room_seq). The
-- cursor becomes SEQ, but never moves back, nor past the room's last seq (a cursor ahead of
-- the room would hide the messages to come). A room missing from the list is not added (only
-- a join adds one). Returns the cursor.
redis.register_function('moonpost_room_read', function(keys, args)
  local listed = redis.call('HGET', keys[1], args[1])
  local old = tonumber(listed or 0)
  local cursor = math.max(old, math.min(tonumber(args[2]), tonumber(args[3])))
  if listed and cursor ~= old then redis.call('HSET', keys[1], args[1], cursor) end
  return cursor
end)

-- KEYS: room, members, messages. ARGV: the user's read cursor. One room of room.list:
-- {title, private (1/0), last seq, unread (stored messages above the cursor), members}, or
-- false when the room is gone.
redis.register_function{ function_name = 'moonpost_room_info', flags = { 'no-writes' },
  callback = function(keys, args)
    local info = redis.call('HMGET', keys[1], 'title', 'private', 'seq')
    if not info[3] then return false end
    return { info[1], tonumber(info[2]), tonumber(info[3]),
             redis.call('ZCOUNT', keys[3], '(' .. args[1], '+inf'),
             redis.call('SCARD', keys[2]) }
  end }

-- KEYS: room, members. ARGV: user, most names. Returns {count, names (at most MOST, sorted)},
-- or the failure word.
redis.register_function{ function_name = 'moonpost_room_members', flags = { 'no-writes' },
  callback = function(keys, args)
    local failed = check_member(keys[1], keys[2], args[1])
    if failed then return failed end
    local names = redis.call('SMEMBERS', keys[2])
    table.sort(names)
    local most = tonumber(args[2])
    for i = #names, most + 1, -1 do names[i] = nil end
    return { redis.call('SCARD', keys[2]), names }
  end }
]]
