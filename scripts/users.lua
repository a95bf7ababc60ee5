-- users {limit?}: who is online, and how many.
local mp = require "moonpost"

mp.on("users", function(s, m)
  local limit = m.limit
  if limit == nil then limit = 1000 end
  if math.type(limit) ~= "integer" or limit < 1 or limit > 10000 then
    return s:fail(400, "limit must be an integer from 1 to 10000")
  end
  local users, count = mp.users(limit)
  return s:ok{ users = users, count = count }
end)
