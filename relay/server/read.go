package server

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strconv"
	"sync"
	"syscall"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/heartline/heartline/relay/metrics"
	"github.com/heartline/heartline/shared/protocol"
)

// Who reads a connection's socket (conn.readState). A reader goroutine runs
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
func (c *conn) startReading() {
	ws := c.ws
	ws.SetReadLimit(c.s.cfg.MaxFrame)
	ws.SetPingHandler(func(data string) error {
		c.touch()
		c.s.frameCounter(c.s.framesIn, c.s.metrics.FramesIn, "ws_ping").Inc()
		c.enqueue(outFrame{data: []byte(data), op: websocket.PongMessage}, "ws_pong")
		return nil
	})
	ws.SetPongHandler(func(string) error {
		c.touch()
		c.s.frameCounter(c.s.framesIn, c.s.metrics.FramesIn, "ws_pong").Inc()
		return nil
	})
	c.startReader()
}

// startReader starts a reader goroutine; the caller has set readRunning.
// Readers are not counted in connWG: the connection is (see writerDone).
func (c *conn) startReader() { go c.readLoop() }

// readLoop reads and handles frames until the socket has nothing more to
// read (it parks the connection and returns) or the connection ends.
func (c *conn) readLoop() {
	for {
		if !c.netConn.buffered() && c.park() {
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
func (c *conn) readFrame(typ int, r io.Reader) (stop bool, err error) {
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
	c.live.flags.Or(liveBusy)
	defer c.live.flags.And(^liveBusy)
	data := buf.Bytes()
	if t, ok := parsePing(typ, data); ok { // ASCII only: no need to check UTF-8
		c.pong(t, true)
		return false, nil
	}
	if typ == websocket.BinaryMessage {
		c.s.frameCounter(c.s.framesIn, c.s.metrics.FramesIn, "binary").Inc()
		c.sendError(protocol.ErrBadFrame, "binary frames are not part of the protocol: send JSON text frames", "")
		return false, nil
	}
	// data is the whole message: gorilla joins continuation frames, so a
	// character split across fragments is checked whole.
	if !utf8.Valid(data) {
		c.invalidUTF8()
		return true, nil
	}
	return c.handle(data), nil
}

// invalidUTF8 fails a connection that sent a text message that is not UTF-8
// (RFC 6455 section 8.1: close 1007). Decoding it would quietly turn the bad
// bytes into U+FFFD, so the room would keep and relay text its sender never
// wrote.
func (c *conn) invalidUTF8() {
	c.s.frameCounter(c.s.framesIn, c.s.metrics.FramesIn, "invalid_utf8").Inc()
	const why = "invalid UTF-8 in a text frame: frames must be UTF-8 JSON"
	c.sendError(protocol.ErrBadFrame, why, "")
	c.close(protocol.CloseInvalidPayload, why, false, metrics.EvictInvalidUTF8)
	c.s.log.Info("evicting connection", "code", protocol.CloseInvalidPayload, "reason", metrics.EvictInvalidUTF8, "remote", c.remote)
}

var framePool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// park hands the socket to the reactor once it has been read dry. It
// reports false when the reader must go on: there is more to read, the
// connection is closing (its reader then waits in gorilla's read, which
// honours the close deadline), or there is no reactor.
func (c *conn) park() bool {
	if c.reactor == nil {
		return false
	}
	for {
		if c.closed() {
			return false
		}
		if !c.netConn.drained {
			if c.netConn.fill() {
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
		c.netConn.drained = false
	}
}

// wakeReader makes sure a reader sees what was done to the connection (a
// close, a read deadline): a parked connection gets a reader, a running one
// is told to look again. When the reactor has it, the reactor checks
// closed() when it is done.
func (c *conn) wakeReader() {
	if c.claimParked(readRunning) {
		c.startReader()
	}
}

// readable is the reactor's event for c: its socket got input, and with
// hangup also an end of input or an error.
func (c *conn) readable(hangup bool) {
	if c.claimParked(readReactor) {
		c.reactorRead(hangup)
	}
}

// claimParked moves a parked connection to state to and reports true; a
// running reader is marked notified instead, so that it reads again before
// it parks; a connection the reactor is reading is left alone.
func (c *conn) claimParked(to int32) bool {
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
func (c *conn) reactorRead(hangup bool) {
	b := c.netConn
	if !b.fill() { // the event was for input already read
		c.unpark()
		return
	}
	if p := b.pending; p != nil {
		// A short read emptied the socket, as far as the reactor goes: more
		// input is another edge. After a hangup the end of input is still
		// to be read: the reader must read again before it parks, as no
		// further edge will come.
		b.drained = len(*p) < cap(*p) && !hangup
		if !hangup && !c.closed() && b.drained && c.answerPings(*p) {
			b.releasePending()
			c.unpark()
			return
		}
	}
	c.readState.Store(readRunning)
	c.startReader()
}

// unpark gives the socket back to the reactor's watch after reactorRead.
func (c *conn) unpark() {
	c.readState.Store(readParked)
	if c.closed() {
		c.wakeReader() // a close came while the reactor had the socket
	}
}

// answerPings answers input that consists only of whole heartbeat frames (as
// the protocol encoder writes them, masked as every client frame is) and
// reports whether it did. Anything else is left to gorilla and readFrame,
// which checks UTF-8 (parsePing accepts only ASCII).
func (c *conn) answerPings(data []byte) bool {
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
		t, ok := parsePing(websocket.TextMessage, payload[:size])
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
func (c *conn) pongsNow(ts []int64) {
	for _, t := range ts {
		c.pong(t, false)
	}
	c.kick()
}

// pingPrefix is how protocol.Encode, and so every Heartline client, starts a
// ping frame.
var pingPrefix = []byte(`{"type":"ping","t":`)

// parsePing recognizes a heartbeat written exactly as protocol.Encode writes
// it ({"type":"ping","t":<integer>}) without the JSON decoder, which costs
// several times more than the rest of a heartbeat's handling. Anything else
// (spaces, other fields, odd numbers) goes through handle, which decides.
func parsePing(typ int, data []byte) (int64, bool) {
	if typ != websocket.TextMessage {
		return 0, false
	}
	rest, ok := bytes.CutPrefix(data, pingPrefix)
	if !ok || len(rest) < 2 || rest[len(rest)-1] != '}' {
		return 0, false
	}
	digits := rest[:len(rest)-1]
	neg := digits[0] == '-'
	if neg {
		digits = digits[1:]
	}
	// At most 18 digits cannot overflow; a leading zero is not JSON.
	if len(digits) == 0 || len(digits) > 18 || (digits[0] == '0' && len(digits) > 1) {
		return 0, false
	}
	var t int64
	for _, d := range digits {
		if d < '0' || d > '9' {
			return 0, false
		}
		t = t*10 + int64(d-'0')
	}
	if neg {
		t = -t
	}
	return t, true
}

// pong answers a ping parsed by parsePing, as handle would; the writer
// formats the frame. With start false the caller kicks the writer.
func (c *conn) pong(t int64, start bool) {
	c.s.pingsIn.Inc()
	if c.push(outFrame{op: opJSONPong, t: t}, start) {
		c.s.pongsOut.Inc()
	}
}

// appendPong appends protocol.Encode(&protocol.Pong{T: t, ServerTime: now}).
func appendPong(b []byte, t, now int64) []byte {
	b = append(b, `{"type":"pong","t":`...)
	b = strconv.AppendInt(b, t, 10)
	b = append(b, `,"server_time":`...)
	b = strconv.AppendInt(b, now, 10)
	return append(b, '}')
}

// batchConn is the hijacked socket as gorilla sees it. Its Read first hands
// on what the reactor read; writes pass straight through (writeBatch writes
// to Conn itself).
type batchConn struct {
	net.Conn

	raw    syscall.RawConn // nil: no reactor (TLS, tests)
	rd, wr rawOp           // raw's non-blocking read and write
	br     *bufio.Reader   // gorilla's read buffer (ours, see hijackWriter)

	// Owned by whoever reads the socket (see conn.readState).
	pending    *[]byte // bytes the reactor read, not yet handed on
	pendingOff int
	pendingErr error // the error the reactor's read got, for the next Read
	drained    bool  // the last read from the socket came back short: it was empty
}

// newBatchConn wraps nc; a plain TCP socket also gets its raw connection
// for the reactor.
func newBatchConn(nc net.Conn) *batchConn {
	b := &batchConn{Conn: nc}
	if tc, ok := nc.(*net.TCPConn); ok && reactorAvailable {
		if raw, err := tc.SyscallConn(); err == nil {
			b.raw = raw
			b.rd.fn, b.wr.fn = b.rd.read, b.wr.write
		}
	}
	return b
}

// Read serves bytes the reactor already took from the socket before reading
// the socket itself.
func (b *batchConn) Read(p []byte) (int, error) {
	if b.pending == nil {
		if b.pendingErr != nil {
			err := b.pendingErr
			b.pendingErr = nil
			return 0, err
		}
		n, err := b.Conn.Read(p)
		b.drained = false // only EAGAIN proves the socket empty (see fill)
		return n, err
	}
	n := copy(p, (*b.pending)[b.pendingOff:])
	b.pendingOff += n
	if b.pendingOff == len(*b.pending) {
		b.releasePending()
	}
	return n, nil
}

// releasePending returns the pending buffer to the pool.
func (b *batchConn) releasePending() {
	*b.pending = (*b.pending)[:0]
	readPool.Put(b.pending)
	b.pending, b.pendingOff = nil, 0
}

// readPool holds the buffers the reactor reads into; a parked connection
// holds none.
var readPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// fill reads the socket without blocking into pending; it reports whether
// there is something (bytes, EOF or an error) for the reader.
func (b *batchConn) fill() bool {
	buf := readPool.Get().(*[]byte)
	n, err := b.rawRead((*buf)[:cap(*buf)])
	switch {
	case err == syscall.EAGAIN:
		readPool.Put(buf)
		b.drained = true
		return false
	case n > 0:
		*buf = (*buf)[:n]
		b.pending, b.pendingOff = buf, 0
		// Only EAGAIN proves the socket empty: the FIN may be right behind
		// these bytes, and its edge was the notification this read answers.
		b.drained = false
	default:
		readPool.Put(buf)
		if err == nil {
			err = io.EOF
		}
		b.pendingErr = err
	}
	return true
}

// rawRead and rawWrite are one non-blocking syscall on the socket, for the
// reactor, a reader about to park and direct writes. RawConn.Control keeps
// the socket from being closed (and its number reused) during the call.
func (b *batchConn) rawRead(p []byte) (int, error) { return b.rd.do(b.raw, p) }

func (b *batchConn) rawWrite(p []byte) (int, error) { return b.wr.do(b.raw, p) }

// rawOp is one direction's syscall with its arguments and results kept in
// the connection, so that Control gets a function made once per connection
// instead of a closure allocated per call. The reader side and the writer
// side each have their own, and each is used by one goroutine at a time.
type rawOp struct {
	p   []byte
	n   int
	err error
	fn  func(fd uintptr) // o.read or o.write, as a method value
}

func (o *rawOp) read(fd uintptr)  { o.n, o.err = rawRead(fd, o.p) }
func (o *rawOp) write(fd uintptr) { o.n, o.err = rawWrite(fd, o.p) }

func (o *rawOp) do(raw syscall.RawConn, p []byte) (int, error) {
	o.p = p
	err := raw.Control(o.fn)
	n, opErr := o.n, o.err
	o.p, o.err = nil, nil
	if err != nil {
		return 0, err
	}
	return n, opErr
}

// buffered reports whether bytes already read from the socket wait in the
// connection's bufio reader or in pending.
func (b *batchConn) buffered() bool {
	return b.pending != nil || b.pendingErr != nil || (b.br != nil && b.br.Buffered() > 0)
}

var _ io.ReadWriter = (*batchConn)(nil)
