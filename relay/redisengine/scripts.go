package redisengine

import "github.com/redis/rueidis"

// Every script touches the keys of one room only (one hash tag), so it runs
// unchanged on Redis Cluster. Times come from the Redis server's clock
// (TIME), one clock for every relay; scripts are replicated by their
// effects, so a non-deterministic TIME is safe. Members and presence are
// JSON (cjson), the relays' only shared encoding besides the stream fields.
//
// Every script is safe to run twice (publish dedups by client id, join finds
// the member by its key, the others check the link or state they change),
// so they are retryable: a connection lost mid-call (Redis restarting) is
// retried on a new one instead of failing the client.

// luaCommon is prepended to the scripts that need it.
const luaCommon = `
local function nowms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function ensure(meta, epoch)
  local e = redis.call('HGET', meta, 'e')
  if e then return e, 0 end
  redis.call('HSET', meta, 'e', epoch, 's', 0, 'pv', 0, 'c', nowms())
  return epoch, 1
end
`

// publishScript publishes a batch of messages in order: each is a
// duplicate of one published before (by member and client id: its seq and
// timestamp are returned) or gets the next seq, the batch's timestamp, a
// place in the bounded log and in the id index. The new ones go out as one
// event on the room's channel, so a batch costs one round trip, one
// publish, and one wake-up per relay. Returns {duplicate, seq, ts, epoch}
// per message.
//
// Redis runs every script alone, so this one is kept lean: the relay
// encodes each message's fields (a block of netstrings, see
// decodeMessages) and its id key, the log keeps the block as it came, and
// the new messages of a batch have consecutive seqs and one timestamp,
// which the event says once.
//
// KEYS: meta log ids
// ARGV: newEpoch maxlen channel, then per message: idKey block
var publishScript = rueidis.NewLuaScriptRetryable(luaCommon + `
local maxlen = tonumber(ARGV[2])
local m = redis.call('HMGET', KEYS[1], 'e', 's', 'lt')
local e = m[1]
if not e then e = ensure(KEYS[1], ARGV[1]) end
local seq = tonumber(m[2] or '0')
local first = seq + 1
local idKeys = {}
for i = 4, #ARGV, 2 do idKeys[#idKeys + 1] = ARGV[i] end
local known = redis.call('ZMSCORE', KEYS[3], unpack(idKeys))
local out, blocks, adds, here = {}, {}, {}, {}
local ts, tss
for n, key in ipairs(idKeys) do
  local dup = known[n] and tonumber(known[n]) or here[key]
  if dup then
    local dts = ts or 0
    if not here[key] then
      local ent = redis.call('XRANGE', KEYS[2], dup .. '-0', dup .. '-0')
      dts = 0
      if #ent > 0 then
        local f = ent[1][2]
        for j = 1, #f, 2 do if f[j] == 't' then dts = tonumber(f[j + 1]) end end
      end
    end
    out[n] = {1, dup, dts, e}
  else
    seq = seq + 1
    if not tss then
      ts = math.max(nowms(), tonumber(m[3] or '0'))
      tss = tostring(ts)
    end
    local block = ARGV[3 + 2 * n]
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, seq .. '-0', 't', tss, 'b', block)
    blocks[#blocks + 1] = block
    adds[#adds + 1] = seq
    adds[#adds + 1] = key
    here[key] = seq
    out[n] = {0, seq, ts, e}
  end
end
if #blocks > 0 then
  redis.call('ZADD', KEYS[3], unpack(adds))
  redis.call('HSET', KEYS[1], 's', seq, 'lt', tss)
  if math.floor((first - 1) / 64) ~= math.floor(seq / 64) then
    redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. (seq - maxlen))
  end
  local firsts = tostring(first)
  redis.call('PUBLISH', ARGV[3], 'M' .. #e .. ':' .. e .. #tss .. ':' .. tss .. #firsts .. ':' .. firsts .. table.concat(blocks))
end
return out
`)

