-- file.offer, file.chunk, file.status, file.get: a file goes from its sender to the broker in
-- chunks, is kept in Redis for file_ttl, and reaches its recipient as a msg in the mailbox
-- (docs/protocol.md, "File transfer"; the keys are in docs/data-model.md).
local mp = require "moonpost"
local chat = require "lib.chat"

mp.redis_library(require "lib.file_functions")

local file_ttl = mp.option("file_ttl", { type = "int", default = 604800, min = 1,
  max = 31536000,
  doc = "seconds a file is kept: its upload must end within them from the offer, and the " ..
        "recipient has them again from the moment it is complete" })
local max_file_size = mp.option("max_file_size", { type = "int", default = 16777216, min = 1,
  max = 536870912, doc = "bytes of the largest file an offer may announce (413 past it)" })
local file_quota = mp.option("file_quota", { type = "int", default = 67108864, min = 1,
  max = 1099511627776,
  doc = "bytes of the files one sender has offered and not completed yet (507 past it)" })

-- Bytes of data per chunk (file.chunk) and per read (file.get): what fits in a frame with the
-- other fields of the request or the reply.
local chunk_max = math.max(1, mp.config.max_frame - 256)
-- A file counts at least this much against file_quota: its keys cost Redis memory however
-- small it is, so a sender cannot hold millions of 1-byte offers.
local MIN_CHARGE = 4096
-- A delivery claimed by a broker that died is taken over after this many ms.
local CLAIM_LEASE = 30000

local prefix = mp.config.redis_prefix
local key = {
  file = function(fid) return prefix .. "file:{" .. fid .. "}" end,
  data = function(fid) return prefix .. "file:{" .. fid .. "}:data" end,
  quota = function(user) return prefix .. "fquota:{" .. user .. "}" end,
  charges = function(user) return prefix .. "fcharge:{" .. user .. "}" end,
}

-- fids are 16 random bytes in lowercase hex (mp.random_token): anything else is unknown.
local function valid_fid(fid)
  return type(fid) == "string" and #fid == 32 and fid:match("^[0-9a-f]+$") ~= nil
end

local function valid_name(name)
  return type(name) == "string" and #name >= 1 and #name <= 255 and
         not name:find("/", 1, true) and not name:find("\0", 1, true)
end

local function is_count(v, min)
  return math.type(v) == "integer" and v >= min
end

local function release_quota(sender, fid)
  return mp.redis("FCALL", "moonpost_file_release", 2, key.quota(sender), key.charges(sender),
                  fid)
end

mp.on("file.offer", function(s, m)
  if type(m.to) ~= "string" or not valid_name(m.name) or math.type(m.size) ~= "integer" then
    return s:fail(400, "file.offer needs to (str), name (1-255 bytes, no / or NUL) and size")
  end
  if m.size < 1 then return s:fail(400, "size must be at least 1") end
  if m.sha256 ~= nil and not (mp.isbin(m.sha256) and #m.sha256 == 32) then
    return s:fail(400, "sha256 must be 32 bytes of bin")
  end
  if m.size > max_file_size then
    return s:fail(413, "file too large", { max_file_size = max_file_size })
  end
  if not chat.valid_user(m.to) then return s:fail(404, "no such user") end
  local exists, err = mp.redis("EXISTS", chat.key.user(m.to))
  if err then return chat.storage_failed(s, err) end
  if exists == 0 then return s:fail(404, "no such user") end

  local now, fid = mp.now(), mp.random_token(16)
  local reserved
  reserved, err = mp.redis("FCALL", "moonpost_file_reserve", 2, key.quota(s.user),
                           key.charges(s.user), fid, math.max(m.size, MIN_CHARGE),
                           now + file_ttl * 1000, file_quota, now)
  if not reserved then return chat.storage_failed(s, err) end
  if reserved == -507 then
    return s:fail(507, "your files in flight would exceed file_quota",
                  { file_quota = file_quota })
  end
  local created
  created, err = mp.redis("FCALL", "moonpost_file_offer", 1, key.file(fid), s.user, m.to, m.name,
                          m.size, m.sha256 or "", now, file_ttl * 1000)
  if created ~= 1 then
    release_quota(s.user, fid)
    if not created then return chat.storage_failed(s, err) end
    return s:fail(503, "busy, offer again") -- 16 random bytes taken: not in this universe
  end
  s.data.fhash = s.data.fhash or {}
  s.data.fhash[fid] = { sha256 = m.sha256 ~= nil, state = "", at = 0 }
  return s:ok{ fid = fid, chunk_max = chunk_max }
end)

-- ---- hashing the chunks of a file that has a sha256 ----
-- The hash state of a file lives in its Redis hash next to the data (hs, covering hs_at bytes),
-- so that any node can go on from it. The session that offered a file hashes the chunks it
-- sends in order, from the state it last wrote (s.data.fhash[fid] = {at, state, sha256}, set
-- by the offer), so a sequential upload costs no extra read. Whatever the state missed (the
-- chunks of another session, one that resumed the upload, or those after a refused chunk) is
-- read back and hashed when the data is complete (check_sha256).
--
-- A chunk never waits for anything before its store: the chunks of one session reach Redis in
-- the order they came, as the protocol's in-order check needs. (Reading the state from Redis
-- first let a later chunk, whose session already had it, overtake an earlier one still
-- reading: 409.)

