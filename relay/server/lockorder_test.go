package server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime/pprof"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heartline/heartline/shared/protocol"
)

// TestLockOrderUnderRace runs, all at once, every path that holds two of the
// locks of the tier table (doc.go): joins and returns that evict the
// replaced connection under room.mu, a fan-out of messages to members while
// some of them overflow their queue (evicted under room.mu) or drop, rooms
// created and forgotten by the sweeper (Server.roomsMu under room.mu) while
// others join them, connections that never say hello, the admin listing,
// and finally Shutdown in the middle of it all. A lock taken out of order
// deadlocks here (the relay stops answering, and Shutdown never returns),
// and the race detector sees every shared field these paths touch.
func TestLockOrderUnderRace(t *testing.T) {
	cfg := fastConfig(t)
	cfg.HeartbeatInterval, cfg.HeartbeatTimeout = 500*time.Millisecond, 2*time.Second
	cfg.HelloTimeout = 100 * time.Millisecond
	cfg.Grace = 50 * time.Millisecond
	cfg.SweepInterval = 5 * time.Millisecond
	cfg.Rate, cfg.Burst = 1e6, 1e6
	cfg.SendQueue = 256
	cfg.AdminToken = "admin-token-for-the-race-test"
	tr := startRelay(t, cfg)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	run := func(f func(i int)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				f(i)
			}
		}()
	}
	dialer := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	hello := func(ws *websocket.Conn, room, name, key string) {
		h, _ := protocol.Encode(&protocol.Hello{V: protocol.Version, Room: room, Name: name, Key: key})
		ws.WriteMessage(websocket.TextMessage, h)
	}
	// drain reads ws until it ends, in the background.
	drain := func(ws *websocket.Conn) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ws.SetReadDeadline(time.Now().Add(30 * time.Second))
			for {
				if _, _, err := ws.ReadMessage(); err != nil {
					return
				}
			}
		}()
	}

	// Senders: the commit pipeline and the fan-out.
	for s := range 3 {
		key := newKey()
		run(func(i int) {
			ws, _, err := dialer.Dial(tr.url, nil)
			if err != nil {
				return
			}
			defer ws.Close()
			drain(ws)
			hello(ws, "race", fmt.Sprintf("sender-%d", s), key)
			for k := range 50 {
				m, _ := protocol.Encode(&protocol.Send{ID: fmt.Sprintf("s%d-%d-%d", s, i, k), Text: "a line for everyone in the room"})
				if ws.WriteMessage(websocket.TextMessage, m) != nil {
					return
				}
				if k%10 == 0 {
					p, _ := protocol.Encode(&protocol.Ping{T: int64(k)})
					ws.WriteMessage(websocket.TextMessage, p)
				}
			}
		})
	}
	// Returners: the same key joins again and again (the replaced
	// connection is evicted under room.mu), sometimes saying bye. Half the
	// time the old link drops just as the new one says hello, so that the
	// old connection's end (conn.Ended) races its eviction by the join.
	for s := range 3 {
		key := newKey()
		var cur *websocket.Conn
		run(func(i int) {
			next, _, err := dialer.Dial(tr.url, nil)
			if err != nil {
				return
			}
			drain(next)
			if cur != nil && i%2 == 0 {
				go cur.Close()
			}
			hello(next, "race", fmt.Sprintf("returner-%d", s), key)
			time.Sleep(time.Duration(i%5) * time.Millisecond)
			if i%3 == 0 {
				b, _ := protocol.Encode(&protocol.Bye{})
				next.WriteMessage(websocket.TextMessage, b)
			}
			if cur != nil && i%2 == 1 {
				cur.Close()
			}
			cur = next
		})
	}
	// Slow consumers: a tiny receive buffer and no reads, so that the
	// fan-out overflows their queue and evicts them under room.mu.
	slowDialer := websocket.Dialer{HandshakeTimeout: 5 * time.Second, NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		nd := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 2048) })
			return nil
		}}
		return nd.DialContext(ctx, network, addr)
	}}
	run(func(i int) {
		ws, _, err := slowDialer.Dial(tr.url, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		hello(ws, "race", fmt.Sprintf("slow-%d", i), newKey())
		select {
		case <-stop:
		case <-time.After(200 * time.Millisecond):
		}
	})
	// Room churn: short-lived rooms, created by getRoom and forgotten by
	// the sweeper, sometimes while the next joiner arrives.
	for s := range 4 {
		run(func(i int) {
			ws, _, err := dialer.Dial(tr.url, nil)
			if err != nil {
				return
			}
			drain(ws)
			hello(ws, fmt.Sprintf("churn-%d", i%8), fmt.Sprintf("churner-%d", s), newKey())
			b, _ := protocol.Encode(&protocol.Bye{})
			ws.WriteMessage(websocket.TextMessage, b)
			time.Sleep(time.Duration(i%3) * time.Millisecond)
			ws.Close()
		})
	}
	// Silent connections: the sweeper closes them (no hello).
	run(func(i int) {
		ws, _, err := dialer.Dial(tr.url, nil)
		if err != nil {
			return
		}
		drain(ws)
		time.Sleep(20 * time.Millisecond)
	})
	// The admin listing: Server.roomsMu, then each room's mu.
	for range 3 {
		run(func(i int) {
			req, _ := http.NewRequest("GET", tr.web+"/v1/rooms", nil)
			req.Header.Set("Authorization", "Bearer "+cfg.AdminToken)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		})
	}

	// Let it run, then check that the relay still answers a newcomer in the
	// busy room (a deadlock on room.mu or roomsMu would keep the welcome).
	time.Sleep(1500 * time.Millisecond)
	probe := make(chan error, 1)
	go func() {
		// A busy machine may close the probe (hello timeout, slow consumer):
		// it tries again. Only a relay that never welcomes it fails.
		var last error
		for deadline := time.Now().Add(25 * time.Second); time.Now().Before(deadline); {
			if last = probeWelcome(tr.url, time.Until(deadline)); last == nil {
				break
			}
		}
		probe <- last
	}()
	if err := waitOrDump(t, probe, 30*time.Second, "a newcomer's welcome"); err != nil {
		dumpAndExit(t, fmt.Sprintf("in the middle of the storm a newcomer got %v", err))
	}

	// Shutdown in the middle of it all.
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		shut <- tr.srv.Shutdown(ctx)
	}()
	if err := waitOrDump(t, shut, 30*time.Second, "Shutdown"); err != nil {
		t.Errorf("Shutdown during the storm: %v", err)
	}
	close(stop)
	wg.Wait()
}

