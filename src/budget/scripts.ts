/**
 * The Lua scripts of `RedisBudget`. Every decision is made inside Redis, atomically, with the Redis
 * server's own clock (`TIME`): the clients' clocks never decide when a permit expires.
 *
 * Keys (one hash tag, so a cluster keeps them on one slot):
 *   KEYS[1] permits  sorted set: permit id -> expiry (server ms)
 *   KEYS[2] queue    sorted set: ticket id -> arrival number (the line, in order)
 *   KEYS[3] tickets  sorted set: ticket id -> expiry (server ms); a dead waiter's ticket ages out
 *   KEYS[4] seq      arrival counter, deleted whenever the line is empty
 *   KEYS[5] channel  pub/sub channel that wakes waiters when a permit may be free
 *   KEYS[6] fence    end of the recovery grace (server ms); never expires
 *   KEYS[7] master   replication id of the master that last ran a script (INFO replication master_replid)
 * ARGV[1] limit, ARGV[2] permit TTL ms, ARGV[3] ticket TTL ms, ARGV[4] recovery grace ms, then
 * per-script arguments from ARGV[5].
 *
 * Failover: a master whose replication id differs from the one the budget last saw (a replica promoted
 * by Sentinel or a cluster failover, or a restart) starts a recovery grace of its own, for the same reason.
 *
 * Recovery: a missing fence means the budget's keys are new or were lost (a Redis restart without
 * persistence, a failover to a replica that had not received them, a flush). Redis then cannot know who
 * still holds connections, so until one grace period after the server started it grants nothing new
 * (a key first used on a long-running server starts at once); holders re-register their
 * permits with their next refresh (REFRESH re-claims a missing permit while there is room), and a holder
 * that cannot reach Redis loses its permits locally before the grace ends.
 */
const PRELUDE = `
local permits, queue, tickets, seq, channel, fence, master = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local limit, ttl, tttl, grace = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local fenceAt = tonumber(redis.call('GET', fence) or -1)
if fenceAt < 0 then
  -- Holders re-register within one refresh of a restart, so the grace runs from the server's start:
  -- a first use on a Redis that has been up longer than the grace has nobody to wait for.
  local up = tonumber(string.match(redis.call('INFO', 'server'), 'uptime_in_seconds:(%d+)')) or 0
  local remaining = grace - up * 1000
  if remaining < 0 then remaining = 0 end
  fenceAt = now + remaining
  redis.call('SET', fence, fenceAt)
end
-- A new master (a failover promoted a replica, or the server restarted): its copy may lack the newest
-- grants (replication is asynchronous), so nothing new is granted for one grace while live holders
-- re-register what they hold. The replication id changes exactly then; a key of this budget remembers it.
local replid = string.match(redis.call('INFO', 'replication'), 'master_replid:(%w+)') or ''
local seenReplid = redis.call('GET', master)
if seenReplid ~= replid then
  if seenReplid and now + grace > fenceAt then
    fenceAt = now + grace
    redis.call('SET', fence, fenceAt)
  end
  redis.call('SET', master, replid)
end
local recovering = now < fenceAt
-- Reclaim what dead holders and dead waiters left behind: expired permits and expired tickets.
local freed = redis.call('ZREMRANGEBYSCORE', permits, '-inf', now)
local dead = redis.call('ZRANGEBYSCORE', tickets, '-inf', now)
for i = 1, #dead do redis.call('ZREM', queue, dead[i]) end
if #dead > 0 then redis.call('ZREMRANGEBYSCORE', tickets, '-inf', now) end
local changed = freed > 0 or #dead > 0
local function wake()
  -- Only when someone waits and a permit is free: an uncontended budget publishes nothing.
  if not recovering and redis.call('ZCARD', queue) > 0 and redis.call('ZCARD', permits) < limit then
    redis.call('PUBLISH', channel, now)
  end
end
local function tidy()
  if redis.call('ZCARD', queue) == 0 then redis.call('DEL', seq) end
end
`;

/**
 * Tries to grant permits to this process's tickets (ARGV[4..], in local arrival order). A ticket not in
 * line yet takes a permit at once when nobody waits and one is free, else joins the back of the line. A
 * ticket in line is granted when its rank is below the number of free permits: those ahead of it can
 * all be served too, so the line is served roughly in arrival order across the fleet. Idempotent: a
 * ticket already granted (its reply was lost) is simply granted again. During a recovery grace nothing
 * new is granted. Returns {now, held, waiting, when to look again without a message (the end of the
 * grace, else the earliest permit or ticket expiry, else -1), granted flag per ticket...}.
 */
