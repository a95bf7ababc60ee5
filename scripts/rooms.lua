-- Rooms (PROTOCOL.md "Rooms", docs/protocol.md): named group chats with members, invitations
-- for private ones, a history kept in Redis (one copy of each message) and a read cursor per
-- member. Every check-and-write is one Redis function (lib/room_functions.lua). A message
-- reaches the online members through topics: each session follows the rooms of its user (at
-- login, create and join, from inside the Redis function, so in Redis's order: nothing is
-- missed and nothing is pushed before the membership), and room.send's Redis function
-- PUBLISHes the room.msg frame, which every node pushes to its followers of the room, in seq
-- order.
local mp = require "moonpost"
local chat = require "lib.chat"

mp.redis_library(require "lib.room_functions")

local history_max = mp.option("room_history_max", { type = "int", default = 10000, min = 1,
  max = 10000000, doc = "messages kept per room; older ones leave the history" })
local members_max = mp.option("room_members_max", { type = "int", default = 10000, min = 1,
  max = 1000000, doc = "members one room may have; a join past it is answered 507" })
local rooms_per_user = mp.option("rooms_per_user", { type = "int", default = 500, min = 1,
  max = 100000, doc = "rooms one user may be a member of; a join or create past it is answered 507" })
local rooms_per_creator = mp.option("rooms_per_creator", { type = "int", default = 100,
  min = 0, max = 1000000,
  doc = "rooms one user may create (rooms are kept: a count for good); past it, 507" })

local NAMES_MAX = 1000 -- names in a room.members reply (and online names), so it fits a frame
local TITLE_MAX = 128
local HISTORY_LIMIT_MAX, HISTORY_LIMIT_DEFAULT = 100, 50

-- Redis keys (docs/data-model.md). One hash tag per room: a room's keys share a slot. A user's
-- keys share the user's slot on a Redis Cluster (chat.tag). A request that touches both is
-- two steps, in the order lib/room_functions.lua's invariant asks.
local prefix = mp.config.redis_prefix
local key = {
  room = function(r) return prefix .. "room:{" .. r .. "}" end,
  members = function(r) return prefix .. "room:{" .. r .. "}:members" end,
  invited = function(r) return prefix .. "room:{" .. r .. "}:invited" end,
  messages = function(r) return prefix .. "room:{" .. r .. "}:msgs" end,
  user_rooms = function(u) return prefix .. "rooms:" .. chat.tag(u) end,
  created = function(u) return prefix .. "roomsby:" .. chat.tag(u) end,
}

-- The topic a session follows for room R (topics are shared with other features).
local TOPIC_PREFIX = "room:"
local function topic(r)
  return TOPIC_PREFIX .. r
end

-- The most commands of one mp.redis_batch.
local BATCH_MAX = 256

local function valid_room(r)
  return #r >= 1 and #r <= 64 and r:match("^[A-Za-z0-9_.%-]+$") ~= nil
end

-- What the Redis functions' failure words answer.
local failures = {
  ["no room"] = { 404, "no such room" },
  ["not member"] = { 403, "not a member of this room" },
  ["private"] = { 403, "private room: an invitation is needed" },
  ["full"] = { 507, "room full" },
  ["too many rooms"] = { 507, "member of too many rooms" },
  ["too many created"] = { 507, "created too many rooms" },
  ["exists"] = { 409, "room exists" },
  ["no user"] = { 404, "no such user" },
}

-- Answers reply R of a room function when it is a failure (a word) or an error; returns true
-- then, false when R is a success.
local function failed(s, r, err)
  if r == nil then
    chat.storage_failed(s, err)
    return true
  end
  if type(r) ~= "string" then return false end
  local f = failures[r] or { 500, "storage error" }
  s:fail(f[1], f[2])
  return true
end

-- The room M names, or nil once S has been answered: 400 without a room field, 404 for a name
-- no room can have.
local function room_of(s, m)
  if type(m.room) ~= "string" then
    s:fail(400, "room (str) missing")
    return nil
  end
  if not valid_room(m.room) then
    s:fail(404, "no such room")
    return nil
  end
  return m.room
end

local function is_count(v)
  return math.type(v) == "integer" and v >= 0
end

