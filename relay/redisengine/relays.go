package redisengine

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// Heartbeat tells the other relays this one is alive and which rooms it
// has members in (again, in case a sweeper took it for dead meanwhile).
func (e *Engine) Heartbeat(ctx context.Context, rooms []string) error {
	start := time.Now()
	err := heartbeatScript.Exec(ctx, e.client, []string{relaysKey}, []string{e.relayID}).Error()
	if err == nil && len(rooms) > 0 {
		err = e.client.Do(ctx, e.client.B().Sadd().Key(relayRoomsKey(e.relayID)).Member(rooms...).Build()).Error()
	}
	e.observe("heartbeat", start, err)
	return err
}

// heartbeatScript stamps a relay's heartbeat with Redis's clock, the one
// the sweep compares it with. KEYS relays; ARGV relay.
var heartbeatScript = rueidis.NewLuaScript(`
local t = redis.call('TIME')
redis.call('ZADD', KEYS[1], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), ARGV[1])
return 0
`)

// Online sets a member online again on link after a sweeper turned it away
// while its connection here was alive (this relay's heartbeat was late).
func (e *Engine) Online(ctx context.Context, room, id, link string) (bool, error) {
	k := keysOf(room)
	n, err := e.exec(ctx, "online", onlineScript, []string{k.meta, k.members, k.pres},
		[]string{id, e.relayID, link, k.channel}).AsInt64()
	return n == 1, err
}

// onlineScript: KEYS meta members pres; ARGV id relay link channel.
var onlineScript = rueidis.NewLuaScript(`
local rec = redis.call('HGET', KEYS[2], ARGV[1])
if not rec then return 0 end
local p = redis.call('HGET', KEYS[3], ARGV[1])
if p then
  p = cjson.decode(p)
  if p.st == 'online' then return 0 end
end
rec = cjson.decode(rec)
redis.call('HSET', KEYS[3], ARGV[1], cjson.encode({st = 'online', relay = ARGV[2], link = ARGV[3]}))
local pv = redis.call('HINCRBY', KEYS[1], 'pv', 1)
redis.call('PUBLISH', ARGV[4], cjson.encode({k = 'p', pv = pv, id = ARGV[1], n = rec.name, a = rec.avatar,
  since = rec.since, st = 'online', relay = ARGV[2], link = ARGV[3], away = true}))
return 1
`)

// SweepConfig is what a sweep needs to know.
type SweepConfig struct {
	Grace     time.Duration // how long a member of a dead relay stays away before it leaves
	DeadAfter time.Duration // a relay whose heartbeat is older than this is dead
	// SkipDeadRelays leaves the dead-relay check out: the sweeping relay
	// was itself cut off from Redis lately, so the others' heartbeats may
	// be old for the same reason (Redis paused, the network split).
	SkipDeadRelays bool
}

