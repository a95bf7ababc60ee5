-- ping: answers with the broker's clock; allowed before login.
local mp = require "moonpost"

mp.on("ping", function(s)
  return s:ok{ ts = mp.now() }
end, { anonymous = true })
