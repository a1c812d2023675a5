package server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/heartline/heartline/relay/internal/wsconn"
)

type countingConn struct {
	net.Conn
	writes atomic.Int32
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// Several queued frames (text frames of every header size, pongs mixed in)
// leave in one write to the socket, in order, and read back as the frames
// gorilla would have written.
func TestQueuedFramesGoOutInOneWrite(t *testing.T) {
	srv, err := New(Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	text := func(i int) []byte {
		pad := strings.Repeat("x", []int{0, 200, 70000}[i%3]) // 7-bit, 16-bit and 64-bit lengths
		return []byte(fmt.Sprintf(`{"type":"pong","t":%d,"server_time":1,"pad":"%s"}`, i, pad))
	}
	writes := make(chan int32, 1)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hw := &wsconn.HijackWriter{ResponseWriter: w}
		ws, err := srv.upgrader.Upgrade(hw, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		// Count through the net.Conn path: the raw-socket path makes the
		// same single write with a syscall the wrapper cannot see (every
		// other test goes through it). A BatchConn around a countingConn
		// has no raw socket.
		cc := &countingConn{Conn: hw.Wrapped().Conn}
		c := srv.newConn(ws, &wsconn.BatchConn{Conn: cc}, r.RemoteAddr, "")
		var q []wsconn.Frame
		for i := range 50 {
			q = append(q, wsconn.Frame{Data: text(i), Op: websocket.TextMessage})
			if i%10 == 0 {
				q = append(q, wsconn.Frame{Data: []byte(fmt.Sprint("pong-", i)), Op: websocket.PongMessage})
			}
		}
		if err := c.WriteBatch(nil, q); err != nil {
			t.Error(err)
		}
		writes <- cc.writes.Load()
	}))
	defer ts.Close()
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(ts.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	var pongs []string
	ws.SetPongHandler(func(p string) error { pongs = append(pongs, p); return nil })
	ws.SetReadDeadline(time.Now().Add(3 * time.Second))
	for i := range 50 {
		typ, data, err := ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if typ != websocket.TextMessage || string(data) != string(text(i)) {
			t.Fatalf("frame %d: type %d, %d bytes, want text of %d bytes", i, typ, len(data), len(text(i)))
		}
	}
	if want := "[pong-0 pong-10 pong-20 pong-30 pong-40]"; fmt.Sprint(pongs) != want {
		t.Errorf("pongs %v, want %s", pongs, want)
	}
	if n := <-writes; n != 1 {
		t.Errorf("55 queued frames took %d writes, want 1", n)
	}
}
