package client

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/heartline/heartline/shared/names"
	"github.com/heartline/heartline/shared/protocol"
)

// Config sets up a Client. Zero values mean the documented defaults.
type Config struct {
	// URL of the relay: "ws://host:port/ws", "wss://host/ws", or just
	// "host:port" (ws:// and /ws are added). http(s):// work too. An invite
	// address ("host:port#token=...", see protocol.InviteAddress) sets Token.
	URL string
	// Room, Name and Avatar as the protocol defines them. Avatar "" lets
	// other clients draw initials.
	Room, Name, Avatar string
	// Token is the relay's access token, if it has one.
	Token string
	// Key is this member's secret (16-128 characters). Make one with NewKey
	// once per installation and room and keep it with the settings: whoever
	// holds the key is the member.
	Key string
	// Client names the program in the hello, e.g. "heartline-desktop/0.1.0";
	// "" sends none.
	Client string
	// Outbox keeps messages not yet accepted by the relay. nil means an
	// in-memory outbox; NewFileOutbox keeps them across app restarts.
	Outbox OutboxStore
	// Resume is where a previous run left off (see Client.ResumePoint); nil
	// means join fresh (the latest page of history).
	Resume *ResumePoint
	// Clock drives every timer of the engine; nil means the real clock.
	Clock Clock
	// Rand returns numbers in [0,1) for backoff jitter; nil means a
	// randomly seeded generator.
	Rand func() float64
	// Backoff shapes reconnect delays; the zero value means base 500 ms,
	// cap 30 s, reset after 30 s of stable connection.
	Backoff Backoff
	// DialTimeout bounds the TCP connect, TLS and WebSocket handshake;
	// 0 means 10 s.
	DialTimeout time.Duration
	// HelloTimeout is how long the engine waits for the welcome after the
	// hello before it gives up on that link and retries; 0 means 10 s.
	HelloTimeout time.Duration
	// CheckTimeout is how long a check of the link, made at once when the
	// computer wakes from sleep or its network changes, waits for the
	// relay's answer before the link is given up and made again; 0 means
	// 1.5 s.
	CheckTimeout time.Duration
	// NoNetworkWatch turns the network watcher off: a link killed by a
	// sleep or a network change is then noticed by the heartbeat timeout
	// only (25 s by default). Client.CheckNow still works.
	NoNetworkWatch bool
	// netWatcher replaces the process's shared watcher (tests).
	netWatcher *netWatcher
	// NetDialContext opens the TCP connection; nil means a net.Dialer.
	// (Tests count sockets with it; an app could route through a proxy.)
	NetDialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// TLSConfig for wss:// URLs; nil means the system's roots.
	TLSConfig *tls.Config
	// Logger receives connection lines; nil discards them.
	Logger *slog.Logger
	// Deliver, if set, receives the events instead of the Events channel:
	// in order, in batches (whatever queued up while the previous call ran,
	// at most MaxEventBatch), one call at a time on a goroutine of the
	// engine. The engine never waits for it. A UI passes a function that
	// hands the batch to its own goroutine (fyne.Do): one hop, no second
	// queue. nil means the Events channel.
	Deliver func(batch []Event)
}

// MaxEventBatch bounds a batch given to Config.Deliver, so that a burst (a
// long history replay) still lets a window draw in between.
const MaxEventBatch = 500

// ResumePoint is where the client's view of a room ends: the room's epoch
// and the highest seq up to which it holds every message (its own acked
// messages included). An app persists it to resume without gaps later.
type ResumePoint struct {
	Epoch   string `json:"epoch"`
	LastSeq uint64 `json:"last_seq"`
}

// StopError is what Run returns when the relay refused the client for a
// reason that retrying cannot fix (wrong token, name taken, room full...).
type StopError struct {
	Code   int    // the relay's close code (4500-4999, 1000 or 4002)
	Reason string // a sentence a person can read, saying what to do
	// Relay is the error frame that came before the close, if any (it may
	// say which field was refused).
	Relay *protocol.Error
}

