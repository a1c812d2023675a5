package wsconn

import (
	"bufio"
	"io"
	"net"
	"sync"
	"syscall"
)

// BatchConn is the hijacked socket as gorilla sees it. Its Read first hands
// on what the reactor read; writes pass straight through (writeBatch writes
// to Conn itself).
type BatchConn struct {
	net.Conn

	raw    syscall.RawConn // nil: no reactor (TLS, tests)
	rd, wr rawOp           // raw's non-blocking read and write
	br     *bufio.Reader   // gorilla's read buffer (ours, see HijackWriter)

	// Owned by whoever reads the socket (the connection's reader, or the
	// reactor while it has the socket).
	pending    *[]byte // bytes the reactor read, not yet handed on
	pendingOff int
	pendingErr error // the error the reactor's read got, for the next Read
	Drained    bool  // the last read from the socket came back short: it was empty (set by Fill; a reader about to park clears it to read again)
}

// NewBatchConn wraps nc; a plain TCP socket also gets its raw connection
// for the reactor.
func NewBatchConn(nc net.Conn) *BatchConn {
	b := &BatchConn{Conn: nc}
	if tc, ok := nc.(*net.TCPConn); ok && Available {
		if raw, err := tc.SyscallConn(); err == nil {
			b.raw = raw
			b.rd.fn, b.wr.fn = b.rd.read, b.wr.write
		}
	}
	return b
}

// Read serves bytes the reactor already took from the socket before reading
// the socket itself.
func (b *BatchConn) Read(p []byte) (int, error) {
	if b.pending == nil {
		if b.pendingErr != nil {
			err := b.pendingErr
			b.pendingErr = nil
			return 0, err
		}
		n, err := b.Conn.Read(p)
		b.Drained = false // only EAGAIN proves the socket empty (see fill)
		return n, err
	}
	n := copy(p, (*b.pending)[b.pendingOff:])
	b.pendingOff += n
	if b.pendingOff == len(*b.pending) {
		b.ReleasePending()
	}
	return n, nil
}

// ReleasePending returns the pending buffer to the pool.
func (b *BatchConn) ReleasePending() {
	*b.pending = (*b.pending)[:0]
	readPool.Put(b.pending)
	b.pending, b.pendingOff = nil, 0
}

// readPool holds the buffers the reactor reads into; a parked connection
// holds none.
var readPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// Fill reads the socket without blocking into pending; it reports whether
// there is something (bytes, EOF or an error) for the reader.
func (b *BatchConn) Fill() bool {
	buf := readPool.Get().(*[]byte)
	n, err := b.rawRead((*buf)[:cap(*buf)])
	switch {
	case err == syscall.EAGAIN:
		readPool.Put(buf)
		b.Drained = true
		return false
	case n > 0:
		*buf = (*buf)[:n]
		b.pending, b.pendingOff = buf, 0
		// Only EAGAIN proves the socket empty: the FIN may be right behind
		// these bytes, and its edge was the notification this read answers.
		b.Drained = false
	default:
		readPool.Put(buf)
		if err == nil {
			err = io.EOF
		}
		b.pendingErr = err
	}
	return true
}

// rawRead and RawWrite are one non-blocking syscall on the socket, for the
// reactor, a reader about to park and direct writes. RawConn.Control keeps
// the socket from being closed (and its number reused) during the call.
func (b *BatchConn) rawRead(p []byte) (int, error) { return b.rd.do(b.raw, p) }

func (b *BatchConn) RawWrite(p []byte) (int, error) { return b.wr.do(b.raw, p) }

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

// Buffered reports whether bytes already read from the socket wait in the
// connection's bufio reader or in pending.
func (b *BatchConn) Buffered() bool {
	return b.pending != nil || b.pendingErr != nil || (b.br != nil && b.br.Buffered() > 0)
}

var _ io.ReadWriter = (*BatchConn)(nil)

// Direct reports whether the socket takes non-blocking reads and writes
// (RawWrite, Fill): a plain TCP socket on a system with a reactor.
func (b *BatchConn) Direct() bool { return b.raw != nil }

// Pending is what the reactor's last Fill read and nobody has consumed yet
// (nil: nothing), and whether that read came back short of the buffer.
func (b *BatchConn) Pending() (data []byte, short bool) {
	if b.pending == nil {
		return nil, false
	}
	return *b.pending, len(*b.pending) < cap(*b.pending)
}
