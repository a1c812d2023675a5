package server

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/heartline/heartline/relay/avatar"
	"github.com/heartline/heartline/relay/store"
	"github.com/heartline/heartline/shared/protocol"
)

// Defaults used for the zero values of Config.
const (
	DefaultListen            = ":8080"
	DefaultHeartbeatInterval = 10 * time.Second
	DefaultHeartbeatTimeout  = 25 * time.Second
	DefaultGrace             = 30 * time.Second
	DefaultMaxFrame          = 64 << 10
	DefaultMaxText           = 4000
	DefaultRate              = 5.0
	DefaultBurst             = 10
	DefaultMaxRoomMembers    = 1000
	DefaultHistoryPage       = 50
	DefaultSendQueue         = 4096
	DefaultFlushInterval     = 10 * time.Millisecond
	DefaultCommitInterval    = store.DefaultCommitInterval
	DefaultShutdownTimeout   = 10 * time.Second
	DefaultKeepAliveIdle     = 60 * time.Second
	DefaultKeepAliveInterval = 30 * time.Second
	DefaultKeepAliveCount    = 3
	DefaultAvatarRate        = 1.0 / 6 // uploads per second per client address (10 a minute)
	DefaultAvatarBurst       = 5
	DefaultAvatarMemory      = 64 << 20 // two of the costliest acceptable pictures at once
	DefaultHistoryBytes      = store.DefaultHistoryBytes
	DefaultMaxRooms          = 10_000
	DefaultRoomCreateRate    = 10.0 / 60 // new rooms per second per client address (10 a minute)
	DefaultRoomCreateBurst   = 10
	DefaultMaxStoreBytes     = 1 << 30
	DefaultMaxConnsPerIP     = 128 // an office of ~40 people behind one NAT, three rooms each
	DefaultMaxRoomMembersIP  = 10  // members one client address may add to one room
	DefaultAuthFreeFailures  = 5
	DefaultAuthMaxBackoff    = time.Minute
)