func (e *StopError) Error() string { return e.Reason }

// ErrClosed is returned by Send and Retry after Run has returned.
var ErrClosed = errors.New("the connection to the room has ended: start it again to send")

// ErrEmptyMessage is returned by Send for a message with nothing but spaces.
var ErrEmptyMessage = errors.New("the message is empty")

// Client is one member's connection to one room. Create it with New, start
// it with Run (once), read Events until the channel closes.
type Client struct {
	cfg     Config
	url     string
	clock   Clock
	rand    func() float64
	backoff Backoff
	log     *slog.Logger
	store   *storeWriter
	dialer  websocket.Dialer

	events    *queue[Event]
	eventsOut chan Event

	wake      chan struct{} // the outbox has something new to send
	retryNow  chan struct{}
	net       *netSub       // wakes, network changes and CheckNow (wake.go)
	leave     chan struct{} // closed by Leave
	leaveOnce sync.Once

	mu       sync.Mutex // guards everything below
	started  bool
	finished bool
	state    State
	core     core // the outbox, seqs, epoch and send policy
	history  historyRequests
}

const (
	defaultDialTimeout = 10 * time.Second
	// byeWait is how long Leave waits for the relay to close after bye
	// (the protocol: "the client closes after at most 2 s anyway").
	byeWait = 2 * time.Second
	// maxRateLimitRetries: a message the relay refuses as too fast this
	// many times in a row becomes Failed.
	maxRateLimitRetries = 5
	// writeTimeout bounds one socket write in real time; the heartbeat
	// notices a dead link sooner, this only frees a writer stuck in the
	// kernel.
	writeTimeout = 10 * time.Second
	// maxInboundFrame bounds what the engine reads from a relay (a welcome
	// lists up to 1000 members and a page of history).
	maxInboundFrame = 8 << 20
)

