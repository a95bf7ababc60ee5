-- The Redis functions of file transfer (library moonpost_files, loaded like lib/redis_functions;
-- docs/data-model.md describes the keys). A file's keys share the hash tag {FID} and a sender's
-- quota keys the tag {USER}, so that each function touches one slot of a Redis Cluster.
return [[#!lua name=moonpost_files

-- A file's data is a list of blocks of BLOCK bytes (the last one shorter): byte N is in block
-- floor(N / BLOCK). 65280 bytes and the list node around them stay within one 64 KiB allocation of
-- Redis's allocator, where one growing string costs a quarter more (docs/data-model.md).
local BLOCK = 65280

-- Appends DATA to the blocks of KEY, which hold RECEIVED bytes: the last block is filled up
-- first, the rest goes in new blocks.
local function append_blocks(key, received, data)
  local pos, fill = 1, received % BLOCK
  if fill > 0 then
    local take = math.min(BLOCK - fill, #data)
    redis.call('LSET', key, -1, redis.call('LINDEX', key, -1) .. string.sub(data, 1, take))
    pos = take + 1
  end
  if pos == 1 and #data <= BLOCK then -- a whole block, as libmoonpost sends: no copy
    redis.call('RPUSH', key, data)
    return
  end
  while pos <= #data do
    redis.call('RPUSH', key, string.sub(data, pos, pos + BLOCK - 1))
    pos = pos + BLOCK
  end
end

-- Bytes OFFSET to LAST (inclusive, within the data) of the blocks of KEY.
local function read_blocks(key, offset, last)
  local first = math.floor(offset / BLOCK) -- (Redis's Lua 5.1 has no //)
  local bytes = table.concat(redis.call('LRANGE', key, first, math.floor(last / BLOCK)))
  local start = offset - first * BLOCK + 1
  return string.sub(bytes, start, start + last - offset)
end

-- Drops the reservations of QUOTA (sorted set fid -> deadline ms) whose deadline is past NOW,
-- taking their bytes off CHARGES (hash fid -> bytes, and "bytes": the total). At most 100 per
-- call: the rest go at the next call.
local function prune(quota, charges, now)
  local gone = redis.call('ZRANGEBYSCORE', quota, '-inf', now, 'LIMIT', 0, 100)
  for _, fid in ipairs(gone) do
    local bytes = tonumber(redis.call('HGET', charges, fid) or 0)
    redis.call('HINCRBY', charges, 'bytes', -bytes)
    redis.call('HDEL', charges, fid)
    redis.call('ZREM', quota, fid)
  end
end

-- KEYS: the sender's reservations (sorted set), their charges (hash).
-- ARGV: fid, bytes to charge, deadline (ms), file_quota, now (ms).
-- Reserves the bytes of a new file until its deadline (its upload must end by then). Returns 1,
-- or -507 when the sender's files in flight would exceed the quota.
redis.register_function('moonpost_file_reserve', function(keys, args)
  local now = tonumber(args[5])
  prune(keys[1], keys[2], now)
  local used = tonumber(redis.call('HGET', keys[2], 'bytes') or 0)
  if used + tonumber(args[2]) > tonumber(args[4]) then return -507 end
  redis.call('HSET', keys[2], args[1], args[2])
  redis.call('HINCRBY', keys[2], 'bytes', args[2])
  redis.call('ZADD', keys[1], args[3], args[1])
  -- the keys live as long as their last reservation
  local last = redis.call('ZRANGE', keys[1], -1, -1, 'WITHSCORES')[2]
  for i = 1, 2 do redis.call('PEXPIREAT', keys[i], last) end
  return 1
end)

-- KEYS: as moonpost_file_reserve. ARGV: fid. Gives its bytes back (once: again is a no-op).
-- Runs when Redis is out of memory (allow-oom): it frees.
redis.register_function{function_name = 'moonpost_file_release', flags = {'allow-oom'},
                        callback = function(keys, args)
  if redis.call('ZREM', keys[1], args[1]) == 0 then return 0 end
  local bytes = tonumber(redis.call('HGET', keys[2], args[1]) or 0)
  redis.call('HDEL', keys[2], args[1])
  if redis.call('HINCRBY', keys[2], 'bytes', -bytes) <= 0 then redis.call('DEL', keys[2]) end
  return 1
end}

-- KEYS: the file's hash. ARGV: from, to, name, size, sha256 ("" when none), created (ms),
-- file_ttl (ms). Returns 1, or 0 when the fid is taken (draw another).
redis.register_function('moonpost_file_offer', function(keys, args)
  if redis.call('EXISTS', keys[1]) == 1 then return 0 end
  redis.call('HSET', keys[1], 'from', args[1], 'to', args[2], 'name', args[3], 'size', args[4],
             'received', 0, 'created', args[6], 'done', 0)
  if args[5] ~= '' then redis.call('HSET', keys[1], 'sha256', args[5], 'hs', '', 'hs_at', 0) end
  redis.call('PEXPIRE', keys[1], args[7])
  return 1
end)

-- KEYS: the file's hash, its data (blocks, above).
-- ARGV: sender, offset, data, now (ms), and for a file with a sha256 the caller's hash state
-- before the data and after it ("" when it did not hash this chunk).
-- Appends the chunk when OFFSET is the bytes received so far and it ends within the size. The
-- hash state (field hs, covering hs_at bytes) moves on only when the caller hashed from the
-- stored state at this offset; otherwise it stays behind and the check at the end catches up
-- from it. Returns {200, received} (with a third value 1 when this chunk completed the data:
-- the caller then holds the delivery claim), {404}, {403}, {409, received}, or {400, received}
-- past the size.
redis.register_function('moonpost_file_chunk', function(keys, args)
  local f = redis.call('HMGET', keys[1], 'from', 'size', 'received', 'sha256', 'hs', 'hs_at')
  if not f[1] then return { 404 } end
  if f[1] ~= args[1] then return { 403 } end
  local size, received = tonumber(f[2]), tonumber(f[3])
  if tonumber(args[2]) ~= received then return { 409, received } end
  local after = received + #args[3]
  if after > size then return { 400, received } end
  if f[4] and args[6] ~= '' and tonumber(f[6]) == received and f[5] == args[5] then
    redis.call('HSET', keys[1], 'hs', args[6], 'hs_at', after)
  end
  append_blocks(keys[2], received, args[3])
  if received == 0 then redis.call('PEXPIREAT', keys[2], redis.call('PEXPIRETIME', keys[1])) end
  redis.call('HSET', keys[1], 'received', after)
  if after < size then return { 200, after } end
  redis.call('HSET', keys[1], 'claim', args[4])
  return { 200, after, 1 }
end)

-- KEYS: the file's hash. ARGV: sender, now (ms), lease (ms).
-- Takes the claim to deliver a file whose data is complete but whose msg is not stored yet
-- (the delivery after the last chunk failed, or its broker died): 1 when taken, else 0 (not
-- such a file, or another delivery holds a claim younger than the lease).
redis.register_function('moonpost_file_claim', function(keys, args)
  local f = redis.call('HMGET', keys[1], 'from', 'size', 'received', 'done', 'claim')
  if f[1] ~= args[1] or f[2] ~= f[3] or f[4] == '1' then return 0 end
  if f[5] and tonumber(args[2]) - tonumber(f[5]) < tonumber(args[3]) then return 0 end
  redis.call('HSET', keys[1], 'claim', args[2])
  return 1
end)

-- KEYS: the file's hash, its data. ARGV: the mid of its msg, file_ttl (ms).
-- The msg is in the recipient's mailbox: the file is complete, and kept file_ttl from now.
redis.register_function('moonpost_file_done', function(keys, args)
  if redis.call('EXISTS', keys[1]) == 0 then return 0 end
  redis.call('HSET', keys[1], 'done', 1, 'mid', args[1])
  redis.call('HDEL', keys[1], 'claim')
  redis.call('PEXPIRE', keys[1], args[2])
  redis.call('PEXPIRE', keys[2], args[2])
  return 1
end)

-- KEYS: the file's hash, its data. ARGV: reader, offset, length.
-- Returns {200, bytes}, {404}, {403} (neither sender nor recipient), {409} (not complete), or
-- {400} (offset past the end).
redis.register_function{function_name = 'moonpost_file_get', flags = {'no-writes'},
                        callback = function(keys, args)
  local f = redis.call('HMGET', keys[1], 'from', 'to', 'size', 'done')
  if not f[1] then return { 404 } end
  if args[1] ~= f[1] and args[1] ~= f[2] then return { 403 } end
  if f[4] ~= '1' then return { 409 } end
  local offset, size = tonumber(args[2]), tonumber(f[3])
  if offset > size then return { 400 } end
  if offset == size then return { 200, '' } end
  return { 200, read_blocks(keys[2], offset, math.min(size, offset + tonumber(args[3])) - 1) }
end}

-- KEYS: a file's data. ARGV: offset, length (both within the data). Its bytes, for the broker's
-- own reading (the sha256 check), without the checks of moonpost_file_get.
redis.register_function{function_name = 'moonpost_file_read', flags = {'no-writes'},
                        callback = function(keys, args)
  local offset = tonumber(args[1])
  return read_blocks(keys[1], offset, offset + tonumber(args[2]) - 1)
end}
]]