// Config configures a relay. Every zero value means the documented default, so
// Config{DataDir: dir} is a complete relay on :8080.
type Config struct {
	// Listen is the TCP address Start/Serve listen on; "" means ":8080".
	// Use "127.0.0.1:0" for a free port (see Server.Addr).
	Listen string
	// DataDir holds the history database and uploaded avatars. Required
	// unless Store is set (then avatars go to DataDir/avatars only if DataDir
	// is set, else uploads are refused).
	DataDir string
	// Store replaces the store the relay would open in DataDir (tests inject
	// a wrapped store; the desktop may share one). The caller closes it.
	// /readyz reports its write failures only if it has the method
	// WriteErr() error, as *store.Store does.
	Store Store
	// History is the number of messages kept per room (store retention);
	// 0 means 1000. Ignored when Store is set.
	History int
	// HistoryBytes also prunes a room's oldest messages while its stored
	// records take more than this many bytes (the newest always stays); 0
	// means 1 MiB, negative means no byte limit. Ignored when Store is set.
	HistoryBytes int64
	// HistoryMaxAge also prunes messages older than this; 0 means no age limit.
	HistoryMaxAge time.Duration
	// MaxRooms caps the rooms the relay keeps, empty ones included (each
	// holds its history and members on disk until the relay forgets it,
	// which it never does on its own); a hello that would create one more is
	// refused with room_full and close 4505, while existing rooms work on.
	// 0 means 10,000, negative means no cap.
	MaxRooms int
	// RoomCreateRate and RoomCreateBurst limit how fast one client address
	// may create new rooms (a hello into an existing room is not counted);
	// beyond, the hello gets rate_limited with retry_after_ms and close
	// 4003. 0 means 10 a minute with a burst of 10.
	RoomCreateRate  float64
	RoomCreateBurst int
	// MaxStoreBytes caps the history database file (bbolt's own size cap,
	// so it bounds the disk the relay uses for history). A commit that
	// would grow the file beyond it fails: its messages are refused with
	// an internal error that says the storage is full, and the relay logs
	// it. Pages freed by retention are reused first, so rooms at their
	// retention limit keep working. 0 means 1 GiB, negative means no cap.
	// Ignored when Store is set.
	MaxStoreBytes int64
	// HistoryPage is how many recent messages a fresh join's welcome carries;
	// 0 means 50.
	HistoryPage int
	// CommitInterval is the least time between two commits of the store, so
	// that a busy store shares one fsync among more messages (a message to
	// an idle store commits at once); 0 means 5 ms, negative means no wait.
	// Ignored when Store is set.
	CommitInterval time.Duration
	// FlushInterval is the least time between two fan-out writes to the
	// members of a busy room: one with 64 or more online members whose last
	// batch held three messages or more. Each write then carries more
	// messages, and the write, not the message, is what a member costs the
	// relay; nobody reads a chat faster than 100 batches a second. 0 means
	// 10 ms, negative means no wait.
	FlushInterval time.Duration

	// HeartbeatInterval is the ping interval announced to clients; 0 means 10 s.
	HeartbeatInterval time.Duration
	// HeartbeatTimeout closes a connection silent for this long (4000); 0 means
	// 25 s. Must be more than twice HeartbeatInterval.
	HeartbeatTimeout time.Duration
	// Grace is how long a member whose link dropped stays (away) before it
	// leaves; 0 means 30 s.
	Grace time.Duration
	// SweepInterval is how often the one sweeper checks heartbeats, hello
	// timeouts and grace periods; 0 means min(HeartbeatInterval/2, 1 s).
	SweepInterval time.Duration
	// HelloTimeout closes a connection that sent no hello (4003); 0 means
	// 10 s (the protocol's value; tests shorten it).
	HelloTimeout time.Duration

	// MaxFrame is the largest inbound frame in bytes (larger closes 1009);
	// 0 means 64 KiB.
	MaxFrame int64
	// MaxText is the longest message text in code points (too_long); 0 means 4000.
	MaxText int
	// Rate is the accepted messages per second per connection; 0 means 5.
	Rate float64
	// Burst is the rate limiter's bucket size; 0 means 10.
	Burst int
	// MaxConns caps open websocket connections (HTTP 503 beyond), so that
	// sockets cannot use up the descriptors the store, the listener and
	// avatar files need. 0 means the process's open-file limit
	// (RLIMIT_NOFILE) less a reserve of 5% (at least 64, at most 1024), or
	// 10000 where there is no such limit; negative means no cap.
	MaxConns int
	// MaxConnsPerIP caps connections per client address (HTTP 429 beyond;
	// an IPv6 address counts by its /64). 0 means 128; negative means no cap
	// (behind a reverse proxy every client has the proxy's address).
	MaxConnsPerIP int
	// MaxRoomMembers caps members (online and away) per room (4505); 0 means 1000.
	MaxRoomMembers int
	// MaxRoomMembersPerIP caps the members one client address may add to a
	// room (online and away; room_full and 4505 beyond), so that one host
	// cannot fill a room. A member coming back with its key is never
	// refused. 0 means 10; negative means no cap.
	MaxRoomMembersPerIP int
	// SendQueue is how many frames may wait for one connection's writer
	// while it is busy with a write; beyond that the connection is a slow
	// consumer (closed with 4001, left reason slow). Queued frames share
	// their bytes with every other member's queue, so a full queue costs
	// about 40 bytes a frame. It must hold a burst a healthy member sees at
	// once: a commit batch, or a whole room leaving. 0 means 4096.
	// A writer that cannot hand its frames to the kernel within the write
	// timeout (min(HeartbeatTimeout, 10 s)) is a slow consumer too.
	SendQueue int

	// Origins lists the browser origins allowed to connect (exact match, e.g.
	// "https://chat.example.org"; "*" allows any). A request without an Origin
	// header (desktop app, CLI clients) is always allowed. Empty means only
	// same-host origins: the page's origin names the host the relay was
	// reached by. The Host itself is checked first, against PublicHosts.
	Origins []string
	// PublicHosts lists the host names the relay answers to ("chat.example.org",
	// or "chat.example.org:8443" for that port only); every request, browser
	// or not, naming another host gets 421 Misdirected Request. This stops DNS
	// rebinding: a web page whose own name resolves to the relay's address
	// would otherwise pass the same-host origin check. IP addresses and
	// localhost are always answered. Empty means the machine's own host names
	// (os.Hostname, its short form, and short.local); a domain name must be
	// listed. "*" answers to any name (no protection).
	PublicHosts []string
	// TrustedProxies lists the reverse proxies (IP addresses or CIDR
	// prefixes, e.g. "127.0.0.1" or "10.0.0.0/8") whose X-Forwarded-For
	// header names the client. Behind a proxy every TCP peer is the proxy,
	// so without this the per-address limits would count all clients as
	// one. The client is the last address in X-Forwarded-For that is not a
	// trusted proxy. Empty means no proxy is trusted: the header is ignored.
	TrustedProxies []string
	// Token, when set, is required in every hello (4500 otherwise) and on
	// avatar uploads.
	Token string
	// AuthFreeFailures is how many wrong credentials (a wrong token in a
	// hello or a bearer header, a hello naming a member it has not the key
	// of) a client address may present before it must wait: 1 s, then twice
	// as long after each further failure, up to AuthMaxBackoff; failures
	// count less with time (half-life 10 min). While it waits, its upgrades,
	// hellos and authenticated HTTP requests are refused (429 / close 4004)
	// without looking at the credential. 0 means 5; negative turns the
	// throttle off.
	AuthFreeFailures int
	// AuthMaxBackoff is the longest wait AuthFreeFailures leads to; 0 means 1 min.
	AuthMaxBackoff time.Duration
	// AdminToken, when set, opens GET /v1/rooms to "Authorization: Bearer
	// <AdminToken>". Empty means the endpoint always answers 401.
	AdminToken string

	// MetricsListen, when set, is a second TCP address (e.g. 127.0.0.1:9090)
	// that serves /metrics, /healthz and /readyz in plain HTTP, for a
	// Prometheus and probes on the host or a private network; the public
	// Listen then answers /metrics with 404 (it keeps /healthz and /readyz
	// for load balancers). Start and Serve open it and Shutdown closes it
	// (Handler alone does not). "" means /metrics is served on Listen,
	// without auth.
	MetricsListen string
	// MetricsRoomNames adds heartline_room_members{room="<name>"} to
	// /metrics. Off by default: on an open relay a room's name is all a
	// client needs to join it and read its history, and /metrics has no
	// auth, so only a private relay (or MetricsListen on a private address)
	// should turn it on. Without it the room series are aggregates (rooms
	// by member count, the largest room, all members).
	MetricsRoomNames bool

	// TLSCert and TLSKey are PEM files; both or neither. With them the relay
	// serves HTTPS and wss://.
	TLSCert, TLSKey string
	// KeepAliveIdle, KeepAliveInterval and KeepAliveCount set TCP keepalive on
	// accepted connections (net.KeepAliveConfig): 0 means 60 s, 30 s and 3;
	// a negative value disables that setting (the OS default applies).
	KeepAliveIdle, KeepAliveInterval time.Duration
	KeepAliveCount                   int

	// AvatarRate and AvatarBurst limit avatar uploads per client IP; 0 means
	// 10 a minute with a burst of 5.
	AvatarRate  float64
	AvatarBurst int
	// AvatarMemory bounds the bytes that the avatar decodes running at once
	// may allocate together (each picture's cost is known from its header
	// and is at most avatar.MaxDecodeCost); an upload waits its turn for up
	// to 10 s, then gets 429 with Retry-After. 0 means 64 MiB.
	AvatarMemory int64

	// Web, when set, serves the browser client at /, /r/<room> and /app/
	// (relay/web.Handler); nil serves nothing there (404).
	Web http.Handler

	// ShutdownTimeout bounds Serve's graceful shutdown after ctx ends; 0 means 10 s.
	ShutdownTimeout time.Duration

	// STUNPort, when not 0, makes Start run a STUN Binding responder on this
	// UDP port and the next one (the alternate port clients use to see whether
	// their NAT mapping depends on the destination port), on the IP of Listen
	// (every address when Listen has no host). 0 means no responder. The
	// ports are announced in welcome.stun.
	STUNPort int
	// STUNAltIP is an optional second IP address of this host; with it the
	// responder also answers CHANGE-REQUEST and sends OTHER-ADDRESS (RFC 5780).
	// Needs Listen to name a specific IP. "" means none.
	STUNAltIP string
	// STUNOptional makes Start go on without the STUN responder when its
	// ports cannot be bound (logged; welcome.stun is then empty) instead of
	// failing: for the desktop's host mode, where chat matters more than
	// diagnostics. false means a STUN port that cannot be bound fails Start.
	STUNOptional bool
	// STUNPorts announces the ports of a STUN responder run outside the relay
	// (when STUNPort is 0); nil means none.
	STUNPorts []int

	// RedisURL, when set, keeps the rooms in Redis instead of the relay's
	// own store, so that several relays serve the same rooms (any client
	// on any relay; see docs/OPERATIONS.md "Running several relays"):
	// redis://[user:password@]host:port/db, or rediss:// for TLS. The
	// local store then keeps nothing of the rooms. "" means one relay with
	// its embedded store.
	RedisURL string
	// RedisPassword overrides the password in RedisURL; "" keeps it.
	RedisPassword string
	// RedisAllowVolatile lets the relay start on a Redis that keeps nothing
	// across its restart (no AOF, no RDB): a restart of Redis then starts
	// every room's history anew (clients resume with recovered=false).
	// false means such a Redis is refused at start.
	RedisAllowVolatile bool
	// RedisDeadAfter is how long a relay may miss its heartbeats to Redis
	// (sent every 2 s) before the others take it for dead and turn its
	// members away; 0 means 10 s.
	RedisDeadAfter time.Duration

	// Logger receives connect/join/leave/eviction lines; nil discards.
	Logger *slog.Logger

	// now is the clock (tests may replace it); nil means time.Now.
	now func() time.Time
}

