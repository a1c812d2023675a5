package server

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/heartline/heartline/shared/protocol"
)

// Rule 4: a silent connection is closed with 4000 after the timeout (swept
// at least every interval/2), and any inbound frame counts as life: protocol
// pings, websocket pings and websocket pongs.
func TestHeartbeatTimeoutAndWhatCountsAsLife(t *testing.T) {
	cfg := fastConfig(t) // interval 100ms, timeout 250ms, sweep 20ms
	tr := startRelay(t, cfg)

	// The hello is the silent client's last frame, and the relay cannot
	// see it before start: a close sooner than the timeout after start is
	// a close before the timeout, however busy the machine. (Measuring from
	// the welcome would not be: it can take longer to arrive than the
	// timeout is.)
	start := time.Now()
	silent, _ := tr.join("hb", "Silent", newKey())
	silent.expectClose(protocol.CloseHeartbeatTimeout)
	el := time.Since(start)
	t.Logf("silent client closed 4000 after %v (timeout %v)", el, cfg.HeartbeatTimeout)
	if el < cfg.HeartbeatTimeout {
		t.Errorf("closed %v after its hello; the timeout is %v", el, cfg.HeartbeatTimeout)
	}

	kinds := map[string]func(c *tclient){
		"protocol ping": func(c *tclient) { c.send(&protocol.Ping{T: 1}) },
		"ws ping":       func(c *tclient) { c.ws.WriteControl(websocket.PingMessage, []byte("x"), time.Now().Add(time.Second)) },
		"ws pong":       func(c *tclient) { c.ws.WriteControl(websocket.PongMessage, nil, time.Now().Add(time.Second)) },
	}
	for kind, beat := range kinds {
		t.Run(kind, func(t *testing.T) {
			// A name of its own: the previous subtest's member may still
			// be in the room on a slow machine.
			c, _ := tr.join("hb", "Alive "+kind, newKey())
			c.t = t
			// Beat every 80 ms for three timeouts' worth: never closed.
			until := time.Now().Add(3 * cfg.HeartbeatTimeout)
			for time.Now().Before(until) {
				beat(c)
				f, err := c.next(80 * time.Millisecond)
				if err != nil && err != errTimeout {
					t.Fatalf("%s kept alive but the connection ended: %v", kind, err)
				}
				if e, ok := f.(*protocol.Error); ok {
					t.Fatalf("error %+v", e)
				}
			}
			c.send(&protocol.Bye{})
			c.expectClose(protocol.CloseNormal)
		})
	}
}

// Rule 5: a dropped link turns the member away (presence), and left with
// reason timeout only after the grace period.
func TestGraceThenLeftTimeout(t *testing.T) {
	cfg := fastConfig(t)
	cfg.Grace = 400 * time.Millisecond
	tr := startRelay(t, cfg)
	watcher, _ := tr.join("g", "Watcher", newKey())
	stop := watcher.keepAlive(40 * time.Millisecond)
	defer stop()
	_, wd := tr.join("g", "Dropper", newKey())
	watcher.expectNext(protocol.TypeJoined)

	start := time.Now()
	// Dropper goes silent: 4000 after the timeout, then away, then left.
	p := watcher.expectNext(protocol.TypePresence).(*protocol.Presence)
	away := time.Since(start)
	if p.Member.ID != wd.You.ID || p.Member.State != protocol.StateAway {
		t.Fatalf("presence %+v", p.Member)
	}
	l := watcher.expectNext(protocol.TypeLeft).(*protocol.Left)
	left := time.Since(start)
	t.Logf("away after %v, left after %v (timeout %v, grace %v)", away, left, cfg.HeartbeatTimeout, cfg.Grace)
	if l.Member.ID != wd.You.ID || l.Reason != protocol.ReasonTimeout {
		t.Fatalf("left %+v", l)
	}
	if left-away < cfg.Grace-30*time.Millisecond {
		t.Errorf("left %v after away; grace is %v", left-away, cfg.Grace)
	}
}

