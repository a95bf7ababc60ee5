-- broadcast {body} from a user, admin.broadcast {body} from the operator: one code path. The
-- mid comes from the broker-wide counter; the push goes to every other online session, encoded
-- once, not stored.
local mp = require "moonpost"
local chat = require "lib.chat"

-- Sends M.body to everyone online but S as FROM (SYSTEM: from the operator); returns the mid
-- and how many sessions it was pushed to, or nil after failing the request.
local function broadcast(s, m, from, system)
  if not chat.is_body(m.body) then return s:fail(400, "broadcast needs body (str or bin)") end
  if #m.body > mp.config.max_body then return s:fail(413, "body too large") end
  local mid, err = mp.redis("FCALL", "moonpost_broadcast_mid", 1, chat.key.broadcast_mid,
                            mp.now())
  if not mid then return chat.storage_failed(s, err) end
  local sent = s:broadcast{ type = "broadcast", mid = mid, from = from, body = m.body,
                            ts = mp.now(), system = system }
  return mid, sent
end

mp.on("broadcast", function(s, m)
  local mid = broadcast(s, m, s.user, nil)
  if mid then return s:ok{ mid = mid } end
end)

-- The operator's broadcast: from "" (no user can have that name) and system = true.
mp.on("admin.broadcast", function(s, m)
  local mid, sent = broadcast(s, m, "", true)
  if mid then return s:ok{ mid = mid, sent = sent } end
end, { admin = true })
