-- One step of auth-redis's rate limiter, atomically: ARGV[1] names the step (admit,
-- acquire, release, leave, end). The semantics are auth-core's MemoryRateLimiter's (the
-- table in auth-core/src/rate_limit/mod.rs); every time is the caller's clock in
-- milliseconds (ARGV[2]), and every deadline is kept in a value, so tests drive time and
-- TTLs only collect garbage.
--
-- KEYS (all under one hash tag):
--  1 the address's counter (hash)        2 the address's running attempts (zset id -> lease)
--  3 the user's known networks (hash net -> last success)
--  4 the user's counter at unknown networks  5 its verification slots  6 its waiters
--  7 the user's counter at this network      8 its verification slots  9 its waiters
-- A counter hash holds f (recent failure times, comma-separated), n (lockouts so far),
-- b (blocked until) and l (last failure).

local op = ARGV[1]
local now = tonumber(ARGV[2])
local id = ARGV[3]
local user_failures = tonumber(ARGV[4])
local address_failures = tonumber(ARGV[5])
local window = tonumber(ARGV[6])
local lockout = tonumber(ARGV[7])
local max_lockout = tonumber(ARGV[8])
local max_running = tonumber(ARGV[9])
local max_waiting = tonumber(ARGV[10])
local known_for = tonumber(ARGV[11])
local max_known = tonumber(ARGV[12])
local slot_lease = tonumber(ARGV[13])
local attempt_lease = tonumber(ARGV[14])
local has_addr = ARGV[15] == '1'
local has_user = ARGV[16] == '1'
local net = ARGV[17]
local scope_known = ARGV[18] == '1'
local extra = ARGV[19]
local extra2 = tonumber(ARGV[20])

