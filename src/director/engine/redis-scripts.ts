/**
 * Lua scripts of the redis engine. Each runs atomically in Redis, so an offset
 * is assigned and its message stored in one step, and the fencing check (the
 * caller's lease value must be the lease key's value) happens inside the same
 * step: a director that lost its lease (paused past it, partitioned) cannot
 * sequence, store or overwrite anything after the new active took over.
 *
 * Keys of a channel: `<p>:c:<name>` hash {e: epoch, o: last offset, b: history
 * bytes, t: last active ms}; `<p>:h:<name>` sorted set, score = offset,
 * member = "<time ms>:<push>". A message costs its push bytes plus the
 * engine's per-message overhead (the memory engine's ENTRY_OVERHEAD, so one
 * setting keeps as many messages in either engine); `b` is the channel's sum.
 *
 * The total bound over every channel (history_total_bytes): `<p>:hall` is a
 * sorted set of every stored message in the order stored (score = a counter
 * in `<p>:htotal`), member "<cost>|<epoch>|<offset>|<channel>", and `<p>:htotal`
 * {b: bytes of them all, seq, evicted}. Past the bound the oldest message of
 * the whole engine goes first, whatever its channel, as in the memory engine.
 * Messages leaving a channel by its own bounds leave `hall` too; those of a
 * channel whose keys expired (idle for a day) stay counted until they reach
 * the head of `hall`. The eviction names channel keys it computes (prefix +
 * name), which a standalone Redis (or one behind Sentinel) allows and Redis
 * Cluster does not: the engine runs on one Redis, not a Redis Cluster.
 */

/** Shared helpers: a message's cost, its `hall` member, a channel's trim, the total's eviction. */
const LIB = `
local function cost_of(m, ovh) return #m - string.find(m, ':', 1, true) + ovh end
local function aref(cost, e, o, ch) return cost .. '|' .. e .. '|' .. o .. '|' .. ch end
local function trim(c, h, A, T, size, ttl, maxb, now, e, ch, ovh)
  local n = redis.call('ZCARD', h)
  local b = tonumber(redis.call('HGET', c, 'b') or '0')
  local freed = 0
  while n > 0 do
    local first = redis.call('ZRANGE', h, 0, 0, 'WITHSCORES')
    local m = first[1]
    local drop = n > size or b > maxb
    if not drop and ttl > 0 then
      local t = tonumber(string.sub(m, 1, string.find(m, ':', 1, true) - 1))
      drop = now - t > ttl
    end
    if not drop then break end
    redis.call('ZREMRANGEBYRANK', h, 0, 0)
    local cost = cost_of(m, ovh)
    b = b - cost
    freed = freed + cost
    redis.call('ZREM', A, aref(cost, e, first[2], ch))
    n = n - 1
  end
  redis.call('HSET', c, 'b', b)
  if freed > 0 then redis.call('HINCRBY', T, 'b', -freed) end
end
local function evict(A, T, maxt, prefix)
  local total = tonumber(redis.call('HGET', T, 'b') or '0')
  local evicted = 0
  while total > maxt do
    local first = redis.call('ZRANGE', A, 0, 0)[1]
    if not first then
      total = 0
      break
    end
    redis.call('ZREM', A, first)
    local p1 = string.find(first, '|', 1, true)
    local p2 = string.find(first, '|', p1 + 1, true)
    local p3 = string.find(first, '|', p2 + 1, true)
    local cost = tonumber(string.sub(first, 1, p1 - 1))
    local e = string.sub(first, p1 + 1, p2 - 1)
    local o = string.sub(first, p2 + 1, p3 - 1)
    local ch = string.sub(first, p3 + 1)
    total = total - cost
    local c = prefix .. ':c:' .. ch
    if redis.call('HGET', c, 'e') == e and redis.call('ZREMRANGEBYSCORE', prefix .. ':h:' .. ch, o, o) > 0 then
      redis.call('HINCRBY', c, 'b', -cost)
      evicted = evicted + 1
    end
  end
  redis.call('HSET', T, 'b', total)
  if evicted > 0 then redis.call('HINCRBY', T, 'evicted', evicted) end
end
`;

const FENCE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('FENCED this director does not hold the lease')
end
`;

/**
 * KEYS: lease, channel hash, history zset, hall zset, htotal hash.
 * ARGV: fence, now, head, tail, store (1/0), max count, max age ms, max bytes, epoch candidate, keep ms,
 * overhead, total max bytes, prefix, channel.
 * Returns {offset, epoch}.
 */
export const APPEND = `${LIB}${FENCE}
local now = tonumber(ARGV[2])
local ovh = tonumber(ARGV[11])
local e = redis.call('HGET', KEYS[2], 'e')
if not e then
  e = ARGV[9]
  redis.call('DEL', KEYS[3])
  redis.call('HSET', KEYS[2], 'e', e, 'o', 0, 'b', 0)
