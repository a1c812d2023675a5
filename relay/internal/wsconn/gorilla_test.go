package wsconn

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heartline/heartline/shared/protocol"
)

// The tests in this file pin what the transport assumes about gorilla/
// websocket's internals (doc.go),
// so that an upgrade of gorilla that changes one fails here instead of
// corrupting a stream.

// upgraded is one connection upgraded as the relay's handleWS does it.
type upgraded struct {
	ws     *websocket.Conn // the relay's side
	bc     *BatchConn      // what gorilla got from Hijack
	client *websocket.Conn
	nc     net.Conn // the client's socket (for hand-made frames)
}

// upgradePair upgrades one connection through HijackWriter and NewUpgrader;
// tune may set the HTTP server's timeouts before it starts.
func upgradePair(t *testing.T, tune func(*http.Server)) *upgraded {
	t.Helper()
	up := NewUpgrader()
	got := make(chan *upgraded, 1)
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hw := &HijackWriter{ResponseWriter: w}
		ws, err := up.Upgrade(hw, r, nil)
		if err != nil {
			t.Error(err)
			got <- nil
			return
		}
		got <- &upgraded{ws: ws, bc: hw.wrapped}
	}))
	if tune != nil {
		tune(ts.Config)
	}
	ts.Start()
	t.Cleanup(ts.Close)
	client, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(ts.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	u := <-got
	if u == nil {
		t.FailNow()
	}
	t.Cleanup(func() { u.ws.Close() })
	u.client, u.nc = client, client.NetConn()
	return u
}

// field reads an unexported field of gorilla's Conn (reflection reads, never
// writes, them).
func field(ws *websocket.Conn, name string) reflect.Value {
	return reflect.ValueOf(ws).Elem().FieldByName(name)
}

// Assumption 1: with ReadBufferSize 0, gorilla reads through the bufio.Reader
// that Hijack returned (ours, ReadBufferSize bytes: gorilla takes it when it
// holds more than 256) and keeps no other read buffer. The reader parks only
// when that reader and the socket are empty (BatchConn.Buffered): a second
// buffer would hide bytes already read, and they would never be handled.
func TestGorillaReadsThroughTheHijackedReader(t *testing.T) {
	u := upgradePair(t, nil)
	if br := field(u.ws, "br"); br.Pointer() != reflect.ValueOf(u.bc.br).Pointer() {
		t.Fatal("gorilla does not read through the hijacked bufio.Reader: BatchConn.Buffered cannot see its buffer")
	}
	ping := func(ts int64) []byte {
		p, _ := protocol.Encode(&protocol.Ping{T: ts})
		return maskedFrame(p)
	}
	if _, err := u.nc.Write(append(ping(1), ping(2)...)); err != nil { // one segment, two frames
		t.Fatal(err)
	}
	u.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := u.ws.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	if !u.bc.Buffered() {
		t.Fatal("after the first of two frames read together, BatchConn.Buffered() is false: the second is held where the reader cannot see it")
	}
	if _, data, err := u.ws.ReadMessage(); err != nil || !strings.Contains(string(data), `"t":2`) {
		t.Fatalf("second frame: %q, %v", data, err)
	}
	if u.bc.Buffered() {
		t.Error("BatchConn.Buffered() still true after both frames were read")
	}
}

// Assumption 2: gorilla writes a control frame (our close frame, its close
// handler's reply to the peer's close) with one Write on the net.Conn it got
// from Hijack. The relay's writer writes its batches with one write each
// (the relay's writeBatch); two whole writes never interleave inside a frame.
func TestGorillaWritesAControlFrameInOneWrite(t *testing.T) {
	u := upgradePair(t, nil)
	cc := &countingConn{Conn: u.bc.Conn}
	u.bc.Conn = cc

	// The relay's close frame.
	if err := u.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4001, CloseReason(strings.Repeat("slow ", 40))), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if n := cc.writes.Load(); n != 1 {
		t.Fatalf("WriteControl(close) made %d writes, want 1", n)
	}

	// Gorilla's reply to the peer's close, written from the reader.
	u2 := upgradePair(t, nil)
	cc2 := &countingConn{Conn: u2.bc.Conn}
	u2.bc.Conn = cc2
	u2.client.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(time.Second))
	u2.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	var ce *websocket.CloseError
	if _, _, err := u2.ws.ReadMessage(); !errors.As(err, &ce) {
		t.Fatalf("reading the peer's close: %v", err)
	}
	if n := cc2.writes.Load(); n != 1 {
		t.Fatalf("the close handler's reply made %d writes, want 1", n)
	}
}

