package wsconn

import (
	"errors"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heartline/heartline/relay/metrics"
	"github.com/heartline/heartline/shared/protocol"
)

const (
	// closeWriteWait bounds writing the close frame.
	closeWriteWait = time.Second
	// closeReadWait is how long the reader keeps reading for the peer's
	// Close reply after our close frame (closing at once could turn unread
	// bytes into a TCP reset that destroys the close frame in flight).
	closeReadWait = 2 * time.Second
)

// Frame is one queued websocket frame: its payload and opcode. A fan-out
// encodes its JSON once and queues the same bytes to every member; the 2-10
// byte frame header is added when the frame is written (the relay never
// compresses or masks, so every member's frame would be the same bytes).
type Frame struct {
	Data   []byte
	Op     byte  // websocket.TextMessage, websocket.PongMessage or a queue-only opcode
	t      int64 // opJSONPong: the ping's t
	Frames int   // OpBatch: how many frames Data holds
}

// Queue-only opcodes: opJSONPong is the answer to a heartbeat (the writer
// formats the pong frame, see Conn.pong); OpRaw is the rest of a frame that
// was partly written; OpBatch is whole frames already framed (a fan-out's
// share for this connection, often a slice of a buffer every member's
// connection shares). Their bytes are never written to
// once queued, so members and writers share them without copies.
const (
	opJSONPong = 0xff
	OpRaw      = 0xfe
	OpBatch    = 0xfd
)

// count is how many frames f stands for in the send queue's bound.
func (f Frame) count() int { return max(f.Frames, 1) }

// Conn is one websocket connection. Its reader goroutine runs while the
// socket has input (see read.go); its writer runs only while frames are
// queued; the relay's sweeper watches its Liveness.
type Conn struct {
	sh      *Shared
	h       Handler
	ws      *websocket.Conn
	netConn *BatchConn
	remote  string // ip:port of the TCP peer
	serial  uint64 // upgrade order: a newer connection has a larger serial

	reactor   *Reactor     // watches the socket while no reader runs; nil: the reader never parks
	readState atomic.Int32 // who reads the socket (readRunning...)

	live *Liveness // the sweeper's view
	slot int       // live's index in the connection table

	mu         sync.Mutex
	queue      []Frame
	queued     int  // frames in queue (a batch counts its frames)
	writing    bool // a writer goroutine is running
	closing    bool // Close requested: nothing more is queued
	closeCode  int
	closeText  string
	readerDone bool
	exitReason string // leave reason when the link ends without bye
}

func (c *Conn) touch() { c.live.LastSeen.Store(time.Now().UnixNano()) }

// closed reports whether the connection is closing, without taking mu.
func (c *Conn) closed() bool { return c.live.Flags.Load()&Closed != 0 }

// setClosingLocked marks the connection closing (c.mu held); the sweeper
// sees it in the liveness slot, which is no longer this connection's once
// the reader is done.
func (c *Conn) setClosingLocked() {
	c.closing = true
	if !c.readerDone {
		c.live.Flags.Or(Closed)
	}
}

// Enqueue queues f for the writer. It reports false when the connection is
// closing (the frame is dropped) or its queue overflowed (the connection is
// then closed with 4001: a slow consumer never delays anyone else).
func (c *Conn) Enqueue(f Frame, typ string) bool {
	if !c.Push(f, true) {
		return false
	}
	c.sh.Out(typ).Inc()
	return true
}

// Push is enqueue without the metric; with start false the writer is not
// started (the caller kicks it once it has queued everything, so that the
// frames leave in one write). The queue overflows when it already holds
// SendQueue frames: it bounds a member that does not read, not the size of
// one batch.
func (c *Conn) Push(f Frame, start bool) bool {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return false
	}
	if c.queued >= c.sh.SendQueue {
		c.mu.Unlock()
		c.sh.Metrics.QueueOverflows.Inc()
		c.Evict(protocol.CloseSlowConsumer, "send queue overflow: the client reads too slowly", protocol.ReasonSlow, metrics.EvictSlow)
		return false
	}
	c.queue = append(c.queue, f)
	c.queued += f.count()
	if start {
		c.startWriterLocked()
	}
	c.mu.Unlock()
	return true
}

// takeQueueLocked hands everything queued to the caller, who writes it
// (c.mu held). A lone batch or rest, the usual queue after a drain, comes
// back as its bytes, to be written without framing or copying, and the
// queue keeps its array for the next one.
func (c *Conn) takeQueueLocked() (framed []byte, q []Frame) {
	q = c.queue
	c.queued = 0
	if len(q) == 1 && (q[0].Op == OpBatch || q[0].Op == OpRaw) {
		framed = q[0].Data
		q[0] = Frame{}
		c.queue = q[:0]
		return framed, nil
	}
	c.queue = nil
	return nil, q
}

// dropQueueLocked empties the queue (c.mu held).
func (c *Conn) dropQueueLocked() {
	clear(c.queue)
	c.queue, c.queued = c.queue[:0], 0
}

