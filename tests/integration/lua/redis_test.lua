-- redis_test: handlers for the Redis, worker and timer layer (tests/integration/test_redis.py).
local mp = require "moonpost"

-- strings in a Redis result become bin when asked, so any byte survives msgpack
local function tobin(v)
  if type(v) == "string" then return mp.bin(v) end
  if type(v) == "table" then
    local out = {}
    for k, x in pairs(v) do out[k] = tobin(x) end
    return setmetatable(out, getmetatable(v))
  end
  return v
end

-- one command: {args = {...}, bin = bool}; 503 when Redis is unreachable, otherwise 200 with
-- r (the result), err (the {code, msg} error) and isnil
mp.on("t.redis", function(s, m)
  local res, err = mp.redis(table.unpack(m.args))
  if err and err.code == 503 then return s:fail(503, err.msg) end
  if m.bin then res = tobin(res) end
  return s:ok{ r = res, err = err, isnil = res == nil }
end, { anonymous = true })

-- several commands in one round trip: {cmds = {{...}, {...}}}
mp.on("t.batch", function(s, m)
  local res, err = mp.redis_batch(table.unpack(m.cmds))
  if err and err.code == 503 then return s:fail(503, err.msg) end
  return s:ok{ r = res, err = err }
end, { anonymous = true })

-- waits in Redis: BLPOP key timeout; afterwards records in key..":after" whether the session
-- was still connected, so a test can see the handler finished after its client left
-- With m.retry, a 503 is retried once after a short mp.sleep (as a handler with a back-off
-- would do).
mp.on("t.slowredis", function(s, m)
  local res, err = mp.redis("BLPOP", m.key, m.timeout or 2)
  if err and err.code == 503 and m.retry then
    mp.log("info", "t.slowredis: retrying after", err.msg)
    mp.sleep(0.05)
    res, err = mp.redis("BLPOP", m.key, m.timeout or 2)
  end
  local replied = false
  if err and err.code == 503 then
    replied = s:fail(503, err.msg)
  else
    replied = s:ok{ r = res }
  end
  s:push{ type = "t.after" }                      -- a no-op when the session is gone
  mp.redis("SET", m.key .. ":after", (s.connected and "connected" or "gone") ..
           (replied and ",replied" or ",dropped"))
end, { anonymous = true })

mp.on("t.hash", function(s, m)
  local h, err = mp.pwhash(m.password)
  if not h then
    -- a job whose client left before its turn is dropped unrun
    if m.key then mp.redis("SET", m.key, "dropped") end
    return s:fail(500, tostring(err))
  end
  if m.key then mp.redis("SET", m.key, s.connected and "connected" or "gone") end
  return s:ok{ hash = h }
end, { anonymous = true })

mp.on("t.verify", function(s, m)
  local ok, err = mp.pwverify(m.hash, m.password)
  if err then return s:fail(500, tostring(err)) end
  return s:ok{ ok = ok }
end, { anonymous = true })

mp.on("t.sleep", function(s, m)
  local before = mp.now()
  mp.sleep(m.seconds)
  local after = mp.now()
  if m.key then mp.redis("SET", m.key, s.connected and "connected" or "gone") end
  return s:ok{ before = before, after = after }
end, { anonymous = true })

-- mp.waiter: woken before its wait, it returns the values at once (nil included); a waiter is
-- woken once and waited on once
mp.on("t.waiter", function(s)
  local w = mp.waiter()
  w:wake(1, "two", nil)
  local a, b, c = w:wait()
  local wake_again = pcall(w.wake, w, 3)
  local wait_again = pcall(w.wait, w)
  return s:ok{ a = a, b = b, third_nil = c == nil, wake_again = wake_again,
               wait_again = wait_again }
end, { anonymous = true })

-- t.park {key} waits until t.unpark {key, value} wakes it from another request
local parked = {}
mp.on("t.park", function(s, m)
  local w = mp.waiter()
  parked[m.key] = w
  if m.ready then mp.redis("SET", m.ready, "1") end
  local value = w:wait()
  if m.mark then mp.redis("SET", m.mark, s.connected and "connected" or "gone") end
  return s:ok{ value = value }
end, { anonymous = true })

mp.on("t.unpark", function(s, m)
  local w = parked[m.key]
  if not w then return s:fail(404, "nothing parked") end
  parked[m.key] = nil
  local foreign_wait = pcall(w.wait, w) -- only its own request may wait on it
  w:wake(m.value)
  return s:ok{ foreign_wait = foreign_wait }
end, { anonymous = true })

-- housekeeping: a Lua counter and a Redis counter, both driven by mp.every
local ticks = 0
mp.every(0.05, function()
  ticks = ticks + 1
end)
mp.every(0.05, function()
  mp.redis("INCR", "t:every")                      -- timers may yield too
end)

mp.on("t.ticks", function(s)
  return s:ok{ ticks = ticks }
end, { anonymous = true })