// Assumption 3: Upgrade clears the deadlines net/http set on the connection
// (ReadTimeout, WriteTimeout of Server.Start's http.Server): an upgraded
// member may be silent far longer than they allow, and the relay sets its
// own deadlines only to close or evict.
func TestGorillaClearsTheHTTPServerDeadlines(t *testing.T) {
	u := upgradePair(t, func(hs *http.Server) {
		hs.ReadTimeout, hs.WriteTimeout = 100*time.Millisecond, 100*time.Millisecond
	})
	time.Sleep(300 * time.Millisecond) // both timeouts have passed
	if err := u.client.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping","t":1}`)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := u.ws.ReadMessage(); err != nil {
		t.Fatalf("read after the HTTP server's ReadTimeout: %v (gorilla no longer clears the deadline)", err)
	}
	if _, err := u.bc.Conn.Write([]byte{0x81, 0}); err != nil { // an empty text frame
		t.Fatalf("write after the HTTP server's WriteTimeout: %v (gorilla no longer clears the deadline)", err)
	}
}

// Assumption 4: a frame over the read limit makes gorilla's read return
// ErrReadLimit after it has written close 1009 itself (the relay's readEnded
// counts the eviction and sends no close frame of its own).
func TestGorillaAnswersAnOversizedFrameWith1009(t *testing.T) {
	u := upgradePair(t, nil)
	u.ws.SetReadLimit(100)
	if _, err := u.nc.Write(maskedFrame([]byte(strings.Repeat("x", 101)))); err != nil {
		t.Fatal(err)
	}
	u.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := u.ws.ReadMessage(); !errors.Is(err, websocket.ErrReadLimit) {
		t.Fatalf("read of an oversized frame: %v, want ErrReadLimit", err)
	}
	u.client.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err := u.client.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
		t.Fatalf("the client got %v, want close 1009 written by gorilla", err)
	}
}

// Assumption 5: with a WriteBufferPool, gorilla holds no write buffer while
// it is not writing a frame (the relay frames its own writes, so it never
// takes one): an idle member costs no write buffer.
func TestGorillaHoldsNoWriteBufferWhenIdle(t *testing.T) {
	u := upgradePair(t, nil)
	if wb := field(u.ws, "writeBuf"); wb.Len() != 0 {
		t.Fatalf("gorilla holds a %d-byte write buffer on an idle connection", wb.Len())
	}
	u.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(time.Second))
	if wb := field(u.ws, "writeBuf"); wb.Len() != 0 {
		t.Fatalf("gorilla holds a %d-byte write buffer after a control frame", wb.Len())
	}
}

// Assumption 6: Upgrade refuses a client that sent bytes after its request
// before the handshake completed. HijackWriter then hands gorilla net/http's
// reader instead of ours (BatchConn.br stays nil); if gorilla accepted, those
// bytes would sit in a buffer the reader never checks before it parks.
func TestGorillaRefusesDataBeforeTheHandshake(t *testing.T) {
	up := NewUpgrader()
	refused := make(chan error, 1)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hw := &HijackWriter{ResponseWriter: w}
		ws, err := up.Upgrade(hw, r, nil)
		if ws != nil {
			ws.Close()
		}
		refused <- err
	}))
	defer ts.Close()
	nc, err := net.Dial("tcp", strings.TrimPrefix(ts.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	req := "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	p, _ := protocol.Encode(&protocol.Ping{T: 1})
	if _, err := nc.Write(append([]byte(req), maskedFrame(p)...)); err != nil {
		t.Fatal(err)
	}
	bufio.NewReader(nc) // the reply does not matter
	select {
	case err := <-refused:
		if err == nil {
			t.Fatal("gorilla upgraded a connection whose first frame came with the request: it now sits in net/http's reader")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the upgrade did not return")
	}
}

// maskedFrame builds a client text frame by hand (mask key 0).
func maskedFrame(payload []byte) []byte {
	b := []byte{0x81}
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n < 1<<16:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	b = append(b, 0, 0, 0, 0)
	return append(b, payload...)
}

type countingConn struct {
	net.Conn
	writes atomic.Int32
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}
