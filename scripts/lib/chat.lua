-- chat: what the chat scripts share: key names, field checks, starting a session, presence
-- announcements and the mailbox replay.
local mp = require "moonpost"
local batch = require "lib.batch"

mp.redis_library(require "lib.redis_functions")

local chat = {}
local prefix = mp.config.redis_prefix

-- The options of logging in and presence (set in the config file, docs/options.md).
local presence_notify = mp.option("presence_notify", { type = "bool", default = false,
  doc = "everyone online hears when a user comes online or goes offline" })
local token_ttl = mp.option("token_ttl", { type = "int", default = 604800, min = 1,
  max = 31536000, doc = "seconds a resume token lives after its last login or resume" })
local login_max_failures = mp.option("login_max_failures", { type = "int", default = 10,
  min = 1, max = 1000000,
  doc = "failed logins per (user, address) per login_failure_window, then 429" })
local login_addr_max_failures = mp.option("login_addr_max_failures", { type = "int",
  default = 100, min = 1, max = 1000000,
  doc = "failed logins per address, any user, per login_failure_window, then 429" })
local login_failure_window = mp.option("login_failure_window", { type = "int", default = 300,
  min = 1, max = 86400, doc = "seconds over which failed logins are counted" })
local mailbox_max = mp.option("mailbox_max", { type = "int", default = 10000, min = 1,
  max = 100000000, doc = "messages one mailbox holds; a send past it is answered 507" })
local mailbox_per_sender = mp.option("mailbox_per_sender", { type = "int", default = 1000,
  min = 1, max = 100000000,
  doc = "unacked messages from one sender in one mailbox; past it that sender is answered 429" })
local store_batch = mp.option("store_batch", { type = "bool", default = false,
  doc = "on one Redis, the stores and acks of one loop pass share one Redis call: less Redis "
     .. "CPU per message, more broker CPU (for several brokers on one Redis)" })
chat.store_batch = store_batch
local login_backoff_max = mp.option("login_backoff_max", { type = "int", default = 5, min = 0,
  max = 3600,
  doc = "most seconds a login of a user with many failures waits before its check (0 = none)" })

-- Redis keys (docs/data-model.md describes each). On a Redis Cluster every atomic step must
-- touch one hash slot: a user's keys carry the hash tag {user}, an address's keys {address}
-- (docs/redis-cluster-keys.md). On one Redis the names stay as they always were.
local cluster = mp.config.redis_cluster
local function tag(x)
  if not cluster then return x end
  if x == "" then return "{~}" end -- "{}" is no tag at all; no name or address holds a "~"
  return "{" .. x .. "}"
end
chat.tag = tag

-- A user's resume tokens share the user's slot: a resume names its user, so the token is
-- still found from (user, token).
local function token_prefix(u)
  if cluster then return prefix .. "token:{" .. u .. "}:" end
  return prefix .. "token:"
end

chat.key = {
  user = function(u) return prefix .. "user:" .. tag(u) end,
  mailbox = function(u) return prefix .. "mbox:" .. tag(u) end,
  mailbox_senders = function(u) return prefix .. "mboxfrom:" .. tag(u) end,
  -- where the user is logged in ("NODE SEQ"), written by the broker (docs/cluster.md)
  location = function(u) return prefix .. "loc:" .. tag(u) end,
  token_prefix = token_prefix,
  token = function(u, t) return token_prefix(u) .. t end,
  tokens = function(u) return prefix .. "tokens:" .. tag(u) end,
  user_failures = function(u) return prefix .. "fail:u:" .. tag(u) end,
  addr_failures = function(a) return prefix .. "fail:a:" .. tag(a) end,
  pair_failures = function(u, a) return prefix .. "fail:ua:" .. tag(u) .. ":" .. a end,
  pair_inflight = function(u, a) return prefix .. "try:ua:" .. tag(u) .. ":" .. a end,
  addr_inflight = function(a) return prefix .. "try:a:" .. tag(a) end,
  addr_registrations = function(a) return prefix .. "reg:a:" .. tag(a) end,
  broadcast_mid = prefix .. "bmid",
}

-- Resume tokens kept per user: a new login past this revokes the oldest.
chat.TOKENS_MAX = 100

function chat.valid_user(u)
  return type(u) == "string" and #u >= 1 and #u <= 32 and u:match("^[A-Za-z0-9_.%-]+$") ~= nil
end

-- A message body: str or bin.
function chat.is_body(b)
  return type(b) == "string" or mp.isbin(b)
end

