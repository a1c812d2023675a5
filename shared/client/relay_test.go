package client

// Integration tests against the real relay (relay/server with its bbolt
// store) on real sockets. Timing comes from the relay's own configuration
// (heartbeat every 100 ms, dead after 300 ms) and every wait is bounded.

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/heartline/heartline/relay/server"
	"github.com/heartline/heartline/shared/protocol"
)

// testRelay is a relay that a test can stop and start again on the same
// port and data dir.
type testRelay struct {
	t    *testing.T
	cfg  server.Config
	addr string
	srv  *server.Server
}

// fastHeartbeat is the relay configuration the integration tests share:
// short heartbeats so that dead links show up in a fraction of a second.
func fastHeartbeat(cfg server.Config) server.Config {
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = 100 * time.Millisecond
		cfg.HeartbeatTimeout = 300 * time.Millisecond
	}
	if cfg.DataDir == "" {
		panic("fastHeartbeat needs a DataDir")
	}
	return cfg
}

func startRelay(t *testing.T, cfg server.Config) *testRelay {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	// Every test member connects from 127.0.0.1.
	cfg.MaxConnsPerIP = cmp.Or(cfg.MaxConnsPerIP, -1)
	cfg.MaxRoomMembersPerIP = cmp.Or(cfg.MaxRoomMembersPerIP, -1)
	cfg = fastHeartbeat(cfg)
	r := &testRelay{t: t, cfg: cfg}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *testRelay) start() {
	r.t.Helper()
	cfg := r.cfg
	if r.addr != "" {
		cfg.Listen = r.addr // the same port as before
	}
	srv, err := server.New(cfg)
	if err != nil {
		r.t.Fatalf("relay: %v", err)
	}
	// The old listener's port may take a moment to be free again.
	deadline := time.Now().Add(5 * time.Second)
	for {
		err = srv.Start()
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		srv.Shutdown(context.Background())
		r.t.Fatalf("relay start: %v", err)
	}
	r.srv = srv
	r.addr = srv.Addr().String()
}

func (r *testRelay) stop() {
	if r.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.srv.Shutdown(ctx); err != nil {
		r.t.Errorf("relay shutdown: %v", err)
	}
	r.srv = nil
}

// member is a client under test with everything it received.
type member struct {
	t      *testing.T
	name   string
	c      *Client
	cancel context.CancelFunc
	runErr chan error

	mu      sync.Mutex
	got     map[string][]string // sender name -> texts, in arrival order
	seqs    map[uint64]int      // seq -> times delivered
	drops   []Drop
	gaps    int
	left    []MemberLeft
	states  []State
	evCount int
	changed chan struct{}
}

func newMember(t *testing.T, cfg Config) *member {
	t.Helper()
	if cfg.Key == "" {
		cfg.Key = NewKey()
	}
	if cfg.Room == "" {
		cfg.Room = "lobby"
	}
	if cfg.Backoff == (Backoff{}) {
		cfg.Backoff = Backoff{Base: 50 * time.Millisecond, Cap: 400 * time.Millisecond}
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := &member{
		t: t, name: cfg.Name, c: c, runErr: make(chan error, 1),
		got: make(map[string][]string), seqs: make(map[uint64]int), changed: make(chan struct{}, 1),
	}
	return m
}

// run starts the client and its event reader.
func (m *member) run() {
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for ev := range m.c.Events() {
			m.mu.Lock()
			m.evCount++
			switch ev := ev.(type) {
			case MessageReceived:
				m.seqs[ev.Msg.Seq]++
				if !ev.Own {
					m.got[ev.Msg.From.Name] = append(m.got[ev.Msg.From.Name], ev.Msg.Text)
				}
			case LinkDropped:
				m.drops = append(m.drops, ev.Drop)
			case HistoryGap:
				m.gaps++
			case MemberLeft:
				m.left = append(m.left, ev)
			case StateChanged:
				m.states = append(m.states, ev.State)
			}
			m.mu.Unlock()
			select {
			case m.changed <- struct{}{}:
			default:
			}
		}
	}()
	go func() {
		err := m.c.Run(ctx)
		<-readerDone
		m.runErr <- err
	}()
	m.t.Cleanup(func() { m.stop() })
}