// A socket that just closes gives reason closed; a return within grace
// restores online with a presence and no left/joined; the id is kept.
func TestReturnWithinGrace(t *testing.T) {
	cfg := fastConfig(t)
	cfg.Grace = 2 * time.Second
	tr := startRelay(t, cfg)
	watcher, _ := tr.join("g", "Watcher", newKey())
	stop := watcher.keepAlive(40 * time.Millisecond)
	defer stop()
	key := newKey()
	d, wd := tr.join("g", "Dropper", key)
	watcher.expectNext(protocol.TypeJoined)
	d.ws.Close()
	if p := watcher.expectNext(protocol.TypePresence).(*protocol.Presence); p.Member.State != protocol.StateAway {
		t.Fatalf("presence %+v", p.Member)
	}
	d2, w2 := tr.join("g", "Dropper", key)
	if w2.You.ID != wd.You.ID {
		t.Fatalf("returned with id %s, was %s", w2.You.ID, wd.You.ID)
	}
	p := watcher.expectNext(protocol.TypePresence).(*protocol.Presence)
	if p.Member.ID != wd.You.ID || p.Member.State != protocol.StateOnline {
		t.Fatalf("presence %+v", p.Member)
	}
	// Coming back under a new name: presence shows it, uniqueness holds.
	d2.send(&protocol.Bye{})
	d2.expectClose(protocol.CloseNormal)
	if l := watcher.expectNext(protocol.TypeLeft).(*protocol.Left); l.Reason != protocol.ReasonBye {
		t.Fatalf("left %+v", l)
	}
	// After bye the key is a new member with a new id.
	_, w3 := tr.join("g", "Dropper", key)
	if w3.You.ID == wd.You.ID {
		t.Fatal("member id reused after the member left")
	}
	if j := watcher.expectNext(protocol.TypeJoined).(*protocol.Joined); j.Member.ID != w3.You.ID {
		t.Fatalf("joined %+v", j.Member)
	}
}

func TestReturnWithNewNameAndDroppedSocketReason(t *testing.T) {
	cfg := fastConfig(t)
	cfg.Grace = 150 * time.Millisecond
	cfg.HeartbeatInterval, cfg.HeartbeatTimeout = time.Second, 3*time.Second
	tr := startRelay(t, cfg)
	watcher, _ := tr.join("g", "Watcher", newKey())
	key := newKey()
	d, wd := tr.join("g", "Dee", key)
	watcher.expectNext(protocol.TypeJoined)
	d2, w2 := tr.join("g", "Dee Two", key, withAvatar("builtin:default"))
	if w2.You.ID != wd.You.ID || w2.You.Name != "Dee Two" {
		t.Fatalf("welcome you %+v", w2.You)
	}
	d.expectClose(protocol.CloseReplaced)
	p := watcher.expectNext(protocol.TypePresence).(*protocol.Presence)
	if p.Member.Name != "Dee Two" || p.Member.Avatar != "builtin:default" || p.Member.State != protocol.StateOnline {
		t.Fatalf("presence %+v", p.Member)
	}
	// The old name is free again, the new one taken.
	tr.join("g", "Dee", newKey())
	watcher.expectNext(protocol.TypeJoined)
	c := tr.dial(nil)
	c.hello("g", "dee two", newKey())
	c.expectClose(protocol.CloseNameTaken)

	d2.ws.Close() // socket closes without bye: away, then left reason closed
	watcher.expectNext(protocol.TypePresence)
	if l := watcher.expectNext(protocol.TypeLeft).(*protocol.Left); l.Reason != protocol.ReasonClosed || l.Member.ID != wd.You.ID {
		t.Fatalf("left %+v", l)
	}
}

// Rule 7: the newer connection wins; a hello on a connection opened before
// the member's current one is refused with 4002.
func TestReplacementNewerWins(t *testing.T) {
	tr := startRelay(t, fastConfig(t))
	key := newKey()
	older := tr.dial(nil) // opened first, says hello last
	first, w1 := tr.join("r", "Alice", key)
	stop := first.keepAlive(40 * time.Millisecond)
	second, w2 := tr.join("r", "Alice", key)
	stop()
	if w1.You.ID != w2.You.ID {
		t.Fatal("replacement changed the member id")
	}
	first.expectClose(protocol.CloseReplaced)
	older.hello("r", "Alice", key)
	older.expectClose(protocol.CloseReplaced)
	// The current connection still works.
	second.msg("m1", "still here")
	second.expectNext(protocol.TypeAck)
}

