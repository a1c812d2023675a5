package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/heartline/heartline/assets"
	"github.com/heartline/heartline/relay/avatar"
	"github.com/heartline/heartline/relay/internal/wsconn"
	"github.com/heartline/heartline/relay/metrics"
	"github.com/heartline/heartline/relay/redisengine"
	"github.com/heartline/heartline/relay/store"
	"github.com/heartline/heartline/relay/stunsrv"
	"github.com/heartline/heartline/shared/protocol"
)

// Server is one relay. Create it with New; it is safe for concurrent use.
type Server struct {
	cfg      Config
	log      *slog.Logger
	metrics  *metrics.Metrics
	store    Store
	ownStore *store.Store // opened by New, closed by Shutdown
	avatars  *avatar.Dir  // nil: uploads refused
	builtin  map[string]bool
	hosts    *hostAllowlist
	upgrader websocket.Upgrader
	handler  http.Handler
	tlsConf  *tls.Config

	roomsMu sync.Mutex
	rooms   map[string]*room

	connsMu sync.Mutex
	conns   wsconn.Table[*conn]
	perIP   map[string]int // reserved connections per client IP
	total   int            // reserved connections
	serial  atomic.Uint64

	connWG   sync.WaitGroup  // connections, until their reader and writer are both done
	reactor  *wsconn.Reactor // watches idle sockets; nil where there is no epoll
	bgWG     sync.WaitGroup  // sweeper and room drainers
	bgMu     sync.Mutex      // guards bgClosed; a leaf: held only to Add to bgWG
	bgClosed bool            // Shutdown waits for bgWG: nothing new may start

	avatarLimits *ipLimiter
	decodes      *avatar.Limiter
	uploading    uploadsInFlight
	// avatarBodyWait bounds an upload's body read (tests shorten it).
	avatarBodyWait time.Duration
	// roomCreates limits new rooms per client address (RoomCreateRate).
	roomCreates *ipLimiter
	// stored holds the names of every room in the store (MaxRooms counts
	// them); guarded by roomsMu.
	stored map[string]struct{}
	// storeFull keeps a store at its size cap from logging every message.
	storeFull    logThrottle
	authThrottle *authThrottle
	proxies      proxies // whose X-Forwarded-For names the client

	// Counters per frame type, resolved once: the message path then never
	// takes the metric vectors' internal lock.
	framesIn, framesOut map[string]prometheus.Counter
	shared              wsconn.Shared // what every connection's transport shares

	draining atomic.Bool
	stop     chan struct{}

	// redis holds the rooms when Config.RedisURL is set (shared.go); nil
	// for a relay on its own store. redisOK is its last heartbeat's outcome.
	redis       *redisengine.Engine
	redisOK     atomic.Bool
	redisBackAt atomic.Int64 // unix ns; see redisBack

	mu       sync.Mutex // guards ln, stun, httpSrv, served, shutdown and the ops fields
	ln       net.Listener
	stun     *stunsrv.Server // nil without cfg.STUNPort
	httpSrv  *http.Server
	served   chan error
	shutdown bool
	stopOnce sync.Once

	// The cfg.MetricsListen listener (guarded by mu); nil without it.
	opsLn     net.Listener
	opsSrv    *http.Server
	opsServed chan error
}

// mustParseProxies parses what Validate has checked.
func mustParseProxies(list []string) proxies {
	p, err := parseProxies(list)
	if err != nil {
		panic(err)
	}
	return p
}

