-- ack {upto}: the recipient confirms every message with mid <= upto; they leave the mailbox
-- and their senders' quota (mailbox_per_sender) is given back.
-- (The replay after login lives in lib/chat.lua, next to the session start.)
local mp = require "moonpost"
local chat = require "lib.chat"

mp.on("ack", function(s, m)
  local upto = m.upto
  if math.type(upto) ~= "integer" or upto < 0 then
    return s:fail(400, "upto must be a non-negative integer")
  end
  local _, err = mp.redis("FCALL", "moonpost_ack", 3, chat.key.mailbox(s.user),
                          chat.key.mailbox_senders(s.user), chat.key.user(s.user), upto)
  if err then return chat.storage_failed(s, err) end
  return s:ok()
end)
