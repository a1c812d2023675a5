package client

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// testKey is a valid member key; tests that need several members use NewKey.
const testKey = "k-0123456789abcdef-test"

// closedPort returns a local address nothing listens on (connection refused).
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// randSeq returns the given numbers in turn, then repeats the last one.
func randSeq(vals ...float64) func() float64 {
	var mu sync.Mutex
	i := 0
	return func() float64 {
		mu.Lock()
		defer mu.Unlock()
		v := vals[min(i, len(vals)-1)]
		i++
		return v
	}
}

// nextState reads events until a StateChanged with the given phase, and
// fails after a bounded wait.
func nextState(t *testing.T, events <-chan Event, phase Phase) State {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("events closed while waiting for %s", phase)
			}
			if sc, ok := ev.(StateChanged); ok && sc.State.Phase == phase {
				return sc.State
			}
		case <-deadline:
			t.Fatalf("no %s state within 10 s", phase)
		}
	}
}

// runClient starts c.Run and returns a function that cancels it and
// returns Run's error (bounded wait).
func runClient(t *testing.T, c *Client) (stop func() error, done <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx) }()
	var once sync.Once
	var result error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case result = <-errc:
			case <-time.After(10 * time.Second):
				t.Error("Run did not return within 10 s of cancel")
			}
		})
		return result
	}
	t.Cleanup(func() {
		stop()
		// Read what nobody read, so the event pump can finish (goleak).
		deadline := time.After(10 * time.Second)
		for {
			select {
			case _, ok := <-c.Events():
				if !ok {
					return
				}
			case <-deadline:
				t.Error("the events channel was not closed after Run returned")
				return
			}
		}
	})
	return stop, errc
}

func TestBackoffDelaysWithInjectedClockAndRand(t *testing.T) {
	clk := newFakeClock()
	rands := []float64{0.5, 0.25, 0.999, 0.1, 0.75, 0.5, 0.999, 0.3, 0}
	c, err := New(Config{
		URL: closedPort(t), Room: "lobby", Name: "ann", Key: testKey,
		Clock: clk, Rand: randSeq(rands...),
	})
	if err != nil {
		t.Fatal(err)
	}
	events := c.Events()
	runClient(t, c)

	ceilings := []time.Duration{ // base 500 ms doubling to the 30 s cap
		500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second,
		8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second, 30 * time.Second,
	}
	for i, ceiling := range ceilings {
		attempt := i + 1
		s := nextState(t, events, Reconnecting)
		want := time.Duration(rands[i] * float64(ceiling))
		if s.Attempt != attempt {
			t.Fatalf("attempt = %d, want %d", s.Attempt, attempt)
		}
		if got := s.NextTry.Sub(clk.Now()); got != want {
			t.Fatalf("attempt %d: next try in %v, want %v (r=%v of %v)", attempt, got, want, rands[i], ceiling)
		}
		if s.LastError == "" {
			t.Fatalf("attempt %d: reconnecting without a reason", attempt)
		}
		if want > 0 {
			// Just before the deadline the engine is still waiting.
			clk.Advance(want - time.Millisecond)
			if !hasTimerAt(clk, s.NextTry) {
				t.Fatalf("attempt %d: the backoff timer is gone before its deadline", attempt)
			}
			clk.Advance(time.Millisecond)
		}
		if s := nextState(t, events, Connecting); s.Attempt != attempt {
			t.Fatalf("connecting attempt = %d, want %d", s.Attempt, attempt)
		}
	}

	// RetryNow skips the wait: the next attempt starts without the clock moving.
	s := nextState(t, events, Reconnecting)
	if s.NextTry.Sub(clk.Now()) != 0 && !hasTimerAt(clk, s.NextTry) {
		t.Fatal("no backoff timer running")
	}
	before := clk.Now()
	c.RetryNow()
	nextState(t, events, Connecting)
	if !clk.Now().Equal(before) {
		t.Fatal("clock moved")
	}
}

func hasTimerAt(clk *fakeClock, at time.Time) bool {
	for _, d := range clk.running() {
		if d.Equal(at) {
			return true
		}
	}
	return false
}

// countingDialer opens real TCP connections and records how many of them
// were open at the same time.
type countingDialer struct {
	open, max, total atomic.Int32
}

func (d *countingDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	n := d.open.Add(1)
	d.total.Add(1)
	for {
		m := d.max.Load()
		if n <= m || d.max.CompareAndSwap(m, n) {
			break
		}
	}
	return &countedConn{Conn: conn, d: d}, nil
}

type countedConn struct {
	net.Conn
	d    *countingDialer
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.d.open.Add(-1) })
	return c.Conn.Close()
}

