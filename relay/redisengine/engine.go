// Package redisengine is the relay's shared state on Redis, for several
// relays serving the same rooms: each room's seq and bounded history (a
// stream), its dedup index, its roster and presence, the pub/sub channel
// every relay with members in the room listens to, and the relays' own
// liveness. relay/server keeps each room's local view (its connections,
// one encoded frame per message) and asks this package for the truth.
//
// # Keys
//
// Every key of a room carries the hash tag {r:ROOM}, so one script touches
// one slot and runs unchanged on Redis Cluster:
//
//	hl:{r:ROOM}:meta     HASH    e epoch, s last seq, pv roster version, lt last timestamp, c created
//	hl:{r:ROOM}:log      STREAM  id <seq>-0; t Redis time, b the message's block (Outgoing.block) (MAXLEN ~ History)
//	hl:{r:ROOM}:ids      ZSET    "member\x1fclient id" -> seq: an outbox resend through any relay gets its original ack
//	hl:{r:ROOM}:members  HASH    member id -> {id, name, fold, shape, avatar, kh, since, addr}
//	hl:{r:ROOM}:keys     HASH    key hash -> member id
//	hl:{r:ROOM}:names    HASH    names.Key -> member id (and :shapes, names.ShapeKey): look-alike names
//	hl:{r:ROOM}:pres     HASH    member id -> {st online, relay, link} or {st away, dl grace end, why}
//	hl:graces            ZSET    "ROOM\x1fmember" -> grace end (ms): what the sweeper ends
//	hl:relays            ZSET    relay id -> last heartbeat (ms)
//	hl:relay:ID:rooms    SET     rooms with members on that relay, to turn them away if it dies
//	hl:rooms             ZSET    room -> last join (ms), for /v1/rooms and the room cap
//	hl.r.ROOM            channel a batch of messages per publish ("M" + netstrings, decodeMessages), roster changes as JSON
//
// Messages are published by one script per batch (dedup, seq, Redis's
// clock, append, publish), so every relay sees one order; roster changes carry a version
// (pv) so a relay that missed one re-reads the roster instead of showing a
// ghost.
//
// # Why rueidis
//
// github.com/redis/rueidis pipelines concurrent commands on shared
// connections by itself (the publish path of a busy relay is many small
// EVALSHAs from many goroutines), runs a script as EVALSHA with an EVAL
// fallback in one call, and gives pub/sub a dedicated connection whose
// hooks report its loss: exactly the three things this package needs.
// go-redis would need a pipeline per caller and a pool sized by hand.
package redisengine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// Config configures an Engine. The zero value of each field is documented.
type Config struct {
	// URL is redis://[user:password@]host:port/db or rediss:// for TLS.
	URL string
	// Password overrides the URL's password ("" keeps it).
	Password string
	// RelayID names this relay in presence and liveness; "" picks a random one.
	RelayID string
	// History is how many messages each room's stream keeps (MAXLEN ~); 0 means 1000.
	History int
	// Logger; nil discards.
	Logger *slog.Logger
	// OnEvents receives the events of the rooms this relay subscribed to,
	// in the order Redis published them: each call one publish's events (a
	// batch of messages, or one roster change).
	OnEvents func(room string, evs []*Event)
	// OnResubscribed is called after the pub/sub link came back: events
	// may have been lost meanwhile, so every room must catch up.
	OnResubscribed func()
	// Observe, if set, is told each round trip's operation, duration and error.
	Observe func(op string, d time.Duration, err error)
}

// Engine is one relay's connection to the shared state. It is safe for
// concurrent use.
type Engine struct {
	cfg     Config
	log     *slog.Logger
	client  rueidis.Client
	relayID string
	history int

	sub *subscriber
}

// Open connects to Redis and starts the pub/sub link.
func Open(ctx context.Context, cfg Config) (*Engine, error) {
	opt, err := rueidis.ParseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("bad --redis-url %q: %w (use redis://host:port/db or rediss:// for TLS)", redactURL(cfg.URL), err)
	}
	if cfg.Password != "" {
		opt.Password = cfg.Password
	}
	// No client-side caching: every read must see the latest write.
	opt.DisableCache = true
	opt.ConnWriteTimeout = 5 * time.Second
	opt.Dialer.Timeout = 3 * time.Second
	client, err := rueidis.NewClient(opt)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to Redis at %s: %w", redactURL(cfg.URL), err)
	}
	e := &Engine{cfg: cfg, log: cfg.Logger, client: client, relayID: cfg.RelayID, history: cfg.History}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.relayID == "" {
		e.relayID = "r" + randomHex(6)
	}
	if e.history <= 0 {
		e.history = 1000
	}
	if err := e.Ping(ctx); err != nil {
		client.Close()
		return nil, fmt.Errorf("cannot reach Redis at %s: %w", redactURL(cfg.URL), err)
	}
	e.sub = newSubscriber(e)
	return e, nil
}

