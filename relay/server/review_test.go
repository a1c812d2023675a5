package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heartline/heartline/relay/internal/wsconn"
	"github.com/heartline/heartline/relay/store"
	"github.com/heartline/heartline/shared/protocol"
)

// A client that sends the start of a frame and then nothing more is silent:
// the heartbeat timeout (or, before its hello, the hello timeout) still
// closes it. The reader waiting for the rest of the payload is the client's
// delay, not the relay's, so it must not count as busy.
func TestReviewHalfFrameIsStillSilence(t *testing.T) {
	half := func() []byte {
		p, _ := protocol.Encode(&protocol.Send{ID: "half-1", Text: strings.Repeat("x", 1000)})
		return maskedFrame(p)[:40] // the whole header and a few payload bytes
	}

	t.Run("joined", func(t *testing.T) {
		tr := startRelay(t, fastConfig(t)) // heartbeat timeout 250 ms
		c, _ := tr.join("lobby", "alice", newKey())
		if _, err := c.ws.NetConn().Write(half()); err != nil {
			t.Fatal(err)
		}
		c.expectClose(protocol.CloseHeartbeatTimeout)
	})

	t.Run("before hello", func(t *testing.T) {
		cfg := fastConfig(t)
		cfg.HelloTimeout = 200 * time.Millisecond
		tr := startRelay(t, cfg)
		c := tr.dial(nil)
		if _, err := c.ws.NetConn().Write(half()); err != nil {
			t.Fatal(err)
		}
		c.expectClose(protocol.CloseProtocolError)
	})
}

// memberConn returns the relay's connection for the member called name.
func memberConn(t *testing.T, tr *testRelay, room, name string) *conn {
	t.Helper()
	tr.srv.roomsMu.Lock()
	r := tr.srv.rooms[room]
	tr.srv.roomsMu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.members {
		if m.name == name && m.conn != nil {
			return m.conn
		}
	}
	t.Fatalf("no online member %q in %q", name, room)
	return nil
}

// A fan-out queues its frames without starting writers (room.holdWriters)
// and kicks each member after releasing the room lock. If the member's
// reader ends in between, the connection is counted out of connWG by
// readEnded; the kick must not start a writer that counts it out again
// (connWG would reach zero while other connections are open, and go negative,
// panicking, when they end).
func TestReviewKickAfterReaderEndedCountsTheConnectionOnce(t *testing.T) {
	cfg := fastConfig(t)
	cfg.HeartbeatInterval, cfg.HeartbeatTimeout = time.Second, 3*time.Second
	tr := startRelay(t, cfg)
	keeper, _ := tr.join("lobby", "keeper", newKey())
	bob, _ := tr.join("lobby", "bob", newKey())
	keeper.expect(protocol.TypeJoined)
	c := memberConn(t, tr, "lobby", "bob")
	waitFor(t, 2*time.Second, "bob's writer to be idle", c.WriterIdle)

	// drain: flush queues the batch without starting the writer.
	frame, _ := protocol.Encode(&protocol.Presence{Member: protocol.Member{ID: "m0", Name: "x", State: protocol.StateOnline}})
	if !c.Push(wsconn.Frame{Data: frame, Op: websocket.TextMessage}, false) {
		t.Fatal("push refused")
	}
	// Bob's link drops; his reader ends (readerDone) before the kick.
	bob.ws.NetConn().Close()
	waitFor(t, 2*time.Second, "bob's reader to end", c.ReaderDone)
	// drain, after r.mu.Unlock: kickAll.
	c.Kick()

	done := make(chan struct{})
	go func() { tr.srv.connWG.Wait(); close(done) }()
	select {
	case <-done:
		// Put the lost count back so that the relay can still shut down
		// (keeper's end would otherwise panic with a negative counter).
		tr.srv.connWG.Add(1)
		t.Fatal("connWG reached zero while keeper's connection is open: bob's connection was counted out twice")
	case <-time.After(300 * time.Millisecond):
	}
	keeper.send(&protocol.Ping{T: 1}) // keeper is fine
	keeper.expect(protocol.TypePong)
	tr.stop()
	<-done
}