// stop cancels Run and waits for it and the event reader (bounded).
func (m *member) stop() error {
	if m.cancel == nil {
		return nil
	}
	m.cancel()
	m.cancel = nil
	select {
	case err := <-m.runErr:
		return err
	case <-time.After(10 * time.Second):
		m.t.Errorf("%s: Run did not return within 10 s", m.name)
		return nil
	}
}

// waitUntil polls cond (under m.mu) until it holds, for at most d.
func (m *member) waitUntil(what string, d time.Duration, cond func() bool) {
	m.t.Helper()
	deadline := time.After(d)
	for {
		m.mu.Lock()
		ok := cond()
		m.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-m.changed:
		case <-time.After(20 * time.Millisecond): // state not carried by events (outbox) is polled
		case <-deadline:
			m.t.Fatalf("%s: %s: not within %v", m.name, what, d)
		}
	}
}

func (m *member) phase() Phase { return m.c.State().Phase }

func (m *member) waitConnected() {
	m.t.Helper()
	m.waitUntil("connected", 10*time.Second, func() bool { return m.c.State().Phase == Connected })
}

func TestRelayRestartDeliversEveryMessageOnceInOrder(t *testing.T) {
	relay := startRelay(t, server.Config{Rate: 500, Burst: 500})
	names := []string{"ann", "bob", "cy"}
	var members []*member
	for _, n := range names {
		m := newMember(t, Config{URL: relay.addr, Name: n})
		m.run()
		members = append(members, m)
	}
	for _, m := range members {
		m.waitConnected()
	}

	// Everyone types 60 messages, one every 10 ms: 15 while the relay is
	// up, 20 from the moment it starts shutting down until it is back on the
	// same port with the same data dir, and the rest after. The phases are
	// handed over with channels, not guessed with sleeps, so a slow machine
	// cannot make the outage miss the typing.
	const perSender = 60
	const beforeOutage, duringOutage = 15, 20
	relayDown, relayBack := make(chan struct{}), make(chan struct{})
	var upTyped, downTyped, typed sync.WaitGroup
	upTyped.Add(len(members))
	downTyped.Add(len(members))
	for _, m := range members {
		typed.Go(func() {
			for i := range perSender {
				switch i {
				case beforeOutage:
					upTyped.Done()
					<-relayDown
				case beforeOutage + duringOutage:
					downTyped.Done()
					<-relayBack
				}
				if _, err := m.c.Send(fmt.Sprintf("%s-%02d", m.name, i)); err != nil {
					t.Errorf("%s: Send: %v", m.name, err)
				}
				time.Sleep(10 * time.Millisecond) // a person's pace, not a wait for the relay
			}
		})
	}
	upTyped.Wait()
	close(relayDown)
	relay.stop()
	downTyped.Wait()
	relay.start()
	close(relayBack)
	typed.Wait()

	for _, m := range members {
		m.waitUntil("every message of the others", 30*time.Second, func() bool {
			for _, other := range names {
				if other != m.name && len(m.got[other]) < perSender {
					return false
				}
			}
			// Own messages count once acked (their events trail the outbox).
			return len(m.c.Outbox()) == 0 && len(m.seqs) >= perSender*len(names)
		})
	}
	for _, m := range members {
		m.mu.Lock()
		for _, sender := range names {
			if sender == m.name {
				continue
			}
			var want []string
			for i := range perSender {
				want = append(want, fmt.Sprintf("%s-%02d", sender, i))
			}
			if !slices.Equal(m.got[sender], want) {
				t.Errorf("%s got from %s:\n%v\nwant exactly once, in order:\n%v", m.name, sender, m.got[sender], want)
			}
		}
		for seq, n := range m.seqs {
			if n != 1 {
				t.Errorf("%s: seq %d delivered %d times", m.name, seq, n)
			}
		}
		if len(m.seqs) != perSender*len(names) {
			var missing []uint64
			for s := uint64(1); s <= perSender*uint64(len(names)); s++ {
				if m.seqs[s] == 0 {
					missing = append(missing, s)
				}
			}
			t.Errorf("%s holds %d seqs, want %d; missing %v; gaps %d", m.name, len(m.seqs), perSender*len(names), missing, m.gaps)
		}
		sawRestart := false
		for _, d := range m.drops {
			if d.CloseCode == protocol.CloseGoingAway && d.Detected == DetectedCloseFrame {
				sawRestart = true
			}
		}
		if !sawRestart {
			t.Errorf("%s: no drop with close 1001 recorded: %+v", m.name, m.drops)
		}
		m.mu.Unlock()
		if rp := m.c.ResumePoint(); rp.LastSeq != perSender*uint64(len(names)) {
			t.Errorf("%s: resume point %+v, want last_seq %d", m.name, rp, perSender*len(names))
		}
	}
}

