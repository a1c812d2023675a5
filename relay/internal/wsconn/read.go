package wsconn

import (
	"bytes"
	"io"
	"sync"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/heartline/heartline/relay/metrics"
	"github.com/heartline/heartline/shared/protocol"
)

// Who reads a connection's socket (Conn.readState). A reader goroutine runs
// only while there is something to read; between frames the connection is
// parked with the reactor, which answers heartbeats itself and starts a
// reader for anything else. Without a reactor (TLS, non-Linux systems) the
// reader never parks.
const (
	readRunning         int32 = iota // a reader goroutine owns the socket
	readRunningNotified              // ... and the socket became readable meanwhile
	readParked                       // nobody: the reactor watches the socket
	readReactor                      // the reactor is reading it
)

// startReading sets the connection's read limit and control-frame handlers
// and starts its first reader.
func (c *Conn) startReading() {
	ws := c.ws
	ws.SetReadLimit(c.sh.MaxFrame)
	ws.SetPingHandler(func(data string) error {
		c.touch()
		c.sh.In("ws_ping").Inc()
		c.Enqueue(Frame{Data: []byte(data), Op: websocket.PongMessage}, "ws_pong")
		return nil
	})
	ws.SetPongHandler(func(string) error {
		c.touch()
		c.sh.In("ws_pong").Inc()
		return nil
	})
	c.startReader()
}

// startReader starts a reader goroutine; the caller has set readRunning.
// Readers are not counted in Shared.Conns: the connection is (see writerDone).
func (c *Conn) startReader() { go c.readLoop() }

// readLoop reads and handles frames until the socket has nothing more to
// read (it parks the connection and returns) or the connection ends.
func (c *Conn) readLoop() {
	for {
		if !c.netConn.Buffered() && c.park() {
			return
		}
		typ, r, err := c.ws.NextReader()
		if err != nil {
			c.readEnded(err)
			return
		}
		c.touch()
		stop, err := c.readFrame(typ, r)
		c.touch()
		if err != nil {
			c.readEnded(err)
			return
		}
		if stop {
			c.readEnded(nil)
			return
		}
	}
}

// readFrame reads one frame's payload and handles it.
func (c *Conn) readFrame(typ int, r io.Reader) (stop bool, err error) {
	buf := framePool.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= 64<<10 {
			framePool.Put(buf) // do not pool the buffer of a huge frame
		}
	}()
	if _, err := buf.ReadFrom(r); err != nil {
		return false, err
	}
	// Busy (alive) while the relay handles the frame, not while the client
	// takes its time sending the rest of it.
	c.live.Flags.Or(Busy)
	defer c.live.Flags.And(^Busy)
	data := buf.Bytes()
	if t, ok := ParsePing(typ, data); ok { // ASCII only: no need to check UTF-8
		c.pong(t, true)
		return false, nil
	}
	if typ == websocket.BinaryMessage {
		c.sh.In("binary").Inc()
		c.SendError(protocol.ErrBadFrame, "binary frames are not part of the protocol: send JSON text frames", "")
		return false, nil
	}
	// data is the whole message: gorilla joins continuation frames, so a
	// character split across fragments is checked whole.
	if !utf8.Valid(data) {
		c.invalidUTF8()
		return true, nil
	}
	return c.h.HandleText(data), nil
}

// invalidUTF8 fails a connection that sent a text message that is not UTF-8
// (RFC 6455 section 8.1: close 1007). Decoding it would quietly turn the bad
// bytes into U+FFFD, so the room would keep and relay text its sender never
// wrote.
func (c *Conn) invalidUTF8() {
	c.sh.In("invalid_utf8").Inc()
	const why = "invalid UTF-8 in a text frame: frames must be UTF-8 JSON"
	c.SendError(protocol.ErrBadFrame, why, "")
	c.Close(protocol.CloseInvalidPayload, why, false, metrics.EvictInvalidUTF8)
	c.sh.Log.Info("evicting connection", "code", protocol.CloseInvalidPayload, "reason", metrics.EvictInvalidUTF8, "remote", c.remote)
}