-- What this session knows of FID's hashing: {at, state, sha256}, or {at = -1} (hashes
-- nothing: the state is not this session's to follow).
local function hash_info(s, fid)
  s.data.fhash = s.data.fhash or {}
  local cache = s.data.fhash
  if not cache[fid] then cache[fid] = { at = -1 } end
  return cache[fid]
end

-- The chunk call for DATA at OFFSET, hashed on the way when the file has a sha256 and the
-- session's state is at OFFSET. Returns Redis's reply (see moonpost_file_chunk) or nil, err.
local function store_chunk(s, fid, offset, data)
  local c = hash_info(s, fid)
  local before, after, hashed = "", "", false
  if c.sha256 and c.at == offset then
    before = c.state
    after = mp.sha256_update(before, data)
    -- the next chunk of a pipelined upload hashes from here while this one is in flight
    c.at, c.state, hashed = offset + #data, after, true
  end
  local r, err = mp.redis("FCALL", "moonpost_file_chunk", 2, key.file(fid), key.data(fid),
                           s.user, offset, data, mp.now(), before, after)
  if hashed and (not r or r[1] ~= 200) then
    if r and r[2] == offset then
      c.at, c.state = offset, before -- refused, and the data still ends where it did: go on
    else
      s.data.fhash[fid] = { at = -1 } -- the stored state is not where this session thinks
    end
  end
  return r, err
end

-- Before a complete file with a sha256 is delivered: its digest, hashing what the stored state
-- does not cover from the stored data. Returns true when it matches (or there is none), false
-- when not, or nil, err.
local READ_PIECE = 262144
local function check_sha256(fid, size)
  local f, err = mp.redis("HMGET", key.file(fid), "sha256", "hs", "hs_at")
  if not f then return nil, err end
  if not f[1] then return true end
  local state, at = f[2] or "", tonumber(f[3]) or 0
  while at < size do
    local piece
    piece, err = mp.redis("FCALL", "moonpost_file_read", 1, key.data(fid), at,
                          math.min(size - at, READ_PIECE))
    if not piece then return nil, err end
    if #piece == 0 then return nil, { code = 500, msg = "file data shorter than received" } end
    state = mp.sha256_update(state, piece)
    at = at + #piece
  end
  return tostring(mp.sha256_final(state)) == f[1]
end

-- ---- delivery of a complete file ----

-- Deletes the file FID of SENDER and gives its quota back.
local function discard(fid, sender)
  mp.redis("DEL", key.file(fid), key.data(fid))
  release_quota(sender, fid)
end

-- Checks the sha256 of the complete file FID (its hash fields F: from, to, name, size), then
-- stores its msg in the recipient's mailbox and marks the file complete; the caller holds the
-- delivery claim. Returns true, or nil, code, reason: the file is deleted on a sha256 mismatch
-- or when the recipient no longer exists, else the claim is given back (try again later).
local function deliver_file(fid, f)
  local size = tonumber(f.size)
  local match, err = check_sha256(fid, size)
  if match == nil then
    mp.redis("HDEL", key.file(fid), "claim")
    return nil, chat.storage_error(err)
  end
  if not match then
    discard(fid, f.from)
    return nil, 400, "sha256 mismatch: the file was discarded, offer it again"
  end
  local mid, code, why = chat.store_private(f.from, f.to, {
    body = f.name, file = { fid = fid, name = f.name, size = size } })
  if not mid then
    if code == 404 then
      discard(fid, f.from)
    else
      mp.redis("HDEL", key.file(fid), "claim")
    end
    return nil, code, why
  end
  local _
  _, err = mp.redis("FCALL", "moonpost_file_done", 2, key.file(fid), key.data(fid), mid,
                    file_ttl * 1000)
  if err then return nil, chat.storage_error(err) end
  release_quota(f.from, fid)
  return true