// pathProxy forwards TCP between a client and the relay, and can silently
// stop forwarding: bytes are read and thrown away, nothing is closed, no
// RST is sent. That is a half-open path (a NAT that forgot the mapping, a
// cable pulled somewhere in between): both sockets still look fine.
type pathProxy struct {
	t      *testing.T
	ln     net.Listener
	target string

	mu     sync.Mutex
	broken bool
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newPathProxy(t *testing.T, target string) *pathProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &pathProxy{t: t, ln: ln, target: target}
	p.wg.Go(p.acceptLoop)
	t.Cleanup(p.close)
	return p
}

func (p *pathProxy) addr() string { return p.ln.Addr().String() }

// setBroken breaks or mends the path. A connection that saw the path break
// stays broken: its bytes were lost and the client must start over.
func (p *pathProxy) setBroken(b bool) {
	p.mu.Lock()
	p.broken = b
	p.mu.Unlock()
}

func (p *pathProxy) isBroken() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.broken
}

func (p *pathProxy) acceptLoop() {
	for {
		down, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			down.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, down, up)
		p.mu.Unlock()
		var dead sync.Once
		deadFlag := make(chan struct{})
		markDead := func() { dead.Do(func() { close(deadFlag) }) }
		pipe := func(dst, src net.Conn) {
			buf := make([]byte, 32<<10)
			for {
				n, err := src.Read(buf)
				if err != nil {
					// A real end of one side ends both, as a real path would.
					dst.Close()
					src.Close()
					return
				}
				if p.isBroken() {
					markDead()
				}
				select {
				case <-deadFlag:
					continue // swallowed
				default:
				}
				if _, err := dst.Write(buf[:n]); err != nil {
					src.Close()
					return
				}
			}
		}
		p.wg.Go(func() { pipe(up, down) })
		p.wg.Go(func() { pipe(down, up) })
	}
}

