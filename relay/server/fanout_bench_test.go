package server

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heartline/heartline/relay/internal/wsconn"
	"github.com/heartline/heartline/shared/protocol"
)

// discardConn is a socket that accepts every write at once.
type discardConn struct{ net.Conn }

func (discardConn) Write(p []byte) (int, error)      { return len(p), nil }
func (discardConn) SetWriteDeadline(time.Time) error { return nil }
func (discardConn) Close() error                     { return nil }

func benchConn(s *Server) *conn {
	return s.newConn(nil, &wsconn.BatchConn{Conn: discardConn{}}, "", "")
}

// BenchmarkWriteBatch frames and writes a member's queue of 16 ordinary
// message frames (one write); reports ns per frame.
//
//	go test -run '^$' -bench WriteBatch -benchtime 20000x ./relay/server/
func BenchmarkWriteBatch(b *testing.B) {
	srv, err := New(Config{DataDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown(b.Context())
	c := benchConn(srv)
	data, _ := protocol.Encode(&protocol.Message{Seq: 123456, ID: "c-42", From: protocol.Member{ID: "m0123456789abcdef0123", Name: "sender", Avatar: "builtin:fox", State: "online"},
		Text: "a chat line of ordinary length, about eighty bytes of text in one message....", TS: 1763700002000})
	q := make([]wsconn.Frame, 16)
	for i := range q {
		q[i] = wsconn.Frame{Data: data, Op: websocket.TextMessage}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := c.WriteBatch(nil, q); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(q)), "ns/frame")
}

// BenchmarkBroadcast1000 encodes one message and queues it to 1,000 online
// members, as a drain does (ten messages a batch, then each member's writer
// kicked; their writes go to a socket that accepts everything). Reports ns
// per delivery.
//
//	go test -run '^$' -bench Broadcast1000 -benchtime 2000x ./relay/server/
func BenchmarkBroadcast1000(b *testing.B) {
	srv, err := New(Config{DataDir: b.TempDir(), SendQueue: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown(b.Context())
	r := srv.newRoom("bench")
	for i := range 1000 {
		m := &member{id: fmt.Sprintf("m%d", i), name: fmt.Sprintf("member%d", i), state: protocol.StateOnline}
		m.conn = benchConn(srv)
		r.members[m.id] = m
	}
	from := protocol.Member{ID: "m0123456789abcdef0123", Name: "sender", Avatar: "builtin:fox", State: "online"}
	const batch = 10 // messages per commit batch
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		r.mu.Lock()
		if data, ok := srv.encode(&protocol.Message{Seq: uint64(i), ID: "c-42", From: from,
			Text: "a chat line of ordinary length, about eighty bytes of text in one message....", TS: 1763700002000}); ok {
			r.batch.addMsg(data, nil)
		}
		if i%batch == batch-1 || i == b.N-1 {
			for _, c := range r.flush(&r.batch, nil) {
				c.Kick()
			}
		}
		r.mu.Unlock()
	}
	srv.connWG.Wait()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/delivery")
}