// withDefaults returns c with every zero value replaced by its default.
func (c Config) withDefaults() Config {
	if c.RedisDeadAfter <= 0 {
		c.RedisDeadAfter = 10 * time.Second
	}
	c.Listen = cmp.Or(c.Listen, DefaultListen)
	if c.HistoryPage <= 0 {
		c.HistoryPage = DefaultHistoryPage
	}
	c.HeartbeatInterval = cmp.Or(c.HeartbeatInterval, DefaultHeartbeatInterval)
	c.HeartbeatTimeout = cmp.Or(c.HeartbeatTimeout, DefaultHeartbeatTimeout)
	c.Grace = cmp.Or(c.Grace, DefaultGrace)
	c.SweepInterval = cmp.Or(c.SweepInterval, min(c.HeartbeatInterval/2, time.Second))
	c.HelloTimeout = cmp.Or(c.HelloTimeout, protocol.HelloTimeout)
	c.ShutdownTimeout = cmp.Or(c.ShutdownTimeout, DefaultShutdownTimeout)
	c.KeepAliveIdle = cmp.Or(c.KeepAliveIdle, DefaultKeepAliveIdle)
	c.KeepAliveInterval = cmp.Or(c.KeepAliveInterval, DefaultKeepAliveInterval)
	c.KeepAliveCount = cmp.Or(c.KeepAliveCount, DefaultKeepAliveCount)
	c.MaxFrame = cmp.Or(c.MaxFrame, DefaultMaxFrame)
	c.MaxText = cmp.Or(c.MaxText, DefaultMaxText)
	c.Rate = cmp.Or(c.Rate, DefaultRate)
	c.Burst = cmp.Or(c.Burst, DefaultBurst)
	c.MaxRoomMembers = cmp.Or(c.MaxRoomMembers, DefaultMaxRoomMembers)
	c.MaxConns = cmp.Or(c.MaxConns, defaultMaxConns(openFileLimit()))
	c.MaxConnsPerIP = cmp.Or(c.MaxConnsPerIP, DefaultMaxConnsPerIP)
	c.MaxRoomMembersPerIP = cmp.Or(c.MaxRoomMembersPerIP, DefaultMaxRoomMembersIP)
	c.AuthFreeFailures = cmp.Or(c.AuthFreeFailures, DefaultAuthFreeFailures)
	c.AuthMaxBackoff = cmp.Or(c.AuthMaxBackoff, DefaultAuthMaxBackoff)
	c.SendQueue = cmp.Or(c.SendQueue, DefaultSendQueue)
	c.FlushInterval = cmp.Or(c.FlushInterval, DefaultFlushInterval)
	c.CommitInterval = cmp.Or(c.CommitInterval, DefaultCommitInterval)
	c.AvatarRate = cmp.Or(c.AvatarRate, DefaultAvatarRate)
	c.AvatarBurst = cmp.Or(c.AvatarBurst, DefaultAvatarBurst)
	c.AvatarMemory = cmp.Or(c.AvatarMemory, DefaultAvatarMemory)
	c.HistoryBytes = cmp.Or(c.HistoryBytes, DefaultHistoryBytes)
	c.MaxRooms = cmp.Or(c.MaxRooms, DefaultMaxRooms)
	c.RoomCreateRate = cmp.Or(c.RoomCreateRate, DefaultRoomCreateRate)
	c.RoomCreateBurst = cmp.Or(c.RoomCreateBurst, DefaultRoomCreateBurst)
	c.MaxStoreBytes = cmp.Or(c.MaxStoreBytes, DefaultMaxStoreBytes)
	if c.now == nil {
		c.now = time.Now
	}
	return c
}

