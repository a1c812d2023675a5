package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"

	heartline "github.com/heartline/heartline"
	"github.com/heartline/heartline/relay/server"
)

// version is the product version (FyneApp.toml is its one source) with the
// commit it was built from.
var version = heartline.VersionString()

// Exit codes.
const (
	exitOK      = 0
	exitRuntime = 1 // the relay failed while running (e.g. the port is taken)
	exitUsage   = 2 // invalid flags or environment, or a data dir that cannot be used
)

// options is everything the command line sets.
type options struct {
	cfg       server.Config
	origins   string
	hosts     string
	proxies   string
	logFormat string
	logLevel  string
	// roomCreatesPerMin is --room-create-rate (Config.RoomCreateRate is per second).
	roomCreatesPerMin float64
	version           bool
	usage             func() // prints --help
}

// envName maps a flag to its environment variable: max-conns-per-ip ->
// HEARTLINE_MAX_CONNS_PER_IP.
func envName(flagName string) string {
	return "HEARTLINE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// byteSize is a flag value in bytes that also takes KiB/MiB suffixes.
type byteSize struct{ v *int64 }

func (b byteSize) String() string {
	if b.v == nil {
		return ""
	}
	switch n := *b.v; {
	case n > 0 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n > 0 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n > 0 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	default:
		return strconv.FormatInt(n, 10)
	}
}

func (b byteSize) Set(s string) error {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1000}, {"MB", 1000_000}, {"GB", 1000_000_000},
		{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}} {
		if rest, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("%q is not a size (use e.g. 65536, 64KiB, 1MiB or 1GiB)", s)
	}
	*b.v = n * mult
	return nil
}

// Flag values with error messages that say what a valid value looks like
// (the flag package's own say only "parse error").
type durationValue struct{ v *time.Duration }
type intValue struct{ v *int }
type floatValue struct{ v *float64 }
type boolValue struct{ v *bool }

func (d durationValue) String() string {
	if d.v == nil {
		return ""
	}
	return d.v.String()
}

func (d durationValue) Set(s string) error {
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("%q is not a duration (use e.g. 500ms, 10s, 1m30s)", s)
	}
	*d.v = v
	return nil
}

func (i intValue) String() string {
	if i.v == nil {
		return ""
	}
	return strconv.Itoa(*i.v)
}

func (i intValue) Set(s string) error {
	v, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("%q is not a whole number", s)
	}
	*i.v = v
	return nil
}

func (f floatValue) String() string {
	if f.v == nil {
		return ""
	}
	return strconv.FormatFloat(*f.v, 'g', -1, 64)
}

func (f floatValue) Set(s string) error {
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Errorf("%q is not a number", s)
	}
	*f.v = v
	return nil
}

func (b boolValue) String() string {
	if b.v == nil {
		return ""
	}
	return strconv.FormatBool(*b.v)
}

func (b boolValue) Set(s string) error {
	v, err := strconv.ParseBool(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("%q is not true or false", s)
	}
	*b.v = v
	return nil
}

// IsBoolFlag lets --flag stand for --flag=true.
func (b boolValue) IsBoolFlag() bool { return true }

func boolVar(fs *flag.FlagSet, p *bool, name string, def bool, usage string) {
	*p = def
	fs.Var(boolValue{p}, name, usage)
}

func durationVar(fs *flag.FlagSet, p *time.Duration, name string, def time.Duration, usage string) {
	*p = def
	fs.Var(durationValue{p}, name, usage)
}

func intVar(fs *flag.FlagSet, p *int, name string, def int, usage string) {
	*p = def
	fs.Var(intValue{p}, name, usage)
}

func floatVar(fs *flag.FlagSet, p *float64, name string, def float64, usage string) {
	*p = def
	fs.Var(floatValue{p}, name, usage)
}

