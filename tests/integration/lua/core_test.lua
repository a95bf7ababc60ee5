-- core_test: handlers that exercise the broker core from tests/integration/test_core.py.
local mp = require "moonpost"

-- a type that needs a login (anything not marked anonymous)
mp.on("t.private", function(s)
  return s:ok{ user = s.user }
end)

-- a handler that raises: 500 to the client, file:line in the log
mp.on("t.error", function(s)
  error("boom from t.error")
end, { anonymous = true })

-- an endless loop: stopped by the instruction budget
mp.on("t.loop", function(s)
  local n = 0
  while true do n = n + 1 end
end, { anonymous = true })

-- what the sandbox leaves reachable
mp.on("t.sandbox", function(s)
  local r = {}
  r.io = io ~= nil
  r.debug = debug ~= nil
  r.os_execute = os.execute ~= nil
  r.os_exit = os.exit ~= nil
  r.os_getenv = os.getenv ~= nil
  r.os_remove = os.remove ~= nil
  r.loadfile = loadfile ~= nil
  r.dofile = dofile ~= nil
  r.require_io = (pcall(require, "io"))
  r.require_debug = (pcall(require, "debug"))
  r.os_time = type(os.time) == "function"          -- the clock stays
  return s:ok(r)
end, { anonymous = true })

-- a binary chunk, from string.dump when it is there, else a literal header
local function binary_chunk()
  local dumped, chunk = pcall(string.dump, function() return 42 end)
  if not dumped then chunk = "\27Lua\84\0\25\147\13\10\26\10" end
  return chunk, dumped
end

-- load(...) called with ARGS: "function" when it gave a function that returns 42 (or 7 for
-- text), else the error text
local function try_load(...)
  local ok, f, err = pcall(load, ...)
  if not ok then return "raised: " .. tostring(f) end
  if type(f) ~= "function" then return "refused: " .. tostring(err) end
  local ran, v = pcall(f)
  if ran and (v == 42 or v == 7) then return "function" end
  return "bad function: " .. tostring(v)
end

mp.on("t.load", function(s)
  local chunk, dumped = binary_chunk()
  return s:ok{
    have_dump = dumped,
    text_1 = try_load("return 7"),
    text_2 = try_load("return 7", "=text"),
    text_3 = try_load("return 7", "=text", "t"),
    text_4 = try_load("return 7", "=text", "t", {}),
    bin_1 = try_load(chunk),
    bin_2 = try_load(chunk, "=bin"),
    bin_3b = try_load(chunk, "=bin", "b"),
    bin_3bt = try_load(chunk, "=bin", "bt"),
    bin_4 = try_load(chunk, "=bin", "b", {}),
  }
end, { anonymous = true })

-- every global function, called like load(chunk, name, "b"): none may hand back a function
-- that runs the binary chunk
mp.on("t.loaders", function(s)
  local chunk = binary_chunk()
  local loaders = {}
  for name, fn in pairs(_G) do
    if type(fn) == "function" and name ~= "print" and name ~= "warn" then
      local ok, g = pcall(fn, chunk, "=bin", "b")
      if ok and type(g) == "function" then
        local ran, v = pcall(g)
        if ran and v == 42 then loaders[#loaders + 1] = name end
      end
    end
  end
  table.sort(loaders)
  return s:ok{ loaders = mp.array(loaders) }
end, { anonymous = true })

-- nesting depth of m.deep as the handler sees it
mp.on("t.depth", function(s, m)
  local depth, v = 0, m.deep
  while type(v) == "table" do
    depth = depth + 1
    v = v[1]
  end
  return s:ok{ depth = depth }
end, { anonymous = true })

-- a reply that cannot be encoded: the request must still be answered (500)
mp.on("t.badreply", function(s, m)
  if m.what == "function" then return s:ok{ f = function() end } end
  local t = {}
  t.self = t                                       -- a cycle
  return s:ok{ t = t }
end, { anonymous = true })

-- mp.log and print write exactly their arguments, after file:line for mp.log
mp.on("t.log", function(s, m)
  mp.log("warn", m.marker, 42)                     -- t.log mp.log line
  print(m.marker .. "-print", 43)
  return s:ok{}
end, { anonymous = true })

-- s:push before the reply
mp.on("t.push", function(s, m)
  s:push{ type = "t.note", n = m.n }
  return s:ok{ pushed = true }
end, { anonymous = true })

-- s:close(code, msg): bye, no res
mp.on("t.close", function(s, m)
  s:close(m.code, m.msg)
end, { anonymous = true })

-- pushes COUNT frames of SIZE bytes at once (for the slow reader test)
mp.on("t.flood", function(s, m)
  local chunk = string.rep("x", m.size or 1024)
  local n = 0
  for i = 1, (m.count or 2000) do
    if not s:push{ type = "t.flood", i = i, data = chunk } then break end
    n = i
  end
  mp.log("info", "t.flood pushed", n, "frames")
  return s:ok{ pushed = n }
end, { anonymous = true })

-- echoes the decoded request (unknown keys reach the handler, but change nothing else)
mp.on("t.echo", function(s, m)
  return s:ok{ echo = m }
end, { anonymous = true })

-- waits m.seconds without holding the loop (for in-flight limits)
mp.on("t.wait", function(s, m)
  mp.sleep(m.seconds or 0.5)
  return s:ok{ waited = m.seconds }
end, { anonymous = true })
