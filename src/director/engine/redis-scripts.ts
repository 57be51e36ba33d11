/**
 * Lua scripts of the redis engine. Each runs atomically in Redis, so an offset
 * is assigned and its message stored in one step, and the fencing check (the
 * caller's lease value must be the lease key's value) happens inside the same
 * step: a director that lost its lease (paused past it, partitioned) cannot
 * sequence, store or overwrite anything after the new active took over.
 *
 * Keys of a channel: `<p>:c:<name>` hash {e: epoch, o: last offset, b: history
 * bytes, t: last active ms}; `<p>:h:<name>` sorted set, score = offset,
 * member = "<time ms>:<push>". A member's push bytes count toward `b`.
 */

/** Drops the oldest entries past the count, byte and time bounds; keeps `b` right. */
const TRIM = `
local function trim(c, h, size, ttl, maxb, now)
  local n = redis.call('ZCARD', h)
  local b = tonumber(redis.call('HGET', c, 'b') or '0')
  while n > 0 do
    local drop = n > size or (maxb > 0 and b > maxb)
    if not drop and ttl > 0 then
      local first = redis.call('ZRANGE', h, 0, 0)[1]
      local t = tonumber(string.sub(first, 1, string.find(first, ':', 1, true) - 1))
      drop = now - t > ttl
    end
    if not drop then break end
    local popped = redis.call('ZPOPMIN', h)
    local m = popped[1]
    b = b - (#m - string.find(m, ':', 1, true))
    n = n - 1
  end
  redis.call('HSET', c, 'b', b)
end
`;

const FENCE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('FENCED this director does not hold the lease')
end
`;

/**
 * KEYS: lease, channel hash, history zset.
 * ARGV: fence, now, head, tail, store (1/0), size, ttl ms, max bytes, epoch candidate, keep ms.
 * Returns {offset, epoch}.
 */
export const APPEND = `${TRIM}${FENCE}
local now = tonumber(ARGV[2])
local e = redis.call('HGET', KEYS[2], 'e')
if not e then
  e = ARGV[9]
  redis.call('DEL', KEYS[3])
  redis.call('HSET', KEYS[2], 'e', e, 'o', 0, 'b', 0)
end
local o = redis.call('HINCRBY', KEYS[2], 'o', 1)
local size = tonumber(ARGV[6])
if ARGV[5] == '1' and size > 0 then
  local push = ARGV[3] .. o .. ',"epoch":"' .. e .. '"' .. ARGV[4]
  redis.call('ZADD', KEYS[3], o, ARGV[2] .. ':' .. push)
  redis.call('HINCRBY', KEYS[2], 'b', #push)
end
trim(KEYS[2], KEYS[3], size, tonumber(ARGV[7]), tonumber(ARGV[8]), now)
redis.call('HSET', KEYS[2], 't', ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[10])
redis.call('PEXPIRE', KEYS[3], ARGV[10])
return {o, e}
`;

/**
 * KEYS: lease, channel hash, history zset. ARGV: fence, now, epoch candidate, keep ms.
 * Returns {offset, epoch}, creating the channel (fenced) when it has no state.
 */
export const POSITION = `
local e = redis.call('HGET', KEYS[2], 'e')
if e then
  return {tonumber(redis.call('HGET', KEYS[2], 'o') or '0'), e}
end
${FENCE}
redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[2], 'e', ARGV[3], 'o', 0, 'b', 0, 't', ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return {0, ARGV[3]}
`;

/**
 * KEYS: channel hash, history zset. ARGV: since ('' for the newest), limit, max bytes, now, ttl ms.
 * Expired entries are dropped first. Returns {offset, epoch, oldest, more, offset1, member1, ...},
 * oldest first.
 */
export const HISTORY = `${TRIM}
local now = tonumber(ARGV[4])
local ttl = tonumber(ARGV[5])
local e = redis.call('HGET', KEYS[1], 'e')
if not e then return {0, '', 1, 0} end
local o = tonumber(redis.call('HGET', KEYS[1], 'o') or '0')
if ttl > 0 then trim(KEYS[1], KEYS[2], 1e15, ttl, 0, now) end
local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
local oldest = o + 1
if first[2] then oldest = tonumber(first[2]) end
local limit = tonumber(ARGV[2])
local maxb = tonumber(ARGV[3])
local items
local more = 0
if ARGV[1] == '' then
  items = redis.call('ZRANGE', KEYS[2], -limit, -1, 'WITHSCORES')
else
  items = redis.call('ZRANGE', KEYS[2], '(' .. ARGV[1], '+inf', 'BYSCORE', 'LIMIT', 0, limit + 1, 'WITHSCORES')
  if #items > 2 * limit then
    more = 1
    items[#items] = nil
    items[#items] = nil
  end
end
local out = {o, e, oldest, more}
local bytes = 0
local start = 1
if ARGV[1] == '' and maxb > 0 then
  -- the newest that fit: walk back from the end
  local i = #items - 1
  while i >= 1 do
    local len = #items[i] - string.find(items[i], ':', 1, true)
    if bytes > 0 and bytes + len > maxb then break end
    bytes = bytes + len
    start = i
    i = i - 2
  end
  if #items == 0 then start = 1 end
end
bytes = 0
for i = start, #items, 2 do
  local m = items[i]
  local len = #m - string.find(m, ':', 1, true)
  if ARGV[1] ~= '' and maxb > 0 and bytes > 0 and bytes + len > maxb then
    out[4] = 1
    break
  end
  bytes = bytes + len
  out[#out + 1] = tonumber(items[i + 1])
  out[#out + 1] = m
end
return out
`;

/**
 * KEYS: lease, channel hash, history zset. ARGV: fence, offset, push.
 * Replaces the push of one stored message, keeping its time. Returns 1, or 0 when it is gone.
 */
export const REWRITE = `${FENCE}
local old = redis.call('ZRANGE', KEYS[3], ARGV[2], ARGV[2], 'BYSCORE')[1]
if not old then return 0 end
local i = string.find(old, ':', 1, true)
redis.call('ZREMRANGEBYSCORE', KEYS[3], ARGV[2], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[2], string.sub(old, 1, i) .. ARGV[3])
redis.call('HINCRBY', KEYS[2], 'b', #ARGV[3] - (#old - i))
return 1
`;

/** KEYS: lease, records hash. ARGV: fence, then field, value pairs ('' deletes). */
export const SAVE = `${FENCE}
for i = 2, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    redis.call('HDEL', KEYS[2], ARGV[i])
  else
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  end
end
return 1
`;

/** KEYS: lease, fence counter. ARGV: node id, lease ms. The new lease value ("<token>|<node>"), or nil when held. */
export const ACQUIRE = `
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local t = redis.call('INCR', KEYS[2])
local v = t .. '|' .. ARGV[1]
redis.call('SET', KEYS[1], v, 'PX', ARGV[2])
return v
`;

/** KEYS: lease. ARGV: lease value, lease ms. 1 when renewed, 0 when the lease is someone else's (or gone). */
export const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`;

/** KEYS: lease. ARGV: lease value. Deletes the lease when it is still ours (a graceful hand-over). */
export const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
`;