// newFlagSet declares every flag, with the defaults the relay runs with.
func newFlagSet(o *options, usageOut io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("heartline-relay", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // run prints errors itself, briefly
	usageOut = cmp.Or[io.Writer](usageOut, io.Discard)
	c := &o.cfg
	c.MaxFrame = server.DefaultMaxFrame
	fs.StringVar(&c.Listen, "listen", server.DefaultListen, "TCP address to serve HTTP and websockets on (host:port)")
	fs.StringVar(&c.DataDir, "data-dir", "./heartline-data", "folder for the history database and uploaded avatars (created if missing)")
	durationVar(fs, &c.HeartbeatInterval, "heartbeat-interval", server.DefaultHeartbeatInterval, "how often clients are asked to ping")
	durationVar(fs, &c.HeartbeatTimeout, "heartbeat-timeout", server.DefaultHeartbeatTimeout, "close a connection silent for this long (close 4000); must exceed 2x the interval")
	durationVar(fs, &c.Grace, "grace", server.DefaultGrace, "how long a dropped member stays away before it leaves")
	fs.Var(byteSize{&c.MaxFrame}, "max-frame", "largest inbound websocket frame; larger closes with 1009 (bytes, or KiB/MiB)")
	intVar(fs, &c.MaxText, "max-text", server.DefaultMaxText, "longest message text in characters (code points)")
	floatVar(fs, &c.Rate, "rate", server.DefaultRate, "accepted messages per second per connection")
	intVar(fs, &c.Burst, "burst", server.DefaultBurst, "messages a connection may send at once before --rate applies")
	intVar(fs, &c.MaxConns, "max-conns", 0, "maximum open websocket connections, HTTP 503 beyond (0 = the open-file limit less 5%, -1 = no limit)")
	intVar(fs, &c.MaxConnsPerIP, "max-conns-per-ip", server.DefaultMaxConnsPerIP, "maximum connections per client address (IPv6: per /64), HTTP 429 beyond (-1 = no limit, e.g. behind a reverse proxy)")
	intVar(fs, &c.MaxRoomMembers, "max-room-members", server.DefaultMaxRoomMembers, "maximum members (online and away) per room; close 4505 beyond")
	intVar(fs, &c.MaxRoomMembersPerIP, "max-room-members-per-ip", server.DefaultMaxRoomMembersIP, "maximum members one client address may add to a room; room_full and close 4505 beyond (-1 = no limit, e.g. behind a reverse proxy)")
	intVar(fs, &c.AuthFreeFailures, "auth-free-failures", server.DefaultAuthFreeFailures, "wrong tokens a client address may present before it must wait (1s, doubling, up to --auth-max-backoff); -1 = no throttle")
	durationVar(fs, &c.AuthMaxBackoff, "auth-max-backoff", server.DefaultAuthMaxBackoff, "longest wait a client address gets for failed authentications (HTTP 429 / close 4004 meanwhile)")
	fs.StringVar(&o.origins, "origins", "", "comma-separated browser origins allowed to connect, or * for any (requests without Origin are always allowed; empty = same host only)")
	fs.StringVar(&o.hosts, "public-host", "", "comma-separated host names the relay answers to, e.g. chat.example.org (other names get 421, against DNS rebinding; IP addresses and localhost always work; empty = this machine's host name; * = any)")
	fs.StringVar(&o.proxies, "trusted-proxies", "", "comma-separated reverse proxies (IP addresses or CIDR prefixes, e.g. 127.0.0.1) whose X-Forwarded-For names the client, so per-address limits count clients, not the proxy (empty = trust no header)")
	fs.StringVar(&c.Token, "token", "", "shared secret every hello and avatar upload must carry (empty = open relay)")
	fs.StringVar(&c.AdminToken, "admin-token", "", "bearer token for GET /v1/rooms (empty = endpoint disabled)")
	fs.StringVar(&c.MetricsListen, "metrics-listen", "", "serve /metrics (and /healthz, /readyz) on this second address instead, e.g. 127.0.0.1:9090; the main --listen then answers /metrics with 404 (empty = /metrics on --listen, without auth)")
	boolVar(fs, &c.MetricsRoomNames, "metrics-room-names", false, "label /metrics series with room names (heartline_room_members{room=...}); a room name is all it takes to join a room and read its history, so only for private relays")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "PEM certificate file; with --tls-key the relay serves https and wss")
	fs.StringVar(&c.TLSKey, "tls-key", "", "PEM private key file for --tls-cert")
	durationVar(fs, &c.KeepAliveIdle, "tcp-keepalive-idle", server.DefaultKeepAliveIdle, "TCP keepalive: idle time before the first probe (negative = OS default)")
	durationVar(fs, &c.KeepAliveInterval, "tcp-keepalive-interval", server.DefaultKeepAliveInterval, "TCP keepalive: time between probes (negative = OS default)")
	intVar(fs, &c.KeepAliveCount, "tcp-keepalive-count", server.DefaultKeepAliveCount, "TCP keepalive: unanswered probes before the OS drops the connection (negative = OS default)")
	intVar(fs, &c.History, "history", 1000, "messages kept per room")
	c.HistoryBytes, c.MaxStoreBytes = server.DefaultHistoryBytes, server.DefaultMaxStoreBytes
	fs.Var(byteSize{&c.HistoryBytes}, "history-bytes", "also drop a room's oldest messages while its history takes more than this (bytes, or KiB/MiB; the newest message always stays; 0 = by count only)")
	durationVar(fs, &c.HistoryMaxAge, "history-max-age", 0, "also drop messages older than this (0 = keep by count only)")
	intVar(fs, &c.MaxRooms, "max-rooms", server.DefaultMaxRooms, "maximum rooms kept, empty ones included (they hold history on disk); a hello creating one more gets room_full and close 4505 (0 = no limit)")
	floatVar(fs, &o.roomCreatesPerMin, "room-create-rate", server.DefaultRoomCreateRate*60, "new rooms a client address may create per minute; beyond, the hello gets rate_limited and close 4003")
	intVar(fs, &c.RoomCreateBurst, "room-create-burst", server.DefaultRoomCreateBurst, "new rooms a client address may create at once before --room-create-rate applies")
	fs.Var(byteSize{&c.MaxStoreBytes}, "max-store-bytes", "cap on the history database file (bytes, or MiB/GiB); beyond, messages needing more space are refused and the relay logs it (0 = no cap)")
	intVar(fs, &c.HistoryPage, "history-page", server.DefaultHistoryPage, "messages in a fresh join's welcome")
	durationVar(fs, &c.CommitInterval, "commit-interval", server.DefaultCommitInterval, "least time between two history commits, so a busy relay shares each fsync among more messages (negative = none)")
	durationVar(fs, &c.FlushInterval, "flush-interval", server.DefaultFlushInterval, "least time between two writes to the members of a busy room, so each carries more messages (negative = none)")
	intVar(fs, &c.SendQueue, "send-queue", server.DefaultSendQueue, "frames that may wait for one connection while its writer is busy; beyond, it is a slow consumer (close 4001)")
	c.AvatarMemory = server.DefaultAvatarMemory
	fs.Var(byteSize{&c.AvatarMemory}, "avatar-memory", "memory the avatar decodes running at once may take together; more uploads wait their turn, then get 429 (bytes, or KiB/MiB)")
	durationVar(fs, &c.ShutdownTimeout, "shutdown-timeout", server.DefaultShutdownTimeout, "on SIGTERM/SIGINT, how long to wait for clients to get their close 1001")
	intVar(fs, &c.STUNPort, "stun-port", 3478, "UDP port of the STUN responder clients use for network diagnostics; the next port is used too (0 = no STUN)")
	fs.BoolVar(&c.STUNOptional, "stun-optional", false, "if the STUN ports cannot be bound, log it and run without STUN instead of refusing to start")
	fs.StringVar(&c.STUNAltIP, "stun-alt-ip", "", "a second IP address of this host, so STUN can answer CHANGE-REQUEST (RFC 5780); needs --listen with a specific IP")
	fs.StringVar(&c.RedisURL, "redis-url", "", "keep the rooms in Redis so that several relays serve them, e.g. redis://127.0.0.1:6379/0 (rediss:// for TLS); empty = this relay alone, on its own store")
	fs.StringVar(&c.RedisPassword, "redis-password", "", "Redis password, instead of putting it in --redis-url (better: the environment variable)")
	boolVar(fs, &c.RedisAllowVolatile, "redis-allow-volatile", false, "start even if Redis keeps nothing across its restart (no AOF, no RDB): a Redis restart then starts every room's history anew")
	durationVar(fs, &c.RedisDeadAfter, "redis-dead-after", 10*time.Second, "a relay silent in Redis this long is taken for dead: the other relays turn its members away")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	fs.Usage = func() {}
	o.usage = func() {
		w := usageOut
		fmt.Fprintf(w, "heartline-relay %s: a self-hosted Heartline chat relay.\n\n", version)
		fmt.Fprintf(w, "Usage: heartline-relay [flags]\n\nEvery flag can also be set with an environment variable; a flag on the\ncommand line wins over the variable.\n\n")
		fs.VisitAll(func(f *flag.Flag) {
			def := f.DefValue
			if def == "" {
				def = `""`
			}
			fmt.Fprintf(w, "  --%s (env %s, default %s)\n      %s\n", f.Name, envName(f.Name), def, f.Usage)
		})
	}
	return fs
}