-- The code and reason for Redis's error ERR: 503 when Redis is unreachable, or out of memory
-- (maxmemory reached: a write is refused with an OOM error), else 500.
function chat.storage_error(err)
  if err.code == 503 then return 503, "storage unavailable" end
  if err.msg:find("^OOM") then
    mp.log("warn", "redis is out of memory, a write was refused:", err.msg)
    return 503, "storage full"
  end
  mp.log("error", "redis:", err.msg)
  return 500, "storage error"
end

-- Fails the request with Redis's error (chat.storage_error).
function chat.storage_failed(s, err)
  return s:fail(chat.storage_error(err))
end

-- Messages per moonpost_store_many and acks per moonpost_ack_many call (each a few Redis
-- arguments, of at most 1024).
chat.BATCH_MAX = 128

-- Stores ITEMS ({to, blob, ts, from} each) in one call: moonpost_store_many's replies, or nil,
-- err. Replicated: with redis_wait_replicas set, answered once that many replicas have them.
local function store_all(items)
  local words = { "FCALL", "moonpost_store_many", 4 * #items }
  for _, it in ipairs(items) do
    words[#words + 1] = chat.key.user(it.to)
    words[#words + 1] = chat.key.mailbox(it.to)
    words[#words + 1] = chat.key.mailbox_senders(it.to)
    words[#words + 1] = chat.key.location(it.to)
  end
  words[#words + 1] = mailbox_max
  words[#words + 1] = mailbox_per_sender
  words[#words + 1] = items[#items].ts
  for _, it in ipairs(items) do
    words[#words + 1] = it.blob
    words[#words + 1] = it.from
  end
  return mp.redis_replicated(table.unpack(words))
end
local store_batched = batch.new(store_all, chat.BATCH_MAX)

-- One item's answer from a batched call (lib/batch.lua): its reply, or nil, err when the call
-- failed or Redis answered that item with an error.
function chat.batched_reply(reply, err)
  if reply == nil then return nil, err end
  if type(reply) == "table" and reply.err then return nil, { code = 500, msg = reply.err } end
  return reply
end

-- One message's store: {mid, prev}, a negative code, or nil, err. With store_batch on one
-- Redis the stores of a loop pass share one call; else (and always on a Redis Cluster, where
-- each goes to its recipient's master) each is a call of its own.
local function store_one(to, blob, ts, from)
  if not store_batch or mp.config.redis_cluster then
    return mp.redis_replicated("FCALL", "moonpost_store", 4, chat.key.user(to),
                               chat.key.mailbox(to), chat.key.mailbox_senders(to),
                               chat.key.location(to), mailbox_max, blob, ts,
                               mailbox_per_sender, from)
  end
  return chat.batched_reply(store_batched{ to = to, blob = blob, ts = ts, from = from })
end

-- A private message from FROM to TO carrying FIELDS (body, and file for a file): stored in
-- TO's mailbox, then pushed at once when TO is online on any node. Returns mid, online; or
-- nil, code, reason (404 no such user, 507 mailbox full, 429 too many unread from FROM, 503 or
-- 500 storage).
function chat.store_private(from, to, fields)
  local ts = mp.now()
  local blob = mp.encode{ from = from, to = to, body = fields.body, ts = ts, file = fields.file }
  local stored, err = store_one(to, blob, ts, from)
  if not stored then return nil, chat.storage_error(err) end
  if stored == -404 then return nil, 404, "no such user" end
  if stored == -507 then return nil, 507, "mailbox full" end
  if stored == -429 then return nil, 429, "too many unread messages to this user" end
  -- prev (the newest message waiting before this one) keeps pushes in mid order across nodes;
  -- the recipient's node (its location: false when logged in nowhere) spares the registry
  -- the push is the stored blob (from, to, body, ts, file) after type, mid and offline
  local mid, prev, node = stored[1], stored[2], stored[3]
  local online = mp.deliver(to, { type = "msg", mid = mid, offline = false }, mid, prev, node,
                            blob)
  return mid, online
end

-- Fails the request after mp.pwhash/mp.pwverify returned nil: 503 "busy" with retry_after
-- when the hashing queue was full, else 503 with the reason (shutting down, client gone).
function chat.hashing_failed(s, err, retry_after)
  if retry_after then
    return s:fail(503, "busy, retry later", { retry_after = retry_after })
  end
  return s:fail(503, err)
end

function chat.announce(user, online, except)
  if not presence_notify then return end
  mp.broadcast({ type = "presence", user = user, online = online }, except)
end

-- How the host's frame encoder refuses a tail that is not one whole MessagePack map.
chat.NOT_A_MAP = "tail is not one whole MessagePack map"

-- The message blob of a mailbox member: "mid:sender:blob", or "mid:blob" as stored before the
-- sender was written out (a blob is a MessagePack map: its first byte is never a name's).
function chat.mailbox_blob(member)
  local start = member:find(":", 1, true) or 0
  local sender_end = member:match("^[%w_.%-]+():", start + 1)
  return member:sub((sender_end or start) + 1)
end

-- Pushes the mailbox above s.last_mid in mid order, in batches that fit the output buffer:
-- after login (last_mid is 0 then), and when the session may have missed live messages (a gap
-- in mids, or the node's channel reconnected: mp.on_resync below). Live messages for this
-- session wait meanwhile (the broker holds them back while s:replaying(true)) and come from
-- the mailbox instead, so the session sees strictly increasing mids; one that arrived during
-- the last read makes s:replaying(false) answer false, and the mailbox is read once more.
-- Between batches it waits for the client to read (s:drain: a client that reads nothing for
-- idle_timeout is dropped with bye 429). A replay Redis cuts ends the session with bye 503:
-- were it to go on, live messages would overtake the rest of the mailbox, and a client acking
-- the highest mid it saw would delete what it never got. The client logs in again and the
-- replay restarts.
function chat.replay(s)
  local user = s.user
  local per_message = mp.config.max_body + 256
  local batch = math.max(1, math.min(100, (mp.config.output_limit // 4) // per_message))
  local low_water = mp.config.output_limit // 4
  local key = chat.key.mailbox(user)
  local after = s.last_mid
  s:replaying(true)
  while s:drain(low_water) do
    local rows, err = mp.redis("ZRANGEBYSCORE", key, "(" .. after, "+inf", "WITHSCORES",
                               "LIMIT", 0, batch)
    if not rows then
      mp.log("warn", "mailbox replay of", user, "cut, session closed:", err.msg)
      return s:close(503, "mailbox replay interrupted (storage unavailable), log in again")
    end
    if #rows == 0 then
      if s:replaying(false) then return end
    end
    for i = 1, #rows, 2 do
      local member, mid = rows[i], math.tointeger(tonumber(rows[i + 1]))
      -- the stored blob goes out as it is, after type, mid and offline (not decoded); only a
      -- blob that is no MessagePack map is skipped, any other error ends the replay
      local ok, err = pcall(s.push, s, { type = "msg", mid = mid, offline = true }, mid,
                            chat.mailbox_blob(member))
      if not ok then
        if not tostring(err):find(chat.NOT_A_MAP, 1, true) then error(err, 0) end
        mp.log("error", "mailbox of", user, ": message", mid, "is not a MessagePack map, skipped")
      end
      after = mid
    end
  end
end

mp.on_resync(chat.replay)

-- Connections with a login or resume running, by s.sid (a table that is empty when idle, so
-- sessions cost nothing here).
local logging_in = {}

-- Wraps a login or resume handler FN(s, m, attempt): it is the connection's only login (a
-- second one while it runs, since it waits on hashing and Redis, or after it succeeded answers
-- 409), and it runs only once chat.reserve_attempt let it in within the failure limits. FN
-- ends with chat.refuse_login (a failure) or chat.start_session (a success); any other end
-- (busy, storage error, client gone) is neither.
function chat.login_handler(fn)
  return function(s, m)
    local sid = s.sid
    if s.user or logging_in[sid] then
      return s:fail(409, "this connection is already logged in")
    end
    logging_in[sid] = true -- before anything yields
    local attempt
    local ok, err = pcall(function()
      attempt = chat.reserve_attempt(s, m.user)
      if attempt then return fn(s, m, attempt) end
    end)
    logging_in[sid] = nil
    if attempt and not attempt.settled then chat.end_attempt(attempt, "none") end
    if not ok then error(err, 0) end
  end
end

-- How long a login for a user with FAILURES failed logins (from every address) in the window
-- waits before its password is checked: nothing up to login_max_failures, then doubling from
-- 0.25 s up to login_backoff_max. A wait, not a refusal, so that failures an attacker causes
-- slow the victim down but never lock the victim out.
local function backoff(failures)
  local over = failures - login_max_failures
  if over < 0 or login_backoff_max == 0 then return 0 end
  return math.min(login_backoff_max, 0.25 * 2 ^ over)
end

-- The two sides of a login's limits, each one Redis step on its own keys (one hash slot each
-- on a Redis Cluster): the (user, address) pair, which also reads and counts the user's
-- failures from every address, and the address. {keys, most failures} each.
local function attempt_sides(name, addr)
  return {
    { keys = { chat.key.pair_failures(name, addr), chat.key.pair_inflight(name, addr),
               chat.key.user_failures(name) }, max = login_max_failures },
    { keys = { chat.key.addr_failures(addr), chat.key.addr_inflight(addr) },
      max = login_addr_max_failures },
  }
end

-- {"FCALL", NAME, SIDE's keys..., ARGS...}
local function side_command(side, name, ...)
  local command = { "FCALL", name, #side.keys, table.unpack(side.keys) }
  for _, arg in ipairs({ ... }) do command[#command + 1] = arg end
  return command
end

-- The FCALL that ends SIDE of an attempt with OUTCOME ("fail", "ok" or "none"), for
-- mp.redis(_batch). An "ok" clears the failures of (user, address) only.
local function end_side_command(side, outcome, index)
  if outcome == "ok" and index > 1 then outcome = "none" end
  return side_command(side, "moonpost_login_done", outcome, login_failure_window)
end

-- Reserves SIDE (moonpost_login_attempt); returns Redis's reply, or nil after answering S.
local function reserve_side(s, side)
  local r, err = mp.redis(table.unpack(side_command(side, "moonpost_login_attempt", side.max,
                                                    login_failure_window)))
  if not r then
    chat.storage_failed(s, err)
    return nil
  end
  if r[1] == 0 then
    s:fail(429, "too many failed logins, try again later", { retry_after = r[2] })
    return nil
  end
  if r[1] == -1 then
    s:fail(503, "busy, retry later", { retry_after = r[2] })
    return nil
  end
  return r
end

-- Lets this login of USER from S's address in once both sides' limits allow it
-- (moonpost_login_attempt): login_max_failures per (user, address) and login_addr_max_failures
-- per address within login_failure_window, counting the attempts in flight as if they were
-- failing; else 429 (or 503 while attempts in flight may still fail), with retry_after.
-- The (user, address) side is reserved first; when the address refuses, that reservation is
-- ended with "none". A broker dying between the two steps leaves one attempt counted in flight
-- for 60 s at most (its key's expiry): a limit briefly one lower, never a higher one.
-- Returns the attempt {sides, delay}, or nil once S has been answered.
function chat.reserve_attempt(s, user)
  local addr = s.addr_key
  if not addr then return nil end
  local sides = attempt_sides(chat.valid_user(user) and user or "", addr)
  local pair = reserve_side(s, sides[1])
  if not pair then return nil end
  if not reserve_side(s, sides[2]) then
    mp.redis(table.unpack(end_side_command(sides[1], "none", 1)))
    return nil
  end
  return { sides = sides, delay = backoff(pair[2]) }
end

-- The FCALLs that end ATTEMPT with OUTCOME, one per side.
local function end_attempt_commands(attempt, outcome)
  local commands = {}
  for i, side in ipairs(attempt.sides) do commands[i] = end_side_command(side, outcome, i) end
  return commands
end

function chat.end_attempt(attempt, outcome)
  attempt.settled = true
  mp.redis_batch(table.unpack(end_attempt_commands(attempt, outcome)))
end

-- Counts a failure, then answers 401 (the same text for every cause).
function chat.refuse_login(s, attempt)
  chat.end_attempt(attempt, "fail")
  return s:fail(401, "invalid user or password")
end

-- Functions fn(s, user) that other scripts run at every login and resume, once the session is
-- logged in and before the reply (rooms.lua has the session follow the user's rooms). They may
-- yield; one that fails is logged and the login goes on.
local login_hooks = {}

function chat.on_login(fn)
  login_hooks[#login_hooks + 1] = fn
end

-- Logs S in as USER with TOKEN (a new one, or with RENEW the one resumed: refused with 401 if
-- it was revoked meanwhile): the older session of USER (if any) gets bye 409, the reply
-- carries the token and the online list, then presence and the mailbox follow. The failures
-- of (user, address) are cleared.
function chat.start_session(s, user, token, attempt, renew)
  local ends = end_attempt_commands(attempt, "ok")
  local r, err = mp.redis_batch(
    { "FCALL", "moonpost_token_add", 2, chat.key.token(user, token), chat.key.tokens(user), user,
      token_ttl, mp.now(), chat.TOKENS_MAX, renew and 1 or 0, chat.key.token_prefix(user),
      token }, ends[1], ends[2])
  if not r then return chat.storage_failed(s, err) end
  attempt.settled = true
  if r[1] ~= 1 then
    if type(r[1]) == "table" then return chat.storage_failed(s, { code = 500, msg = r[1].err }) end
    return s:fail(401, "invalid user or password")
  end
  if not s.connected then return end
  local ok, code, why = s:authenticate(user) -- a plugin's on_authenticate may refuse it
  if not ok then
    if code then return s:fail(code, why) end
    return
  end
  s.data.token = token
  for _, fn in ipairs(login_hooks) do
    local ok, why = pcall(fn, s, user)
    if not ok then mp.log("error", "at the login of", user, ":", why) end
  end
  s:ok{ token = token, users = mp.users(1000) }
  chat.announce(user, true, s)
  chat.replay(s)
end

return chat
