-- The Redis functions of rooms (scripts/rooms.lua; keys in docs/data-model.md). Each is one
-- atomic step: the checks of a request and its writes can never interleave with another's.
-- A failed check returns a word that rooms.lua turns into the protocol's code ("no room",
-- "not member", ...); success returns a number or an array.
return [[#!lua name=moonpost_rooms

-- The keys of room NAME, as rooms.lua names them (one hash tag per room, so that a room's keys
-- share a slot of a Redis Cluster).
local function room_keys(prefix, name)
  local room = prefix .. 'room:{' .. name .. '}'
  return room, room .. ':members', room .. ':msgs'
end

-- Has the session of a follow envelope (s:follow_envelope: CHANNEL, HEADER) follow TOPICS from
-- this point of Redis's order on: no message published after it is missed, none before it
-- is pushed.
local function follow(channel, header, topics)
  if #topics == 0 then return end
  local parts = { header }
  for _, t in ipairs(topics) do parts[#parts + 1] = string.char(#t) .. t end
  redis.call('PUBLISH', channel, table.concat(parts))
end

-- KEYS: room, members, the creator's rooms, the creator's count of created rooms.
-- ARGV: user, room name, title, private (1/0), now (ms), rooms_per_user, rooms_per_creator,
-- then the follow envelope (channel, header) and the room's topic.
-- Returns 1, or "exists", "too many rooms", "too many created".
redis.register_function('moonpost_room_create', function(keys, args)
  if redis.call('EXISTS', keys[1]) == 1 then return 'exists' end
  if redis.call('HLEN', keys[3]) >= tonumber(args[6]) then return 'too many rooms' end
  if tonumber(redis.call('GET', keys[4]) or 0) >= tonumber(args[7]) then
    return 'too many created'
  end
  redis.call('HSET', keys[1], 'title', args[3], 'private', args[4], 'creator', args[1],
             'created', args[5], 'seq', 0)
  redis.call('SADD', keys[2], args[1])
  redis.call('HSET', keys[3], args[2], 0)
  redis.call('INCR', keys[4])
  follow(args[8], args[9], { args[10] })
  return 1
end)

-- KEYS: room, members, invited, the user's rooms. ARGV: user, room name, room_members_max,
-- rooms_per_user, then the follow envelope (channel, header) and the room's topic. A new
-- member's read cursor starts at the room's last seq (what came before the join is history,
-- not unread). An invitation is used up by the join. The session follows the room from here
-- (also when the user was a member already).
-- Returns the room's last seq, or "no room", "private", "full", "too many rooms".
redis.register_function('moonpost_room_join', function(keys, args)
  local seq = redis.call('HGET', keys[1], 'seq')
  if not seq then return 'no room' end
  if redis.call('SISMEMBER', keys[2], args[1]) == 1 then
    follow(args[5], args[6], { args[7] })
    return tonumber(seq)
  end
  if redis.call('HGET', keys[1], 'private') == '1' and
     redis.call('SISMEMBER', keys[3], args[1]) == 0 then
    return 'private'
  end
  if redis.call('SCARD', keys[2]) >= tonumber(args[3]) then return 'full' end
  if redis.call('HLEN', keys[4]) >= tonumber(args[4]) then return 'too many rooms' end
  redis.call('SADD', keys[2], args[1])
  redis.call('SREM', keys[3], args[1])
  redis.call('HSET', keys[4], args[2], seq)
  follow(args[5], args[6], { args[7] })
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

-- KEYS: room, members, invited, the invitee's user hash. ARGV: user, invitee.
-- Returns 1, or "no room", "not member", "no user". Inviting to a public room, or a member,
-- changes nothing.
redis.register_function('moonpost_room_invite', function(keys, args)
  local private = redis.call('HGET', keys[1], 'private')
  if not private then return 'no room' end
  if redis.call('SISMEMBER', keys[2], args[1]) == 0 then return 'not member' end
  if redis.call('EXISTS', keys[4]) == 0 then return 'no user' end
  if private == '1' and redis.call('SISMEMBER', keys[2], args[2]) == 0 then
    redis.call('SADD', keys[3], args[2])
  end
  return 1
end)

-- KEYS: members, the user's rooms. ARGV: user, room name. Returns 1, or "not member". The
-- room stays when its last member leaves (its seq is never reused).
redis.register_function('moonpost_room_leave', function(keys, args)
  if redis.call('SREM', keys[1], args[1]) == 0 then return 'not member' end
  redis.call('HDEL', keys[2], args[2])
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

-- KEYS: room, members, the user's rooms. ARGV: user, room name, seq. The cursor becomes SEQ,
-- but never moves back, nor past the room's last seq (a cursor ahead of the room would hide
-- the messages to come). Returns the cursor, or the failure word.
redis.register_function('moonpost_room_read', function(keys, args)
  local failed = check_member(keys[1], keys[2], args[1])
  if failed then return failed end
  local last = tonumber(redis.call('HGET', keys[1], 'seq'))
  local old = tonumber(redis.call('HGET', keys[3], args[2]) or 0)
  local cursor = math.max(old, math.min(tonumber(args[3]), last))
  if cursor ~= old then redis.call('HSET', keys[3], args[2], cursor) end
  return cursor
end)

-- KEYS: the user's rooms. ARGV: redis_prefix. For each room of the user, in one step:
-- {name, title, private (1/0), last seq, read cursor, unread (stored messages above the
-- cursor), members}. The one function that reads keys of many rooms (not in KEYS): on a Redis
-- Cluster it would be split by slot.
redis.register_function{ function_name = 'moonpost_room_list', flags = { 'no-writes' },
  callback = function(keys, args)
    local mine = redis.call('HGETALL', keys[1])
    local out = {}
    for i = 1, #mine, 2 do
      local name, read = mine[i], tonumber(mine[i + 1])
      local room, members, msgs = room_keys(args[1], name)
      local info = redis.call('HMGET', room, 'title', 'private', 'seq')
      if info[3] then
        out[#out + 1] = { name, info[1], tonumber(info[2]), tonumber(info[3]), read,
                          redis.call('ZCOUNT', msgs, '(' .. read, '+inf'),
                          redis.call('SCARD', members) }
      end
    end
    return out
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
