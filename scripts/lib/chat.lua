-- chat: what the chat scripts share: key names, field checks, starting a session, presence
-- announcements and the mailbox replay.
local mp = require "moonpost"

mp.redis_library(require "lib.redis_functions")

local chat = {}
local prefix = mp.config.redis_prefix

-- Redis keys (docs/data-model.md describes each).
chat.key = {
  user = function(u) return prefix .. "user:" .. u end,
  mailbox = function(u) return prefix .. "mbox:" .. u end,
  mailbox_senders = function(u) return prefix .. "mboxfrom:" .. u end,
  token = function(t) return prefix .. "token:" .. t end,
  user_failures = function(u) return prefix .. "fail:u:" .. u end,
  addr_failures = function(a) return prefix .. "fail:a:" .. a end,
  broadcast_mid = prefix .. "bmid",
}

function chat.valid_user(u)
  return type(u) == "string" and #u >= 1 and #u <= 32 and u:match("^[A-Za-z0-9_.%-]+$") ~= nil
end

-- A message body: str or bin.
function chat.is_body(b)
  return type(b) == "string" or mp.isbin(b)
end

-- Fails the request with Redis's error and returns true: 503 when Redis is unreachable, or
-- out of memory (maxmemory reached: a write is refused with an OOM error), else 500.
function chat.storage_failed(s, err)
  if err.code == 503 then return s:fail(503, "storage unavailable") end
  if err.msg:find("^OOM") then
    mp.log("warn", "redis is out of memory, a write was refused:", err.msg)
    return s:fail(503, "storage full")
  end
  mp.log("error", "redis:", err.msg)
  return s:fail(500, "storage error")
end

function chat.announce(user, online, except)
  if not mp.config.presence_notify then return end
  mp.broadcast({ type = "presence", user = user, online = online }, except)
end

-- Pushes the mailbox in mid order, in batches that fit the output buffer. Live messages for
-- this session wait meanwhile (the broker holds them back while s:replaying(true)) and come
-- from the mailbox instead, so the session sees strictly increasing mids. Between batches it
-- waits for the client to read (s:drain: a client that reads nothing for idle_timeout is
-- dropped with bye 429). A replay Redis cuts ends the session with bye 503: were it to go on,
-- live messages would overtake the rest of the mailbox, and a client acking the highest mid
-- it saw would delete what it never got. The client logs in again and the replay restarts.
function chat.replay(s, user)
  local per_message = mp.config.max_body + 256
  local batch = math.max(1, math.min(100, (mp.config.output_limit // 4) // per_message))
  local low_water = mp.config.output_limit // 4
  local key = chat.key.mailbox(user)
  local after = 0
  s:replaying(true)
  while s:drain(low_water) do
    local rows, err = mp.redis("ZRANGEBYSCORE", key, "(" .. after, "+inf", "WITHSCORES",
                               "LIMIT", 0, batch)
    if not rows then
      mp.log("warn", "mailbox replay of", user, "cut, session closed:", err.msg)
      return s:close(503, "mailbox replay interrupted (storage unavailable), log in again")
    end
    if #rows == 0 then return s:replaying(false) end
    for i = 1, #rows, 2 do
      local member, mid = rows[i], tonumber(rows[i + 1])
      local m = mp.decode(member:sub((member:find(":", 1, true) or 0) + 1))
      if m then
        s:push({ type = "msg", mid = mid, from = m.from, to = m.to, body = m.body, ts = m.ts,
                 offline = true }, mid)
      else
        mp.log("error", "mailbox of", user, ": message", mid, "cannot be decoded, skipped")
      end
      after = mid
    end
  end
end

-- Connections with a login or resume running, by s.sid (a table that is empty when idle, so
-- sessions cost nothing here).
local logging_in = {}

-- Wraps a login or resume handler: it is the connection's only login (a second one while it
-- runs, since it waits on hashing and Redis, or after it succeeded answers 409), and it does
-- not run at all past login_max_failures (429).
function chat.login_handler(fn)
  return function(s, m)
    local sid = s.sid
    if s.user or logging_in[sid] then
      return s:fail(409, "this connection is already logged in")
    end
    logging_in[sid] = true -- before anything yields
    local ok, err = pcall(function()
      local user = chat.valid_user(m.user) and m.user or nil
      if chat.too_many_failures(user, s.addr) then
        return s:fail(429, "too many failed logins, try again later")
      end
      return fn(s, m)
    end)
    logging_in[sid] = nil
    if not ok then error(err, 0) end
  end
end

-- Logs S in as USER with TOKEN: the older session of USER (if any) gets bye 409, the reply
-- carries the token and the online list, then presence and the mailbox follow.
function chat.start_session(s, user, token)
  local ok, err = mp.redis_batch({ "SET", chat.key.token(token), user, "EX", mp.config.token_ttl },
                                 { "HSET", chat.key.user(user), "token", token },
                                 { "DEL", chat.key.user_failures(user) })
  if not ok then return chat.storage_failed(s, err) end
  if not s.connected then return end
  s:authenticate(user)
  s:ok{ token = token, users = mp.users(1000) }
  chat.announce(user, true, s)
  chat.replay(s, user)
end

-- Login failures, per user and per client address, within login_failure_window.
function chat.too_many_failures(user, addr)
  local max = mp.config.login_max_failures
  local counts = mp.redis("MGET", chat.key.user_failures(user or ""), chat.key.addr_failures(addr))
  if not counts then return false end
  return (tonumber(counts[1]) or 0) >= max or (tonumber(counts[2]) or 0) >= max
end

function chat.record_failure(user, addr)
  local window = mp.config.login_failure_window
  local commands = { { "INCR", chat.key.addr_failures(addr) },
                     { "EXPIRE", chat.key.addr_failures(addr), window, "NX" } }
  if chat.valid_user(user) then
    commands[3] = { "INCR", chat.key.user_failures(user) }
    commands[4] = { "EXPIRE", chat.key.user_failures(user), window, "NX" }
  end
  mp.redis_batch(table.unpack(commands))
end

return chat
