-- send {to, body}: private chat. The message is in the recipient's mailbox before the sender
-- hears 200, then pushed at once if the recipient is online.
local mp = require "moonpost"
local chat = require "lib.chat"

-- plugins/send declares the same two options
local mailbox_max = mp.option("mailbox_max", { type = "int", default = 10000, min = 1,
  max = 100000000, doc = "messages one mailbox holds; a send past it is answered 507" })
local mailbox_per_sender = mp.option("mailbox_per_sender", { type = "int", default = 1000,
  min = 1, max = 100000000,
  doc = "unacked messages from one sender in one mailbox; past it that sender is answered 429" })

mp.on("send", function(s, m)
  if type(m.to) ~= "string" or not chat.is_body(m.body) then
    return s:fail(400, "send needs to (str) and body (str or bin)")
  end
  if #m.body > mp.config.max_body then return s:fail(413, "body too large") end
  if not chat.valid_user(m.to) then return s:fail(404, "no such user") end
  local ts = mp.now()
  local blob = mp.encode{ from = s.user, to = m.to, body = m.body, ts = ts }
  local stored, err = mp.redis("FCALL", "moonpost_store", 3, chat.key.user(m.to),
                               chat.key.mailbox(m.to), chat.key.mailbox_senders(m.to),
                               mailbox_max, blob, ts, mailbox_per_sender,
                               s.user)
  if not stored then return chat.storage_failed(s, err) end
  if stored == -404 then return s:fail(404, "no such user") end
  if stored == -507 then return s:fail(507, "mailbox full") end
  if stored == -429 then return s:fail(429, "too many unread messages to this user") end
  -- prev (the newest message waiting before this one) keeps pushes in mid order across nodes
  local mid, prev = stored[1], stored[2]
  local online = mp.deliver(m.to, { type = "msg", mid = mid, from = s.user, to = m.to,
                                    body = m.body, ts = ts, offline = false }, mid, prev)
  return s:ok{ mid = mid, online = online }
end)