// commaList splits a comma-separated flag value, dropping empty entries.
func commaList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// parse reads the environment, then the command line (which wins), and
// checks the result. It returns the exit code to use when it fails (0 after
// --help).
func parse(args []string, getenv func(string) string, stdout io.Writer) (*options, int, error) {
	o := &options{}
	fs := newFlagSet(o, stdout)
	var envErrs []error
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		if v := getenv(name); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				envErrs = append(envErrs, fmt.Errorf("environment variable %s: %v", name, err))
			}
		}
	})
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			o.usage()
			return nil, exitOK, err
		}
		return nil, exitUsage, fmt.Errorf("%s", strings.Replace(err.Error(), "flag -", "flag --", 1))
	}
	if len(envErrs) > 0 {
		return nil, exitUsage, errors.Join(envErrs...)
	}
	if fs.NArg() > 0 {
		return nil, exitUsage, fmt.Errorf("unexpected argument %q: every setting is a --flag (see --help)", fs.Arg(0))
	}
	o.cfg.Origins = commaList(o.origins)
	o.cfg.PublicHosts = commaList(o.hosts)
	o.cfg.TrustedProxies = commaList(o.proxies)
	var errs []error
	if o.cfg.HeartbeatInterval <= 0 || o.cfg.HeartbeatTimeout <= 0 || o.cfg.Grace <= 0 || o.cfg.ShutdownTimeout <= 0 {
		errs = append(errs, errors.New("--heartbeat-interval, --heartbeat-timeout, --grace and --shutdown-timeout must be positive"))
	}
	if o.cfg.HistoryMaxAge < 0 {
		errs = append(errs, errors.New("--history-max-age must not be negative"))
	}
	if o.cfg.Rate <= 0 || o.cfg.Burst <= 0 || o.cfg.MaxText <= 0 || o.cfg.MaxRoomMembers <= 0 ||
		o.cfg.History <= 0 || o.cfg.HistoryPage <= 0 || o.cfg.SendQueue <= 0 {
		errs = append(errs, errors.New("--rate, --burst, --max-text, --max-room-members, --history, --history-page and --send-queue must be positive"))
	}
	if o.roomCreatesPerMin <= 0 || o.cfg.RoomCreateBurst <= 0 {
		errs = append(errs, errors.New("--room-create-rate and --room-create-burst must be positive"))
	}
	o.cfg.RoomCreateRate = o.roomCreatesPerMin / 60
	if o.cfg.MaxRooms < 0 {
		errs = append(errs, errors.New("--max-rooms must not be negative (0 = no limit)"))
	}
	// On the command line 0 means no limit; in Config it means the default.
	for _, v := range []*int64{&o.cfg.HistoryBytes, &o.cfg.MaxStoreBytes} {
		if *v == 0 {
			*v = -1
		}
	}
	if o.cfg.MaxRooms == 0 {
		o.cfg.MaxRooms = -1
	}
	if o.cfg.KeepAliveCount == 0 || o.cfg.KeepAliveIdle == 0 || o.cfg.KeepAliveInterval == 0 {
		errs = append(errs, errors.New("--tcp-keepalive-* must not be 0 (use a negative value for the OS default)"))
	}
	if o.logFormat != "text" && o.logFormat != "json" {
		errs = append(errs, fmt.Errorf("--log-format %q: use text or json", o.logFormat))
	}
	if _, err := parseLevel(o.logLevel); err != nil {
		errs = append(errs, err)
	}
	if o.cfg.DataDir == "" {
		errs = append(errs, errors.New("--data-dir is empty: give the relay a folder for its history"))
	}
	if len(errs) == 0 {
		if err := o.cfg.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, exitUsage, errors.Join(errs...)
	}
	return o, exitOK, nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--log-level %q: use debug, info, warn or error", s)
	}
	return l, nil
}