// NewKey returns a new random member key (32 URL-safe characters from
// crypto/rand).
func NewKey() string {
	var b [24]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// newMessageID returns a random client message id (22 characters): ids
// never repeat, not even across app restarts, so the relay's dedup by id is
// safe.
func newMessageID() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// New checks cfg and returns a client ready to Run. Errors name the setting
// that is wrong.
func New(cfg Config) (*Client, error) {
	if _, tok := protocol.SplitInvite(cfg.URL); tok != "" {
		if cfg.Token != "" && cfg.Token != tok {
			return nil, errors.New("the relay address carries a token (#token=...) and the token setting gives another: keep only one")
		}
		cfg.Token = tok
	}
	u, err := protocol.RelayURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	if err := protocol.ValidateRoom(cfg.Room); err != nil {
		return nil, fmt.Errorf("room: %s", frameMessage(err))
	}
	name, err := names.Normalize(cfg.Name)
	if err != nil {
		return nil, fmt.Errorf("name: %s", frameMessage(err))
	}
	cfg.Name = name
	if err := protocol.ValidateKey(cfg.Key); err != nil {
		return nil, fmt.Errorf("member key: %s (make one with NewKey and keep it)", frameMessage(err))
	}
	if err := protocol.ValidateAvatar(cfg.Avatar); err != nil {
		return nil, fmt.Errorf("avatar: %s", frameMessage(err))
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = defaultDialTimeout
	}
	if cfg.HelloTimeout <= 0 {
		cfg.HelloTimeout = protocol.HelloTimeout
	}
	if cfg.CheckTimeout <= 0 {
		cfg.CheckTimeout = defaultCheckTimeout
	}
	c := &Client{
		cfg:       cfg,
		url:       u.String(),
		clock:     cfg.Clock,
		rand:      cfg.Rand,
		backoff:   cfg.Backoff.withDefaults(),
		log:       cfg.Logger,
		events:    newQueue[Event](),
		eventsOut: make(chan Event),
		wake:      make(chan struct{}, 1),
		retryNow:  make(chan struct{}, 1),
		net:       newNetSub(),
		leave:     make(chan struct{}),
	}
	if c.clock == nil {
		c.clock = SystemClock{}
	}
	if c.rand == nil {
		c.rand = mrand.Float64
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	store := cfg.Outbox
	if store == nil {
		store = NewMemoryOutbox()
	}
	serial := &serialStore{s: store}
	c.store = newStoreWriter(serial, c.log, func(id string, err error) {
		c.events.push(OutboxNotSaved{ID: id, Err: err})
	})
	c.dialer = websocket.Dialer{
		NetDialContext:   cfg.NetDialContext,
		TLSClientConfig:  cfg.TLSConfig,
		HandshakeTimeout: cfg.DialTimeout, // a backstop; the clock-driven timeout comes first
		ReadBufferSize:   4096,
		WriteBufferSize:  4096,
	}
	items, err := serial.Load()
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	for _, it := range items {
		if it.Status == Sent { // a store should not keep these; nothing to do for them
			continue
		}
		c.core.outbox = append(c.core.outbox, it)
	}
	if cfg.Resume != nil && cfg.Resume.Epoch != "" {
		c.core.epoch = cfg.Resume.Epoch
		c.core.seqs.reset(cfg.Resume.LastSeq)
	}
	return c, nil
}

func frameMessage(err error) string {
	var fe *protocol.FrameError
	if errors.As(err, &fe) {
		return fe.Message
	}
	return err.Error()
}

// URL is the WebSocket URL the client dials.
func (c *Client) URL() string { return c.url }

// Events delivers everything the engine has to say, in order, and is closed
// after Run returns and every event has been read. It never drops events,
// and the engine never waits for its reader: events queue up (in memory)
// while the reader is busy. Keep reading until the channel closes; events
// are delivered only while or after Run runs. With Config.Deliver set no
// event comes on it: it is closed once Deliver has had the last batch.
func (c *Client) Events() <-chan Event { return c.eventsOut }

// State returns the engine's current state.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// ResumePoint returns the room's epoch and the gap-free last seq held; an
// app saves it (Config.Resume) to pick up without gaps after a restart.
func (c *Client) ResumePoint() ResumePoint {
	c.mu.Lock()
	defer c.mu.Unlock()
	return ResumePoint{Epoch: c.core.epoch, LastSeq: c.core.seqs.last}
}

// Outbox returns the items not yet sent (pending and failed), in order.
func (c *Client) Outbox() []OutboxItem {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]OutboxItem(nil), c.core.outbox...)
}

// Send queues text for the room and returns its message id. It works
// offline: the message waits in the outbox until a link takes it. Send
// never waits on the disk: the store write (NewFileOutbox) follows on the
// engine's store goroutine, and is done by the time Run returns (an
// OutboxNotSaved event tells of a write that failed). An error means the
// message was not queued.
func (c *Client) Send(text string) (string, error) {
	if strings.TrimSpace(text) == "" {
		return "", ErrEmptyMessage
	}
	if !utf8.ValidString(text) {
		return "", errors.New("the message is not valid UTF-8 text")
	}
	item := OutboxItem{ID: newMessageID(), Text: text, Status: Pending, Created: c.clock.Now()}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.finished {
		return "", ErrClosed
	}
	c.applyLocked(c.core.queue(item))
	c.poke()
	return item.ID, nil
}

// Retry queues a failed message again, after every message queued so far.
func (c *Client) Retry(id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.finished {
		return ErrClosed
	}
	eff, err := c.core.retry(id)
	if err != nil {
		return err
	}
	c.applyLocked(eff)
	c.poke()
	return nil
}

// Discard throws a failed message away for good.
func (c *Client) Discard(id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	eff, err := c.core.discard(id)
	if err != nil {
		return err
	}
	c.applyLocked(eff)
	return nil
}

// RetryNow ends the current wait between reconnect attempts at once. It
// does nothing while connecting or connected.
func (c *Client) RetryNow() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state.Phase != Reconnecting {
		return // a click while connecting must not skip the next wait
	}
	select {
	case c.retryNow <- struct{}{}:
	default:
	}
}

