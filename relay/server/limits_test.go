package server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heartline/heartline/relay/metrics"
	"github.com/heartline/heartline/shared/protocol"
)

// A frame over --max-frame closes 1009.
func TestFrameTooLarge(t *testing.T) {
	cfg := fastConfig(t)
	cfg.HeartbeatInterval, cfg.HeartbeatTimeout = time.Second, 3*time.Second
	cfg.MaxFrame = 1024
	tr := startRelay(t, cfg)
	c, _ := tr.join("l", "Alice", newKey())
	c.raw([]byte(`{"type":"msg","id":"big","text":"` + strings.Repeat("a", 2000) + `"}`))
	c.expectClose(websocket.CloseMessageTooBig)
}

// Hostile or broken frames get an error and the connection stays.
func TestBadFramesKeepTheConnection(t *testing.T) {
	cfg := fastConfig(t)
	cfg.HeartbeatInterval, cfg.HeartbeatTimeout = time.Second, 3*time.Second
	cfg.MaxText = 10
	tr := startRelay(t, cfg)
	c, _ := tr.join("l", "Alice", newKey())

	c.raw([]byte(`{"type":"msg","id":`))
	c.expectError(protocol.ErrBadFrame)
	c.raw([]byte(`[1,2,3]`))
	c.expectError(protocol.ErrBadFrame)
	c.ws.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3})
	c.expectError(protocol.ErrBadFrame)
	c.raw([]byte(`{"type":"shout","text":"hi"}`))
	c.expectError(protocol.ErrUnknownType)
	c.msg("e1", "")
	if e := c.expectError(protocol.ErrBadFrame); e.ID != "e1" || !strings.Contains(e.Message, "empty") {
		t.Errorf("empty text: %+v", e)
	}
	c.msg("e2", "  \n ")
	c.expectError(protocol.ErrBadFrame)
	c.msg("", "no id")
	c.expectError(protocol.ErrBadFrame)
	c.msg(strings.Repeat("x", 65), "long id")
	c.expectError(protocol.ErrBadFrame)
	// Length counts code points: 10 emoji are fine, 11 are too long.
	c.msg("ok", strings.Repeat("😀", 10))
	c.expectNext(protocol.TypeAck)
	if e := c.msg2("long", strings.Repeat("😀", 11)); e.Code != protocol.ErrTooLong || e.ID != "long" {
		t.Errorf("too long: %+v", e)
	}
	// Still joined and working.
	c.msg("after", "still here")
	if a := c.expectNext(protocol.TypeAck).(*protocol.Ack); a.Seq != 2 {
		t.Fatalf("ack %+v: a refused message took a seq", a)
	}
}

func (c *tclient) msg2(id, text string) *protocol.Error {
	c.t.Helper()
	c.msg(id, text)
	return c.expectNext(protocol.TypeError).(*protocol.Error)
}

// Rate limit: counts accepted messages only; a refusal consumes no budget
// and every later message is refused until retry_after has passed.
func TestRateLimitKeepsOrder(t *testing.T) {
	cfg := fastConfig(t)
	cfg.HeartbeatInterval, cfg.HeartbeatTimeout = time.Second, 3*time.Second
	cfg.Rate, cfg.Burst = 2, 3 // one token every 500 ms
	tr := startRelay(t, cfg)
	c, _ := tr.join("rl", "Alice", newKey())
	for i := range 3 {
		c.msg(fmt.Sprintf("b%d", i), "burst")
		c.expectNext(protocol.TypeAck)
	}
	e := c.msg2("r1", "over")
	if e.Code != protocol.ErrRateLimited || e.RetryAfterMS <= 0 || e.RetryAfterMS > 500 || e.ID != "r1" {
		t.Fatalf("refusal %+v", e)
	}
	refusedAt := time.Now()
	// Until retry_after passes, everything is refused.
	if e2 := c.msg2("r2", "still over"); e2.Code != protocol.ErrRateLimited {
		t.Fatalf("second refusal %+v", e2)
	}
	time.Sleep(time.Until(refusedAt.Add(time.Duration(e.RetryAfterMS)*time.Millisecond + 20*time.Millisecond)))
	c.msg("r1", "over")
	if a := c.expectNext(protocol.TypeAck).(*protocol.Ack); a.Seq != 4 {
		t.Fatalf("ack %+v", a)
	}
	// A duplicate of an accepted id is answered and costs no budget ...
	c.msg("b0", "burst")
	c.expectNext(protocol.TypeAck)
	// ... the refusals consumed nothing, but the one token is spent now.
	if e3 := c.msg2("r2", "still over"); e3.Code != protocol.ErrRateLimited {
		t.Fatalf("third refusal %+v", e3)
	}
}

