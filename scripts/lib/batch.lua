-- Batching: the requests of one loop pass share one call. batch.new(fn, max) returns
-- call(item), which yields until fn(items) has run for every item queued in the same pass (up
-- to MAX per call) and returns fn's result for its own item: results[i] for items[i], or nil
-- and err when fn returned nil, err (a failed Redis call fails every item of it). fn may
-- yield (mp.redis); an error it raises is raised in every caller of its batch.
--
-- The first caller of a pass leads: it sleeps to the end of the pass (mp.sleep(0): every frame
-- read in this pass is handled first), then runs fn for the queue and wakes the others
-- (mp.waiter). So N acks or stores that arrive together cost one Redis call, not N.
local mp = require "moonpost"

local batch = {}

function batch.new(fn, max)
  local open -- the queue of this pass, while its leader sleeps
  return function(item)
    if open and #open.items < max then
      local items = open.items
      items[#items + 1] = item
      local w = mp.waiter()
      open.waiters[#items] = w
      local ok, result, err = w:wait()
      if not ok then error(result, 0) end
      return result, err
    end
    local queue = { items = { item }, waiters = {} }
    open = queue
    mp.sleep(0)
    if open == queue then open = nil end
    local ok, results, err = pcall(fn, queue.items)
    for i = 2, #queue.items do
      if ok then
        queue.waiters[i]:wake(true, results and results[i], err)
      else
        queue.waiters[i]:wake(false, results)
      end
    end
    if not ok then error(results, 0) end
    return results and results[1], err
  end
end

return batch