func (p *pathProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func TestHalfOpenPathIsNoticedAndRecovered(t *testing.T) {
	relay := startRelay(t, server.Config{})
	proxy := newPathProxy(t, relay.addr)
	var sockets countingDialer
	ann := newMember(t, Config{
		URL: proxy.addr(), Name: "ann", NetDialContext: sockets.DialContext,
		DialTimeout: 500 * time.Millisecond, HelloTimeout: 500 * time.Millisecond,
	})
	bob := newMember(t, Config{URL: relay.addr, Name: "bob"})
	ann.run()
	bob.run()
	ann.waitConnected()
	bob.waitConnected()

	// A healthy link stays up across several heartbeat timeouts: count the
	// pongs (each one updates the RTT) for more than 600 ms.
	ann.waitUntil("seven pongs", 5*time.Second, func() bool {
		pongs := 0
		for _, s := range ann.states {
			if s.Phase == Connected && s.RTT > 0 {
				pongs++
			}
		}
		return pongs >= 7
	})
	ann.mu.Lock()
	early := len(ann.drops)
	ann.mu.Unlock()
	if early != 0 {
		t.Fatalf("a healthy link dropped: %+v", ann.drops)
	}
	broke := time.Now()
	proxy.setBroken(true)
	ann.waitUntil("a heartbeat drop", 5*time.Second, func() bool { return len(ann.drops) > 0 })
	noticed := time.Now()
	ann.mu.Lock()
	d := ann.drops[0]
	ann.mu.Unlock()
	if d.Detected != DetectedHeartbeat || d.CloseCode != 0 {
		t.Fatalf("drop = %+v, want a heartbeat timeout", d)
	}
	if d.Cause != "no reply from the relay for 0.3 s" {
		t.Errorf("cause %q", d.Cause)
	}
	if d.Heartbeat != (protocol.Heartbeat{IntervalMS: 100, TimeoutMS: 300}) || !d.Welcomed ||
		d.ObservedAddr == "" || d.LastFrameAt.IsZero() || d.RTT <= 0 {
		t.Errorf("drop lacks diagnostics: %+v", d)
	}
	// Not before the timeout, and not much after it (the bound is loose:
	// the machine is shared).
	if silent := d.At.Sub(d.LastFrameAt); silent < 300*time.Millisecond {
		t.Errorf("declared dead after %v of silence, before the 300 ms timeout", silent)
	}
	if took := noticed.Sub(broke); took > 2*time.Second {
		t.Errorf("noticed the dead path after %v, want about 300 ms", took)
	}
	t.Logf("path broken -> drop noticed: %v (silence at the drop: %v)", noticed.Sub(broke).Round(time.Millisecond), d.At.Sub(d.LastFrameAt).Round(time.Millisecond))

	// While the path is broken, attempts fail (the handshake never completes)
	// and bob's message waits for ann in the relay's history.
	ann.waitUntil("reconnecting", 5*time.Second, func() bool { return ann.phase() == Reconnecting })
	if _, err := bob.c.Send("are you there?"); err != nil {
		t.Fatal(err)
	}
	if _, err := ann.c.Send("typed during the outage"); err != nil {
		t.Fatal(err)
	}
	ann.waitUntil("a failed attempt on the broken path", 5*time.Second, func() bool {
		s := ann.c.State()
		return s.Phase == Reconnecting && s.Attempt >= 2
	})

	proxy.setBroken(false)
	ann.waitConnected()
	ann.waitUntil("bob's message", 10*time.Second, func() bool { return len(ann.got["bob"]) == 1 })
	bob.waitUntil("ann's message", 10*time.Second, func() bool { return len(bob.got["ann"]) == 1 })
	if ann.got["bob"][0] != "are you there?" || bob.got["ann"][0] != "typed during the outage" {
		t.Fatalf("ann got %v, bob got %v", ann.got, bob.got)
	}
	// Dead link, failed handshakes, reconnect: never two sockets at once.
	if sockets.total.Load() < 3 || sockets.max.Load() != 1 {
		t.Fatalf("%d sockets opened, at most %d at once; want at least 3, never 2 at once", sockets.total.Load(), sockets.max.Load())
	}
}

func TestRefusalsStopRetrying(t *testing.T) {
	relay := startRelay(t, server.Config{Token: "s3cret", MaxRoomMembers: 2})
	cases := []struct {
		name   string
		cfg    Config
		code   int
		reason string
	}{
		{"wrong token", Config{Name: "eve", Token: "guess"}, protocol.CloseUnauthorized,
			"The relay needs a token (or the token is wrong): check it in Settings."},
		{"no token", Config{Name: "eve"}, protocol.CloseUnauthorized,
			"The relay needs a token (or the token is wrong): check it in Settings."},
		{"name taken", Config{Name: "ANN", Token: "s3cret"}, protocol.CloseNameTaken,
			"That name is taken in this room: choose another name."},
	}
	ann := newMember(t, Config{URL: relay.addr, Name: "ann", Token: "s3cret"})
	ann.run()
	ann.waitConnected()

	check := func(name string, cfg Config, code int, reason string) {
		t.Helper()
		var dialer countingDialer
		cfg.URL, cfg.NetDialContext = relay.addr, dialer.DialContext
		m := newMember(t, cfg)
		m.run()
		var err error
		select {
		case err = <-m.runErr:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: Run kept going", name)
		}
		m.cancel = nil
		var stop *StopError
		if !errors.As(err, &stop) || stop.Code != code {
			t.Fatalf("%s: Run returned %v, want a StopError with code %d", name, err, code)
		}
		if stop.Reason != reason {
			t.Errorf("%s: reason %q, want %q", name, stop.Reason, reason)
		}
		if s := m.c.State(); s.Phase != Stopped || s.StopReason != reason || s.CloseCode != code {
			t.Errorf("%s: final state %+v", name, s)
		}
		if n := dialer.total.Load(); n != 1 {
			t.Errorf("%s: dialed %d times, want once (no retries)", name, n)
		}
		for _, s := range m.states {
			if s.Phase == Reconnecting {
				t.Errorf("%s: went reconnecting: %+v", name, s)
			}
		}
	}
	for _, c := range cases {
		check(c.name, c.cfg, c.code, c.reason)
	}

	check("unknown avatar", Config{Name: "dee", Token: "s3cret", Avatar: "builtin:no-such-picture"}, protocol.CloseHelloRefused,
		`The relay refused to join: there is no built-in avatar "no-such-picture"; GET /v1/avatars lists them. Fix it in Settings.`)

	// The same member opening a second connection (another window with the
	// same key) replaces the first, which stops instead of fighting back.
	ann2 := newMember(t, Config{URL: relay.addr, Name: "ann", Token: "s3cret", Key: ann.c.cfg.Key})
	ann2.run()
	ann2.waitConnected()
	select {
	case err := <-ann.runErr:
		ann.cancel = nil
		var stop *StopError
		if !errors.As(err, &stop) || stop.Code != protocol.CloseReplaced || stop.Reason != protocol.CloseText(protocol.CloseReplaced) {
			t.Fatalf("the replaced client's Run returned %v, want a StopError 4002", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the replaced client kept running")
	}

	// The room holds two members: a third gets 4505.
	bob := newMember(t, Config{URL: relay.addr, Name: "bob", Token: "s3cret"})
	bob.run()
	bob.waitConnected()
	check("room full", Config{Name: "cy", Token: "s3cret"}, protocol.CloseRoomFull,
		"The room is full: try again later, or ask whoever runs the relay to raise the limit.")
}

func TestNoGoroutineLeakAfterRun(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := t.TempDir()
	relay := startRelay(t, server.Config{DataDir: dir})
	proxy := newPathProxy(t, relay.addr)
	ann := newMember(t, Config{URL: proxy.addr(), Name: "ann", DialTimeout: 300 * time.Millisecond, HelloTimeout: 300 * time.Millisecond})
	bob := newMember(t, Config{URL: relay.addr, Name: "bob"})
	ann.run()
	bob.run()
	ann.waitConnected()
	bob.waitConnected()
	for i := range 5 {
		ann.c.Send(fmt.Sprintf("m%d", i))
	}
	bob.waitUntil("ann's messages", 10*time.Second, func() bool { return len(bob.got["ann"]) == 5 })
	// Exercise every path that starts goroutines: a dead link, failed
	// handshakes, a relay restart, Leave.
	proxy.setBroken(true)
	ann.waitUntil("a drop", 5*time.Second, func() bool { return len(ann.drops) > 0 })
	ann.waitUntil("a failed attempt", 5*time.Second, func() bool { return ann.c.State().Attempt >= 2 })
	proxy.setBroken(false)
	ann.waitConnected()
	relay.stop()
	relay.start()
	ann.waitConnected()
	bob.waitConnected()
	ann.c.Leave()
	select {
	case err := <-ann.runErr:
		if err != nil {
			t.Fatalf("Run after Leave returned %v, want nil", err)
		}
		ann.cancel()
		ann.cancel = nil
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after Leave")
	}
	bob.stop()
	proxy.close()
	relay.stop()
}

func TestFileOutboxSurvivesAppRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.json")
	key := NewKey()
	down := closedPort(t)

	// First run: the relay is unreachable; the person types three messages
	// and quits.
	ob, err := NewFileOutbox(path)
	if err != nil {
		t.Fatal(err)
	}
	first := newMember(t, Config{URL: down, Name: "ann", Key: key, Outbox: ob})
	first.run()
	var ids []string
	for _, text := range []string{"first", "second", "third"} {
		id, err := first.c.Send(text)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	first.waitUntil("a failed dial", 5*time.Second, func() bool { return first.phase() == Reconnecting })
	first.stop()

	// Second run, a new process in spirit: a new store on the same file, a
	// relay that is up.
	relay := startRelay(t, server.Config{})
	bob := newMember(t, Config{URL: relay.addr, Name: "bob"})
	bob.run()
	bob.waitConnected()
	ob2, err := NewFileOutbox(path)
	if err != nil {
		t.Fatal(err)
	}
	if items, _ := ob2.Load(); len(items) != 3 {
		t.Fatalf("the file holds %d items after the restart, want 3", len(items))
	}
	second := newMember(t, Config{URL: relay.addr, Name: "ann", Key: key, Outbox: ob2})
	if got := second.c.Outbox(); len(got) != 3 || got[0].ID != ids[0] || got[2].ID != ids[2] {
		t.Fatalf("outbox after restart = %+v", got)
	}
	second.run()
	bob.waitUntil("ann's three messages", 10*time.Second, func() bool { return len(bob.got["ann"]) == 3 })
	second.waitUntil("an empty outbox", 10*time.Second, func() bool { return len(second.c.Outbox()) == 0 })
	if got := strings.Join(bob.got["ann"], ","); got != "first,second,third" {
		t.Fatalf("bob got %q", got)
	}
	// Acked messages leave the file in the background; by the time Run has
	// returned the file is up to date.
	second.stop()
	again, err := NewFileOutbox(path)
	if err != nil {
		t.Fatal(err)
	}
	if items, _ := again.Load(); len(items) != 0 {
		t.Fatalf("the outbox file still holds %+v", items)
	}
}

func TestRealRelayRateLimitResendsInOrder(t *testing.T) {
	relay := startRelay(t, server.Config{Rate: 20, Burst: 3})
	var refusals atomic.Int32
	ann := newMember(t, Config{URL: relay.addr, Name: "ann",
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &sniffConn{Conn: conn, word: []byte(`"rate_limited"`), seen: &refusals}, nil
		}})
	bob := newMember(t, Config{URL: relay.addr, Name: "bob"})
	ann.run()
	bob.run()
	ann.waitConnected()
	bob.waitConnected()
	const n = 25 // far over the burst: the relay refuses most of them at first
	var want []string
	for i := range n {
		text := fmt.Sprintf("burst-%02d", i)
		want = append(want, text)
		if _, err := ann.c.Send(text); err != nil {
			t.Fatal(err)
		}
	}
	bob.waitUntil("the whole burst", 15*time.Second, func() bool { return len(bob.got["ann"]) == n })
	if !slices.Equal(bob.got["ann"], want) {
		t.Fatalf("bob got %v", bob.got["ann"])
	}
	// The acks may trail the broadcast a little.
	ann.waitUntil("an empty outbox", 5*time.Second, func() bool { return len(ann.c.Outbox()) == 0 })
	if refusals.Load() == 0 {
		t.Fatal("the relay never refused a message as too fast: the test did not test resending")
	}
	// After the first refusal the engine sends one message at a time
	// instead of resending the whole backlog after every pause.
	if refusals.Load() > 3*n {
		t.Errorf("%d refusals for %d messages: the backlog was resent again and again", refusals.Load(), n)
	}
	t.Logf("the relay refused %d msg frames as too fast", refusals.Load())
}

// sniffConn counts how often word appears in what the relay sends (a word
// split across two reads is missed; the tests only need "at least once").
type sniffConn struct {
	net.Conn
	word []byte
	seen *atomic.Int32
}

func (s *sniffConn) Read(p []byte) (int, error) {
	n, err := s.Conn.Read(p)
	s.seen.Add(int32(bytes.Count(p[:n], s.word)))
	return n, err
}

func TestTooLongFailsWithTheRelaysReason(t *testing.T) {
	relay := startRelay(t, server.Config{MaxText: 10})
	ann := newMember(t, Config{URL: relay.addr, Name: "ann"})
	ann.run()
	ann.waitConnected()
	id, _ := ann.c.Send(strings.Repeat("x", 11))
	ann.c.Send("short")
	ann.waitUntil("the long one failed", 5*time.Second, func() bool {
		items := ann.c.Outbox()
		return len(items) == 1 && items[0].Status == Failed
	})
	// The person reads the relay's own words, which name its limit.
	it := ann.c.Outbox()[0]
	if it.ID != id || !strings.Contains(it.Reason, "at most 10") {
		t.Fatalf("failed item %+v, want the relay's reason naming its limit of 10", it)
	}
	// A refused message takes no seq: the next one is seq 1.
	ann.waitUntil("the short one delivered", 5*time.Second, func() bool { return ann.seqs[1] == 1 })
}

func TestStableLinkResetsBackoff(t *testing.T) {
	addr := closedPort(t) // the relay will come up here later
	clk := newFakeClock()
	c, err := New(Config{URL: addr, Room: "lobby", Name: "ann", Key: NewKey(), Clock: clk, Rand: randSeq(0.5)})
	if err != nil {
		t.Fatal(err)
	}
	col := collect(t, c)
	runClient(t, c)
	next := func(attempt int, in time.Duration) {
		t.Helper()
		evs := col.until("reconnecting", isPhase(Reconnecting))
		s := evs[len(evs)-1].(StateChanged).State
		if s.Attempt != attempt || s.NextTry.Sub(clk.Now()) != in {
			t.Fatalf("reconnecting attempt %d in %v, want attempt %d in %v (%s)",
				s.Attempt, s.NextTry.Sub(clk.Now()), attempt, in, s.LastError)
		}
	}
	next(1, 250*time.Millisecond) // 0.5 of 500 ms
	clk.Advance(250 * time.Millisecond)
	next(2, 500*time.Millisecond) // 0.5 of 1 s

	// The relay's heartbeat is slow so that only the fake clock matters.
	relay := startRelay(t, server.Config{Listen: addr, HeartbeatInterval: 20 * time.Second, HeartbeatTimeout: 60 * time.Second})
	clk.Advance(500 * time.Millisecond)
	col.until("connected", isPhase(Connected))

	// A link that drops at once (a relay restart: 1001) does not reset the
	// count: attempt 3, still with jitter.
	relay.stop()
	next(3, time.Second)
	relay.start()
	clk.Advance(time.Second)
	col.until("connected again", isPhase(Connected))

	// After 31 s of stable link the next drop starts over at attempt 1.
	clk.Advance(31 * time.Second)
	relay.stop()
	next(1, 250*time.Millisecond)
}

func TestOversizedMessageFailsInsteadOfLooping(t *testing.T) {
	relay := startRelay(t, server.Config{MaxFrame: 1024})
	ann := newMember(t, Config{URL: relay.addr, Name: "ann"})
	bob := newMember(t, Config{URL: relay.addr, Name: "bob"})
	ann.run()
	bob.run()
	ann.waitConnected()
	bob.waitConnected()
	big, _ := ann.c.Send(strings.Repeat("y", 2000)) // over the relay's frame limit: it closes 1009
	ann.c.Send("after the big one")
	bob.waitUntil("the next message", 10*time.Second, func() bool { return len(bob.got["ann"]) == 1 })
	if bob.got["ann"][0] != "after the big one" {
		t.Fatalf("bob got %v", bob.got["ann"])
	}
	ann.waitUntil("the ack of the short one", 5*time.Second, func() bool { return len(ann.c.Outbox()) == 1 })
	items := ann.c.Outbox()
	if it := items[0]; it.ID != big || it.Status != Failed || !strings.Contains(it.Reason, "too large") {
		t.Fatalf("outbox holds %s (%d chars) %s %q; want the big message failed as too large", it.ID, len(it.Text), it.Status, it.Reason)
	}
	ann.mu.Lock()
	drops := slices.Clone(ann.drops)
	ann.mu.Unlock()
	if len(drops) != 1 || drops[0].CloseCode != protocol.CloseTooLarge {
		t.Fatalf("drops %+v, want exactly one 1009", drops)
	}
	// A failed message can be thrown away for good.
	if err := ann.c.Discard(big); err != nil {
		t.Fatal(err)
	}
	if len(ann.c.Outbox()) != 0 {
		t.Fatal("discarded message still in the outbox")
	}
	if err := ann.c.Discard(big); err == nil {
		t.Fatal("discarding twice succeeded")
	}
}

// The frame the relay cut the link over is the largest one on the wire,
// not the longest text: JSON escapes some characters to six bytes.
func TestOversizedFrameFailsTheRightMessage(t *testing.T) {
	relay := startRelay(t, server.Config{MaxFrame: 1024})
	ann := newMember(t, Config{URL: relay.addr, Name: "ann"})
	bob := newMember(t, Config{URL: relay.addr, Name: "bob"})
	// Typed offline, so that both go out on the same link: the relay reads
	// the first, closes with 1009, and never reads the second.
	escaped, _ := ann.c.Send(strings.Repeat("<", 300)) // 300 characters, about 1.8 KB as JSON
	plain := strings.Repeat("y", 900)                  // 900 characters, under 1 KB as JSON
	ann.c.Send(plain)
	bob.run()
	bob.waitConnected()
	ann.run()
	bob.waitUntil("the plain message", 10*time.Second, func() bool { return len(bob.got["ann"]) == 1 })
	if bob.got["ann"][0] != plain {
		t.Fatalf("bob got %.20q..., want the plain message", bob.got["ann"][0])
	}
	ann.waitUntil("one item left", 5*time.Second, func() bool { return len(ann.c.Outbox()) == 1 })
	if it := ann.c.Outbox()[0]; it.ID != escaped || it.Status != Failed {
		t.Fatalf("outbox holds %s (%d chars, %s); want the escaped message failed", it.ID, len(it.Text), it.Status)
	}
}

func TestSlowEventReaderDoesNotStallTheLink(t *testing.T) {
	relay := startRelay(t, server.Config{Rate: 1000, Burst: 1000})
	// ann's events are not read at all for a while (a UI frozen by a modal
	// dialog, say).
	ann, err := New(Config{URL: relay.addr, Room: "lobby", Name: "ann", Key: NewKey()})
	if err != nil {
		t.Fatal(err)
	}
	stopAnn, _ := runClient(t, ann)
	bob := newMember(t, Config{URL: relay.addr, Name: "bob"})
	bob.run()
	bob.waitConnected()
	waitFor(t, "ann connected", func() bool { return ann.State().Phase == Connected })
	const n = 300
	for i := range n {
		bob.c.Send(fmt.Sprintf("b%03d", i))
	}
	bob.waitUntil("all sent", 10*time.Second, func() bool { return len(bob.c.Outbox()) == 0 })
	// Heartbeats go on while nobody reads: ann stays connected across
	// several heartbeat timeouts (300 ms).
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if s := ann.State(); s.Phase != Connected {
			t.Fatalf("ann's link suffered from the unread events: %+v", s)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stopAnn()
	var got []string
	for ev := range ann.Events() {
		switch ev := ev.(type) {
		case MessageReceived:
			got = append(got, ev.Msg.Text)
		case LinkDropped:
			t.Errorf("link dropped: %+v", ev.Drop)
		}
	}
	if len(got) != n || got[0] != "b000" || got[n-1] != fmt.Sprintf("b%03d", n-1) {
		t.Fatalf("ann got %d messages (%v ... ), want all %d in order", len(got), got[:min(3, len(got))], n)
	}
}

func TestLeaveSaysByeAtOnce(t *testing.T) {
	relay := startRelay(t, server.Config{Grace: time.Minute})
	ann := newMember(t, Config{URL: relay.addr, Name: "ann"})
	bob := newMember(t, Config{URL: relay.addr, Name: "bob"})
	bob.run()
	bob.waitConnected()
	ann.run()
	ann.waitConnected()
	left := time.Now()
	ann.c.Leave()
	select {
	case err := <-ann.runErr:
		ann.cancel = nil
		if err != nil {
			t.Fatalf("Run after Leave: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after Leave")
	}
	if s := ann.c.State(); s.Phase != Offline {
		t.Fatalf("state after Leave %+v", s)
	}
	// Thanks to bye, bob sees ann leave now, not after the one-minute grace.
	bob.waitUntil("ann's departure", 5*time.Second, func() bool { return len(bob.left) > 0 })
	if took := time.Since(left); took > 2*time.Second {
		t.Errorf("bob saw ann leave after %v", took)
	}
	if l := bob.left[0]; l.Member.Name != "ann" || l.Reason != protocol.ReasonBye {
		t.Fatalf("bob saw %+v, want ann leaving with reason bye", l)
	}
	ann.mu.Lock()
	defer ann.mu.Unlock()
	if len(ann.drops) != 0 {
		t.Fatalf("leaving counted as a dropped link: %+v", ann.drops)
	}
}

// An invite address carries the relay's token: joining with it gets in, and
// a token setting that says otherwise is refused before anything dials.
func TestInviteAddressCarriesToken(t *testing.T) {
	relay := startRelay(t, server.Config{Token: "room-secret_42"})
	invite := protocol.InviteAddress(relay.addr, "room-secret_42")
	m := newMember(t, Config{URL: invite, Name: "guest"})
	m.run()
	m.waitConnected()
	if got := m.c.URL(); strings.Contains(got, "token") {
		t.Errorf("the token reached the URL dialed: %s", got)
	}
	if _, err := New(Config{URL: invite, Name: "eve", Token: "other", Key: NewKey(), Room: "lobby"}); err == nil ||
		!strings.Contains(err.Error(), "keep only one") {
		t.Errorf("conflicting tokens: %v", err)
	}
}