// New checks cfg, opens the store in cfg.DataDir (unless cfg.Store is given),
// restores the rooms and members it holds (all away, leaving after the grace
// period unless they come back) and starts the sweeper. Call Shutdown to
// release everything, even if Start/Serve is never called.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:            cfg,
		log:            log,
		metrics:        metrics.New(),
		rooms:          make(map[string]*room),
		perIP:          make(map[string]int),
		builtin:        make(map[string]bool),
		stop:           make(chan struct{}),
		avatarLimits:   newIPLimiter(cfg.AvatarRate, cfg.AvatarBurst),
		decodes:        avatar.NewLimiter(cfg.AvatarMemory, avatarUploadsInFlight),
		avatarBodyWait: avatarBodyWait,
		roomCreates:    newIPLimiter(cfg.RoomCreateRate, cfg.RoomCreateBurst),
		stored:         make(map[string]struct{}),
		hosts:          newHostAllowlist(cfg.PublicHosts),
		authThrottle:   newAuthThrottle(cfg.AuthFreeFailures, cfg.AuthMaxBackoff),
		proxies:        mustParseProxies(cfg.TrustedProxies),
	}
	s.framesIn, s.framesOut = map[string]prometheus.Counter{}, map[string]prometheus.Counter{}
	for _, typ := range []string{protocol.TypeHello, protocol.TypeMsg, protocol.TypePing, protocol.TypeBye,
		"ws_ping", "ws_pong", "binary", protocol.ErrBadFrame, protocol.ErrUnknownType} {
		s.framesIn[typ] = s.metrics.FramesIn.WithLabelValues(typ)
	}
	for _, typ := range []string{protocol.TypeWelcome, protocol.TypeMsg, protocol.TypeAck, protocol.TypeJoined,
		protocol.TypePresence, protocol.TypeLeft, protocol.TypePong, protocol.TypeError, "ws_pong"} {
		s.framesOut[typ] = s.metrics.FramesOut.WithLabelValues(typ)
	}
	s.shared = wsconn.Shared{
		SendQueue: cfg.SendQueue, MaxFrame: cfg.MaxFrame, WriteTimeout: s.writeTimeout(), Now: cfg.now,
		Metrics: s.metrics, Log: log, Conns: &s.connWG, Encode: s.encode,
		In:      func(typ string) prometheus.Counter { return s.frameCounter(s.framesIn, s.metrics.FramesIn, typ) },
		Out:     func(typ string) prometheus.Counter { return s.frameCounter(s.framesOut, s.metrics.FramesOut, typ) },
		PingsIn: s.framesIn[protocol.TypePing], PongsOut: s.framesOut[protocol.TypePong],
	}
	s.metrics.WatchRooms(s.roomSizes, cfg.MetricsRoomNames)
	for _, n := range assets.BuiltinAvatarNames() {
		s.builtin[n] = true
	}
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("cannot load the TLS certificate %s and key %s: %w", cfg.TLSCert, cfg.TLSKey, err)
		}
		s.tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if cfg.DataDir != "" {
		d, err := avatar.OpenDir(filepath.Join(cfg.DataDir, "avatars"))
		if err != nil {
			return nil, err
		}
		s.avatars = d
	}
	s.store = cfg.Store
	if s.store == nil {
		st, err := store.Open(cfg.DataDir, store.Options{
			History: cfg.History, MaxAge: cfg.HistoryMaxAge, CommitInterval: cfg.CommitInterval,
			HistoryBytes: cfg.HistoryBytes, MaxSize: int(max(cfg.MaxStoreBytes, 0)),
			Logger: log.With("component", "store"),
		})
		if err != nil {
			return nil, err
		}
		s.ownStore, s.store = st, st
	}
	if wc, ok := s.store.(writeChecker); ok {
		s.metrics.WatchStore(func() bool { return wc.WriteErr() == nil })
	}
	if cfg.RedisURL != "" {
		if err := s.openRedis(); err != nil {
			if s.ownStore != nil {
				s.ownStore.Close()
			}
			return nil, err
		}
	}
	if err := s.restore(); err != nil {
		if s.ownStore != nil {
			s.ownStore.Close()
		}
		return nil, err
	}
	s.upgrader = wsconn.NewUpgrader()
	s.upgrader.CheckOrigin = s.checkOrigin
	s.upgrader.Error = func(w http.ResponseWriter, r *http.Request, status int, reason error) {
		writeJSONError(w, status, "bad_upgrade", reason.Error())
	}
	s.handler = s.routes()
	s.bgWG.Add(1)
	go s.sweeper()
	if s.redis != nil {
		s.bgWG.Add(1)
		go s.clusterLoop()
	}
	if r, err := wsconn.NewReactor(); err == nil {
		s.reactor = r
		s.bgWG.Add(1)
		go func() {
			defer s.bgWG.Done()
			r.Run()
		}()
	} else if wsconn.Available {
		s.log.Warn("every connection keeps its own reader goroutine", "err", err)
	}
	return s, nil
}