// Validate reports the first setting that cannot work, in words that name
// the setting (the command line maps them to its flags).
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.DataDir == "" && c.Store == nil {
		bad("data dir is empty: the relay needs a folder for its history")
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen address %q is not host:port (e.g. :8080 or 127.0.0.1:8080): %v", c.Listen, err)
	}
	if c.HeartbeatInterval < 0 || c.HeartbeatTimeout < 0 || c.Grace < 0 || c.SweepInterval < 0 || c.HelloTimeout < 0 {
		bad("durations must not be negative")
	}
	if c.HeartbeatTimeout <= 2*c.HeartbeatInterval {
		bad("heartbeat timeout %v must be more than twice the heartbeat interval %v, or one lost ping drops a healthy client",
			c.HeartbeatTimeout, c.HeartbeatInterval)
	}
	if c.SweepInterval > c.HeartbeatInterval/2 {
		bad("sweep interval %v must be at most half the heartbeat interval %v (the protocol promises a check every interval/2)",
			c.SweepInterval, c.HeartbeatInterval)
	}
	if c.MaxFrame < 512 {
		bad("max frame %d is too small: a hello needs up to a few hundred bytes (use at least 512)", c.MaxFrame)
	}
	if c.MaxText < 1 {
		bad("max text must be at least 1 character")
	}
	if c.Rate < 0 || c.Burst < 1 {
		bad("rate must be positive and burst at least 1")
	}
	if c.MaxRoomMembers < 1 || c.SendQueue < 1 {
		bad("max room members and send queue must be at least 1")
	}
	if c.AuthMaxBackoff < time.Second {
		bad("auth max backoff %v must be at least 1s: the first wait after the free failures is 1s", c.AuthMaxBackoff)
	}
	if c.MetricsListen != "" {
		if err := checkHostPort(c.MetricsListen); err != nil {
			bad("metrics listen address %q is not host:port (e.g. 127.0.0.1:9090): %v", c.MetricsListen, err)
		} else if _, port, _ := net.SplitHostPort(c.MetricsListen); c.MetricsListen == c.Listen && port != "0" {
			bad("metrics listen address %q is the listen address too; give the metrics their own port (e.g. 127.0.0.1:9090)", c.MetricsListen)
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		bad("TLS needs both a certificate and a key file (got only one)")
	}
	if c.STUNPort < 0 || c.STUNPort > 65534 {
		bad("STUN port %d is out of range: it and the next port must be 1-65535 (0 disables STUN)", c.STUNPort)
	}
	if c.STUNAltIP != "" {
		host, _, _ := net.SplitHostPort(c.Listen)
		if c.STUNPort == 0 {
			bad("a STUN alternate IP needs a STUN port")
		} else if net.ParseIP(c.STUNAltIP) == nil || net.ParseIP(host) == nil {
			bad("a STUN alternate IP needs an IP address (got %q) and a listen address with a specific IP (got %q)", c.STUNAltIP, c.Listen)
		}
	}
	if c.FlushInterval > time.Second || c.CommitInterval > time.Second {
		bad("flush interval %v and commit interval %v must be at most 1s: every message waits for them, acks included", c.FlushInterval, c.CommitInterval)
	}
	if c.AvatarRate <= 0 || c.AvatarBurst < 1 {
		bad("avatar rate must be positive and avatar burst at least 1")
	}
	if c.AvatarMemory < avatar.MaxDecodeCost {
		bad("avatar memory %d MiB is too small: the largest acceptable picture takes %d MiB to decode", c.AvatarMemory>>20, avatar.MaxDecodeCost>>20)
	}
	if c.HistoryPage < 1 {
		bad("history page must be at least 1")
	}
	// A room must hold at least one message of the longest text (4 bytes a
	// code point) with its sender's name and avatar.
	if minBytes := int64(4*c.MaxText + 1024); c.HistoryBytes > 0 && c.HistoryBytes < minBytes {
		bad("history bytes %d is less than one message of the longest text (max text %d characters needs %d bytes); raise it or lower max text", c.HistoryBytes, c.MaxText, minBytes)
	}
	if c.RoomCreateRate < 0 || c.RoomCreateBurst < 1 {
		bad("room create rate must not be negative and room create burst must be at least 1")
	}
	if c.MaxStoreBytes > 0 && c.MaxStoreBytes < 1<<20 {
		bad("max store bytes %d is too small: the history database needs at least 1 MiB", c.MaxStoreBytes)
	}
	if _, err := parseProxies(c.TrustedProxies); err != nil {
		bad("%v", err)
	}
	for _, h := range c.PublicHosts {
		if msg := validPublicHost(h); msg != "" {
			bad("public host %q %s", h, msg)
		}
	}
	return errors.Join(errs...)
}