// Kick sends the frames pushed without start. When no writer runs they are
// written right here, with one non-blocking write: a fan-out then costs one
// syscall per member and no goroutine; whatever the socket does not take at
// once goes to a writer goroutine.
func (c *Conn) Kick() {
	c.mu.Lock()
	if len(c.queue) == 0 || c.writing {
		c.mu.Unlock()
		return
	}
	if c.readerDone {
		// The connection has ended (its socket is closed): the frames
		// queued before that have nowhere to go.
		c.dropQueueLocked()
		c.mu.Unlock()
		return
	}
	if !c.netConn.Direct() || c.closing {
		c.startWriterLocked()
		c.mu.Unlock()
		return
	}
	framed, q := c.takeQueueLocked()
	c.writing = true // this goroutine writes now; nobody else does
	c.mu.Unlock()

	if framed != nil {
		c.writeDirect(framed, true)
		return
	}
	buf := batchPool.Get().(*[]byte)
	b := c.appendFrames(*buf, q)
	c.writeDirect(b, false)
	putBatch(buf, b)
}

// writeDirect writes b with one non-blocking syscall on the calling
// goroutine, which holds c.writing, and hands what the socket did not take,
// and anything queued meanwhile, to a writer goroutine. shared says b is
// queued bytes that nobody writes to (the rest need not be copied).
func (c *Conn) writeDirect(b []byte, shared bool) {
	n, err := c.netConn.RawWrite(b)
	if err != nil && err != syscall.EAGAIN {
		c.writeFailed(err)
		return
	}
	c.mu.Lock()
	if n < len(b) {
		// The rest of a frame goes first, before anything queued since.
		rest := b[max(n, 0):]
		if !shared {
			rest = append([]byte(nil), rest...)
		}
		c.queue = slices.Insert(c.queue, 0, Frame{Data: rest, Op: OpRaw})
		c.queued++
	}
	if len(c.queue) > 0 || c.closing {
		go c.writeLoop() // writing stays true: the writer takes over
		c.mu.Unlock()
		return
	}
	finished := c.releaseWriterLocked()
	c.mu.Unlock()
	c.writerDone(finished)
}

// releaseWriterLocked ends the current writer's turn (c.mu held). It reports
// whether the connection is finished: its reader is done too, so the
// writer must count it out of Shared.Conns (see writerDone).
func (c *Conn) releaseWriterLocked() (finished bool) {
	c.writing = false
	return c.readerDone
}

// writerDone counts a finished connection out of Shared.Conns. A connection is
// counted from registration until both its reader and its writer are done,
// whichever is last (readEnded or a writer), so Shutdown waits for both and
// Shared.Conns never counts up from zero while a shutdown waits for it.
func (c *Conn) writerDone(finished bool) {
	if finished {
		c.sh.Conns.Done()
	}
}

// Send encodes f for this connection alone.
func (c *Conn) Send(f protocol.Frame) {
	if data, ok := c.sh.Encode(f); ok {
		c.Enqueue(Frame{Data: data, Op: websocket.TextMessage}, f.FrameType())
	}
}

func (c *Conn) SendError(code, msg, id string) {
	c.Send(&protocol.Error{Code: code, Message: msg, ID: id})
}

func (c *Conn) startWriterLocked() {
	if !c.writing {
		c.writing = true
		go c.writeLoop()
	}
}

// Close asks the writer to send the queued frames (unless dropQueue) and then
// a close frame with code and text. Only the first close counts.
func (c *Conn) Close(code int, text string, dropQueue bool, evictReason string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return false
	}
	c.setClosingLocked()
	c.closeCode, c.closeText = code, CloseReason(text)
	if dropQueue {
		// The rest of a frame already partly written still goes first, or
		// the close frame would land inside it.
		if len(c.queue) > 0 && c.queue[0].Op == OpRaw {
			clear(c.queue[1:])
			c.queue, c.queued = c.queue[:1], 1
		} else {
			c.dropQueueLocked()
		}
	}
	if evictReason != "" {
		c.sh.Metrics.Evictions.WithLabelValues(evictReason).Inc()
	}
	c.startWriterLocked()
	return true
}

// Evict closes the connection with code and makes its reader return at once,
// so that the connection ends now (Handler.Ended gets reason), not after
// the peer's close reply.
func (c *Conn) Evict(code int, text, reason, evictReason string) {
	c.mu.Lock()
	if c.exitReason == "" {
		c.exitReason = reason
	}
	c.mu.Unlock()
	if !c.Close(code, text, true, evictReason) {
		return
	}
	c.sh.Log.Info("evicting connection", c.h.LogAttrs([]any{"code", code, "reason", evictReason, "remote", c.remote})...)
	c.netConn.SetReadDeadline(time.Now())
	c.wakeReader()
}