export const TRY_SCRIPT = `${PRELUDE}
local held = redis.call('ZCARD', permits)
local out = {}
for i = 5, #ARGV do
  local id = ARGV[i]
  local granted = 0
  if redis.call('ZSCORE', permits, id) then
    granted = 1
    held = held - 1
  else
    local rank = redis.call('ZRANK', queue, id)
    if not rank then
      if not recovering and redis.call('ZCARD', queue) == 0 and held < limit then
        granted = 1
      else
        redis.call('ZADD', queue, redis.call('INCR', seq), id)
        rank = redis.call('ZRANK', queue, id)
      end
    end
    if granted == 0 and not recovering and rank < limit - held then granted = 1 end
  end
  if granted == 1 then
    redis.call('ZREM', queue, id)
    redis.call('ZREM', tickets, id)
    redis.call('ZADD', permits, now + ttl, id)
    held = held + 1
  else
    redis.call('ZADD', tickets, now + tttl, id)
  end
  out[#out + 1] = granted
end
tidy()
if changed then wake() end
-- Without any message, the line moves when a permit expires (a dead holder) or a ticket does (a dead
-- waiter ahead), and when a recovery grace ends.
local first = redis.call('ZRANGE', permits, 0, 0, 'WITHSCORES')
local nextAt = tonumber(first[2] or -1)
local ticket = redis.call('ZRANGE', tickets, 0, 0, 'WITHSCORES')
if ticket[2] and (nextAt < 0 or tonumber(ticket[2]) < nextAt) then nextAt = tonumber(ticket[2]) end
if recovering then nextAt = fenceAt end
local reply = {now, held, redis.call('ZCARD', queue), nextAt}
for i = 1, #out do reply[#reply + 1] = out[i] end
return reply
`;

/**
 * Extends this holder's permits (ARGV[6 .. 5+n], n = ARGV[5]) and waiting tickets (the rest) in one
 * round trip. A permit missing from Redis although its holder still counts it (Redis lost its data) is
 * re-claimed while there is room (so is a permit granted in fallback, without Redis); only when there is
 * none is it reported lost.
 * Returns {now, {permits no longer held}, {tickets no longer in line}, held, waiting}.
 */
export const REFRESH_SCRIPT = `${PRELUDE}
local n = tonumber(ARGV[5])
local lostPermits, lostTickets = {}, {}
for i = 6, 5 + n do
  local id = ARGV[i]
  if redis.call('ZSCORE', permits, id) then
    redis.call('ZADD', permits, now + ttl, id)
  elseif redis.call('ZCARD', permits) < limit then
    -- Re-claimed (Redis lost it, or it was granted in fallback): a ticket of the same id leaves the line.
    redis.call('ZADD', permits, now + ttl, id)
    if redis.call('ZREM', queue, id) == 1 then changed = true end
    redis.call('ZREM', tickets, id)
  else
    lostPermits[#lostPermits + 1] = id
  end
end
for i = 6 + n, #ARGV do
  local id = ARGV[i]
  if redis.call('ZSCORE', queue, id) then
    redis.call('ZADD', tickets, now + tttl, id)
  else
    lostTickets[#lostTickets + 1] = id
  end
end
tidy()
if changed then wake() end
return {now, lostPermits, lostTickets, redis.call('ZCARD', permits), redis.call('ZCARD', queue)}
`;

/**
 * Gives back permits and withdraws tickets (ARGV[5..]; a permit and its ticket share an id), then wakes
 * the line if that freed room. Returns {now, permits removed, held, waiting}.
 */
export const RELEASE_SCRIPT = `${PRELUDE}
local removed = 0
for i = 5, #ARGV do
  removed = removed + redis.call('ZREM', permits, ARGV[i])
  if redis.call('ZREM', queue, ARGV[i]) == 1 then changed = true end
  redis.call('ZREM', tickets, ARGV[i])
end
tidy()
if changed or removed > 0 then wake() end
return {now, removed, redis.call('ZCARD', permits), redis.call('ZCARD', queue)}
`;

/** The fleet's use of the budget. Returns {now, held, waiting}. */
export const USAGE_SCRIPT = `${PRELUDE}
tidy()
if changed then wake() end
return {now, redis.call('ZCARD', permits), redis.call('ZCARD', queue)}
`;