// Leave says bye to the room (the others see the member leave at once) and
// makes Run return nil. Without a link it just stops.
func (c *Client) Leave() {
	c.leaveOnce.Do(func() { close(c.leave) })
}

func (c *Client) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// emitLocked queues an event; c.mu is held so that events come out in the
// order the state changed.
func (c *Client) emitLocked(e Event) { c.events.push(e) }

func (c *Client) setStateLocked(s State) {
	c.state = s
	c.emitLocked(StateChanged{State: s})
}

// applyLocked emits core's events and queues its store writes; frames are
// the link's (link.applyLocked). c.mu is held.
func (c *Client) applyLocked(eff effects) {
	for _, ev := range eff.events { // before a store failure can be told
		c.emitLocked(ev)
	}
	for _, op := range eff.store {
		c.store.push(op)
	}
}

// Run connects and keeps the client connected until ctx ends (it returns
// ctx.Err()), Leave is called (nil), or the relay refuses the client for
// good (a *StopError). It may be called once.
func (c *Client) Run(ctx context.Context) error {
	c.mu.Lock()
	if c.started {
		c.mu.Unlock()
		return errors.New("client: Run may be called only once")
	}
	c.started = true
	c.mu.Unlock()

	// The pump outlives Run until the reader has taken every event; it is
	// the one goroutine a reader that stops reading can hold up.
	if c.cfg.Deliver != nil {
		go deliverEvents(c.events, c.cfg.Deliver, c.eventsOut)
	} else {
		go pumpEvents(c.events, c.eventsOut)
	}

	var watcher *netWatcher
	if !c.cfg.NoNetworkWatch {
		watcher = cmp.Or(c.cfg.netWatcher, sharedWatcher)
		watcher.subscribe(c.net)
	}
	err := c.loop(ctx)
	if watcher != nil {
		watcher.unsubscribe(c.net)
	}

	c.mu.Lock()
	c.finished = true // no Send or Retry from now on: the store can catch up
	c.mu.Unlock()
	c.store.wait() // the store is up to date when Run returns

	c.mu.Lock()
	s := c.state
	var stop *StopError
	if errors.As(err, &stop) {
		s = State{Phase: Stopped, StopReason: stop.Reason, CloseCode: stop.Code, LastError: s.LastError}
	} else {
		s = State{Phase: Offline, LastError: s.LastError}
	}
	c.setStateLocked(s)
	c.mu.Unlock()
	c.events.close()
	return err
}

// loop is the connect / wait / reconnect cycle. Only one link exists at a
// time: a link is fully closed (socket and goroutines) before the next dial.
func (c *Client) loop(ctx context.Context) error {
	attempt := 0 // reconnect attempts since the last stable link
	var lastErr string
	var lastCode int
	for {
		select {
		case <-c.leave:
			return nil
		default:
		}
		c.mu.Lock()
		select { // a RetryNow that came as the wait ended must not skip the next one
		case <-c.retryNow:
		default:
		}
		c.setStateLocked(State{Phase: Connecting, Attempt: attempt, LastError: lastErr, CloseCode: lastCode})
		c.mu.Unlock()

		res := c.connectOnce(ctx)
		switch res.outcome {
		case outcomeCanceled:
			return ctx.Err()
		case outcomeLeft:
			return nil
		case outcomeStop:
			c.mu.Lock()
			c.state.LastError = res.reason // Run's final state shows it
			c.mu.Unlock()
			return res.stop
		}
		lastErr, lastCode = res.reason, res.closeCode
		if res.stableFor >= c.backoff.StableAfter {
			attempt = 0
		}
		attempt++
		delay := max(c.backoff.Delay(attempt, c.rand()), res.notBefore)
		if res.atOnce {
			// The network changed: the next attempt goes out on the new
			// one now; the backoff is for a relay that is down.
			delay = res.notBefore
		}
		timer := c.clock.NewTimer(delay)
		c.mu.Lock()
		c.setStateLocked(State{
			Phase: Reconnecting, Attempt: attempt, NextTry: c.clock.Now().Add(delay),
			LastError: lastErr, CloseCode: lastCode,
		})
		c.mu.Unlock()
		c.log.Info("reconnecting", "attempt", attempt, "in", delay, "after", lastErr)
	wait:
		for {
			select {
			case <-timer.C():
				break wait
			case <-c.retryNow:
				break wait
			case <-c.net.ready:
				if _, ok := c.takeNetChange(); ok {
					break wait // a new network may well reach the relay: try it now
				}
			case <-ctx.Done():
				timer.Stop()
				return ctx.Err()
			case <-c.leave:
				timer.Stop()
				return nil
			}
		}
		timer.Stop()
	}
}