// writeLoop writes everything queued, several frames per syscall, then the
// Close frame if one was asked for. It exits when the queue is empty.
func (c *Conn) writeLoop() {
	for {
		c.mu.Lock()
		framed, q := c.takeQueueLocked()
		closing, code, text := c.closing, c.closeCode, c.closeText
		if framed == nil && len(q) == 0 && !closing {
			finished := c.releaseWriterLocked()
			c.mu.Unlock()
			c.writerDone(finished)
			return
		}
		c.mu.Unlock()

		if framed != nil || len(q) > 0 {
			if err := c.WriteBatch(framed, q); err != nil {
				c.writeFailed(err)
				return
			}
			continue
		}

		// Queue drained and the connection is closing: send the close frame
		// if one was asked for (not when the reader ended on its own).
		if code != 0 {
			c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(closeWriteWait))
		}
		c.mu.Lock()
		readerDone := c.releaseWriterLocked()
		c.mu.Unlock()
		if readerDone {
			c.netConn.Close()
		} else {
			// The reader reads the peer's close reply (or gives up) and
			// closes the socket itself.
			c.netConn.SetReadDeadline(time.Now().Add(closeReadWait))
			c.wakeReader()
		}
		c.writerDone(readerDone)
		return
	}
}

// writeFailed ends the writer after a failed write: the queue goes, and the
// socket is cut so that the reader returns and does the bookkeeping.
func (c *Conn) writeFailed(err error) {
	c.mu.Lock()
	if errors.Is(err, os.ErrDeadlineExceeded) && c.exitReason == "" && !c.closing {
		// The peer has not read for the whole write timeout: a slow
		// consumer, not a broken link.
		c.exitReason = protocol.ReasonSlow
		c.sh.Metrics.Evictions.WithLabelValues(metrics.EvictSlow).Inc()
		c.sh.Log.Info("evicting connection", "code", protocol.CloseSlowConsumer, "reason", metrics.EvictSlow,
			"remote", c.remote, "why", "write timed out")
	}
	c.setClosingLocked()
	c.dropQueueLocked()
	finished := c.releaseWriterLocked()
	c.mu.Unlock()
	c.Cut()
	c.writerDone(finished)
}

// Cut closes the socket; the reader (woken if parked) returns and does the
// bookkeeping.
func (c *Conn) Cut() {
	c.netConn.Close()
	c.wakeReader()
}

// WriteBatch writes framed bytes, or else the frames of q, with one write to
// the socket. It frames them itself instead of calling gorilla once per
// frame: gorilla's own writes (the close frame, its close handler's reply)
// are single net.Conn writes, which the socket never interleaves with this
// one.
func (c *Conn) WriteBatch(framed []byte, q []Frame) error {
	b := framed
	if b == nil {
		buf := batchPool.Get().(*[]byte)
		b = c.appendFrames(*buf, q)
		defer putBatch(buf, b)
	}
	if c.netConn.Direct() {
		// Most writes fit in the socket buffer: try without arming the
		// write deadline (a timer update per write), which only a write
		// that has to wait needs.
		n, err := c.netConn.RawWrite(b)
		if err != nil && err != syscall.EAGAIN {
			return err
		}
		if b = b[max(n, 0):]; len(b) == 0 {
			return nil
		}
	}
	nc := c.netConn.Conn
	nc.SetWriteDeadline(time.Now().Add(c.sh.WriteTimeout))
	_, err := nc.Write(b)
	return err
}

func putBatch(buf *[]byte, b []byte) {
	if cap(b) <= 64<<10 {
		*buf = b[:0]
		batchPool.Put(buf)
	}
}

// appendFrames appends the websocket frames of q to b.
func (c *Conn) appendFrames(b []byte, q []Frame) []byte {
	for _, f := range q {
		if f.Op == OpRaw || f.Op == OpBatch {
			b = append(b, f.Data...)
			continue
		}
		if f.Op == opJSONPong {
			var p [64]byte
			pong := AppendPong(p[:0], f.t, c.sh.Now().UnixMilli())
			b = AppendFrameHeader(b, websocket.TextMessage, len(pong))
			b = append(b, pong...)
			continue
		}
		b = AppendFrameHeader(b, f.Op, len(f.Data))
		b = append(b, f.Data...)
	}
	return b
}

var batchPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// readEnded is the reader's exit: the handler's Ended gets the
// connection's leave reason, and the socket is closed unless the writer is
// still sending a close frame (it closes it then).
func (c *Conn) readEnded(err error) {
	if errors.Is(err, websocket.ErrReadLimit) {
		c.sh.Metrics.Evictions.WithLabelValues(metrics.EvictTooLarge).Inc()
		c.mu.Lock()
		c.setClosingLocked() // gorilla already sent 1009
		c.mu.Unlock()
		c.sh.Log.Info("evicting connection", "code", websocket.CloseMessageTooBig, "reason", metrics.EvictTooLarge, "remote", c.remote)
	}
	c.mu.Lock()
	c.setClosingLocked()
	c.readerDone = true
	writerBusy := c.writing
	reason := c.exitReason
	c.mu.Unlock()
	if !writerBusy {
		c.netConn.Close()
	}
	if reason == "" {
		reason = protocol.ReasonClosed
	}
	if c.reactor != nil {
		// Before the handler gives the slot back to the connection table.
		c.reactor.Forget(c, c.slot)
	}
	c.h.Ended(reason)
	if !writerBusy {
		c.sh.Conns.Done() // else the writer does, when it is done
	}
}