// checkHostPort accepts host:port with a numeric port (0 for any free one)
// or a service name the resolver knows, as net.Listen does.
func checkHostPort(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return fmt.Errorf("bad port %q", port)
	}
	return nil
}

// defaultMaxConns is the connection cap for an open-file limit of limit
// descriptors (0: unknown): the limit less a reserve for the store, the
// listeners, avatar files being served, plain HTTP requests and STUN.
func defaultMaxConns(limit int) int {
	if limit <= 0 {
		return 10000
	}
	limit = min(limit, 1<<20) // "unlimited" is not a number of sockets to plan for
	return max(limit-min(max(limit/20, 64), 1024), limit/2, 1)
}

// Store is what the relay needs from its history store; *store.Store
// implements it.
type Store interface {
	Rooms() ([]store.RoomState, error)
	EnsureRoom(name string) (store.RoomState, error)
	// TryAppend must not block: false means the store is too far behind to
	// take the record now (the sender is asked to retry shortly).
	TryAppend(room string, rec store.Record, done func(error)) bool
	PutMember(room string, m store.MemberRecord, done func(error))
	DeleteMember(room, memberID string, done func(error))
	After(room string, seq uint64, limit int) ([]store.Record, bool, error)
	Latest(room string, n int) ([]store.Record, error)
	Before(room string, seq uint64, n int) ([]store.Record, error)
	LookupID(room, memberID, clientID string) (store.Record, bool, error)
}

var _ Store = (*store.Store)(nil)