// --max-conns answers 503 and --max-conns-per-ip 429, before the upgrade.
func TestConnectionLimits(t *testing.T) {
	cfg := fastConfig(t)
	cfg.HeartbeatInterval, cfg.HeartbeatTimeout = time.Second, 3*time.Second
	cfg.MaxConnsPerIP = 2
	tr := startRelay(t, cfg)
	tr.dial(nil)
	tr.dial(nil)
	_, resp, err := websocket.DefaultDialer.Dial(tr.url, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third connection from one IP: %v %v", err, resp)
	}
	// Another source address (127.0.0.2 is loopback too) still gets in.
	d := websocket.Dialer{NetDial: func(network, addr string) (net.Conn, error) {
		return (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).Dial(network, addr)
	}}
	ws, _, err := d.Dial(tr.url, nil)
	if err != nil {
		t.Fatalf("other address: %v", err)
	}
	ws.Close()

	cfg2 := fastConfig(t)
	cfg2.HeartbeatInterval, cfg2.HeartbeatTimeout = time.Second, 3*time.Second
	cfg2.MaxConns = 1
	tr2 := startRelay(t, cfg2)
	tr2.dial(nil)
	_, resp, err = websocket.DefaultDialer.Dial(tr2.url, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("over max conns: %v %v", err, resp)
	}
}

// Origin is checked against the allowed list; a missing Origin is allowed.
func TestOriginCheck(t *testing.T) {
	cfg := fastConfig(t)
	cfg.Origins = []string{"https://chat.example.org"}
	tr := startRelay(t, cfg)
	for _, tc := range []struct {
		origin string
		ok     bool
	}{{"", true}, {"https://chat.example.org", true}, {"https://evil.example", false}, {"http://" + tr.srv.Addr().String(), false}} {
		h := http.Header{}
		if tc.origin != "" {
			h.Set("Origin", tc.origin)
		}
		ws, resp, err := websocket.DefaultDialer.Dial(tr.url, h)
		if tc.ok != (err == nil) {
			t.Errorf("origin %q: err %v", tc.origin, err)
		}
		if !tc.ok && (resp == nil || resp.StatusCode != http.StatusForbidden) {
			t.Errorf("origin %q: want 403, got %v", tc.origin, resp)
		}
		if ws != nil {
			ws.Close()
		}
	}
	// Without --origins, only the relay's own host may connect from a browser.
	cfg2 := fastConfig(t)
	tr2 := startRelay(t, cfg2)
	same := http.Header{"Origin": {"http://" + tr2.srv.Addr().String()}}
	if ws, _, err := websocket.DefaultDialer.Dial(tr2.url, same); err != nil {
		t.Errorf("same-host origin refused: %v", err)
	} else {
		ws.Close()
	}
	if _, _, err := websocket.DefaultDialer.Dial(tr2.url, http.Header{"Origin": {"https://evil.example"}}); err == nil {
		t.Error("foreign origin accepted without --origins")
	}
}

// A member that stops reading is cut off with 4001 (left reason slow after
// grace) and never delays the others.
// A member that does not read is cut off (4001, left reason slow) without
// delaying anyone: when its queue overflows, or when a write to it cannot
// complete within the write timeout (its queue never filling).
func TestSlowConsumerIsCutOff(t *testing.T) {
	t.Run("queue overflow", func(t *testing.T) { testSlowConsumer(t, false) })
	t.Run("write timeout", func(t *testing.T) { testSlowConsumer(t, true) })
}