// silentRelay accepts WebSocket upgrades and reads, but never welcomes: a
// relay that hangs after the handshake.
func silentRelay(t *testing.T) string {
	t.Helper()
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func TestHelloWithoutWelcomeIsAbandonedAndNeverTwoSockets(t *testing.T) {
	clk := newFakeClock()
	var dialer countingDialer
	c, err := New(Config{
		URL: silentRelay(t), Room: "lobby", Name: "ann", Key: testKey,
		Clock: clk, Rand: randSeq(0.5), NetDialContext: dialer.DialContext,
		DialTimeout: 7 * time.Second, // a deadline distinct from the hello timer's
	})
	if err != nil {
		t.Fatal(err)
	}
	events := c.Events()
	stop, _ := runClient(t, c)

	for attempt := 1; attempt <= 5; attempt++ {
		nextState(t, events, Connecting)
		// Wait until the engine waits for its welcome, then let 10 s pass.
		waitFor(t, "the hello timer", func() bool { return hasTimerAt(clk, clk.Now().Add(10*time.Second)) })
		clk.Advance(10 * time.Second)
		var drop Drop
		for drop.At.IsZero() {
			select {
			case ev := <-events:
				if ld, ok := ev.(LinkDropped); ok {
					drop = ld.Drop
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no LinkDropped after the hello timeout")
			}
		}
		if drop.Detected != DetectedHelloTimeout || drop.Welcomed {
			t.Fatalf("drop = %+v, want a hello timeout", drop)
		}
		s := nextState(t, events, Reconnecting)
		if s.Attempt != attempt {
			t.Fatalf("attempt %d, want %d", s.Attempt, attempt)
		}
		if dialer.open.Load() != 0 {
			t.Fatalf("%d sockets still open while waiting to reconnect", dialer.open.Load())
		}
		// Clicking "retry now" many times must not open parallel sockets.
		for range 5 {
			c.RetryNow()
		}
	}
	stop()
	if got := dialer.max.Load(); got != 1 {
		t.Fatalf("at most %d sockets were open at once, want exactly 1", got)
	}
	if got := dialer.total.Load(); got < 5 {
		t.Fatalf("only %d dials", got)
	}
	if dialer.open.Load() != 0 {
		t.Fatal("a socket is still open after Run returned")
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	good := Config{URL: "127.0.0.1:1", Room: "lobby", Name: "ann", Key: testKey}
	cases := map[string]func(*Config){
		"empty url":      func(c *Config) { c.URL = "" },
		"ftp url":        func(c *Config) { c.URL = "ftp://x/ws" },
		"bad room":       func(c *Config) { c.Room = "Lobby!" },
		"empty name":     func(c *Config) { c.Name = "   " },
		"invisible name": func(c *Config) { c.Name = "\u200b\u200b" }, // the relay would refuse it
		"hidden char":    func(c *Config) { c.Name = "ann\u200b" },
		"short key":      func(c *Config) { c.Key = "short" },
		"bad avatar":     func(c *Config) { c.Avatar = "http://x/a.png" },
		"no host url":    func(c *Config) { c.URL = "ws:///ws" },
	}
	for name, mut := range cases {
		cfg := good
		mut(&cfg)
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
	c, err := New(good)
	if err != nil {
		t.Fatal(err)
	}
	if c.URL() != "ws://127.0.0.1:1/ws" {
		t.Errorf("URL() = %q", c.URL())
	}
	if k := NewKey(); len(k) != 32 || NewKey() == k {
		t.Errorf("NewKey() = %q: want 32 random characters", k)
	}
}

func TestEventsChannelClosesAfterRunAndSendFailsAfter(t *testing.T) {
	c, err := New(Config{URL: closedPort(t), Room: "lobby", Name: "ann", Key: testKey, Clock: newFakeClock()})
	if err != nil {
		t.Fatal(err)
	}
	// Send works before Run (offline): the message waits in the outbox.
	id, err := c.Send("typed while offline")
	if err != nil || id == "" {
		t.Fatalf("Send offline: %q, %v", id, err)
	}
	if _, err := c.Send("  \n "); !errors.Is(err, ErrEmptyMessage) {
		t.Fatalf("empty message: %v", err)
	}
	stop, _ := runClient(t, c)
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v, want context.Canceled", err)
	}
	// Nobody read events while Run ran: they are all still there, then the
	// channel closes.
	var sawOutbox, sawOffline bool
	for ev := range c.Events() {
		switch ev := ev.(type) {
		case OutboxChanged:
			sawOutbox = ev.Item.ID == id && ev.Item.Status == Pending
		case StateChanged:
			sawOffline = ev.State.Phase == Offline
		}
	}
	if !sawOutbox || !sawOffline {
		t.Fatalf("events: outbox %v, final offline %v", sawOutbox, sawOffline)
	}
	if _, err := c.Send("late"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after Run: %v, want ErrClosed", err)
	}
	if items := c.Outbox(); len(items) != 1 || items[0].ID != id {
		t.Fatalf("outbox = %+v", items)
	}
}

// hungServer accepts TCP connections but never answers the HTTP upgrade.
func hungServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, conn)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().String()
}

func TestDialTimeoutOnAHungHandshake(t *testing.T) {
	clk := newFakeClock()
	var dialer countingDialer
	c, err := New(Config{
		URL: hungServer(t), Room: "lobby", Name: "ann", Key: testKey,
		Clock: clk, Rand: randSeq(0.5), DialTimeout: 7 * time.Second, NetDialContext: dialer.DialContext,
	})
	if err != nil {
		t.Fatal(err)
	}
	events := c.Events()
	runClient(t, c)
	nextState(t, events, Connecting)
	waitFor(t, "the TCP connection", func() bool { return dialer.open.Load() == 1 })
	waitFor(t, "the dial timer", func() bool { return hasTimerAt(clk, clk.Now().Add(7*time.Second)) })
	clk.Advance(7 * time.Second)
	s := nextState(t, events, Reconnecting)
	if s.Attempt != 1 || !strings.Contains(s.LastError, "within 7 s") {
		t.Fatalf("after the dial timeout: %+v", s)
	}
	if n := dialer.open.Load(); n != 0 {
		t.Fatalf("%d sockets left open after the dial timeout", n)
	}
}