// Sweep does, at most once per second across all relays (a lock in Redis):
// turns away the members of dead relays, and removes the away members
// whose grace has ended (reason as they went away). It returns how many
// members it turned away and removed.
func (e *Engine) Sweep(ctx context.Context, cfg SweepConfig) (away, left int, err error) {
	ok, err := e.do(ctx, "sweep_lock", e.client.B().Set().Key(sweepKey).Value(e.relayID).Nx().PxMilliseconds(900).Build()).AsBool()
	if err != nil && !rueidis.IsRedisNil(err) {
		return 0, 0, err
	}
	if !ok {
		return 0, 0, nil // another relay sweeps this second
	}
	nowRes, err := e.do(ctx, "time", e.client.B().Time().Build()).AsStrSlice()
	if err != nil || len(nowRes) != 2 {
		return 0, 0, errors.Join(err, errShortReply)
	}
	sec, _ := strconv.ParseInt(nowRes[0], 10, 64)
	usec, _ := strconv.ParseInt(nowRes[1], 10, 64)
	now := sec*1000 + usec/1000

	var dead []string
	if !cfg.SkipDeadRelays {
		dead, err = e.do(ctx, "sweep", e.client.B().Zrangebyscore().Key(relaysKey).Min("-inf").
			Max(strconv.FormatInt(now-cfg.DeadAfter.Milliseconds(), 10)).Build()).AsStrSlice()
		if err != nil {
			return 0, 0, err
		}
	}
	for _, relay := range dead {
		if relay == e.relayID {
			continue // alive: this is it
		}
		n, err := e.forgetRelay(ctx, relay, cfg.Grace)
		away += n
		if err != nil {
			return away, left, err
		}
		e.log.Warn("a relay stopped sending heartbeats; its members are away until they come back", "relay", relay, "members", n)
	}

	due, err := e.do(ctx, "sweep", e.client.B().Zrangebyscore().Key(gracesKey).Min("-inf").
		Max(strconv.FormatInt(now, 10)).Limit(0, 1000).Build()).AsStrSlice()
	if err != nil {
		return away, left, err
	}
	for _, entry := range due {
		room, id, ok := strings.Cut(entry, "\x1f")
		if !ok {
			continue
		}
		gone, err := e.leave(ctx, room, id, "", "expire", "timeout")
		if err != nil {
			return away, left, err
		}
		if gone {
			left++
		}
		// Remove the entry only if nobody set a new grace meanwhile.
		if err := e.exec(ctx, "sweep", dropGraceScript, []string{gracesKey}, []string{entry, strconv.FormatInt(now, 10)}).Error(); err != nil {
			return away, left, err
		}
	}
	return away, left, nil
}

// dropGraceScript: KEYS graces; ARGV entry now.
var dropGraceScript = rueidis.NewLuaScript(`
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if s and tonumber(s) <= tonumber(ARGV[2]) then redis.call('ZREM', KEYS[1], ARGV[1]) end
return 0
`)

// forgetRelay turns away the members of a relay that is gone and removes
// its liveness entry.
func (e *Engine) forgetRelay(ctx context.Context, relay string, grace time.Duration) (int, error) {
	rooms, err := e.do(ctx, "sweep", e.client.B().Smembers().Key(relayRoomsKey(relay)).Build()).AsStrSlice()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, room := range rooms {
		k, err := e.relayDown(ctx, room, relay, grace)
		n += k
		if err != nil {
			return n, err
		}
	}
	for _, r := range e.client.DoMulti(ctx,
		e.client.B().Del().Key(relayRoomsKey(relay)).Build(),
		e.client.B().Zrem().Key(relaysKey).Member(relay).Build()) {
		err = errors.Join(err, r.Error())
	}
	return n, err
}

// Leave is a relay's graceful exit: its members turn away (they come back
// through another relay, without a leave) and it stops being a relay.
func (e *Engine) Leave(ctx context.Context, grace time.Duration) error {
	_, err := e.forgetRelay(ctx, e.relayID, grace)
	return err
}

func avatarKey(hex string) string { return "hl:avatar:" + hex }

// PutAvatar shares an uploaded picture (already checked and re-encoded)
// with every relay. Pictures are content-addressed, so a second put of the
// same one changes nothing.
func (e *Engine) PutAvatar(ctx context.Context, hex string, png []byte) error {
	return e.do(ctx, "avatar", e.client.B().Set().Key(avatarKey(hex)).Value(rueidis.BinaryString(png)).Nx().Build()).Error()
}

// Avatar returns a shared picture, or nil if no relay stored it.
func (e *Engine) Avatar(ctx context.Context, hex string) ([]byte, error) {
	b, err := e.do(ctx, "avatar", e.client.B().Get().Key(avatarKey(hex)).Build()).AsBytes()
	if rueidis.IsRedisNil(err) {
		return nil, nil
	}
	return b, err
}

// Rooms lists the rooms Redis holds, most recently joined first, up to limit.
func (e *Engine) Rooms(ctx context.Context, limit int) ([]string, error) {
	return e.do(ctx, "rooms", e.client.B().Zrevrange().Key(roomsKey).Start(0).Stop(int64(limit-1)).Build()).AsStrSlice()
}

// RoomCount is how many rooms Redis holds.
func (e *Engine) RoomCount(ctx context.Context) (int64, error) {
	return e.do(ctx, "rooms", e.client.B().Zcard().Key(roomsKey).Build()).AsInt64()
}
