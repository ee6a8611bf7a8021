#!lua name=didgate
--[[
didgate route table writers as a Redis Function library (Redis >= 7).

didgate loads this library with FUNCTION LOAD REPLACE when it connects (and `didgate routes …`
does too). Other provisioning systems can then write routes with the same atomicity as didgate's
own MULTI/EXEC: the hash and its change-stream entry are written in one atomic step.

  FCALL didgate_set 2 <prefix>routes <prefix>changes KEY JSON [MAXLEN]  -> stream id
  FCALL didgate_del 2 <prefix>routes <prefix>changes KEY [MAXLEN]       -> stream id
  FCALL didgate_reload 2 <prefix>routes <prefix>changes [FORCE] [MAXLEN] -> stream id
  FCALL_RO didgate_version 0                                            -> library version

KEY is "*", "+<1-15 digits>" or "+<1-15 digits>*". JSON must decode to an object; the full
validation of the entry is done by every didgate edge, which skips (and counts) invalid entries.
MAXLEN (default 1000000) trims the stream approximately (XADD MAXLEN ~).
With Redis Cluster both keys must share a hash tag: use a prefix like "{didgate}:".
]]

local VERSION = '1'
local DEFAULT_MAXLEN = '1000000'

local function check_key(key)
  if type(key) ~= 'string' then
    return false
  end
  if key == '*' then
    return true
  end
  local digits = string.match(key, '^%+(%d+)%*?$')
  return digits ~= nil and #digits >= 1 and #digits <= 15
end

local function maxlen_of(v)
  if v == nil or v == '' then
    return DEFAULT_MAXLEN
  end
  local n = tonumber(v)
  if n == nil or n < 1 or n ~= math.floor(n) then
    return redis.error_reply('ERR didgate: MAXLEN must be a positive integer')
  end
  return tostring(n)
end

local function check_keys(keys)
  if #keys ~= 2 then
    return redis.error_reply('ERR didgate: needs 2 keys: <prefix>routes <prefix>changes')
  end
  return nil
end

local function route_set(keys, args)
  local bad = check_keys(keys)
  if bad then return bad end
  local key, json = args[1], args[2]
  if not check_key(key) then
    return redis.error_reply('ERR didgate: invalid route key (use "*", "+<digits>" or "+<digits>*", 1-15 digits)')
  end
  if type(json) ~= 'string' then
    return redis.error_reply('ERR didgate: missing route JSON')
  end
  local ok, decoded = pcall(cjson.decode, json)
  if not ok or type(decoded) ~= 'table' or not string.match(json, '^%s*{') then
    return redis.error_reply('ERR didgate: route must be a JSON object')
  end
  local maxlen = maxlen_of(args[3])
  if type(maxlen) == 'table' then return maxlen end
  redis.call('HSET', keys[1], key, json)
  return redis.call('XADD', keys[2], 'MAXLEN', '~', maxlen, '*', 'op', 'set', 'key', key, 'route', json)
end

local function route_del(keys, args)
  local bad = check_keys(keys)
  if bad then return bad end
  local key = args[1]
  if not check_key(key) then
    return redis.error_reply('ERR didgate: invalid route key')
  end
  local maxlen = maxlen_of(args[2])
  if type(maxlen) == 'table' then return maxlen end
  redis.call('HDEL', keys[1], key)
  return redis.call('XADD', keys[2], 'MAXLEN', '~', maxlen, '*', 'op', 'del', 'key', key)
end

local function route_reload(keys, args)
  local bad = check_keys(keys)
  if bad then return bad end
  local force = '0'
  if args[1] == '1' or args[1] == 'force' or args[1] == 'FORCE' then
    force = '1'
  end
  local maxlen = maxlen_of(args[2])
  if type(maxlen) == 'table' then return maxlen end
  return redis.call('XADD', keys[2], 'MAXLEN', '~', maxlen, '*', 'op', 'reload', 'force', force)
end

redis.register_function('didgate_set', route_set)
redis.register_function('didgate_del', route_del)
redis.register_function('didgate_reload', route_reload)
redis.register_function{
  function_name = 'didgate_version',
  callback = function() return VERSION end,
  flags = { 'no-writes' },
}