// encode encodes an outbound frame; a frame that cannot be encoded (a bug)
// is logged and not sent.
func (s *Server) encode(f protocol.Frame) ([]byte, bool) {
	data, err := protocol.Encode(f)
	if err != nil {
		s.log.Error("cannot encode frame", "type", f.FrameType(), "err", err)
		return nil, false
	}
	return data, true
}

// frameCounter returns the pre-resolved counter for typ, or the vector's.
func (s *Server) frameCounter(m map[string]prometheus.Counter, vec *prometheus.CounterVec, typ string) prometheus.Counter {
	if c, ok := m[typ]; ok {
		return c
	}
	return vec.WithLabelValues(typ)
}

// roomSizes is the metrics' view of the rooms, at scrape time. It copies
// under roomsMu and yields outside it, so a slow scrape never holds up a join.
func (s *Server) roomSizes(yield func(room string, members int)) {
	type size struct {
		name string
		n    int
	}
	s.roomsMu.Lock()
	sizes := make([]size, 0, len(s.rooms))
	for name, r := range s.rooms {
		sizes = append(sizes, size{name, int(r.size.Load())})
	}
	s.roomsMu.Unlock()
	for _, sz := range sizes {
		yield(sz.name, sz.n)
	}
}

// Handler returns the relay's HTTP handler (/ws, /healthz, /readyz, /metrics
// unless cfg.MetricsListen is set, /v1/...), for embedding in another server (the desktop's host mode). The
// caller still calls Shutdown to close connections and the store.
func (s *Server) Handler() http.Handler { return s.handler }

// Metrics exposes the collectors (tests and embedding programs read them).
func (s *Server) Metrics() *metrics.Metrics { return s.metrics }

// Start listens on cfg.Listen (with TCP keepalive and, if configured, TLS)
// and serves in the background until Shutdown.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown {
		return errors.New("relay: Start after Shutdown")
	}
	if s.ln != nil {
		return errors.New("relay: already started")
	}
	lc := net.ListenConfig{KeepAliveConfig: s.keepAlive()}
	ln, err := lc.Listen(context.Background(), "tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w (is another relay running, or pick another --listen)", s.cfg.Listen, err)
	}
	if s.cfg.STUNPort != 0 {
		host, _, _ := net.SplitHostPort(s.cfg.Listen)
		st, err := stunsrv.Listen(stunsrv.Config{
			Addr: host, Port: s.cfg.STUNPort, AltIP: s.cfg.STUNAltIP,
			Software: "heartline-relay", Logger: s.log, Registerer: s.metrics.Registry,
		})
		switch {
		case err == nil:
			s.stun = st
		case s.cfg.STUNOptional:
			s.log.Info("running without STUN (diagnostics will not check UDP)", "stun_port", s.cfg.STUNPort, "err", err)
		default:
			ln.Close()
			return fmt.Errorf("cannot answer STUN on UDP port %d: %w (pick another --stun-port, 0 to disable STUN, or --stun-optional)", s.cfg.STUNPort, err)
		}
	}
	if s.cfg.MetricsListen != "" {
		// Plain HTTP without keepalive tuning: a scraper on the host or a
		// private network, never the clients.
		opsLn, err := net.Listen("tcp", s.cfg.MetricsListen)
		if err != nil {
			ln.Close()
			if s.stun != nil {
				s.stun.Close()
				s.stun = nil
			}
			return fmt.Errorf("cannot listen for metrics on %s: %w (pick another --metrics-listen)", s.cfg.MetricsListen, err)
		}
		opsSrv := &http.Server{
			Handler:           s.checkHost(s.opsRoutes()),
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      60 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    16 << 10,
			ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		}
		opsServed := make(chan error, 1)
		go func() {
			err := opsSrv.Serve(opsLn)
			if errors.Is(err, http.ErrServerClosed) {
				err = nil
			}
			opsServed <- err
		}()
		s.opsLn, s.opsSrv, s.opsServed = opsLn, opsSrv, opsServed
		s.log.Info("metrics listening", "addr", opsLn.Addr().String(), "room_names", s.cfg.MetricsRoomNames)
	}
	if s.tlsConf != nil {
		ln = tls.NewListener(ln, s.tlsConf)
	}
	s.ln = ln
	s.httpSrv = &http.Server{
		Handler: s.handler,
		// Bounds for plain HTTP requests (an avatar body trickled in slowly,
		// huge headers); gorilla clears the deadlines of upgraded websockets.
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.served = make(chan error, 1)
	go func() {
		err := s.httpSrv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.served <- err
	}()
	s.log.Info("relay listening", "addr", ln.Addr().String(), "tls", s.tlsConf != nil, "stun_ports", s.stunPortsLocked(),
		"max_conns", s.cfg.MaxConns, "max_conns_per_ip", s.cfg.MaxConnsPerIP, "max_room_members_per_ip", s.cfg.MaxRoomMembersPerIP)
	hostsNote := "; requests naming another host get 421"
	if len(s.cfg.PublicHosts) == 0 {
		hostsNote += ": clients that connect by a domain name need it listed with --public-host"
	}
	s.log.Info("relay answers to " + s.hosts.describe() + hostsNote)
	return nil
}

