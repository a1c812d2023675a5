// Package metrics holds the relay's Prometheus collectors. Every Metrics value
// has its own registry (never the global one), so that several relays can run
// in one process (tests, the desktop's host mode) without colliding.
package metrics

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Eviction reasons used as the "reason" label of EvictionsTotal.
const (
	EvictHeartbeat    = "heartbeat_timeout" // no frame for the heartbeat timeout (4000)
	EvictSlow         = "slow_consumer"     // send queue overflow (4001)
	EvictReplaced     = "replaced"          // a newer connection of the same member (4002)
	EvictHelloTimeout = "hello_timeout"     // no hello within 10 s (4003)
	EvictTooLarge     = "too_large"         // frame over --max-frame (1009)
	EvictInvalidUTF8  = "invalid_utf8"      // text frame that is not UTF-8 (1007)
	EvictRefused      = "hello_refused"     // hello refused (4004, 4500, 4501, 4503, 4504, 4505)
	EvictShutdown     = "shutdown"          // relay draining (1001)
)

// Kinds of failed authentication (the "kind" label of AuthFailures).
const (
	AuthToken      = "token"       // a wrong relay token in a hello or an avatar upload's bearer header
	AuthAdminToken = "admin_token" // a wrong bearer token on GET /v1/rooms
)

// Where a throttled address was refused (the "at" label of AuthThrottled).
const (
	ThrottledUpgrade = "upgrade" // websocket upgrade, HTTP 429
	ThrottledHello   = "hello"   // hello on an open connection, close 4004
	ThrottledAvatars = "avatars" // POST /v1/avatars, HTTP 429
	ThrottledRooms   = "rooms"   // GET /v1/rooms, HTTP 429
)

// Metrics is the set of collectors the relay updates. The zero value is not
// usable; call New.
type Metrics struct {
	Registry *prometheus.Registry

	Connections       prometheus.Gauge         // open websocket connections
	Rooms             prometheus.Gauge         // rooms held in memory
	FramesIn          *prometheus.CounterVec   // frames received, by type
	FramesOut         *prometheus.CounterVec   // frames queued to clients, by type (a fan-out counts once per recipient)
	MessagesAccepted  prometheus.Counter       // msg frames that got a seq
	Evictions         *prometheus.CounterVec   // connections the relay closed, by reason
	QueueOverflows    prometheus.Counter       // send queues that overflowed
	HeartbeatTimeouts prometheus.Counter       // connections closed for silence
	FanoutDuration    prometheus.Histogram     // time to queue one frame, or one drain's batch, to every member of a room
	StoreCommit       prometheus.Histogram     // time from handing a record to the store until it is durable
	StoreErrors       prometheus.Counter       // failed store writes
	StoreBusy         prometheus.Counter       // messages refused (rate_limited) because the store's queue was full
	HTTPRefused       *prometheus.CounterVec   // upgrade requests refused before the upgrade, by reason (host: any request)
	AvatarUploads     *prometheus.CounterVec   // avatar uploads, by result
	AuthFailures      *prometheus.CounterVec   // wrong credentials presented, by kind
	AuthThrottled     *prometheus.CounterVec   // requests refused while their address sat out an auth backoff, by where
	RedisCalls        *prometheus.HistogramVec // Redis round trips, by operation (Redis mode)
	RedisErrors       *prometheus.CounterVec   // failed Redis round trips, by operation
	RedisGapFills     prometheus.Counter       // rooms that caught up from Redis after missing events
	RedisEpochResets  prometheus.Counter       // rooms given a new epoch because Redis lost acknowledged writes
}

