"""The global admission order's Lua scripts (see :mod:`hermes_sdk.server.global_order`).

Every script starts with the grant loop and its arguments: KEYS = (slot ledger, tenants with
waiters); ARGV[1..9] = (wait key prefix, fair-share counters key, now in unix seconds,
max_inflight, lease_s, heartbeat key prefix, grant channel prefix, fair 0/1, key TTL seconds);
each script's own arguments follow from ARGV[10].
"""

from __future__ import annotations

from typing import Final

_GRANT_LOOP: Final = """
local function num(x)
  if x == 'inf' or x == '+inf' then return math.huge end
  if x == '-inf' then return -math.huge end
  return tonumber(x)
end
local function grant(slots, tset, wprefix, vtc, now, max, lease_s, hbp, chp, fair, ttl)
  redis.call('ZREMRANGEBYSCORE', slots, '-inf', now)
  local out = {}
  while redis.call('ZCARD', slots) < max do
    local best_t, best_m, best_s, best_c = nil, nil, nil, nil
    for _, t in ipairs(redis.call('SMEMBERS', tset)) do
      local head = redis.call('ZRANGE', wprefix .. t, 0, 0, 'WITHSCORES')
      if #head == 0 then
        redis.call('SREM', tset, t)
      else
        local s = num(head[2])
        local better
        if fair == 1 then
          local c = tonumber(redis.call('HGET', vtc, t) or '0')
          better = best_t == nil or c < best_c or (c == best_c and t < best_t)
          if better then best_c = c end
        else
          better = best_t == nil or s < best_s or (s == best_s and head[1] < best_m)
        end
        if better then best_t, best_m, best_s = t, head[1], s end
      end
    end
    if best_t == nil then break end
    redis.call('ZREM', wprefix .. best_t, best_m)
    if redis.call('ZCARD', wprefix .. best_t) == 0 then redis.call('SREM', tset, best_t) end
    local rep, wid = string.match(best_m, '^%d+|([^|]+)|(.+)$')
    -- a replica is alive while its heartbeat lasts and it listens on its channel (a killed
    -- process's connection is closed at once: PUBLISH reaches nobody, the waiter is dropped)
    if redis.call('EXISTS', hbp .. rep) == 1 and redis.call('PUBLISH', chp .. rep, wid) > 0 then
      redis.call('ZADD', slots, now + lease_s, best_t .. '/' .. wid)
      out[#out + 1] = wid
    end
  end
  redis.call('EXPIRE', slots, ttl)
  return out
end
local slots, tset, wprefix, vtc = KEYS[1], KEYS[2], ARGV[1], ARGV[2]
local now, max, lease_s = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local hbp, chp, fair, ttl = ARGV[6], ARGV[7], tonumber(ARGV[8]), tonumber(ARGV[9])
"""

POKE: Final = (
    _GRANT_LOOP
    + """
return grant(slots, tset, wprefix, vtc, now, max, lease_s, hbp, chp, fair, ttl)
"""
)

ENQUEUE: Final = (
    _GRANT_LOOP
    + """
local tenant, rank, replica, wid = ARGV[10], ARGV[11], ARGV[12], ARGV[13]
redis.call('SET', hbp .. replica, '1', 'PX', ARGV[14])
redis.call('ZREMRANGEBYSCORE', slots, '-inf', now)
if redis.call('SCARD', tset) == 0 and redis.call('ZCARD', slots) < max then
  redis.call('ZADD', slots, now + lease_s, tenant .. '/' .. wid)
  redis.call('EXPIRE', slots, ttl)
  return {''}
end
if rank == '' then return {'?'} end
if fair == 1 and redis.call('SISMEMBER', tset, tenant) == 0 then
  local floor = nil
  for _, t in ipairs(redis.call('SMEMBERS', tset)) do
    local c = tonumber(redis.call('HGET', vtc, t) or '0')
    if floor == nil or c < floor then floor = c end
  end
  if floor == nil then
    for _, v in ipairs(redis.call('HVALS', vtc)) do
      local c = tonumber(v)
      if floor == nil or c > floor then floor = c end
    end
  end
  local own = tonumber(redis.call('HGET', vtc, tenant) or '0')
  if floor ~= nil and floor > own then redis.call('HSET', vtc, tenant, tostring(floor)) end
end
local seq = redis.call('INCR', ARGV[15])
local member = string.format('%015d', seq) .. '|' .. replica .. '|' .. wid
redis.call('ZADD', wprefix .. tenant, rank, member)
redis.call('SADD', tset, tenant)
local out = grant(slots, tset, wprefix, vtc, now, max, lease_s, hbp, chp, fair, ttl)
table.insert(out, 1, member)
return out
"""
)

RELEASE: Final = (
    _GRANT_LOOP
    + """
local removed = redis.call('ZREM', slots, ARGV[10])
local charge = tonumber(ARGV[12])
if charge > 0 then redis.call('HINCRBYFLOAT', vtc, ARGV[11], ARGV[12]) end
local out = grant(slots, tset, wprefix, vtc, now, max, lease_s, hbp, chp, fair, ttl)
table.insert(out, 1, tostring(removed))
return out
"""
)

ABANDON: Final = (
    _GRANT_LOOP
    + """
if redis.call('ZREM', wprefix .. ARGV[10], ARGV[11]) == 1 then return {'waiting'} end
if redis.call('ZREM', slots, ARGV[12]) == 0 then return {'gone'} end
local out = grant(slots, tset, wprefix, vtc, now, max, lease_s, hbp, chp, fair, ttl)
table.insert(out, 1, 'granted')
return out
"""
)
