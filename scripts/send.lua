-- send {to, body}: private chat. The message is in the recipient's mailbox before the sender
-- hears 200, then pushed at once if the recipient is online.
local mp = require "moonpost"
local chat = require "lib.chat"

mp.on("send", function(s, m)
  if type(m.to) ~= "string" or not chat.is_body(m.body) then
    return s:fail(400, "send needs to (str) and body (str or bin)")
  end
  if #m.body > mp.config.max_body then return s:fail(413, "body too large") end
  if not chat.valid_user(m.to) then return s:fail(404, "no such user") end
  local mid, online, why = chat.store_private(s.user, m.to, { body = m.body })
  if not mid then return s:fail(online, why) end
  return s:ok{ mid = mid, online = online }
end)
