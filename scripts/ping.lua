-- ping: answers with the broker's clock; allowed before login and on the admin socket.
local mp = require "moonpost"

mp.on("ping", function(s)
  return s:ok{ ts = mp.now() }
end, { anonymous = true, also_admin = true })