func (s *Server) keepAlive() net.KeepAliveConfig {
	ka := net.KeepAliveConfig{Enable: true, Idle: s.cfg.KeepAliveIdle, Interval: s.cfg.KeepAliveInterval, Count: s.cfg.KeepAliveCount}
	// Negative values mean "leave the OS default", which KeepAliveConfig
	// spells as -1.
	if ka.Idle < 0 {
		ka.Idle = -1
	}
	if ka.Interval < 0 {
		ka.Interval = -1
	}
	if ka.Count < 0 {
		ka.Count = -1
	}
	return ka
}

// STUNPorts are the UDP ports announced in welcome.stun: the responder's
// primary and alternate port while it runs, else cfg.STUNPorts.
func (s *Server) STUNPorts() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stunPortsLocked()
}

func (s *Server) stunPortsLocked() []int {
	if s.stun != nil {
		return s.stun.Ports()
	}
	return s.cfg.STUNPorts
}

// Addr is the address Start bound (useful with port 0); nil before Start.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// MetricsAddr is the address Start bound for cfg.MetricsListen; nil before
// Start or without MetricsListen.
func (s *Server) MetricsAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opsLn == nil {
		return nil
	}
	return s.opsLn.Addr()
}

// Serve starts the relay and runs it until ctx ends, then shuts down within
// cfg.ShutdownTimeout. It returns nil after a clean shutdown.
func (s *Server) Serve(ctx context.Context) error {
	if err := s.Start(); err != nil {
		s.Shutdown(context.Background())
		return err
	}
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-s.served:
		s.served <- serveErr // Shutdown reads it again
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	err := s.Shutdown(sctx)
	return errors.Join(serveErr, err)
}

// Shutdown drains the relay: /readyz turns 503, new upgrades are refused,
// every client gets close 1001 after its queued frames, then the store
// flushes and closes. Members stay stored (they are away after a restart).
// If ctx ends first, remaining connections are cut and ctx.Err() returned.
// Shutdown is idempotent.
func (s *Server) Shutdown(ctx context.Context) error {
	var err error
	s.stopOnce.Do(func() { err = s.shutdownOnce(ctx) })
	return err
}