type outcome int

const (
	outcomeRetry outcome = iota
	outcomeStop
	outcomeCanceled
	outcomeLeft
)

// linkResult is how one connection attempt ended.
type linkResult struct {
	outcome   outcome
	reason    string        // for outcomeRetry: why, in words
	closeCode int           // the relay's close code, if any
	stableFor time.Duration // how long the link was up after its welcome
	stop      *StopError
	// notBefore is the least wait the relay asked for before the next
	// attempt (Retry-After on a refused upgrade, retry_after_ms on a
	// refused hello); the backoff waits at least that long.
	notBefore time.Duration
	// atOnce: the network changed during this attempt or link, so the
	// next attempt skips the backoff wait (not notBefore).
	atOnce bool
}

// connectOnce dials, then runs the link until it ends.
func (c *Client) connectOnce(ctx context.Context) linkResult {
	conn, res, ok := c.dial(ctx)
	if !ok {
		return res
	}
	l := newLink(c, conn)
	res = l.run(ctx)
	c.historyLinkEnded()
	return res
}

// dial opens the WebSocket, bounded by DialTimeout on the engine's clock.
// Whatever happens, no socket is left open behind the caller's back.
func (c *Client) dial(ctx context.Context) (*websocket.Conn, linkResult, bool) {
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		conn       *websocket.Conn
		err        error
		retryAfter time.Duration
	}
	// gorilla watches ctx only while connecting TCP; for the TLS and HTTP
	// upgrade it relies on a deadline. Closing the socket when dctx ends
	// makes an abandoned handshake return at once.
	dialer := c.dialer
	netDial := c.cfg.NetDialContext
	if netDial == nil {
		netDial = (&net.Dialer{}).DialContext
	}
	var unwatch func() bool // guarded by the done channel's hand-over
	dialer.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := netDial(ctx, network, addr)
		if err == nil {
			unwatch = context.AfterFunc(dctx, func() { conn.Close() })
		}
		return conn, err
	}
	done := make(chan result, 1)
	go func() {
		conn, resp, err := dialer.DialContext(dctx, c.url, nil)
		var retryAfter time.Duration
		if err != nil {
			retryAfter = retryAfterOf(resp)
			err = describeDialError(c.url, resp, err)
		} else if !unwatch() {
			conn.Close() // dctx ended as the handshake finished: the socket is closed
			err = errors.New("the connection attempt was cancelled")
			conn = nil
		}
		done <- result{conn, err, retryAfter}
	}()
	timer := c.clock.NewTimer(c.cfg.DialTimeout)
	defer timer.Stop()
	abandon := func() {
		cancel()
		if r := <-done; r.conn != nil {
			r.conn.Close()
		}
	}
	start := c.clock.Now()
	var changed *NetChange // a network change seen while dialing
	for {
		select {
		case r := <-done:
			if r.err != nil {
				c.log.Info("dial failed", "url", c.url, "err", r.err)
				return nil, linkResult{outcome: outcomeRetry, reason: r.err.Error(), notBefore: r.retryAfter, atOnce: changed != nil}, false
			}
			if changed != nil {
				// The socket may have been made on the old network just
				// before the change: the link looks at it once it runs.
				again := *changed
				again.told = true
				c.net.post(again)
			}
			return r.conn, linkResult{}, true
		case <-timer.C():
			abandon()
			reason := fmt.Sprintf("no answer from %s within %s: check the address, or the network", hostOf(c.url), seconds(c.cfg.DialTimeout))
			return nil, linkResult{outcome: outcomeRetry, reason: reason, atOnce: changed != nil}, false
		case <-c.net.ready:
			// The dial's age when the change came, read before the change
			// is told: what the person sees has been decided already.
			age := c.clock.Now().Sub(start)
			ch, ok := c.takeNetChange()
			if !ok || ch.manual || ch.told {
				continue // CheckNow while connecting: the attempt is the check
			}
			if age >= c.cfg.CheckTimeout {
				// An attempt this slow is likely stuck on the old network.
				abandon()
				return nil, linkResult{outcome: outcomeRetry, reason: "the network changed while connecting", atOnce: true}, false
			}
			if changed != nil {
				ch = changed.merge(ch)
			}
			changed = &ch
		case <-ctx.Done():
			abandon()
			return nil, linkResult{outcome: outcomeCanceled}, false
		case <-c.leave:
			abandon()
			return nil, linkResult{outcome: outcomeLeft}, false
		}
	}
}

