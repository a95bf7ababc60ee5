-- options_test: a script declaring options of its own, one of each type, and handlers that
-- read them (test_options.py).
local mp = require "moonpost"

local greeting = mp.option("t_greeting", { type = "string", default = "hello",
  doc = "what t.options says" })
mp.option("t_count", { type = "int", default = 3, min = 1, max = 100, doc = "a count" })
mp.option("t_ratio", { type = "number", default = 0.5, min = 0, doc = "a ratio" })
mp.option("t_loud", { type = "bool", default = false, doc = "a switch" })

-- the values read at run time through the one call, and the one kept at load time
mp.on("t.options", function(s)
  return s:ok{ greeting = mp.option("t_greeting"), count = mp.option("t_count"),
               ratio = mp.option("t_ratio"), loud = mp.option("t_loud"),
               at_load = greeting, count_is_int = math.type(mp.option("t_count")) == "integer" }
end, { anonymous = true })

-- declaring after load time, and reading an option nobody declared, are errors (500)
mp.on("t.declare_late", function(s)
  mp.option("t_late", { type = "int", default = 1 })
  return s:ok()
end, { anonymous = true })

mp.on("t.undeclared", function(s)
  return s:ok{ value = mp.option("t_nobody") }
end, { anonymous = true })
