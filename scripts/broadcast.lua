-- broadcast {body}: to every other online session, encoded once, not stored.
local mp = require "moonpost"
local chat = require "lib.chat"

mp.on("broadcast", function(s, m)
  if not chat.is_body(m.body) then return s:fail(400, "broadcast needs body (str or bin)") end
  if #m.body > mp.config.max_body then return s:fail(413, "body too large") end
  local mid, err = mp.redis("FCALL", "moonpost_broadcast_mid", 1, chat.key.broadcast_mid,
                            mp.now())
  if not mid then return chat.storage_failed(s, err) end
  s:broadcast{ type = "broadcast", mid = mid, from = s.user, body = m.body, ts = mp.now() }
  return s:ok{ mid = mid }
end)
