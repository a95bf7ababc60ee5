-- memory_test: handlers that fill the Lua heap up to lua_memory_limit, so that the broker's own
-- calls into Lua meet a memory error on each of its paths (test_attack_lua.py).
local mp = require "moonpost"

-- Fills the heap until not even a small table fits, in a list that stays reachable through the
-- returned head. The closures exist before the heap is full: creating one would fail then.
local SIZES = { 65536, 4096, 256, 32 }
local head
local fills = {}
for i, size in ipairs(SIZES) do
  fills[i] = function() while true do head = { head, string.rep("x", size) } end end
end
local function fill_tables() while true do head = { head } end end

local function fill()
  head = nil
  collectgarbage()
  for i = 1, #fills do pcall(fills[i]) end
  pcall(fill_tables)
  local h = head
  head = nil
  return h
end

-- the heap fills and the memory error leaves the handler (its traceback meets a full heap)
mp.on("t.oom", function(s)
  local hog = fill()
  local t = {}
  for i = 1, 1e9 do t[i] = { hog } end
end, { anonymous = true })

-- waits for a password hash with the heap full: the result cannot be pushed
mp.on("t.oom_hash", function(s)
  local hog = fill()
  local hash = mp.pwhash("a password")
  hog = nil
  return s:ok{ hashed = hash ~= nil }
end, { anonymous = true })

-- a redis reply (a long string, never interned) arrives with the heap full
local LONG = string.rep("e", 300)
mp.on("t.oom_redis", function(s, m)
  local hog = fill()
  local v, err
  if m.batch then
    v, err = mp.redis_batch({ "ECHO", LONG })
  else
    v, err = mp.redis("ECHO", LONG)
  end
  hog = nil
  return s:ok{ got = v ~= nil }
end, { anonymous = true })

-- holds a full heap for m.seconds (the push tells the test when it is full)
mp.on("t.hold", function(s, m)
  local note = { type = "t.full" }
  local seconds = m.seconds or 2
  local hog = fill()
  s:push(note)
  mp.sleep(seconds)
  hog = nil
  collectgarbage()
  return s:ok{}
end, { anonymous = true })

-- close hooks run when a user goes offline
local gone = 0
mp.on_close(function(user) gone = gone + 1 end)
mp.on("t.gone", function(s) return s:ok{ gone = gone } end, { anonymous = true })

-- handlers blocked until t.release, to count what runs at once
local blocked, released = 0, false
mp.on("t.block", function(s, m)
  blocked = blocked + 1
  while not released do mp.sleep(0.01) end
  blocked = blocked - 1
  return s:ok{ kept = m.junk ~= nil }          -- the message stays alive while it waits
end, { anonymous = true })
mp.on("t.blocked", function(s) return s:ok{ blocked = blocked } end, { anonymous = true })
mp.on("t.release", function(s, m)
  released = m.on ~= false
  return s:ok{}
end, { anonymous = true })

-- leaves about m.mb MiB of garbage in small blocks (short strings in tables): what a burst of
-- requests leaves behind
mp.on("t.garbage", function(s, m)
  local keep = {}
  for i = 1, (m.mb or 64) * 1024 * 1024 // 160 do keep[i] = { string.rep("g", 60) .. i } end
  return s:ok{ n = #keep }
end, { anonymous = true })
