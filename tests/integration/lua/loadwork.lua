-- loadwork: a script whose top-level code runs many VM instructions while it loads (a table
-- built at start-up), well under lua_instruction_limit (test_lifecycle.py).
local mp = require "moonpost"

local squares = {}
for i = 1, 20000 do squares[i] = i * i end

mp.on("t.squares", function(s, m)
  return s:ok{ value = squares[m.n] }
end, { anonymous = true })