// RelayID is this relay's name in presence and liveness.
func (e *Engine) RelayID() string { return e.relayID }

// Close stops the pub/sub link and closes every connection.
func (e *Engine) Close() {
	e.sub.close()
	e.client.Close()
}

// Ping checks Redis answers.
func (e *Engine) Ping(ctx context.Context) error {
	return e.do(ctx, "ping", e.client.B().Ping().Build()).Error()
}

// Healthy reports whether the pub/sub link is up: without it this relay's
// members would miss the others' messages.
func (e *Engine) Healthy() bool { return e.sub.up() }

func (e *Engine) do(ctx context.Context, op string, cmd rueidis.Completed) rueidis.RedisResult {
	start := time.Now()
	res := e.client.Do(ctx, cmd)
	e.observe(op, start, res.Error())
	return res
}

func (e *Engine) observe(op string, start time.Time, err error) {
	if e.cfg.Observe != nil {
		if rueidis.IsRedisNil(err) {
			err = nil
		}
		e.cfg.Observe(op, time.Since(start), err)
	}
}

func (e *Engine) exec(ctx context.Context, op string, s *rueidis.Lua, keys, args []string) rueidis.RedisResult {
	start := time.Now()
	res := s.Exec(ctx, e.client, keys, args)
	e.observe(op, start, res.Error())
	return res
}

// Persistence is what Redis does to keep writes across its restart.
type Persistence struct {
	AOF   bool   // appendonly yes
	Fsync string // appendfsync: always, everysec or no
	RDB   bool   // save has at least one rule
}

// Volatile reports whether a Redis restart loses everything.
func (p Persistence) Volatile() bool { return !p.AOF && !p.RDB }

// Durable reports whether nothing acknowledged is lost on a Redis restart.
func (p Persistence) Durable() bool { return p.AOF && p.Fsync == "always" }

func (p Persistence) String() string {
	switch {
	case p.AOF:
		return "AOF, appendfsync " + p.Fsync
	case p.RDB:
		return "RDB snapshots only"
	}
	return "none"
}

// Persistence reads the server's persistence settings (CONFIG GET; where
// CONFIG is disabled, INFO persistence tells AOF only).
func (e *Engine) Persistence(ctx context.Context) (Persistence, error) {
	var p Persistence
	res, err := e.do(ctx, "config", e.client.B().ConfigGet().Parameter("appendonly", "appendfsync", "save").Build()).AsStrMap()
	if err == nil {
		p.AOF = res["appendonly"] == "yes"
		p.Fsync = res["appendfsync"]
		p.RDB = strings.TrimSpace(res["save"]) != ""
		return p, nil
	}
	info, ierr := e.do(ctx, "info", e.client.B().Info().Section("persistence").Build()).ToString()
	if ierr != nil {
		return p, fmt.Errorf("cannot read Redis's persistence settings: %w", errors.Join(err, ierr))
	}
	p.AOF = strings.Contains(info, "aof_enabled:1")
	if p.AOF {
		p.Fsync = "unknown"
	}
	return p, nil
}

// roomKeys are one room's keys.
type roomKeys struct {
	meta, log, ids, members, keys, names, shapes, pres, channel string
}

func keysOf(room string) roomKeys {
	p := "hl:{r:" + room + "}:"
	return roomKeys{
		meta: p + "meta", log: p + "log", ids: p + "ids", members: p + "members", keys: p + "keys",
		names: p + "names", shapes: p + "shapes", pres: p + "pres", channel: channelOf(room),
	}
}

const channelPrefix = "hl.r."

func channelOf(room string) string { return channelPrefix + room }

const (
	gracesKey = "hl:graces"
	relaysKey = "hl:relays"
	roomsKey  = "hl:rooms"
	sweepKey  = "hl:sweep"
)

func relayRoomsKey(relay string) string { return "hl:relay:" + relay + ":rooms" }

func graceMember(room, id string) string { return room + "\x1f" + id }

// NewEpoch makes a random epoch (what a room is created with, or rotated to).
func NewEpoch() string { return randomHex(8) }

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// redactURL hides a password in a URL for logs and errors.
func redactURL(u string) string {
	at := strings.LastIndex(u, "@")
	scheme := strings.Index(u, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return u
	}
	return u[:scheme+3] + "***" + u[at:]
}

var errShortReply = errors.New("redis: unexpected script reply")