// The same through the real fan-out path: members drop while a flood of
// messages is being fanned out to them.
func TestReviewMembersDroppingDuringAFanOutAreCountedOnce(t *testing.T) {
	cfg := fastConfig(t)
	cfg.HeartbeatInterval, cfg.HeartbeatTimeout = time.Second, 3*time.Second
	cfg.Rate, cfg.Burst = 1e6, 1e6
	cfg.SendQueue = 1 << 16
	tr := startRelay(t, cfg)
	sender, _ := tr.join("flood", "sender", newKey())
	const receivers = 24
	var rs []*tclient
	for i := range receivers {
		c, _ := tr.join("flood", fmt.Sprintf("r%d", i), newKey())
		rs = append(rs, c)
	}
	var burst []byte
	for i := range 1500 {
		p, _ := protocol.Encode(&protocol.Send{ID: fmt.Sprintf("m-%d", i), Text: "flood"})
		burst = append(burst, maskedFrame(p)...)
	}
	if _, err := sender.ws.NetConn().Write(burst); err != nil {
		t.Fatal(err)
	}
	// Wait for the first fan-out, then drop the receivers one by one.
	rs[0].expect(protocol.TypeMsg)
	for _, r := range rs {
		r.ws.NetConn().Close()
		time.Sleep(2 * time.Millisecond)
	}
	waitFor(t, 10*time.Second, "the receivers to unregister", func() bool {
		return testutilCounter(tr.srv.metrics.Connections) == 1
	})
	done := make(chan struct{})
	go func() { tr.srv.connWG.Wait(); close(done) }()
	select {
	case <-done:
		tr.srv.connWG.Add(1)
		t.Fatal("connWG reached zero while the sender is connected: a dropped receiver was counted out twice")
	case <-time.After(300 * time.Millisecond):
	}
	tr.stop()
	<-done
}

// A heartbeat followed at once by the client's FIN (here in one segment,
// with TCP_CORK): the reactor answers the ping, and the end of the stream
// must still be noticed at once (member away now, not after the heartbeat
// timeout). Edge-triggered epoll reports the FIN only in the same event
// as the ping.
func TestReviewPingThenFINOnAParkedConnectionIsNoticedAtOnce(t *testing.T) {
	cfg := fastConfig(t)
	cfg.HeartbeatInterval, cfg.HeartbeatTimeout = 2*time.Second, 5*time.Second
	tr := startRelay(t, cfg)
	watcher, _ := tr.join("fin", "watcher", newKey())
	pinger, _ := tr.join("fin", "pinger", newKey())
	watcher.expect(protocol.TypeJoined)
	c := memberConn(t, tr, "fin", "pinger")
	waitFor(t, 2*time.Second, "the pinger's connection to park", func() bool { return c.Parked() })

	start := time.Now()
	corkedPingAndFIN(t, pinger, 99)
	if pong := pinger.expectNext(protocol.TypePong).(*protocol.Pong); pong.T != 99 {
		t.Fatalf("pong %+v", pong)
	}
	pr := watcher.expect(protocol.TypePresence).(*protocol.Presence)
	if pr.Member.Name != "pinger" || pr.Member.State != protocol.StateAway {
		t.Fatalf("presence %+v", pr.Member)
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("the pinger's end was noticed after %v (heartbeat timeout %v): its EOF was not read", el, cfg.HeartbeatTimeout)
	}
}

// slowRoomStore holds EnsureRoom for one room until released, so that a
// test can make a reader busy with a hello for as long as it needs.
type slowRoomStore struct {
	*store.Store
	room             string
	entered, release chan struct{}
}

func (s *slowRoomStore) EnsureRoom(name string) (store.RoomState, error) {
	if name == s.room {
		close(s.entered)
		<-s.release
	}
	return s.Store.EnsureRoom(name)
}

// corkedPingAndFIN sends a ping and the FIN in one TCP segment.
func corkedPingAndFIN(t *testing.T, c *tclient, ts int64) {
	t.Helper()
	tc := c.ws.NetConn().(*net.TCPConn)
	rc, _ := tc.SyscallConn()
	rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK, 1) })
	p, _ := protocol.Encode(&protocol.Ping{T: ts})
	if _, err := tc.Write(maskedFrame(p)); err != nil {
		t.Fatal(err)
	}
	tc.CloseWrite()
}