// joinScript admits a member by key hash: a returning member (any relay)
// or a new one, refusing a name held by another member (both look-alike
// keys) and a full room. Returns {status, detail, event JSON, epoch, seq,
// created}; status "ok", "taken" (detail: the holder's name), "full" or
// "full_ip".
//
// KEYS: meta members keys names shapes pres
// ARGV: newEpoch keyHash name fold shape avatar addr relay link newID maxMembers maxPerIP channel
var joinScript = rueidis.NewLuaScriptRetryable(luaCommon + `
local e, created = ensure(KEYS[1], ARGV[1])
local id = redis.call('HGET', KEYS[3], ARGV[2])
local other = redis.call('HGET', KEYS[4], ARGV[4])
if (not other) or other == id then other = redis.call('HGET', KEYS[5], ARGV[5]) end
if other and other ~= id then
  local o = redis.call('HGET', KEYS[2], other)
  if o then return {'taken', cjson.decode(o).name, '', e, 0, created} end
end
local now = nowms()
local rec, kind, changed, wasAway, prev, prevRelay = nil, 'j', false, false, '', ''
if id then
  rec = cjson.decode(redis.call('HGET', KEYS[2], id))
  if rec.name ~= ARGV[3] or rec.avatar ~= ARGV[6] then
    if redis.call('HGET', KEYS[4], rec.fold) == id then redis.call('HDEL', KEYS[4], rec.fold) end
    if redis.call('HGET', KEYS[5], rec.shape) == id then redis.call('HDEL', KEYS[5], rec.shape) end
    rec.name, rec.fold, rec.shape, rec.avatar = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
    redis.call('HSET', KEYS[4], ARGV[4], id)
    redis.call('HSET', KEYS[5], ARGV[5], id)
    changed = true
  end
  local p = redis.call('HGET', KEYS[6], id)
  if p then
    p = cjson.decode(p)
    wasAway = p.st ~= 'online'
    if not wasAway then prev, prevRelay = p.link, p.relay end
  else
    wasAway = true
  end
  kind = 'p'
else
  local n = redis.call('HLEN', KEYS[2])
  if n >= tonumber(ARGV[11]) then return {'full', tostring(n), '', e, 0, created} end
  local perIP = tonumber(ARGV[12])
  if perIP > 0 then
    local same = 0
    for _, v in ipairs(redis.call('HVALS', KEYS[2])) do
      if cjson.decode(v).addr == ARGV[7] then same = same + 1 end
    end
    if same >= perIP then return {'full_ip', tostring(same), '', e, 0, created} end
  end
  id = ARGV[10]
  rec = {id = id, name = ARGV[3], fold = ARGV[4], shape = ARGV[5], avatar = ARGV[6], kh = ARGV[2], since = now}
  redis.call('HSET', KEYS[3], ARGV[2], id)
  redis.call('HSET', KEYS[4], ARGV[4], id)
  redis.call('HSET', KEYS[5], ARGV[5], id)
end
rec.addr = ARGV[7]
redis.call('HSET', KEYS[2], id, cjson.encode(rec))
redis.call('HSET', KEYS[6], id, cjson.encode({st = 'online', relay = ARGV[8], link = ARGV[9]}))
local pv = redis.call('HINCRBY', KEYS[1], 'pv', 1)
local ev = cjson.encode({k = kind, pv = pv, id = id, n = rec.name, a = rec.avatar, since = rec.since,
  st = 'online', relay = ARGV[8], link = ARGV[9], prev = prev, prevRelay = prevRelay,
  away = wasAway, ch = changed})
redis.call('PUBLISH', ARGV[13], ev)
local s = tonumber(redis.call('HGET', KEYS[1], 's'))
return {'ok', '', ev, e, s, created}
`)

// awayScript turns a member away if link is still its link (a newer
// connection, on any relay, has not taken over). Returns the deadline
// (ms) when its grace ends, or 0 if nothing changed.
//
// KEYS: meta members pres
// ARGV: id link graceMs reason channel
var awayScript = rueidis.NewLuaScriptRetryable(luaCommon + `
local p = redis.call('HGET', KEYS[3], ARGV[1])
if not p then return 0 end
p = cjson.decode(p)
if p.st ~= 'online' or p.link ~= ARGV[2] then return 0 end
local rec = redis.call('HGET', KEYS[2], ARGV[1])
if not rec then return 0 end
rec = cjson.decode(rec)
local dl = nowms() + tonumber(ARGV[3])
redis.call('HSET', KEYS[3], ARGV[1], cjson.encode({st = 'away', dl = dl, why = ARGV[4]}))
local pv = redis.call('HINCRBY', KEYS[1], 'pv', 1)
redis.call('PUBLISH', ARGV[5], cjson.encode({k = 'p', pv = pv, id = ARGV[1], n = rec.name, a = rec.avatar,
  since = rec.since, st = 'away', prev = ARGV[2]}))
return dl
`)

