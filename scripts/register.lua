-- register {user, password, name?}: creates an account; the password is kept only as an
-- argon2id hash.
local mp = require "moonpost"
local chat = require "lib.chat"

local password_min_len = mp.option("password_min_len", { type = "int", default = 6, min = 1,
  max = 1024, doc = "bytes a new password needs at least (at most 1024)" })
local register_max_per_addr = mp.option("register_max_per_addr", { type = "int", default = 20,
  min = 0, max = 1000000,
  doc = "registrations per client address per hour, then 429 (0 = no limit)" })

mp.on("register", function(s, m)
  if not chat.valid_user(m.user) then
    return s:fail(400, "user must be 1-32 bytes of A-Z a-z 0-9 _ . -")
  end
  local pw = m.password
  if type(pw) ~= "string" or #pw < password_min_len or #pw > 1024 then
    return s:fail(400, ("password must be a string of %d to 1024 bytes"):format(
                  password_min_len))
  end
  local name = m.name
  if name ~= nil and (type(name) ~= "string" or #name > 64) then
    return s:fail(400, "name must be a string of at most 64 bytes")
  end
  local addr = s.addr_key
  if not addr then return end -- the client left
  -- a taken name is answered before any hashing; the rest count per address per hour. Two
  -- steps (the user's key and the address's counter are in different slots of a Redis
  -- Cluster), the read first: a broker dying between them leaves nothing behind.
  local exists, err = mp.redis("EXISTS", chat.key.user(m.user))
  if not exists then return chat.storage_failed(s, err) end
  if exists == 1 then return s:fail(409, "user exists") end
  local counter = chat.key.addr_registrations(addr)
  local r
  r, err = mp.redis("FCALL", "moonpost_register_attempt", 1, counter, register_max_per_addr)
  if not r then return chat.storage_failed(s, err) end
  if r[1] == 0 then
    return s:fail(429, "too many registrations from this address, try again later",
                  { retry_after = r[2] })
  end
  local hash, herr, retry_after = mp.pwhash(pw)
  if not hash then
    mp.redis("FCALL", "moonpost_unreserve", 1, counter)
    return chat.hashing_failed(s, herr, retry_after)
  end
  local created
  created, err = mp.redis("FCALL", "moonpost_register", 1, chat.key.user(m.user), hash,
                          name or m.user, mp.now())
  if not created then return chat.storage_failed(s, err) end
  if created == 0 then return s:fail(409, "user exists") end
  return s:ok()
end, { anonymous = true })