var framePool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// park hands the socket to the reactor once it has been read dry. It
// reports false when the reader must go on: there is more to read, the
// connection is closing (its reader then waits in gorilla's read, which
// honours the close deadline), or there is no reactor.
func (c *Conn) park() bool {
	if c.reactor == nil {
		return false
	}
	for {
		if c.closed() {
			return false
		}
		if !c.netConn.Drained {
			if c.netConn.Fill() {
				return false
			}
			continue
		}
		// Anything that arrives from here on is an event for the reactor:
		// either it finds the connection parked, or it marks the reader
		// notified and this swap fails.
		if c.readState.CompareAndSwap(readRunning, readParked) {
			return true
		}
		c.readState.Store(readRunning)
		c.netConn.Drained = false
	}
}

// wakeReader makes sure a reader sees what was done to the connection (a
// close, a read deadline): a parked connection gets a reader, a running one
// is told to look again. When the reactor has it, the reactor checks
// closed() when it is done.
func (c *Conn) wakeReader() {
	if c.claimParked(readRunning) {
		c.startReader()
	}
}

// Readable is the reactor's event for c: its socket got input, and with
// hangup also an end of input or an error.
func (c *Conn) Readable(hangup bool) {
	if c.claimParked(readReactor) {
		c.reactorRead(hangup)
	}
}

// claimParked moves a parked connection to state to and reports true; a
// running reader is marked notified instead, so that it reads again before
// it parks; a connection the reactor is reading is left alone.
func (c *Conn) claimParked(to int32) bool {
	for {
		switch c.readState.Load() {
		case readParked:
			if c.readState.CompareAndSwap(readParked, to) {
				return true
			}
		case readRunning:
			if c.readState.CompareAndSwap(readRunning, readRunningNotified) {
				return false
			}
		default:
			return false
		}
	}
}

// reactorRead reads the parked socket on the reactor's goroutine. Input made
// only of heartbeats is answered here; anything else (and EOF or an error)
// goes to a new reader goroutine along with the bytes already read.
func (c *Conn) reactorRead(hangup bool) {
	b := c.netConn
	if !b.Fill() { // the event was for input already read
		c.unpark()
		return
	}
	if p, short := b.Pending(); p != nil {
		// A short read emptied the socket, as far as the reactor goes: more
		// input is another edge. After a hangup the end of input is still
		// to be read: the reader must read again before it parks, as no
		// further edge will come.
		b.Drained = short && !hangup
		if !hangup && !c.closed() && b.Drained && c.answerPings(p) {
			b.ReleasePending()
			c.unpark()
			return
		}
	}
	c.readState.Store(readRunning)
	c.startReader()
}

// unpark gives the socket back to the reactor's watch after reactorRead.
func (c *Conn) unpark() {
	c.readState.Store(readParked)
	if c.closed() {
		c.wakeReader() // a close came while the reactor had the socket
	}
}

// answerPings answers input that consists only of whole heartbeat frames (as
// the protocol encoder writes them, masked as every client frame is) and
// reports whether it did. Anything else is left to gorilla and readFrame,
// which checks UTF-8 (ParsePing accepts only ASCII).
func (c *Conn) answerPings(data []byte) bool {
	var ts [64]int64
	n := 0
	for rest := data; len(rest) > 0; n++ {
		if n == len(ts) || len(rest) < 6 || rest[0] != 0x81 || rest[1]&0x80 == 0 || rest[1]&0x7f > 125 {
			return false
		}
		size := int(rest[1] & 0x7f)
		if len(rest) < 6+size {
			return false
		}
		var payload [125]byte
		mask := rest[2:6]
		for i, x := range rest[6 : 6+size] {
			payload[i] = x ^ mask[i&3]
		}
		t, ok := ParsePing(websocket.TextMessage, payload[:size])
		if !ok {
			return false
		}
		ts[n] = t
		rest = rest[6+size:]
	}
	c.touch()
	c.pongsNow(ts[:n])
	return true
}

// pongsNow answers heartbeats from the reactor. kick writes them at once
// when no writer runs (no goroutine is started for a heartbeat); otherwise
// they wait behind the frames already queued.
func (c *Conn) pongsNow(ts []int64) {
	for _, t := range ts {
		c.pong(t, false)
	}
	c.Kick()
}

// pong answers a ping parsed by ParsePing, as the JSON path would; the writer
// formats the frame. With start false the caller kicks the writer.
func (c *Conn) pong(t int64, start bool) {
	c.sh.PingsIn.Inc()
	if c.Push(Frame{Op: opJSONPong, t: t}, start) {
		c.sh.PongsOut.Inc()
	}
}