// The same end of input, arriving while a reader is busy: the reactor marks
// the reader notified, the reader's read before parking (fill) gets the
// ping, and the FIN behind it must still be read before the connection
// parks again.
func TestReviewPingThenFINWhileTheReaderIsBusyIsNoticedAtOnce(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	slow := &slowRoomStore{Store: st, room: "slow", entered: make(chan struct{}), release: make(chan struct{})}
	cfg := fastConfig(t)
	cfg.HeartbeatInterval, cfg.HeartbeatTimeout = 2*time.Second, 5*time.Second
	cfg.Store = slow
	tr := startRelay(t, cfg)

	c := tr.dial(nil)
	c.hello("slow", "pinger", newKey())
	<-slow.entered // the reader is busy with the hello
	var sc *conn
	for _, x := range tr.srv.snapshotConns() {
		if x.Remote() == c.ws.LocalAddr().String() {
			sc = x
		}
	}
	if sc == nil {
		t.Fatal("the relay has no connection for the client")
	}
	corkedPingAndFIN(t, c, 77)
	waitFor(t, 2*time.Second, "the reactor to see the input while the reader is busy", func() bool {
		return sc.NotifiedWhileReading()
	})
	close(slow.release)
	c.welcome()
	if pong := c.expect(protocol.TypePong).(*protocol.Pong); pong.T != 77 {
		t.Fatalf("pong %+v", pong)
	}
	if code := c.closeCode(time.Second); code != websocket.CloseAbnormalClosure {
		t.Fatalf("after the client's FIN: close code %d (-1: still open), want the socket closed at once (1006); heartbeat timeout %v",
			code, cfg.HeartbeatTimeout)
	}
}

// More than one reactor read of pings (over 4 KiB) with the FIN behind
// them: the reactor hands the first 4 KiB to a reader (hangup seen), and the
// reader's own read of the rest is short; the FIN after it must still be read
// before the connection parks.
func TestReviewManyPingsThenFINOnAParkedConnectionIsNoticedAtOnce(t *testing.T) {
	cfg := fastConfig(t)
	cfg.HeartbeatInterval, cfg.HeartbeatTimeout = 2*time.Second, 5*time.Second
	tr := startRelay(t, cfg)
	pinger, _ := tr.join("fin", "pinger", newKey())
	c := memberConn(t, tr, "fin", "pinger")
	waitFor(t, 2*time.Second, "the pinger's connection to park", func() bool { return c.Parked() })

	tc := pinger.ws.NetConn().(*net.TCPConn)
	rc, _ := tc.SyscallConn()
	rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK, 1) })
	const n = 250 // about 7 KiB
	var burst []byte
	for i := range n {
		p, _ := protocol.Encode(&protocol.Ping{T: int64(1000 + i)})
		burst = append(burst, maskedFrame(p)...)
	}
	if _, err := tc.Write(burst); err != nil {
		t.Fatal(err)
	}
	tc.CloseWrite()
	for i := range n {
		if p := pinger.expectNext(protocol.TypePong).(*protocol.Pong); p.T != int64(1000+i) {
			t.Fatalf("pong %d answers %d", i, p.T)
		}
	}
	if code := pinger.closeCode(time.Second); code != websocket.CloseAbnormalClosure {
		t.Fatalf("after the client's FIN: close code %d (-1: still open), want the socket closed at once (1006); heartbeat timeout %v",
			code, cfg.HeartbeatTimeout)
	}
}