// New creates the collectors and registers them, with the Go runtime and
// process collectors, in a fresh registry.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "heartline_connections",
			Help: "Open websocket connections.",
		}),
		Rooms: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "heartline_rooms",
			Help: "Rooms held in memory (rooms with members or messages in flight).",
		}),
		FramesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "heartline_frames_in_total",
			Help: "Frames received from clients, by frame type (binary and undecodable frames count as bad_frame).",
		}, []string{"type"}),
		FramesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "heartline_frames_out_total",
			Help: "Frames queued to clients, by frame type; a broadcast counts once per recipient.",
		}, []string{"type"}),
		MessagesAccepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "heartline_messages_accepted_total",
			Help: "Messages that were stored and acknowledged.",
		}),
		Evictions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "heartline_evictions_total",
			Help: "Connections closed by the relay, by reason.",
		}, []string{"reason"}),
		QueueOverflows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "heartline_queue_overflows_total",
			Help: "Connections whose send queue overflowed (slow consumers, closed with 4001).",
		}),
		HeartbeatTimeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "heartline_heartbeat_timeouts_total",
			Help: "Connections closed because nothing arrived for the heartbeat timeout (4000).",
		}),
		FanoutDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "heartline_fanout_duration_seconds",
			Help:    "Time to queue one frame, or one drain's batch of messages, to every member of a room.",
			Buckets: prometheus.ExponentialBuckets(1e-6, 4, 10), // 1 µs .. 0.26 s
		}),
		StoreCommit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "heartline_store_commit_seconds",
			Help:    "Time from handing a message to the store until it is durable (group commit included).",
			Buckets: prometheus.ExponentialBuckets(1e-4, 2.5, 12), // 0.1 ms .. 2.4 s
		}),
		StoreErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "heartline_store_errors_total",
			Help: "Store writes that failed (the sender got error internal, no ack).",
		}),
		StoreBusy: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "heartline_store_busy_total",
			Help: "Messages refused with rate_limited because the history store's commit queue was full (the disk is behind).",
		}),
		HTTPRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "heartline_http_refused_total",
			Help: "Websocket upgrade requests refused before the upgrade, by reason (max_conns, max_conns_per_ip, origin, draining, auth_throttled); host counts every request refused for an unknown Host name.",
		}, []string{"reason"}),
		AvatarUploads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "heartline_avatar_uploads_total",
			Help: "Avatar uploads, by result (stored, too_large, bad_image, unauthorized, throttled, rate_limited, busy, error).",
		}, []string{"result"}),
		AuthFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "heartline_auth_failures_total",
			Help: "Wrong credentials presented, by kind (token: a hello or avatar upload; admin_token: /v1/rooms).",
		}, []string{"kind"}),
		AuthThrottled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "heartline_auth_throttled_total",
			Help: "Requests refused unread because their client address made too many failed authentications recently, by where (upgrade, hello, avatars, rooms).",
		}, []string{"at"}),
		RedisCalls: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "heartline_redis_call_seconds",
			Help:    "Redis round trips (Redis mode), by operation (publish, join, away, leave, history, roster, heartbeat, sweep, ...).",
			Buckets: prometheus.ExponentialBuckets(5e-5, 2.5, 12), // 50 µs .. 1.2 s
		}, []string{"op"}),
		RedisErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "heartline_redis_errors_total",
			Help: "Redis round trips that failed, by operation.",
		}, []string{"op"}),
		RedisGapFills: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "heartline_redis_gap_fills_total",
			Help: "Times a room caught up from Redis (stream and roster) because events were missed or lost on pub/sub.",
		}),
		RedisEpochResets: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "heartline_redis_epoch_resets_total",
			Help: "Rooms given a new epoch because Redis lost acknowledged writes (restart without persistence, failover); their clients resume with recovered=false.",
		}),
	}
	// Every eviction reason exists from the start at 0, so an alert on its
	// rate has a series before the first eviction.
	for _, reason := range []string{EvictHeartbeat, EvictSlow, EvictReplaced, EvictHelloTimeout, EvictTooLarge, EvictInvalidUTF8, EvictRefused, EvictShutdown} {
		m.Evictions.WithLabelValues(reason)
	}
	for _, kind := range []string{AuthToken, AuthAdminToken} {
		m.AuthFailures.WithLabelValues(kind)
	}
	for _, at := range []string{ThrottledUpgrade, ThrottledHello, ThrottledAvatars, ThrottledRooms} {
		m.AuthThrottled.WithLabelValues(at)
	}
	m.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.Connections, m.Rooms, m.FramesIn, m.FramesOut,
		m.MessagesAccepted, m.Evictions, m.QueueOverflows, m.HeartbeatTimeouts,
		m.FanoutDuration, m.StoreCommit, m.StoreErrors, m.StoreBusy, m.HTTPRefused, m.AvatarUploads,
		m.AuthFailures, m.AuthThrottled, m.RedisCalls, m.RedisErrors, m.RedisGapFills, m.RedisEpochResets,
	)
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// RoomSizes calls yield with the name and member count (online and away) of
// every room held in memory. It runs at scrape time.
type RoomSizes func(yield func(room string, members int))

