-- reload: copied into a test's temp dir and rewritten there to test SIGHUP (test_lifecycle.py).
local mp = require "moonpost"

local VERSION = 1

mp.on("t.version", function(s)
  return s:ok{ version = VERSION }
end, { anonymous = true })

-- waits a little, so a reload can happen while it is in flight
mp.on("t.slow", function(s, m)
  mp.sleep(m.seconds or 0.5)
  return s:ok{ version = VERSION }
end, { anonymous = true })
