-- auth-redis's revocation list, one step per call: ARGV[1] names it (token, user, grant,
-- ask). Times are the caller's clock in milliseconds; a revocation never moves back, and
-- TTLs only collect what can no longer refuse anything.
--
-- KEYS: 1 the token's key, 2 the user's, 3 the grant's (a placeholder that is never
-- written when the step has none), 4 the log every instance's replica reads.
-- ARGV: 1 step, 2 now, 3 the time (a token's expiry; a user's or grant's revocation),
-- 4 how long a user's or grant's revocation is kept, 5 the token's iat ('' if none),
-- 6 the name revoked (the token's id, the user, the grant).

local op = ARGV[1]
local now = tonumber(ARGV[2])

local function fmt(x)
  return string.format('%d', x)
end

-- Appends the revocation to the log, which keeps what can still refuse a token: entries
-- older than `keep_for` (the longest token lifetime) go.
local function log(kind, t)
  local server = redis.call('TIME')
  local oldest = tonumber(server[1]) * 1000 - tonumber(ARGV[4])
  redis.call('XADD', KEYS[4], 'MINID', '~', fmt(math.max(oldest, 0)), '*',
    'k', kind, 'n', ARGV[6], 't', fmt(t))
end

-- Sets key to t unless it holds a later time already; expires after `keep` ms.
local function raise(key, t, keep, kind)
  local cur = tonumber(redis.call('GET', key))
  if cur == nil or cur < t then
    redis.call('SET', key, fmt(t), 'PX', fmt(math.max(keep, 1000)))
    log(kind, t)
  end
  return 0
end

if op == 'token' then
  local expires = tonumber(ARGV[3])
  return raise(KEYS[1], expires, expires - now, 'token')
end

if op == 'user' then
  local at = tonumber(ARGV[3])
  return raise(KEYS[2], at, tonumber(ARGV[4]) + math.max(at - now, 0), 'user')
end

if op == 'grant' then
  local at = tonumber(ARGV[3])
  return raise(KEYS[3], at, tonumber(ARGV[4]) + math.max(at - now, 0), 'grant')
end

if op == 'ask' then
  if redis.call('EXISTS', KEYS[1]) == 1 then
    return 1
  end
  local iat = tonumber(ARGV[5])
  for i = 2, 3 do
    local at = tonumber(redis.call('GET', KEYS[i]))
    if at ~= nil and (iat == nil or iat <= at) then
      return 1
    end
  end
  return 0
end

return redis.error_reply('auth-redis revocations: unknown step ' .. tostring(op))