// RoomSizeBuckets are the upper bounds of the member-count ranges of
// heartline_rooms_by_members (the last range is open).
var RoomSizeBuckets = []int{0, 1, 10, 100, 1000}

// WatchRooms registers the room-size series, read from sizes at every
// scrape: how many rooms fall in each size range, the largest room and the
// members in all rooms. With perRoom it also exports
// heartline_room_members{room="..."}: a room's name is the only secret of an
// open relay (it is all a client needs to join and read the history), so
// that series is for private relays whose operator opts in.
func (m *Metrics) WatchRooms(sizes RoomSizes, perRoom bool) {
	m.Registry.MustRegister(&roomCollector{sizes: sizes, perRoom: perRoom})
}

var (
	roomsBySizeDesc = prometheus.NewDesc("heartline_rooms_by_members",
		"Rooms held in memory by their member count (online and away): members is the range, e.g. 2-10.",
		[]string{"members"}, nil)
	roomMembersMaxDesc = prometheus.NewDesc("heartline_room_members_max",
		"Members (online and away) of the largest room.", nil, nil)
	membersDesc = prometheus.NewDesc("heartline_members",
		"Members (online and away) of every room held in memory.", nil, nil)
	roomMembersDesc = prometheus.NewDesc("heartline_room_members",
		"Members of a room, online and away (only with --metrics-room-names).", []string{"room"}, nil)
)

// sizeRanges labels the ranges of RoomSizeBuckets: "0", "1", "2-10", ...,
// "1001+".
var sizeRanges = func() []string {
	out := make([]string, 0, len(RoomSizeBuckets)+1)
	lo := 0
	for _, hi := range RoomSizeBuckets {
		if lo == hi {
			out = append(out, strconv.Itoa(hi))
		} else {
			out = append(out, strconv.Itoa(lo)+"-"+strconv.Itoa(hi))
		}
		lo = hi + 1
	}
	return append(out, strconv.Itoa(lo)+"+")
}()

type roomCollector struct {
	sizes   RoomSizes
	perRoom bool
}

func (c *roomCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- roomsBySizeDesc
	ch <- roomMembersMaxDesc
	ch <- membersDesc
	if c.perRoom {
		ch <- roomMembersDesc
	}
}

func (c *roomCollector) Collect(ch chan<- prometheus.Metric) {
	counts := make([]int, len(sizeRanges))
	largest, total := 0, 0
	c.sizes(func(room string, members int) {
		i := 0
		for i < len(RoomSizeBuckets) && members > RoomSizeBuckets[i] {
			i++
		}
		counts[i]++
		largest, total = max(largest, members), total+members
		if c.perRoom {
			ch <- prometheus.MustNewConstMetric(roomMembersDesc, prometheus.GaugeValue, float64(members), room)
		}
	})
	for i, n := range counts {
		ch <- prometheus.MustNewConstMetric(roomsBySizeDesc, prometheus.GaugeValue, float64(n), sizeRanges[i])
	}
	ch <- prometheus.MustNewConstMetric(roomMembersMaxDesc, prometheus.GaugeValue, float64(largest))
	ch <- prometheus.MustNewConstMetric(membersDesc, prometheus.GaugeValue, float64(total))
}

// WatchStore registers heartline_store_writable, read from writable at
// every scrape: 1 while the history store's writes commit, 0 after one
// failed (full disk, I/O error) until one commits again.
func (m *Metrics) WatchStore(writable func() bool) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "heartline_store_writable",
		Help: "1 while the history store's writes commit, 0 since a write failed (full disk, I/O error) until one commits again; /readyz is 503 meanwhile.",
	}, func() float64 {
		if writable() {
			return 1
		}
		return 0
	}))
}
