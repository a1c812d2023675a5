package wsconn

import (
	"log/slog"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/heartline/heartline/relay/metrics"
	"github.com/heartline/heartline/shared/protocol"
)

// Shared is what every connection of one relay shares: its settings, its
// counters and logger, and the group that counts its connections.
type Shared struct {
	SendQueue    int           // frames a connection may have queued; beyond, it is a slow consumer (4001)
	MaxFrame     int64         // read limit: a larger frame closes 1009
	WriteTimeout time.Duration // a write that waits longer makes the peer a slow consumer
	Now          func() time.Time
	Metrics      *metrics.Metrics
	Log          *slog.Logger
	// Conns counts every connection from its registration (the caller adds
	// one) until both its reader and its writer are done (the transport
	// marks it done), so that a shutdown can wait for them.
	Conns  *sync.WaitGroup
	Encode func(protocol.Frame) ([]byte, bool) // false: not sent (a bug, logged by Encode)
	// In and Out count frames by type (pre-resolved counters where
	// possible); PingsIn and PongsOut are the heartbeat's.
	In, Out           func(typ string) prometheus.Counter
	PingsIn, PongsOut prometheus.Counter
}

// Handler is what a connection's owner does with it: the relay's room side.
type Handler interface {
	// HandleText handles one inbound text message (valid UTF-8, not a
	// heartbeat in the protocol's own spelling: the transport answers
	// those). It reports whether the reader should stop (the connection is
	// closing).
	HandleText(data []byte) (stop bool)
	// Ended runs once, on the reader, when the connection has ended: reason
	// is the leave reason an eviction gave (ReasonClosed when none did).
	Ended(reason string)
	// LogAttrs appends what identifies the connection beyond its address.
	LogAttrs(attrs []any) []any
}

// New makes the connection of an upgraded websocket, whose socket is the
// BatchConn HijackWriter made. It does not read yet: register it (SetSlot),
// then Start it.
func New(sh *Shared, ws *websocket.Conn, nc *BatchConn, remote string, serial uint64, h Handler) *Conn {
	return &Conn{sh: sh, h: h, ws: ws, netConn: nc, remote: remote, serial: serial}
}

// SetSlot gives the connection its slot and liveness in the connection
// table (Table.Add), before anyone can find it there and close it.
func (c *Conn) SetSlot(slot int, l *Liveness) { c.slot, c.live = slot, l }

// Start parks the connection with r when it can (nil: no reactor), sets the
// read limit and control-frame handlers, and starts its first reader.
func (c *Conn) Start(r *Reactor) {
	// The reader runs on a fresh goroutine so that the HTTP handler returns
	// and net/http frees its per-connection state (request, 4 KiB bufio
	// reader and writer): an idle member then costs only what it needs.
	// Once it has read everything it parks the connection with the reactor.
	if r != nil {
		if err := r.Add(c, c.slot, c.serial, c.netConn); err != nil {
			c.sh.Log.Warn("connection keeps its own reader", "remote", c.remote, "err", err)
		} else {
			c.reactor = r
		}
	}
	c.startReading()
}

// Remote is the TCP peer's ip:port.
func (c *Conn) Remote() string { return c.remote }

// Serial is the connection's upgrade order: a newer one has a larger serial.
func (c *Conn) Serial() uint64 { return c.serial }

// Socket is the hijacked socket.
func (c *Conn) Socket() *BatchConn { return c.netConn }

// LastSeen is when the connection last sent anything (a frame, a control
// frame, a heartbeat).
func (c *Conn) LastSeen() time.Time { return time.Unix(0, c.live.LastSeen.Load()) }

// Joined reports whether MarkJoined was called.
func (c *Conn) Joined() bool { return c.live.Flags.Load()&Joined != 0 }

// MarkJoined tells the sweeper that the connection said hello and was
// welcomed (heartbeat expiry from now on, no hello timeout).
func (c *Conn) MarkJoined() {
	c.mu.Lock()
	if !c.readerDone {
		c.live.Flags.Or(Joined)
	}
	c.mu.Unlock()
}

// The state of a connection's reader and writer, for tests that need a
// connection in a given state (and for nothing else).

// Parked reports whether the connection is parked with the reactor.
func (c *Conn) Parked() bool { return c.readState.Load() == readParked }

// NotifiedWhileReading reports whether the reactor saw input while a reader
// ran (the reader reads again before it parks).
func (c *Conn) NotifiedWhileReading() bool { return c.readState.Load() == readRunningNotified }

// WriterIdle reports whether no writer runs and nothing is queued.
func (c *Conn) WriterIdle() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.writing && len(c.queue) == 0
}

// ReaderDone reports whether the connection's reader has ended for good.
func (c *Conn) ReaderDone() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.readerDone
}

// WritingRest reports whether a writer runs and whether the queue holds
// only the rest of a partly written frame, of fewer than n bytes.
func (c *Conn) WritingRest(n int) (writing, rest bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writing, c.writing && len(c.queue) == 1 && c.queue[0].Op == OpRaw && len(c.queue[0].Data) < n
}

// Slot is the connection's slot in the connection table.
func (c *Conn) Slot() int { return c.slot }

// HoldWriter marks a writer as running, so that Kick leaves the queue to
// it: a test that measures the fan-out alone.
func (c *Conn) HoldWriter() {
	c.mu.Lock()
	c.writing = true
	c.mu.Unlock()
}