local function load(key)
  local v = redis.call('HMGET', key, 'f', 'n', 'b', 'l')
  local c = { f = {}, n = tonumber(v[2]) or 0, b = tonumber(v[3]), l = tonumber(v[4]) }
  if v[1] then
    for t in string.gmatch(v[1], '%d+') do
      c.f[#c.f + 1] = tonumber(t)
    end
  end
  return c
end

local function blocked(c)
  if c.b and c.b > now then
    return c.b - now
  end
  return nil
end

local function has_history(c)
  return #c.f > 0 or c.b ~= nil
end

local function recent(c)
  local n = 0
  for _, t in ipairs(c.f) do
    if now - t < window then
      n = n + 1
    end
  end
  return n
end

local function quiet_since(c)
  if c.l and c.b then
    return math.max(c.l, c.b)
  end
  return c.l or c.b
end

local function fail(c, limit)
  local q = quiet_since(c)
  if q and now - q > max_lockout then
    c.n = 0
  end
  c.l = now
  local kept = {}
  for _, t in ipairs(c.f) do
    if now - t < window then
      kept[#kept + 1] = t
    end
  end
  kept[#kept + 1] = now
  c.f = kept
  if #kept >= limit then
    local lock = math.min(lockout * (2 ^ math.min(c.n, 60)), max_lockout)
    c.b = now + lock
    c.n = c.n + 1
    c.f = {}
  end
end

local function fmt(x)
  return string.format('%d', x)
end

-- Writes the counter back, or deletes it once it holds nothing worth remembering; it
-- expires when it would be stale (quiet for longer than max(window, max_lockout)).
local function save(key, c)
  local q = quiet_since(c)
  if #c.f == 0 and c.b == nil and q == nil then
    redis.call('DEL', key)
    return
  end
  local f = {}
  for i, t in ipairs(c.f) do
    f[i] = fmt(t)
  end
  redis.call('HSET', key, 'f', table.concat(f, ','), 'n', fmt(c.n),
    'b', c.b and fmt(c.b) or '', 'l', c.l and fmt(c.l) or '')
  local keep = math.max(c.b or 0, q or 0) + math.max(window, max_lockout) - now + 1000
  redis.call('PEXPIRE', key, fmt(math.max(keep, 1000)))
end

local function scope_keys(known)
  if known then
    return KEYS[7], KEYS[8], KEYS[9]
  end
  return KEYS[4], KEYS[5], KEYS[6]
end

-- The count of a set of leases, purged of expired ones only when it would refuse: an
-- expired lease is a process that died, and the purge is the slow part.
local function live(set, cap)
  local n = redis.call('ZCARD', set)
  if n >= cap then
    redis.call('ZREMRANGEBYSCORE', set, '-inf', fmt(now))
    n = redis.call('ZCARD', set)
  end
  return n
end

local function slot(c, slots)
  local r = 0
  if has_history(c) then
    r = recent(c)
  end
  if r + live(slots, user_failures - r) < user_failures then
    redis.call('ZADD', slots, fmt(now + slot_lease), id)
    redis.call('PEXPIRE', slots, fmt(slot_lease))
    return true
  end
  return false
end

-- Replies: {0, known, slot} admitted; {1, ms left, scope} locked (scope 0 user at unknown
-- networks, 1 address, 2 user at this network); {2, what} busy (0 address, 1 user);
-- {3} queued, ask again; {0} done.
local function locked(left, known)
  if known then
    return { 1, left, 2 }
  end
  return { 1, left, 0 }
end

-- Every gateway on one store should count by the same limits: each writes its own and
-- learns those of the gateway that wrote before it (KEYS[1] is the settings' key).
if op == 'limits' then
  local mine = table.concat({ ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9],
    ARGV[10], ARGV[11], ARGV[12], ARGV[13], ARGV[14] }, ',')
  local before = redis.call('GET', KEYS[1])
  redis.call('SET', KEYS[1], mine)
  if before then
    return before
  end
  return mine
end

if op == 'admit' then
  if has_addr then
    local c = load(KEYS[1])
    local left = has_history(c) and blocked(c)
    if left then
      return { 1, left, 1 }
    end
    if live(KEYS[2], max_running) >= max_running then
      return { 2, 0 }
    end
    redis.call('ZADD', KEYS[2], fmt(now + attempt_lease), id)
    redis.call('PEXPIRE', KEYS[2], fmt(attempt_lease))
  end
  if not has_user then
    return { 0, 0, 0 }
  end
  local known = false
  if net ~= '' then
    local last = tonumber(redis.call('HGET', KEYS[3], net))
    known = last ~= nil and now - last < known_for
  end
  local ck, sk = scope_keys(known)
  local c = load(ck)
  local left = has_history(c) and blocked(c)
  if left then
    if has_addr then
      redis.call('ZREM', KEYS[2], id)
    end
    return locked(left, known)
  end
  local got = 0
  if extra == '1' and slot(c, sk) then
    got = 1
  end
  return { 0, known and 1 or 0, got }
end

if op == 'acquire' then
  local ck, sk, wk = scope_keys(scope_known)
  local c = load(ck)
  local left = has_history(c) and blocked(c)
  if left then
    redis.call('ZREM', wk, id)
    return locked(left, scope_known)
  end
  if slot(c, sk) then
    redis.call('ZREM', wk, id)
    return { 0 }
  end
  if extra ~= '1' then
    return { 2, 1 }
  end
  local until_ms = fmt(now + extra2)
  if redis.call('ZSCORE', wk, id) then
    redis.call('ZADD', wk, until_ms, id)
    return { 3 }
  end
  if live(wk, max_waiting) >= max_waiting then
    return { 2, 1 }
  end
  redis.call('ZADD', wk, until_ms, id)
  redis.call('PEXPIRE', wk, fmt(math.max(extra2, 1000)))
  return { 3 }
end

if op == 'release' then
  local _, sk = scope_keys(scope_known)
  redis.call('ZREM', sk, id)
  return { 0 }
end

if op == 'leave' then
  local _, _, wk = scope_keys(scope_known)
  redis.call('ZREM', wk, id)
  return { 0 }
end

if op == 'end' then
  -- extra: the ending; extra2: when the attempt was admitted (a success's network is
  -- remembered from then).
  local counts_address = extra == 'failed' or extra == 'abandoned' or extra == 'malformed'
  if has_user then
    local ck, sk, wk = scope_keys(scope_known)
    redis.call('ZREM', sk, id)
    redis.call('ZREM', wk, id)
    if extra == 'succeeded' then
      redis.call('DEL', ck)
      -- A network already known only moves its time; a new one may push the oldest out.
      if net ~= '' then
        if redis.call('HSET', KEYS[3], net, fmt(extra2)) == 1 then
          local all = redis.call('HGETALL', KEYS[3])
          local nets = {}
          for i = 1, #all, 2 do
            local last = tonumber(all[i + 1])
            if last == nil or extra2 - last >= known_for then
              redis.call('HDEL', KEYS[3], all[i])
            else
              nets[#nets + 1] = { all[i], last }
            end
          end
          table.sort(nets, function(a, b) return a[2] < b[2] end)
          for i = 1, #nets - math.max(max_known, 1) do
            redis.call('HDEL', KEYS[3], nets[i][1])
          end
        end
        redis.call('PEXPIRE', KEYS[3], fmt(known_for + 1000))
      end
    elseif extra == 'failed' then
      local c = load(ck)
      fail(c, user_failures)
      save(ck, c)
    end
  end
  if has_addr then
    redis.call('ZREM', KEYS[2], id)
    if counts_address then
      local c = load(KEYS[1])
      fail(c, address_failures)
      save(KEYS[1], c)
    end
  end
  return { 0 }
end

return redis.error_reply('auth-redis limiter: unknown step ' .. tostring(op))
