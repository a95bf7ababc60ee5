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

-- Redis keys (docs/data-model.md). One hash tag per room: a room's keys share a slot.
local prefix = mp.config.redis_prefix
local key = {
  room = function(r) return prefix .. "room:{" .. r .. "}" end,
  members = function(r) return prefix .. "room:{" .. r .. "}:members" end,
  invited = function(r) return prefix .. "room:{" .. r .. "}:invited" end,
  messages = function(r) return prefix .. "room:{" .. r .. "}:msgs" end,
  user_rooms = function(u) return prefix .. "rooms:" .. u end,
  created = function(u) return prefix .. "roomsby:" .. u end,
}

-- The topic a session follows for room R (topics are shared with other features).
local TOPIC_PREFIX = "room:"
local function topic(r)
  return TOPIC_PREFIX .. r
end

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
  local channel, header = s:follow_envelope()
  local res, err = mp.redis("FCALL", "moonpost_room_create", 4, key.room(r), key.members(r),
                            key.user_rooms(s.user), key.created(s.user), s.user, r,
                            m.title or "", m.private and 1 or 0, mp.now(), rooms_per_user,
                            rooms_per_creator, channel, header, topic(r))
  if failed(s, res, err) then return end
  return s:ok()
end)

mp.on("room.join", function(s, m)
  local r = room_of(s, m)
  if not r then return end
  local channel, header = s:follow_envelope()
  local seq, err = mp.redis("FCALL", "moonpost_room_join", 4, key.room(r), key.members(r),
                            key.invited(r), key.user_rooms(s.user), s.user, r, members_max,
                            rooms_per_user, channel, header, topic(r))
  if failed(s, seq, err) then return end
  return s:ok{ seq = seq }
end)

mp.on("room.invite", function(s, m)
  local r = room_of(s, m)
  if not r then return end
  if type(m.user) ~= "string" then return s:fail(400, "user (str) missing") end
  if not chat.valid_user(m.user) then return s:fail(404, "no such user") end
  local res, err = mp.redis("FCALL", "moonpost_room_invite", 4, key.room(r), key.members(r),
                            key.invited(r), chat.key.user(m.user), s.user, m.user)
  if failed(s, res, err) then return end
  return s:ok()
end)

mp.on("room.leave", function(s, m)
  local r = room_of(s, m)
  if not r then return end
  -- no push after the leave's request: the session stops following first
  local was_following = s:unsubscribe(topic(r))
  local res, err = mp.redis("FCALL", "moonpost_room_leave", 2, key.members(r),
                            key.user_rooms(s.user), s.user, r)
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
  local seq, err = mp.redis("FCALL", "moonpost_room_send", 3, key.room(r), key.members(r),
                            key.messages(r), s.user, head, history_max, channel, header)
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
  local res, err = mp.redis("FCALL", "moonpost_room_read", 3, key.room(r), key.members(r),
                            key.user_rooms(s.user), s.user, r, m.seq)
  if failed(s, res, err) then return end
  return s:ok()
end)

mp.on("room.list", function(s)
  local rows, err = mp.redis("FCALL", "moonpost_room_list", 1, key.user_rooms(s.user), prefix)
  if failed(s, rows, err) then return end
  local rooms = {}
  for i, row in ipairs(rows) do
    rooms[i] = { room = row[1], title = row[2] or "", private = row[3] == 1, seq = row[4],
                 read = row[5], unread = row[6], members = row[7] }
  end
  return s:ok{ rooms = mp.array(rooms) }
end)

mp.on("room.members", function(s, m)
  local r = room_of(s, m)
  if not r then return end
  -- one round trip: the online names are dropped when the member check fails
  local replies, err = mp.redis_batch(
    { "FCALL", "moonpost_room_members", 2, key.room(r), key.members(r), s.user, NAMES_MAX },
    { "FCALL", "moonpost_online_in", 0, prefix, key.members(r), NAMES_MAX })
  if not replies then return chat.storage_failed(s, err) end
  local res, online = replies[1], replies[2]
  if type(res) == "table" and res.err then return failed(s, nil, { code = 500, msg = res.err }) end
  if failed(s, res) then return end
  if type(online) ~= "table" or online.err then
    return failed(s, nil, { code = 500, msg = online and online.err or "no online list" })
  end
  return s:ok{ members = mp.array(res[2]), online = mp.array(online), count = res[1] }
end)

-- A session follows the rooms of its user from its login on.
chat.on_login(function(s, user)
  local channel, header = s:follow_envelope()
  if not channel then return end -- gone meanwhile
  local n, err = mp.redis("FCALL", "moonpost_room_follow", 1, key.user_rooms(user), channel,
                          header, TOPIC_PREFIX)
  if not n then
    mp.log("warn", "rooms of", user, "not followed (room.msg will not be pushed):", err.msg)
  end
end)
