package server

import (
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/gorilla/websocket"
	"github.com/heartline/heartline/relay/internal/wsconn"
)

// conn is one connection as the room side sees it: the transport
// (wsconn.Conn: its queue and writer, its reader, the reactor) plus the room
// and member it joined as and its message budget. It is the transport's
// Handler: frames in (HandleText, handle.go), the end (Ended).
type conn struct {
	*wsconn.Conn
	s  *Server
	ip string

	// Owned by the reader (and the frame handler it waits for).
	limiter      *rate.Limiter
	blockedUntil time.Time
	histLimiter  *rate.Limiter // history requests: a budget of their own

	mu     sync.Mutex // guards room and member
	room   *room      // set by a successful hello (under the room's lock)
	member *member    // idem
}

// newConn makes the room side of an upgraded connection.
func (s *Server) newConn(ws *websocket.Conn, nc *wsconn.BatchConn, remote, ip string) *conn {
	c := &conn{s: s, ip: ip}
	c.Conn = wsconn.New(&s.shared, ws, nc, remote, s.serial.Add(1), c)
	return c
}

// roomMember returns the room and member this connection joined, if any.
func (c *conn) roomMember() (*room, *member) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.room, c.member
}

// Ended is the connection's end, on its reader: the member (if any) turns
// away with the leave reason, and the connection leaves the table.
func (c *conn) Ended(reason string) {
	if r, m := c.roomMember(); r != nil && m != nil {
		r.linkDropped(m, c, reason)
	}
	c.s.unregister(c)
}

// LogAttrs adds the member, once the connection has joined.
func (c *conn) LogAttrs(attrs []any) []any {
	if _, m := c.roomMember(); m != nil {
		attrs = append(attrs, "member", m.id)
	}
	return attrs
}

func (s *Server) writeTimeout() time.Duration {
	return min(s.cfg.HeartbeatTimeout, 10*time.Second)
}
