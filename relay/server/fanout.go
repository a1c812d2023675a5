package server

import (
	"time"

	"github.com/gorilla/websocket"

	"github.com/heartline/heartline/shared/protocol"
)

// fanBatch is what one drain sends a room. Every message frame is framed
// once, into one buffer that every member's queue shares: the relay never
// masks or compresses, so all members get the same bytes, and a drain costs
// one queue entry per member instead of one per member and message. A
// member that sent some of the messages gets its own copy instead, without
// its messages and with its acks where they belong, so that every member
// still sees frames in seq order.
type fanBatch struct {
	buf    []byte    // framed msg frames in seq order; never written to once queued
	msgs   int       // frames in buf
	owners []*member // members with parts (member.fan), in the order they got one
}

// fanPart is one difference between a member's share of a fanBatch and buf.
type fanPart struct {
	start, end int    // buf[start:end] is the member's own message, left out
	ack        []byte // or, with end == start: a framed ack that goes in at start
}

// addMsg appends one encoded msg frame; except (its sender) does not get it.
func (b *fanBatch) addMsg(data []byte, except *member) {
	start := len(b.buf)
	b.buf = appendFrameHeader(b.buf, websocket.TextMessage, len(data))
	b.buf = append(b.buf, data...)
	b.msgs++
	if except != nil && except.conn != nil {
		b.addPart(except, fanPart{start: start, end: len(b.buf)})
	}
}

// addAck queues an encoded ack for m at the current point of the batch.
func (b *fanBatch) addAck(m *member, data []byte) {
	framed := appendFrameHeader(make([]byte, 0, len(data)+4), websocket.TextMessage, len(data))
	framed = append(framed, data...)
	b.addPart(m, fanPart{start: len(b.buf), end: len(b.buf), ack: framed})
}

func (b *fanBatch) addPart(m *member, p fanPart) {
	if len(m.fan) == 0 {
		b.owners = append(b.owners, m)
	}
	m.fan = append(m.fan, p)
}

// share returns m's bytes of the batch: buf itself, or m's own copy. It
// counts the msg and ack frames in them.
func (b *fanBatch) share(m *member) (framed []byte, msgs, acks int) {
	if len(m.fan) == 0 {
		return b.buf, b.msgs, 0
	}
	out := make([]byte, 0, len(b.buf))
	msgs = b.msgs
	at := 0
	for _, p := range m.fan {
		out = append(out, b.buf[at:p.start]...)
		if p.ack != nil {
			out = append(out, p.ack...)
			acks++
		} else {
			msgs--
		}
		at = p.end
	}
	return append(out, b.buf[at:]...), msgs, acks
}

// flush queues every online member's share of the batch (r.mu held) and
// returns their connections, for the caller to kick once the lock is gone.
func (r *room) flush(b *fanBatch, kick []*conn) []*conn {
	start := time.Now()
	var msgs, acks int
	for _, m := range r.members {
		c := m.conn
		if c == nil {
			continue
		}
		kick = append(kick, c)
		framed, nm, na := b.share(m)
		if len(framed) > 0 && c.push(outFrame{data: framed, op: opBatch, frames: nm + na}, false) {
			msgs, acks = msgs+nm, acks+na
		}
	}
	for _, m := range b.owners {
		clear(m.fan)
		m.fan = m.fan[:0]
	}
	if msgs > 0 {
		r.s.frameCounter(r.s.framesOut, r.s.metrics.FramesOut, protocol.TypeMsg).Add(float64(msgs))
	}
	if acks > 0 {
		r.s.frameCounter(r.s.framesOut, r.s.metrics.FramesOut, protocol.TypeAck).Add(float64(acks))
	}
	r.s.metrics.FanoutDuration.Observe(time.Since(start).Seconds())
	return kick
}
