-- ack {upto}: the recipient confirms every message with mid <= upto; they leave the mailbox
-- and their senders' quota (mailbox_per_sender) is given back.
-- (The replay after login lives in lib/chat.lua, next to the session start.)
local mp = require "moonpost"
local batch = require "lib.batch"
local chat = require "lib.chat"

-- The acks of one loop pass, in one moonpost_ack_many call (store_batch on one Redis): each
-- its count of deleted messages.
local ack_batched = batch.new(function(items)
  local words = { "FCALL", "moonpost_ack_many", 3 * #items }
  for _, it in ipairs(items) do
    words[#words + 1] = chat.key.mailbox(it.user)
    words[#words + 1] = chat.key.mailbox_senders(it.user)
    words[#words + 1] = chat.key.user(it.user)
  end
  for _, it in ipairs(items) do words[#words + 1] = it.upto end
  return mp.redis(table.unpack(words))
end, chat.BATCH_MAX)

-- Deletes USER's messages up to UPTO: nil, or err. With store_batch on one Redis the acks of
-- a loop pass share one call; else (and on a Redis Cluster, where each user's keys are on its
-- own master) one call per ack.
local function ack(user, upto)
  if not chat.store_batch or mp.config.redis_cluster then
    local _, err = mp.redis("FCALL", "moonpost_ack", 3, chat.key.mailbox(user),
                           chat.key.mailbox_senders(user), chat.key.user(user), upto)
    return err
  end
  local _, err = chat.batched_reply(ack_batched{ user = user, upto = upto })
  return err
end

mp.on("ack", function(s, m)
  local upto = m.upto
  if math.type(upto) ~= "integer" or upto < 0 then
    return s:fail(400, "upto must be a non-negative integer")
  end
  local err = ack(s.user, upto)
  if err then return chat.storage_failed(s, err) end
  return s:ok()
end)