// probeWelcome joins the busy room as a newcomer and waits for the welcome.
func probeWelcome(url string, limit time.Duration) error {
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		return err
	}
	defer ws.Close()
	key := newKey()
	h, _ := protocol.Encode(&protocol.Hello{V: protocol.Version, Room: "race", Name: "probe " + key[len(key)-4:], Key: key})
	ws.WriteMessage(websocket.TextMessage, h)
	ws.SetReadDeadline(time.Now().Add(limit))
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return fmt.Errorf("no welcome: %w", err)
		}
		if f, err := protocol.DecodeRelay(data); err == nil && f.FrameType() == protocol.TypeWelcome {
			return nil
		}
	}
}

// waitOrDump waits for ch; on timeout it calls dumpAndExit.
func waitOrDump(t *testing.T, ch <-chan error, limit time.Duration, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(limit):
		dumpAndExit(t, fmt.Sprintf("%s did not come within %v", what, limit))
		return nil
	}
}

// dumpAndExit prints every goroutine (a deadlock shows which locks are
// waited for) and ends the test binary at once: not t.Fatal or panic, whose
// cleanups (the relay's Shutdown) would wait for the deadlocked relay until
// the binary's timeout.
func dumpAndExit(t *testing.T, why string) {
	pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
	fmt.Fprintf(os.Stderr, "--- FAIL: %s: %s: a deadlock? (goroutines above)\n", t.Name(), why)
	os.Exit(1)
}