// run is main without the process around it, so tests can call it.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	o, code, err := parse(args, getenv, stdout)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "heartline-relay: %v\nRun heartline-relay --help for every setting.\n", err)
		}
		return code
	}
	if o.version {
		fmt.Fprintf(stdout, "heartline-relay %s\n", version)
		return exitOK
	}
	level, _ := parseLevel(o.logLevel)
	hopts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(stderr, hopts)
	if o.logFormat == "json" {
		h = slog.NewJSONHandler(stderr, hopts)
	}
	log := slog.New(h)
	o.cfg.Logger = log

	srv, err := server.New(o.cfg)
	if err != nil {
		// A data dir that cannot be opened, a damaged database, a second
		// relay on the same dir, unreadable TLS files: all fixed by the
		// person starting it.
		fmt.Fprintf(stderr, "heartline-relay: %v\n", err)
		return exitUsage
	}
	log.Info("heartline-relay starting", "version", version, "data_dir", o.cfg.DataDir,
		"heartbeat_interval", o.cfg.HeartbeatInterval, "heartbeat_timeout", o.cfg.HeartbeatTimeout, "grace", o.cfg.Grace)
	if err := srv.Serve(ctx); err != nil {
		fmt.Fprintf(stderr, "heartline-relay: %v\n", err)
		return exitRuntime
	}
	return exitOK
}