mp.on("room.create", function(s, m)
  if type(m.room) ~= "string" or not valid_room(m.room) then
    return s:fail(400, "room must be 1-64 bytes of A-Za-z0-9_.-")
  end
  if m.title ~= nil and (type(m.title) ~= "string" or #m.title > TITLE_MAX) then
    return s:fail(400, "title must be a str of at most 128 bytes")
  end
  if m.private ~= nil and type(m.private) ~= "boolean" then
    return s:fail(400, "private must be a boolean")
  end
  local r = m.room
  -- the creator's limits, then the room, then the room in the creator's list: a broker dying
  -- after the first step leaves a creation counted (rooms_per_creator one lower), after the
  -- second a member whose list lacks the room (not followed after the next login: a join
  -- puts it back)
  local reserved, err = mp.redis("FCALL", "moonpost_room_reserve", 2, key.user_rooms(s.user),
                                 key.created(s.user), r, rooms_per_user, rooms_per_creator)
  if failed(s, reserved, err) then return end
  local channel, header = s:follow_envelope()
  local res
  res, err = mp.redis("FCALL", "moonpost_room_create", 2, key.room(r), key.members(r), s.user,
                      m.title or "", m.private and 1 or 0, mp.now(), channel, header, topic(r))
  if res == "exists" and reserved == 2 then -- (not after an error: it may have been created)
    mp.redis("FCALL", "moonpost_unreserve", 1, key.created(s.user))
  end
  if failed(s, res, err) then return end
  res, err = mp.redis("FCALL", "moonpost_room_listed", 1, key.user_rooms(s.user), r, 0)
  if failed(s, res, err) then return end
  return s:ok()
end)

mp.on("room.join", function(s, m)
  local r = room_of(s, m)
  if not r then return end
  -- the user's limit, then the room, then the room in the user's list (a crash between the
  -- last two: as in room.create; a join again puts it back)
  local reserved, err = mp.redis("FCALL", "moonpost_room_reserve", 2, key.user_rooms(s.user),
                                 key.created(s.user), r, rooms_per_user, -1)
  if failed(s, reserved, err) then return end
  local channel, header = s:follow_envelope()
  local seq
  seq, err = mp.redis("FCALL", "moonpost_room_join", 3, key.room(r), key.members(r),
                      key.invited(r), s.user, members_max, channel, header, topic(r))
  if failed(s, seq, err) then return end
  local res
  res, err = mp.redis("FCALL", "moonpost_room_listed", 1, key.user_rooms(s.user), r, seq)
  if failed(s, res, err) then return end
  return s:ok{ seq = seq }
end)

mp.on("room.invite", function(s, m)
  local r = room_of(s, m)
  if not r then return end
  if type(m.user) ~= "string" then return s:fail(400, "user (str) missing") end
  if not chat.valid_user(m.user) then return s:fail(404, "no such user") end
  -- the invitee's existence first (a read in its own slot), then the room's step
  local exists, err = mp.redis("EXISTS", chat.key.user(m.user))
  if not exists then return chat.storage_failed(s, err) end
  local res
  res, err = mp.redis("FCALL", "moonpost_room_invite", 3, key.room(r), key.members(r),
                      key.invited(r), s.user, m.user, exists)
  if failed(s, res, err) then return end
  return s:ok()
end)

mp.on("room.leave", function(s, m)
  local r = room_of(s, m)
  if not r then return end
  -- no push after the leave's request: the session stops following first
  local was_following = s:unsubscribe(topic(r))
  -- out of the user's list first, then out of the members: a crash between them leaves a
  -- member whose list lacks the room (never a listed room the user is not a member of)
  local listed, err = mp.redis("HDEL", key.user_rooms(s.user), r)
  local res = listed and 0
  if listed then
    res, err = mp.redis("FCALL", "moonpost_room_leave", 1, key.members(r), s.user)
  end
  if res == "not member" then return s:fail(404, "not a member of this room") end
  if failed(s, res, err) then
    if was_following then s:subscribe(topic(r)) end -- still a member
    return
  end
  return s:ok()
end)

-- The encoded start of every room.msg frame: a map of 6 entries (seq, the sixth, is added by
-- the Redis function once it is known), its type and the key of its room.
local enc = mp.encode
local FRAME_START = "\134" .. enc("type") .. enc("room.msg") .. enc("room")

mp.on("room.send", function(s, m)
  local r = room_of(s, m)
  if not r then return end
  if not chat.is_body(m.body) then return s:fail(400, "room.send needs body (str or bin)") end
  if #m.body > mp.config.max_body then return s:fail(413, "body too large") end
  local ts = mp.now()
  local head = FRAME_START .. enc(r) .. enc("from") .. enc(s.user) .. enc("ts") .. enc(ts) ..
               enc("body") .. enc(m.body)
  local channel, header = mp.topic_envelope(topic(r), s.user)
  local seq, err = mp.redis_replicated("FCALL", "moonpost_room_send", 3, key.room(r),
                                       key.members(r), key.messages(r), s.user, head,
                                       history_max, channel, header)
  if failed(s, seq, err) then return end
  return s:ok{ seq = seq }
end)

mp.on("room.history", function(s, m)
  local r = room_of(s, m)
  if not r then return end
  if m.before ~= nil and not is_count(m.before) then
    return s:fail(400, "before must be a seq (a non-negative integer)")
  end
  local limit = m.limit == nil and HISTORY_LIMIT_DEFAULT or m.limit
  if math.type(limit) ~= "integer" or limit < 1 or limit > HISTORY_LIMIT_MAX then
    return s:fail(400, "limit must be an integer from 1 to 100")
  end
  local rows, err = mp.redis("FCALL", "moonpost_room_history", 3, key.room(r), key.members(r),
                             key.messages(r), s.user, m.before or "+inf", limit)
  if failed(s, rows, err) then return end
  local messages = {}
  for _, frame in ipairs(rows) do
    local msg = mp.decode(frame)
    if msg then
      messages[#messages + 1] = { seq = msg.seq, from = msg.from, body = msg.body, ts = msg.ts }
    else
      mp.log("error", "room", r, ": a stored message cannot be decoded, skipped")
    end
  end
  return s:ok{ messages = mp.array(messages) }
end)

mp.on("room.read", function(s, m)
  local r = room_of(s, m)
  if not r then return end
  if not is_count(m.seq) then return s:fail(400, "seq must be a non-negative integer") end
  -- the room's last seq (and the member check), then the cursor in the user's list
  local last, err = mp.redis("FCALL", "moonpost_room_seq", 2, key.room(r), key.members(r),
                             s.user)
  if failed(s, last, err) then return end
  local res
  res, err = mp.redis("FCALL", "moonpost_room_read", 1, key.user_rooms(s.user), r, m.seq, last)
  if failed(s, res, err) then return end
  return s:ok()
end)


mp.on("room.list", function(s)
  -- the user's list, then each room in its own slot (in batches of one round trip)
  local mine, err = mp.redis("HGETALL", key.user_rooms(s.user))
  if failed(s, mine, err) then return end
  local rooms = {}
  for first = 1, #mine, 2 * BATCH_MAX do
    local calls = {}
    for i = first, math.min(#mine, first + 2 * BATCH_MAX - 1), 2 do
      local r = mine[i]
      calls[#calls + 1] = { "FCALL", "moonpost_room_info", 3, key.room(r), key.members(r),
                            key.messages(r), mine[i + 1] }
    end
    local infos
    infos, err = mp.redis_batch(table.unpack(calls))
    if not infos then return chat.storage_failed(s, err) end
    for j, info in ipairs(infos) do
      if type(info) == "table" and info.err then
        return chat.storage_failed(s, { code = 500, msg = info.err })
      end
      if info then
        rooms[#rooms + 1] = { room = mine[first + 2 * (j - 1)], title = info[1] or "",
                              private = info[2] == 1, seq = info[3],
                              read = tonumber(mine[first + 2 * (j - 1) + 1]), unread = info[4],
                              members = info[5] }
      end
    end
  end
  return s:ok{ rooms = mp.array(rooms) }
end)

mp.on("room.members", function(s, m)
  local r = room_of(s, m)
  if not r then return end
  -- the members from the room's slot, then which of those names are online from the
  -- registry's (both reads)
  local res, err = mp.redis("FCALL", "moonpost_room_members", 2, key.room(r), key.members(r),
                            s.user, NAMES_MAX)
  if failed(s, res, err) then return end
  local online
  online, err = mp.redis("FCALL", "moonpost_online_in", 1, mp.config.redis_registry_key, prefix,
                         NAMES_MAX, table.unpack(res[2]))
  if not online then return chat.storage_failed(s, err) end
  return s:ok{ members = mp.array(res[2]), online = mp.array(online), count = res[1] }
end)

local function not_followed(user, err)
  mp.log("warn", "rooms of", user, "not followed (room.msg will not be pushed):", err.msg)
end

-- On a Redis Cluster: each room of USER followed from the room's own slot (see
-- moonpost_room_follow_member), the calls sent back to back in batches.
local function follow_each_room(user, channel, header)
  local names, err = mp.redis("HKEYS", key.user_rooms(user))
  if not names then return not_followed(user, err) end
  for first = 1, #names, BATCH_MAX do
    local calls = {}
    for i = first, math.min(first + BATCH_MAX - 1, #names) do
      calls[#calls + 1] = { "FCALL", "moonpost_room_follow_member", 1, key.members(names[i]),
                            user, channel, header, topic(names[i]) }
    end
    local r
    r, err = mp.redis_batch(table.unpack(calls))
    if not r then return not_followed(user, err) end
    for _, one in ipairs(r) do
      if type(one) == "table" and one.err then
        return not_followed(user, { msg = one.err })
      end
    end
  end
end

-- A session follows the rooms of its user from its login on.
chat.on_login(function(s, user)
  local channel, header = s:follow_envelope()
  if not channel then return end -- gone meanwhile
  if mp.config.redis_cluster then return follow_each_room(user, channel, header) end
  local n, err = mp.redis("FCALL", "moonpost_room_follow", 1, key.user_rooms(user), channel,
                          header, TOPIC_PREFIX)
  if not n then not_followed(user, err) end
end)