end
local o = redis.call('HINCRBY', KEYS[2], 'o', 1)
local size = tonumber(ARGV[6])
local maxb = tonumber(ARGV[8])
if ARGV[5] == '1' and size > 0 then
  local push = ARGV[3] .. o .. ',"epoch":"' .. e .. '"' .. ARGV[4]
  local cost = #push + ovh
  -- Larger than the channel may hold: not kept (older entries still age out), as in the memory engine.
  if cost <= maxb then
    redis.call('ZADD', KEYS[3], o, ARGV[2] .. ':' .. push)
    redis.call('HINCRBY', KEYS[2], 'b', cost)
    redis.call('ZADD', KEYS[4], redis.call('HINCRBY', KEYS[5], 'seq', 1), aref(cost, e, o, ARGV[14]))
    redis.call('HINCRBY', KEYS[5], 'b', cost)
  end
end
trim(KEYS[2], KEYS[3], KEYS[4], KEYS[5], size, tonumber(ARGV[7]), maxb, now, e, ARGV[14], ovh)
evict(KEYS[4], KEYS[5], tonumber(ARGV[12]), ARGV[13])
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
 * KEYS: channel hash, history zset, hall zset, htotal hash.
 * ARGV: since ('' for the newest), until ('' for none), limit, max bytes, now, max age ms, overhead, channel.
 * Messages past the age bound are dropped first. Returns
 * {offset, epoch, oldest, more, available, offset1, member1, ...}, oldest first:
 * the range (since, until] capped at `limit` messages (the newest `limit` without since),
 * read from its start while the pushes fit in max bytes (the first always), as history.ts reads.
 */
export const HISTORY = `${LIB}
local now = tonumber(ARGV[5])
local ttl = tonumber(ARGV[6])
local e = redis.call('HGET', KEYS[1], 'e')
if not e then return {0, '', 1, 0, 0} end
local o = tonumber(redis.call('HGET', KEYS[1], 'o') or '0')
if ttl > 0 then trim(KEYS[1], KEYS[2], KEYS[3], KEYS[4], 1e15, ttl, 1e18, now, e, ARGV[8], tonumber(ARGV[7])) end
local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
local oldest = o + 1
if first[2] then oldest = tonumber(first[2]) end
local limit = tonumber(ARGV[3])
local maxb = tonumber(ARGV[4])
local hi = '+inf'
if ARGV[2] ~= '' then hi = ARGV[2] end
local items = {}
if limit > 0 then
  if ARGV[1] == '' then
    local rev = redis.call('ZRANGE', KEYS[2], hi, '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, limit, 'WITHSCORES')
    for i = #rev - 1, 1, -2 do
      items[#items + 1] = rev[i]
      items[#items + 1] = rev[i + 1]
    end
  else
    items = redis.call('ZRANGE', KEYS[2], '(' .. ARGV[1], hi, 'BYSCORE', 'LIMIT', 0, limit, 'WITHSCORES')
  end
end
local available = #items / 2
local out = {o, e, oldest, 0, available}
local bytes = 0
for i = 1, #items, 2 do
  local m = items[i]
  local len = #m - string.find(m, ':', 1, true)
  if i > 1 and bytes + len > maxb then
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
 * KEYS: lease, channel hash, history zset, hall zset, htotal hash.
 * ARGV: fence, offset, push, overhead, channel, total max bytes, prefix.
 * Replaces the push of one stored message, keeping its time and its place in
 * the total's order; the channel's and the total's bytes follow the new size.
 * Returns 1, or 0 when the message is no longer kept.
 */
export const REWRITE = `${LIB}${FENCE}
local old = redis.call('ZRANGE', KEYS[3], ARGV[2], ARGV[2], 'BYSCORE')[1]
if not old then return 0 end
local e = redis.call('HGET', KEYS[2], 'e')
local ovh = tonumber(ARGV[4])
local i = string.find(old, ':', 1, true)
local new = string.sub(old, 1, i) .. ARGV[3]
local before = cost_of(old, ovh)
local after = cost_of(new, ovh)
redis.call('ZREMRANGEBYSCORE', KEYS[3], ARGV[2], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[2], new)
redis.call('HINCRBY', KEYS[2], 'b', after - before)
local ref = aref(before, e, ARGV[2], ARGV[5])
local seq = redis.call('ZSCORE', KEYS[4], ref)
if seq then
  redis.call('ZREM', KEYS[4], ref)
  redis.call('ZADD', KEYS[4], seq, aref(after, e, ARGV[2], ARGV[5]))
  redis.call('HINCRBY', KEYS[5], 'b', after - before)
  evict(KEYS[4], KEYS[5], tonumber(ARGV[6]), ARGV[7])
end
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