func (s *Server) shutdownOnce(ctx context.Context) error {
	s.draining.Store(true)
	s.log.Info("relay draining: closing every connection with 1001")
	s.mu.Lock()
	s.shutdown = true
	httpSrv, served, stun := s.httpSrv, s.served, s.stun
	opsSrv, opsServed := s.opsSrv, s.opsServed
	s.mu.Unlock()
	if stun != nil {
		stun.Close()
	}

	var errs []error
	if httpSrv != nil {
		// Stops the listener and idle keep-alive connections; hijacked
		// websockets are ours to close below.
		if err := httpSrv.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
		if err := <-served; err != nil {
			errs = append(errs, err)
		}
	}
	for _, c := range s.snapshotConns() {
		c.Close(websocket.CloseGoingAway, "relay shutting down", false, metrics.EvictShutdown)
	}
	if !waitGroup(ctx, &s.connWG) {
		errs = append(errs, fmt.Errorf("shutdown: %w; cutting the remaining connections", ctx.Err()))
		for _, c := range s.snapshotConns() {
			c.Cut()
		}
		s.connWG.Wait() // every reader/writer returns once its socket is closed
	}
	// The metrics listener stays up while clients drain, so a scrape still
	// sees the drain (readyz 503, connections going to 0).
	if opsSrv != nil {
		if err := opsSrv.Shutdown(ctx); err != nil {
			opsSrv.Close() // a scrape still running after ctx: cut it
			errs = append(errs, fmt.Errorf("metrics listener: %w", err))
		}
		if err := <-opsServed; err != nil {
			errs = append(errs, err)
		}
	}
	if s.redis != nil {
		// This relay's members turn away at once (not after a missed
		// heartbeat), so they come back through another relay with no
		// leave; then the background work still using Redis ends.
		lctx, cancel := context.WithTimeout(context.Background(), redisTimeout)
		if err := s.redis.Leave(lctx, s.cfg.Grace); err != nil {
			s.log.Warn("cannot hand this relay's members over in Redis; the others will after missed heartbeats", "err", err)
		}
		cancel()
	}
	// Close the store before stopping the sweeper: its last callbacks start
	// room drainers (bgWG.Add) while the sweeper still holds bgWG above zero.
	if s.ownStore != nil {
		if err := s.ownStore.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	close(s.stop)
	if s.reactor != nil {
		s.reactor.Close()
	}
	// Redis's pub/sub still delivers until the client closes below, and
	// its events start drainers: from here they are dropped (every link
	// is closed), so that no Add races the Wait.
	s.bgMu.Lock()
	s.bgClosed = true
	s.bgMu.Unlock()
	s.bgWG.Wait()
	if s.redis != nil {
		s.redis.Close()
	}
	s.log.Info("relay stopped")
	return errors.Join(errs...)
}

// goBackground runs f on its own goroutine, owned by bgWG, unless Shutdown
// already waits for bgWG; it reports whether f runs.
func (s *Server) goBackground(f func()) bool {
	s.bgMu.Lock()
	defer s.bgMu.Unlock()
	if s.bgClosed {
		return false
	}
	s.bgWG.Add(1)
	go func() {
		defer s.bgWG.Done()
		f()
	}()
	return true
}

// waitGroup waits for wg or ctx, reporting whether wg finished.
func waitGroup(ctx context.Context, wg *sync.WaitGroup) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}

func (s *Server) snapshotConns() []*conn {
	s.connsMu.Lock()
	defer s.connsMu.Unlock()
	out := make([]*conn, 0, s.conns.Len())
	s.conns.Each(func(c *conn, _ *wsconn.Liveness) { out = append(out, c) })
	return out
}

// restore loads the stored rooms that have members: after a restart every
// member is away and leaves (reason timeout) after the grace period unless
// its key comes back.
func (s *Server) restore() error {
	if s.inRedis() {
		return nil // the rooms are in Redis, loaded on first join
	}
	states, err := s.store.Rooms()
	if err != nil {
		return fmt.Errorf("cannot read the rooms from the store: %w", err)
	}
	now := s.cfg.now()
	n := 0
	for _, st := range states {
		s.stored[st.Name] = struct{}{}
		if len(st.Members) == 0 {
			continue
		}
		r := s.newRoom(st.Name)
		r.load(st, now)
		close(r.ready)
		s.rooms[st.Name] = r
		n += len(st.Members)
	}
	if n > 0 {
		s.log.Info("restored members after restart; they are away until they return",
			"rooms", len(s.rooms), "members", n, "grace", s.cfg.Grace)
	}
	s.metrics.Rooms.Set(float64(len(s.rooms)))
	return nil
}