// 200 clients that go silent are all reaped, and nothing leaks.
func TestManySilentClientsAreReaped(t *testing.T) {
	cfg := fastConfig(t)
	cfg.Grace = 100 * time.Millisecond
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	url := "ws://" + srv.Addr().String() + "/ws"
	const n = 200
	conns := make([]*websocket.Conn, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ws, _, err := websocket.DefaultDialer.Dial(url, nil)
			if err != nil {
				errs <- err
				return
			}
			conns[i] = ws
			h, _ := protocol.Encode(&protocol.Hello{V: 1, Room: fmt.Sprintf("room-%d", i%10), Name: fmt.Sprintf("user%d", i), Key: newKey()})
			ws.WriteMessage(websocket.TextMessage, h)
			// Read until the relay closes us; never send anything else.
			for {
				if _, _, err := ws.ReadMessage(); err != nil {
					var ce *websocket.CloseError
					if !isClose(err, &ce) || (ce.Code != protocol.CloseHeartbeatTimeout) {
						errs <- fmt.Errorf("client %d ended with %v, want 4000", i, err)
					}
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	m := srv.Metrics()
	waitFor(t, 3*time.Second, "every member to leave and every room to go", func() bool {
		srv.roomsMu.Lock()
		defer srv.roomsMu.Unlock()
		srv.connsMu.Lock()
		defer srv.connsMu.Unlock()
		return len(srv.rooms) == 0 && srv.conns.Len() == 0
	})
	if got := testutilCounter(m.HeartbeatTimeouts); got != n {
		t.Errorf("heartbeat timeouts metric %v, want %d", got, n)
	}
	for _, ws := range conns {
		if ws != nil {
			ws.Close()
		}
	}
	if err := srv.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	goleak.VerifyNone(t, goleak.IgnoreCurrent())
}

func isClose(err error, ce **websocket.CloseError) bool {
	e, ok := err.(*websocket.CloseError)
	if ok {
		*ce = e
	}
	return ok
}

// A half-open connection (the peer vanished without a FIN) is found by the
// heartbeat alone: here the client's socket simply stops reading and writing.
func TestHalfOpenPeerIsReaped(t *testing.T) {
	cfg := fastConfig(t)
	tr := startRelay(t, cfg)
	watcher, _ := tr.join("h", "Watcher", newKey())
	stop := watcher.keepAlive(40 * time.Millisecond)
	defer stop()
	raw, err := net.Dial("tcp", tr.srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	ws, _, err := websocket.NewClient(raw, mustURL(tr.url), nil, 512, 512)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := protocol.Encode(&protocol.Hello{V: 1, Room: "h", Name: "Ghost", Key: newKey()})
	ws.WriteMessage(websocket.TextMessage, h)
	watcher.expectNext(protocol.TypeJoined)
	// Never read again, never write again: the relay must notice on its own.
	p := watcher.expectNext(protocol.TypePresence).(*protocol.Presence)
	if p.Member.Name != "Ghost" || p.Member.State != protocol.StateAway {
		t.Fatalf("presence %+v", p.Member)
	}
	if l := watcher.expectNext(protocol.TypeLeft).(*protocol.Left); l.Reason != protocol.ReasonTimeout {
		t.Fatalf("left %+v", l)
	}
}

// A websocket ping is answered with a pong carrying its payload.
func TestWebsocketPingGetsPong(t *testing.T) {
	tr := startRelay(t, fastConfig(t))
	ws, _, err := websocket.DefaultDialer.Dial(tr.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	got := make(chan string, 1)
	ws.SetPongHandler(func(data string) error { got <- data; return nil })
	ws.WriteControl(websocket.PingMessage, []byte("are you there"), time.Now().Add(time.Second))
	go func() {
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	}()
	select {
	case p := <-got:
		if p != "are you there" {
			t.Errorf("pong payload %q", p)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("no pong")
	}
}
