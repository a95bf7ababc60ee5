-- presence: with presence_notify on, everyone hears when a user goes offline (login
-- announces the user coming online, in lib/chat.lua).
local mp = require "moonpost"
local chat = require "lib.chat"

mp.on_close(function(user)
  chat.announce(user, false)
end)