func hostOf(u string) string {
	if p, err := url.Parse(u); err == nil {
		return p.Host
	}
	return u
}

// maxRetryAfter bounds how long a relay may ask the engine to stay away.
const maxRetryAfter = 10 * time.Minute

// retryAfterOf reads a refused upgrade's Retry-After (in seconds), if any.
func retryAfterOf(resp *http.Response) time.Duration {
	if resp == nil {
		return 0
	}
	secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || secs <= 0 {
		return 0
	}
	return min(time.Duration(secs)*time.Second, maxRetryAfter)
}

// relayMessage is the "message" of a relay's JSON error body, if it has one.
func relayMessage(resp *http.Response) string {
	if resp == nil || resp.Body == nil {
		return ""
	}
	var body struct {
		Message string `json:"message"`
	}
	if json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&body) != nil {
		return ""
	}
	return body.Message
}

// describeDialError says what went wrong with a dial, and what to check.
func describeDialError(u string, resp *http.Response, err error) error {
	host := hostOf(u)
	if resp != nil {
		switch resp.StatusCode {
		case http.StatusNotFound:
			return fmt.Errorf("there is no Heartline relay at %s (HTTP 404 for %s): check the address", host, u)
		case http.StatusTooManyRequests:
			if msg := relayMessage(resp); msg != "" {
				return fmt.Errorf("the relay at %s asks this address to wait (HTTP 429): %s", host, msg)
			}
			return fmt.Errorf("the relay at %s has too many connections from this address (HTTP 429)", host)
		case http.StatusServiceUnavailable:
			return fmt.Errorf("the relay at %s is busy or shutting down (HTTP 503)", host)
		case http.StatusForbidden:
			return fmt.Errorf("the relay at %s refused the connection (HTTP 403)", host)
		case http.StatusMisdirectedRequest:
			return fmt.Errorf("the relay at %s does not answer to that name (HTTP 421): connect by its IP address, or ask its operator to add the name with --public-host", host)
		}
		return fmt.Errorf("the relay at %s answered HTTP %d instead of opening a chat link: check the address", host, resp.StatusCode)
	}
	var dnsErr *net.DNSError
	var certErr *tls.CertificateVerificationError
	switch {
	case errors.As(err, &dnsErr):
		return fmt.Errorf("cannot find the host %s: check the address and the network", dnsErr.Name)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("%s refused the connection: is the relay running on that port?", host)
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH):
		return fmt.Errorf("%s cannot be reached from this network", host)
	case errors.As(err, &certErr):
		return fmt.Errorf("the relay at %s has a certificate this computer does not trust: %v", host, certErr.Err)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("no answer from %s in time: check the address, or the network", host)
	}
	return fmt.Errorf("cannot connect to %s: %v", host, err)
}

// seconds formats a duration the way a person reads a timeout: "25 s", "0.3 s".
func seconds(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%d s", d/time.Second)
	}
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.3f", d.Seconds()), "0"), ".") + " s"
}
