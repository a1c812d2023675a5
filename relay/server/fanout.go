package server

import (
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heartline/heartline/relay/internal/wsconn"
	"github.com/heartline/heartline/shared/protocol"
)

// fanBatch is what one drain sends a room. Every message frame is framed
// once, into one buffer that every member's queue shares: the relay never
// masks or compresses, so all members get the same bytes, and a drain costs
// one queue entry per member instead of one per member and message. A
// member that sent some of the messages gets pieces of the buffer instead,
// without its own messages and with its acks (or errors) where they belong,
// so that every member still sees frames in seq order; its writer joins the
// pieces outside the room's lock.
type fanBatch struct {
	buf    []byte    // framed msg frames in seq order; never written to once queued
	msgs   int       // frames in buf
	owners []*member // members with parts (member.fan), in the order they got one
}

// fanPart is one difference between a member's share of a fanBatch and buf.
type fanPart struct {
	start, end int    // buf[start:end] is the member's own message, left out
	msg        int    // index in buf of that message, or of the next one
	frame      []byte // or, with end == start: a framed frame for the member alone
	typ        string // frame's type, for the frames-out metric
}

// addMsg appends one encoded msg frame; except (its sender) does not get it.
func (b *fanBatch) addMsg(data []byte, except *member) {
	start := len(b.buf)
	b.buf = wsconn.AppendFrameHeader(b.buf, websocket.TextMessage, len(data))
	b.buf = append(b.buf, data...)
	if except != nil && except.conn != nil {
		b.addPart(except, fanPart{start: start, end: len(b.buf), msg: b.msgs})
	}
	b.msgs++
}

// addFrame queues an encoded frame of type typ for m alone, at the current
// point of the batch.
func (b *fanBatch) addFrame(m *member, typ string, data []byte) {
	framed := wsconn.AppendFrameHeader(make([]byte, 0, len(data)+4), websocket.TextMessage, len(data))
	framed = append(framed, data...)
	at := len(b.buf)
	b.addPart(m, fanPart{start: at, end: at, msg: b.msgs, frame: framed, typ: typ})
}

func (b *fanBatch) addPart(m *member, p fanPart) {
	if len(m.fan) == 0 {
		b.owners = append(b.owners, m)
	}
	m.fan = append(m.fan, p)
}

// queue pushes m's share of the batch to c: one entry for most members,
// the pieces around m's own parts for a sender. It counts the frames queued
// into out (by type).
func (b *fanBatch) queue(m *member, c *conn, out *fanCounts) {
	shared := b.buf[:len(b.buf):len(b.buf)] // nobody may append to it
	if len(m.fan) == 0 {
		if b.msgs > 0 && c.Push(wsconn.Frame{Data: shared, Op: wsconn.OpBatch, Frames: b.msgs}, false) {
			out.msgs += b.msgs
		}
		return
	}
	at, atMsg := 0, 0
	piece := func(end, endMsg int) bool {
		if endMsg == atMsg {
			return true
		}
		if !c.Push(wsconn.Frame{Data: shared[at:end:end], Op: wsconn.OpBatch, Frames: endMsg - atMsg}, false) {
			return false
		}
		out.msgs += endMsg - atMsg
		return true
	}
	for _, p := range m.fan {
		if !piece(p.start, p.msg) {
			return
		}
		if p.frame != nil {
			if !c.Push(wsconn.Frame{Data: p.frame, Op: wsconn.OpBatch, Frames: 1}, false) {
				return
			}
			out.other[p.typ]++
			at, atMsg = p.start, p.msg
		} else {
			at, atMsg = p.end, p.msg+1
		}
	}
	piece(len(b.buf), b.msgs)
}

// fanCounts counts the frames a flush queued.
type fanCounts struct {
	msgs  int
	other map[string]int // acks and errors, by type
}

// flush queues every online member's share of the batch (r.mu held), empties
// the batch, and returns the members' connections, for the caller to kick
// once the lock is gone.
func (r *room) flush(b *fanBatch, kick []*conn) []*conn {
	start := time.Now()
	var n fanCounts
	if len(b.owners) > 0 {
		n.other = map[string]int{}
	}
	for _, m := range r.members {
		if c := m.conn; c != nil {
			kick = append(kick, c)
			b.queue(m, c, &n)
		}
	}
	for _, m := range b.owners {
		clear(m.fan)
		m.fan = m.fan[:0]
	}
	// The queues hold the buffer now: the next batch needs a new one, and a
	// quiet room holds none.
	clear(b.owners)
	*b = fanBatch{owners: b.owners[:0]}
	if n.msgs > 0 {
		r.s.frameCounter(r.s.framesOut, r.s.metrics.FramesOut, protocol.TypeMsg).Add(float64(n.msgs))
	}
	for typ, k := range n.other {
		r.s.frameCounter(r.s.framesOut, r.s.metrics.FramesOut, typ).Add(float64(k))
	}
	r.s.metrics.FanoutDuration.Observe(time.Since(start).Seconds())
	return kick
}

// kickAll kicks every connection of a big room on every core at once, one
// goroutine per core rather than one per member.
func kickAll(conns []*conn) {
	const minPerCore = 64
	parts := min(runtime.GOMAXPROCS(0), len(conns)/minPerCore)
	if parts <= 1 {
		for _, c := range conns {
			c.Kick()
		}
		return
	}
	var wg sync.WaitGroup
	size := (len(conns) + parts - 1) / parts
	for part := range slices.Chunk(conns[size:], size) {
		wg.Go(func() {
			for _, c := range part {
				c.Kick()
			}
		})
	}
	for _, c := range conns[:size] {
		c.Kick()
	}
	wg.Wait()
}

// broadcast encodes f once and queues the same bytes to every online member
// but except. A member whose queue overflows is cut off (enqueue evicts it)
// without delaying the others.
func (r *room) broadcast(f protocol.Frame, except *member) {
	start := time.Now()
	data, ok := r.s.encode(f)
	if !ok {
		return
	}
	frame := wsconn.Frame{Data: data, Op: websocket.TextMessage}
	queued := 0
	for _, o := range r.members {
		if o == except || o.conn == nil {
			continue
		}
		if o.conn.Push(frame, true) {
			queued++
		}
	}
	r.s.frameCounter(r.s.framesOut, r.s.metrics.FramesOut, f.FrameType()).Add(float64(queued))
	r.s.metrics.FanoutDuration.Observe(time.Since(start).Seconds())
}
