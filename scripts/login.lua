-- login {user, password}, resume {user, token}, logout: sessions and their resume tokens.
local mp = require "moonpost"
local chat = require "lib.chat"

local INVALID = "invalid user or password"

-- A hash of a random password with the configured cost, verified when the user does not
-- exist, so that unknown users cost as much as wrong passwords.
local dummy_hash

local function refuse_login(s, user, addr)
  chat.record_failure(user, addr)
  return s:fail(401, INVALID)
end

mp.on("login", chat.login_handler(function(s, m)
  local user, pw, addr = m.user, m.password, s.addr
  local valid = chat.valid_user(user)
  if not dummy_hash then dummy_hash = mp.pwhash(mp.random_token(16)) end
  local hash, err
  if valid then
    hash, err = mp.redis("HGET", chat.key.user(user), "pw")
    if err then return chat.storage_failed(s, err) end
  end
  local password = (type(pw) == "string" and #pw <= 1024) and pw or ""
  local ok = mp.pwverify(hash or dummy_hash, password)
  if not hash or not ok then return refuse_login(s, user, addr) end
  return chat.start_session(s, user, mp.random_token(16))
end), { anonymous = true })

mp.on("resume", chat.login_handler(function(s, m)
  local user, token, addr = m.user, m.token, s.addr
  if not chat.valid_user(user) or type(token) ~= "string" or #token ~= 32 then
    return refuse_login(s, user, addr)
  end
  local owner, err = mp.redis("GET", chat.key.token(token))
  if err then return chat.storage_failed(s, err) end
  if owner ~= user then return refuse_login(s, user, addr) end
  return chat.start_session(s, user, token)
end), { anonymous = true })

mp.on("logout", function(s)
  local user = s.user
  local key = chat.key.user(user)
  local token = mp.redis("HGET", key, "token")
  if token then
    mp.redis_batch({ "DEL", chat.key.token(token) }, { "HDEL", key, "token" })
  end
  s:ok()
  return s:close()
end)