end

local function file_fields(fid)
  local f, err = mp.redis("HMGET", key.file(fid), "from", "to", "name", "size", "received",
                          "done")
  if not f then return nil, err end
  if not f[1] then return false end
  return { from = f[1], to = f[2], name = f[3], size = f[4], received = tonumber(f[5]),
           done = f[6] == "1" }
end

mp.on("file.chunk", function(s, m)
  local fid, offset, data = m.fid, m.offset, m.data
  if type(fid) ~= "string" or not is_count(offset, 0) or not mp.isbin(data) then
    return s:fail(400, "file.chunk needs fid (str), offset (integer >= 0) and data (bin)")
  end
  if #data < 1 or #data > chunk_max then
    return s:fail(400, "data must be 1 to chunk_max bytes", { chunk_max = chunk_max })
  end
  if not valid_fid(fid) then return s:fail(404, "unknown or expired fid") end
  local r, err = store_chunk(s, fid, offset, data)
  if not r then return chat.storage_failed(s, err) end
  local code = r[1]
  if code == 404 then return s:fail(404, "unknown or expired fid") end
  if code == 403 then return s:fail(403, "not the sender of this file") end
  if code == 409 then return s:fail(409, "offset is not received", { received = r[2] }) end
  if code == 400 then return s:fail(400, "past the file's size", { received = r[2] }) end
  if r[3] == 1 then -- the last chunk: the msg goes to the recipient before the answer
    s.data.fhash[fid] = nil
    local f
    f, err = file_fields(fid)
    if not f then
      if f == nil then return chat.storage_failed(s, err) end
      return s:fail(404, "unknown or expired fid")
    end
    local ok, why
    ok, code, why = deliver_file(fid, f)
    if not ok then return s:fail(code, why, { received = r[2] }) end
  end
  return s:ok{ received = r[2] }
end)

mp.on("file.status", function(s, m)
  if type(m.fid) ~= "string" then return s:fail(400, "file.status needs fid (str)") end
  if not valid_fid(m.fid) then return s:fail(404, "unknown or expired fid") end
  local f, err = file_fields(m.fid)
  if f == nil then return chat.storage_failed(s, err) end
  if not f then return s:fail(404, "unknown or expired fid") end
  if s.user ~= f.from and s.user ~= f.to then
    return s:fail(403, "neither the sender nor the recipient of this file")
  end
  local size = tonumber(f.size)
  local reply = { name = f.name, size = size, received = f.received, from = f.from, to = f.to,
                  complete = f.done, chunk_max = chunk_max }
  -- all bytes in, no msg yet (the delivery after the last chunk failed, or its broker died):
  -- the sender asking is the moment to try again
  if s.user == f.from and f.received == size and not f.done then
    local claimed
    claimed, err = mp.redis("FCALL", "moonpost_file_claim", 1, key.file(m.fid), s.user, mp.now(),
                            CLAIM_LEASE)
    if not claimed then return chat.storage_failed(s, err) end
    if claimed == 1 then
      local ok, code, why = deliver_file(m.fid, f)
      if not ok then return s:fail(code, why, reply) end
      reply.complete = true
    end
  end
  return s:ok(reply)
end)

mp.on("file.get", function(s, m)
  local fid, offset, length = m.fid, m.offset, m.length
  if type(fid) ~= "string" or not is_count(offset, 0) or not is_count(length, 1) or
     length > chunk_max then
    return s:fail(400, "file.get needs fid (str), offset (integer >= 0) and length " ..
                       "(1 to chunk_max)", { chunk_max = chunk_max })
  end
  if not valid_fid(fid) then return s:fail(404, "unknown or expired fid") end
  local r, err = mp.redis("FCALL", "moonpost_file_get", 2, key.file(fid), key.data(fid), s.user,
                          offset, length)
  if not r then return chat.storage_failed(s, err) end
  local code = r[1]
  if code == 404 then return s:fail(404, "unknown or expired fid") end
  if code == 403 then return s:fail(403, "neither the sender nor the recipient of this file") end
  if code == 409 then return s:fail(409, "the file is not complete") end
  if code == 400 then return s:fail(400, "offset past the end of the file") end
  return s:ok{ data = mp.bin(r[2]) }
end)