// A direct write (kick) that the socket takes only in part leaves the rest
// of its frame queued (OpRaw) for the writer it starts. If the queue then
// overflows before that writer runs, the eviction drops the queue, rest of
// frame included, and the close frame lands inside the unfinished frame: the
// slow client reads garbage instead of close 4001. GOMAXPROCS(1) keeps the
// new writer from running between the two steps, as a busy relay may.
func TestReviewEvictionKeepsTheRestOfAHalfWrittenFrame(t *testing.T) {
	cfg := fastConfig(t)
	cfg.HeartbeatInterval, cfg.HeartbeatTimeout = 2*time.Second, 10*time.Second
	cfg.SendQueue = 1
	tr := startRelay(t, cfg)

	// The slow client has a tiny receive buffer and does not read yet.
	d := websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		nd := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 2048) })
			return nil
		}}
		return nd.DialContext(ctx, network, addr)
	}}
	ws, _, err := d.Dial(tr.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	h, _ := protocol.Encode(&protocol.Hello{V: 1, Room: "s", Name: "Slow", Key: newKey()})
	ws.WriteMessage(websocket.TextMessage, h)
	var c *conn
	waitFor(t, 2*time.Second, "the slow member to join", func() bool {
		tr.srv.roomsMu.Lock()
		r := tr.srv.rooms["s"]
		tr.srv.roomsMu.Unlock()
		if r == nil {
			return false
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, m := range r.members {
			c = m.conn
		}
		return c != nil
	})
	waitFor(t, 2*time.Second, "the welcome to be written", c.WriterIdle)

	frame, _ := protocol.Encode(&protocol.Presence{Member: protocol.Member{ID: "m0", Name: strings.Repeat("n", 60000), State: protocol.StateOnline}})
	f := wsconn.Frame{Data: frame, Op: websocket.TextMessage}
	procs := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(procs)
	partial := false
	for range 400 {
		// A fan-out: queued without a writer, then kicked (written directly).
		if !c.Push(f, false) {
			t.Fatal("push refused")
		}
		c.Kick()
		writing, rest := c.WritingRest(len(frame))
		partial = rest
		if writing {
			break
		}
	}
	if !partial {
		t.Skip("no partial direct write this time")
	}
	// The next fan-out overflows the queue (SendQueue 1): evicted 4001.
	c.Push(f, false)
	runtime.GOMAXPROCS(procs)

	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	frames := 0
	for {
		_, _, err := ws.ReadMessage()
		if err == nil {
			frames++
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != protocol.CloseSlowConsumer {
			t.Fatalf("after %d whole frames the slow client got %v, want close 4001", frames, err)
		}
		return
	}
}

// Hostile input on a parked connection (the reactor reads first): a frame
// of exactly --max-frame is handled (too_long) and the connection parks
// again; one byte more closes 1009; half a frame and then the FIN ends the
// connection at once.
func TestReviewHostileInputOnAParkedConnection(t *testing.T) {
	cfg := fastConfig(t)
	cfg.HeartbeatInterval, cfg.HeartbeatTimeout = 2*time.Second, 5*time.Second
	tr := startRelay(t, cfg)

	// A JSON message padded to exactly n bytes.
	frameOf := func(n int) []byte {
		p, _ := protocol.Encode(&protocol.Send{ID: "big", Text: ""})
		p, _ = protocol.Encode(&protocol.Send{ID: "big", Text: strings.Repeat("x", n-len(p))})
		if len(p) != n {
			t.Fatalf("payload %d bytes, want %d", len(p), n)
		}
		return maskedFrame(p)
	}
	parked := func(name string) (*tclient, *net.TCPConn) {
		c, _ := tr.join("hostile", name, newKey())
		sc := memberConn(t, tr, "hostile", name)
		waitFor(t, 2*time.Second, name+"'s connection to park", func() bool { return sc.Parked() })
		return c, c.ws.NetConn().(*net.TCPConn)
	}

	a, nc := parked("max-frame")
	if _, err := nc.Write(frameOf(int(DefaultMaxFrame))); err != nil {
		t.Fatal(err)
	}
	a.expectError(protocol.ErrTooLong)
	sc := memberConn(t, tr, "hostile", "max-frame")
	waitFor(t, 2*time.Second, "the connection to park again", func() bool { return sc.Parked() })
	a.send(&protocol.Ping{T: 3})
	a.expectNext(protocol.TypePong)

	b, nc := parked("over-max")
	if _, err := nc.Write(frameOf(int(DefaultMaxFrame) + 1)); err != nil {
		t.Fatal(err)
	}
	b.expectClose(websocket.CloseMessageTooBig)

	c, nc := parked("half-then-fin")
	rc, _ := nc.SyscallConn()
	rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK, 1) })
	p, _ := protocol.Encode(&protocol.Ping{T: 4})
	if _, err := nc.Write(maskedFrame(p)[:10]); err != nil {
		t.Fatal(err)
	}
	nc.CloseWrite()
	if code := c.closeCode(time.Second); code != websocket.CloseAbnormalClosure {
		t.Fatalf("half a frame and the FIN: close code %d (-1: still open), want the socket closed at once (1006)", code)
	}
}