// leaveScript removes a member: mode "bye" if link is its online link,
// mode "expire" if it is away and its grace has ended. Returns 1 if it left.
//
// KEYS: meta members keys names shapes pres
// ARGV: id link mode reason channel
var leaveScript = rueidis.NewLuaScriptRetryable(luaCommon + `
local p = redis.call('HGET', KEYS[6], ARGV[1])
local rec = redis.call('HGET', KEYS[2], ARGV[1])
if not rec then
  redis.call('HDEL', KEYS[6], ARGV[1])
  return 0
end
rec = cjson.decode(rec)
p = p and cjson.decode(p) or {st = 'away', dl = 0, why = 'timeout'}
local reason = ARGV[4]
if ARGV[3] == 'bye' then
  if p.st ~= 'online' or p.link ~= ARGV[2] then return 0 end
else
  if p.st ~= 'away' or tonumber(p.dl) > nowms() then return 0 end
  reason = p.why or reason
end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[6], ARGV[1])
if redis.call('HGET', KEYS[3], rec.kh) == ARGV[1] then redis.call('HDEL', KEYS[3], rec.kh) end
if redis.call('HGET', KEYS[4], rec.fold) == ARGV[1] then redis.call('HDEL', KEYS[4], rec.fold) end
if redis.call('HGET', KEYS[5], rec.shape) == ARGV[1] then redis.call('HDEL', KEYS[5], rec.shape) end
local pv = redis.call('HINCRBY', KEYS[1], 'pv', 1)
redis.call('PUBLISH', ARGV[5], cjson.encode({k = 'l', pv = pv, id = ARGV[1], n = rec.name, a = rec.avatar,
  since = rec.since, st = 'away', why = reason}))
return 1
`)

// relayDownScript turns away every member whose link was on a relay that
// stopped (its heartbeat is stale, or it shut down). Returns the ids and
// deadlines, flattened.
//
// KEYS: meta members pres
// ARGV: relay graceMs reason channel
var relayDownScript = rueidis.NewLuaScriptRetryable(luaCommon + `
local out = {}
local dl = nowms() + tonumber(ARGV[2])
local all = redis.call('HGETALL', KEYS[3])
for i = 1, #all, 2 do
  local id, p = all[i], cjson.decode(all[i + 1])
  if p.st == 'online' and p.relay == ARGV[1] then
    local rec = redis.call('HGET', KEYS[2], id)
    if rec then
      rec = cjson.decode(rec)
      redis.call('HSET', KEYS[3], id, cjson.encode({st = 'away', dl = dl, why = ARGV[3]}))
      local pv = redis.call('HINCRBY', KEYS[1], 'pv', 1)
      redis.call('PUBLISH', ARGV[4], cjson.encode({k = 'p', pv = pv, id = id, n = rec.name, a = rec.avatar,
        since = rec.since, st = 'away', prev = p.link}))
      out[#out + 1] = id
      out[#out + 1] = dl
    end
  end
end
return out
`)

// rosterScript reads a room at one instant: {epoch, seq, pv, members
// (flat HGETALL), presence (flat HGETALL)}. epoch is "" for a room Redis
// does not know.
//
// KEYS: meta members pres
var rosterScript = rueidis.NewLuaScriptReadOnly(`
local m = redis.call('HMGET', KEYS[1], 'e', 's', 'pv')
return {m[1] or '', tonumber(m[2] or '0'), tonumber(m[3] or '0'),
  redis.call('HGETALL', KEYS[2]), redis.call('HGETALL', KEYS[3])}
`)

// rotateScript gives a room a new epoch when its history went backwards
// (Redis lost acknowledged writes): clients then resume with
// recovered=false instead of a silently different history. Only rotates
// if the epoch is still the one the caller saw, so two relays noticing at
// once rotate once. Returns the current epoch.
//
// KEYS: meta
// ARGV: seenEpoch newEpoch
var rotateScript = rueidis.NewLuaScriptRetryable(`
local e = redis.call('HGET', KEYS[1], 'e')
if e and e ~= ARGV[1] then return e end
redis.call('HSET', KEYS[1], 'e', ARGV[2])
if not e then redis.call('HSET', KEYS[1], 's', 0, 'pv', 0) end
return ARGV[2]
`)