func testSlowConsumer(t *testing.T, byTimeout bool) {
	cfg := fastConfig(t)
	// The slow client sends nothing after its hello: the queue, not the
	// heartbeat, must cut it, however long a busy machine takes to fill the
	// socket buffers (the write timeout stays min(timeout, 10 s) = 10 s).
	cfg.HeartbeatInterval, cfg.HeartbeatTimeout = 2*time.Second, time.Minute
	cfg.Grace = 200 * time.Millisecond
	cfg.SendQueue = 64
	if byTimeout {
		// Write timeout min(HeartbeatTimeout, 10 s) = 3 s; a queue that
		// never overflows. The heartbeat timeout leaves the members' pings
		// (every 100 and 500 ms) room on a busy machine: at 1 s the fast
		// member was cut for silence now and then.
		cfg.HeartbeatInterval, cfg.HeartbeatTimeout = 300*time.Millisecond, 3*time.Second
		cfg.SendQueue = 1 << 20
	}
	cfg.Rate, cfg.Burst = 100000, 100000
	tr := startRelay(t, cfg)

	// The slow client has a tiny receive buffer and never reads.
	d := websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		nd := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 2048) })
			return serr
		}}
		return nd.DialContext(ctx, network, addr)
	}}
	slowWS, _, err := d.Dial(tr.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slowWS.Close()
	h, _ := protocol.Encode(&protocol.Hello{V: 1, Room: "s", Name: "Slow", Key: newKey()})
	slowWS.WriteMessage(websocket.TextMessage, h)
	if byTimeout {
		// It keeps pinging (so the heartbeat does not cut it first) but
		// never reads.
		stopPings := make(chan struct{})
		pinged := make(chan struct{})
		go func() {
			defer close(pinged)
			ping, _ := protocol.Encode(&protocol.Ping{T: 1})
			for {
				select {
				case <-stopPings:
					return
				case <-time.After(100 * time.Millisecond):
				}
				slowWS.SetWriteDeadline(time.Now().Add(time.Second))
				if slowWS.WriteMessage(websocket.TextMessage, ping) != nil {
					return
				}
			}
		}()
		defer func() { close(stopPings); <-pinged }()
	}
	// Once evicted, the slow client starts reading, while the others go on:
	// the relay still has to finish the frame its writer was blocked in and
	// then send the close frame, and it gives a peer that reads nothing at
	// all only the write timeout (10 s) for that. Waiting for the fast member
	// to get everything first took longer than that on a busy machine, and
	// the relay rightly dropped the socket (1006) instead.
	slowCode := make(chan int, 1)
	if !byTimeout {
		stopWaiting := make(chan struct{})
		defer close(stopWaiting)
		go func() {
			for testutilCounter(tr.srv.Metrics().QueueOverflows) == 0 {
				select {
				case <-stopWaiting:
					slowCode <- 0
					return
				case <-time.After(10 * time.Millisecond):
				}
			}
			// Bounded by the test's own failures too: closing slowWS ends
			// the read.
			slowWS.SetReadDeadline(time.Now().Add(time.Minute))
			for {
				if _, _, err := slowWS.ReadMessage(); err != nil {
					code := 0
					if ce, ok := err.(*websocket.CloseError); ok {
						code = ce.Code
					}
					slowCode <- code
					return
				}
			}
		}()
	}

	fast, _ := tr.join("s", "Fast", newKey())
	sender, _ := tr.join("s", "Sender", newKey())
	fast.expectNext(protocol.TypeJoined)
	stop := fast.keepAlive(500 * time.Millisecond)
	defer stop()
	// The relay's socket send buffer may grow to 4 MiB (tcp_wmem): send
	// ~5.6 MB so that it fills, then the queue overflows.
	text := strings.Repeat("x", 3990)
	const n = 1400
	start := time.Now()
	// At most 16 unacknowledged messages, so no store commit carries more
	// frames than a healthy member's queue holds.
	senderDone := make(chan struct{})
	go func() {
		defer close(senderDone)
		acked := 0
		for i := range n {
			for i-acked >= 16 {
				f, err := sender.next(5 * time.Second)
				if err != nil {
					t.Logf("sender: %v", err)
					return
				}
				if f.FrameType() == protocol.TypeAck {
					acked++
				}
			}
			sender.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
			b, _ := protocol.Encode(&protocol.Send{ID: fmt.Sprintf("m%d", i), Text: text})
			if err := sender.ws.WriteMessage(websocket.TextMessage, b); err != nil {
				t.Logf("sender: %v", err)
				return
			}
		}
	}()
	defer func() { <-senderDone }()
	got, sawAway, sawLeft := 0, false, false
	for got < n || !sawLeft {
		f, err := fast.next(5 * time.Second)
		if err != nil {
			t.Fatalf("fast member after %d messages: %v", got, err)
		}
		switch f := f.(type) {
		case *protocol.Message:
			got++
			if uint64(got) != f.Seq {
				t.Fatalf("fast member got seq %d as message %d", f.Seq, got)
			}
		case *protocol.Presence:
			if f.Member.Name == "Slow" && f.Member.State == protocol.StateAway {
				sawAway = true
			}
		case *protocol.Left:
			if f.Member.Name != "Slow" || f.Reason != protocol.ReasonSlow || !sawAway {
				t.Fatalf("left %+v (away seen: %v)", f, sawAway)
			}
			sawLeft = true
		}
	}
	t.Logf("fast member got %d messages in %v while the slow one was cut off", got, time.Since(start))
	wantOverflows := 1.0
	if byTimeout {
		wantOverflows = 0
	}
	if v := testutilCounter(tr.srv.Metrics().QueueOverflows); v != wantOverflows {
		t.Errorf("queue overflows %v, want %v", v, wantOverflows)
	}
	if v := testutilCounter(tr.srv.Metrics().Evictions.WithLabelValues(metrics.EvictSlow)); v != 1 {
		t.Errorf("slow-consumer evictions %v, want 1", v)
	}
	if byTimeout {
		return // its socket was jammed: there was no way to send it a close frame
	}
	// The slow client, once it reads, finds the close code 4001 after what
	// the socket already held.
	code := <-slowCode
	if code != protocol.CloseSlowConsumer {
		t.Errorf("slow client's close code %d, want 4001", code)
	}
}
