-- login {user, password}, resume {user, token}, logout {all?}: sessions and their resume
-- tokens.
local mp = require "moonpost"
local chat = require "lib.chat"

mp.on("login", chat.login_handler(function(s, m, attempt)
  local user, pw = m.user, m.password
  local hash, err
  if chat.valid_user(user) then
    hash, err = mp.redis("HGET", chat.key.user(user), "pw")
    if err then return chat.storage_failed(s, err) end
  end
  if attempt.delay > 0 then mp.sleep(attempt.delay) end
  local password = (type(pw) == "string" and #pw <= 1024) and pw or ""
  -- without a hash (unknown user), pwverify costs the same and answers false
  local ok, herr, retry_after = mp.pwverify(hash, password)
  if ok == nil then return chat.hashing_failed(s, herr, retry_after) end
  if not hash or not ok then return chat.refuse_login(s, attempt) end
  return chat.start_session(s, user, mp.random_token(16), attempt)
end), { anonymous = true })

mp.on("resume", chat.login_handler(function(s, m, attempt)
  local user, token = m.user, m.token
  if not chat.valid_user(user) or type(token) ~= "string" or #token ~= 32 then
    return chat.refuse_login(s, attempt)
  end
  local owner, err = mp.redis("GET", chat.key.token(user, token))
  if err then return chat.storage_failed(s, err) end
  if owner ~= user then return chat.refuse_login(s, attempt) end
  return chat.start_session(s, user, token, attempt, true)
end), { anonymous = true })

-- logout revokes this session's token, logout {all = true} every token of the user (a user
-- has one session per broker: this one).
mp.on("logout", function(s, m)
  if m.all ~= nil and type(m.all) ~= "boolean" then
    return s:fail(400, "all must be a boolean")
  end
  local token = m.all and "" or s.data.token
  if token then
    local _, err = mp.redis("FCALL", "moonpost_token_revoke", 1, chat.key.tokens(s.user),
                            chat.key.token_prefix(s.user), token)
    if err then return chat.storage_failed(s, err) end
  end
  s:ok()
  return s:close()
end)
