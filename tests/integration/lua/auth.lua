-- auth: a test-only login that trusts the client, so tests can reach the logged-in state
-- without the shipped register/login scripts (and without Redis).
local mp = require "moonpost"

mp.on("t.login", function(s, m) s:authenticate(m.user); return s:ok{} end, {anonymous=true})
