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
)

type countingConn struct {
	net.Conn
	writes atomic.Int32
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// Several queued frames, prepared (fan-out) and unicast mixed, leave in one
// write to the socket, in order.
func TestQueuedFramesGoOutInOneWrite(t *testing.T) {
	srv, err := New(Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	writes := make(chan int32, 1)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hw := &hijackWriter{ResponseWriter: w}
		ws, err := srv.upgrader.Upgrade(hw, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		cc := &countingConn{Conn: hw.wrapped.Conn}
		hw.wrapped.Conn = cc
		c := &conn{s: srv, ws: ws, netConn: hw.wrapped}
		var q []outFrame
		for i := range 50 {
			data := []byte(fmt.Sprintf(`{"type":"pong","t":%d,"server_time":1}`, i))
			if i%2 == 0 {
				pm, _ := websocket.NewPreparedMessage(websocket.TextMessage, data)
				q = append(q, outFrame{pm: pm})
			} else {
				q = append(q, outFrame{data: data})
			}
		}
		if err := c.writeBatch(q); err != nil {
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
	ws.SetReadDeadline(time.Now().Add(3 * time.Second))
	for i := range 50 {
		_, data, err := ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf(`"t":%d,`, i); !strings.Contains(string(data), want) {
			t.Fatalf("frame %d = %s", i, data)
		}
	}
	if n := <-writes; n != 1 {
		t.Errorf("50 queued frames took %d writes, want 1", n)
	}
}
