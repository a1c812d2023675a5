package server

// The commit pipeline: a message takes a seq and goes to the store; the
// store's callbacks queue the results for the room's drainer, which applies
// them (acks, errors, the message for everyone) into one fan-out batch.

import (
	"errors"
	"time"

	"github.com/heartline/heartline/relay/redisengine"
	"github.com/heartline/heartline/relay/store"
	"github.com/heartline/heartline/shared/protocol"
)

// pendingMsg is a message handed to the store and not yet durable.
type pendingMsg struct {
	from protocol.Member // the sender as it was when it sent
	acks int             // acks owed: the original plus duplicates that arrived meanwhile
}

type commitResult struct {
	ev    *redisengine.Event // an event of a shared room, instead of a commit
	key   string
	rec   store.Record
	start time.Time
	err   error
}

// send handles an accepted-looking msg from m on c: a duplicate id gets its
// original ack; a new one gets the next seq and goes to the store. The ack
// and the broadcast wait for the commit (applyCommit).
func (r *room) send(m *member, c *conn, f *protocol.Send, now time.Time) {
	if r.s.inRedis() {
		r.sendShared(m, c, f, now)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if m.conn != c {
		return // replaced or left: this connection no longer speaks for m
	}
	key := m.id + "\x00" + f.ID
	if p := r.inflight[key]; p != nil {
		p.acks++
		return
	}
	if rec, ok, err := r.s.store.LookupID(r.name, m.id, f.ID); err != nil {
		r.s.log.Error("cannot look up a message id", "room", r.name, "member", m.id, "err", err)
		c.SendError(protocol.ErrInternal, "the relay could not check this message; send it again", f.ID)
		return
	} else if ok {
		c.Send(&protocol.Ack{ID: f.ID, Seq: rec.Seq, TS: rec.TS})
		return
	}
	spent, wait := c.allow(now)
	if spent == nil {
		c.rateLimited(f.ID, wait)
		return
	}
	ts := max(now.UnixMilli(), r.lastTS) // never earlier than the previous message
	r.lastTS = ts
	r.seq++
	r.pending++
	rec := store.Record{Seq: r.seq, TS: ts, MemberID: m.id, ClientID: f.ID, Text: f.Text, Name: m.name, Avatar: m.avatar}
	r.inflight[key] = &pendingMsg{from: m.wire(), acks: 1}
	start := time.Now()
	stored := r.s.store.TryAppend(r.name, rec, func(err error) {
		r.completed(commitResult{key: key, rec: rec, start: start, err: err})
	})
	if !stored {
		// The disk is behind. Refuse rather than make this reader (and the
		// room, whose lock is held) wait: the message takes no seq, and the
		// client resends it, in order, after retry_after_ms. Like any
		// refusal it costs no rate budget.
		spent.CancelAt(now)
		r.seq--
		r.pending--
		delete(r.inflight, key)
		r.s.metrics.StoreBusy.Inc()
		c.rateLimited(f.ID, storeBusyRetry)
	}
}

// storeBusyRetry is how long a sender waits when the store's queue is full:
// about one commit of a loaded disk.
const storeBusyRetry = 50 * time.Millisecond

// completed runs on the store's committer goroutine: it must not block, so
// it queues the result for the room's drainer.
func (r *room) completed(res commitResult) {
	r.doneMu.Lock()
	r.doneQ = append(r.doneQ, res)
	r.startDrainLocked()
}

// completedEvents queues a shared room's events for the drainer.
func (r *room) completedEvents(evs []*redisengine.Event) {
	r.doneMu.Lock()
	for _, ev := range evs {
		r.doneQ = append(r.doneQ, commitResult{ev: ev})
	}
	r.startDrainLocked()
}

// startDrainLocked starts the drainer unless it runs; it unlocks doneMu.
func (r *room) startDrainLocked() {
	start := !r.draining
	r.draining = true
	r.doneMu.Unlock()
	if start && !r.s.goBackground(r.drain) {
		// The relay has stopped: no link is left to deliver to.
		r.doneMu.Lock()
		r.draining, r.doneQ = false, nil
		r.doneMu.Unlock()
	}
}

func (r *room) drain() {
	for {
		start := time.Now()
		r.doneMu.Lock()
		q := r.doneQ
		r.doneQ = nil
		if len(q) == 0 {
			r.draining = false
			r.doneMu.Unlock()
			return
		}
		r.doneMu.Unlock()
		if r.s.inRedis() {
			<-r.ready // a shared room's events can arrive while it loads
		}
		r.mu.Lock()
		for _, res := range q {
			if res.ev != nil {
				r.applyEvent(res.ev)
				continue
			}
			r.applyCommit(&r.batch, res)
		}
		kick := r.flush(&r.batch, r.kickBuf[:0])
		r.mu.Unlock()
		// The writes happen outside the room's lock: a sender waiting for
		// it must not wait for a thousand syscalls.
		kickAll(kick)
		clear(kick)
		r.kickBuf = kick
		if len(q) >= flushMinBatch && len(kick) >= flushMinMembers {
			// A busy room: commits arrive faster than they are written.
			// What commits meanwhile waits for the next batch.
			if wait := r.s.cfg.FlushInterval - time.Since(start); wait > 0 {
				time.Sleep(wait)
			}
		}
	}
}

// A room is busy, and waits for FlushInterval between batches, when its
// last batch held flushMinBatch messages or more and went to flushMinMembers
// online members or more. Two messages in a batch happen often in a room of
// a few messages a second (two senders a few milliseconds apart); three
// rarely. Below flushMinMembers the writes cost less than the wait would
// cost the room's senders, whose acks wait too.
const (
	flushMinBatch   = 3
	flushMinMembers = 64
)

// applyCommit answers one finished commit into b: the message for the
// other members, the acks (or the error) for its sender.
func (r *room) applyCommit(b *fanBatch, res commitResult) {
	p := r.inflight[res.key]
	delete(r.inflight, res.key)
	r.pending--
	if p == nil {
		p = &pendingMsg{acks: 1}
	}
	r.s.metrics.StoreCommit.Observe(time.Since(res.start).Seconds())
	m := r.members[res.rec.MemberID]
	var dup *store.DuplicateError
	switch {
	case res.err == nil:
		r.committed = res.rec.Seq
		r.s.metrics.MessagesAccepted.Inc()
		if data, ok := r.s.encode(&protocol.Message{Seq: res.rec.Seq, ID: res.rec.ClientID, From: p.from, Text: res.rec.Text, TS: res.rec.TS}); ok {
			b.addMsg(data, m)
		}
		r.ack(b, m, p.acks, &protocol.Ack{ID: res.rec.ClientID, Seq: res.rec.Seq, TS: res.rec.TS})
		return
	case errors.As(res.err, &dup):
		r.ack(b, m, p.acks, &protocol.Ack{ID: res.rec.ClientID, Seq: dup.Existing.Seq, TS: dup.Existing.TS})
	case errors.Is(res.err, store.ErrFull):
		r.s.metrics.StoreErrors.Inc()
		if r.s.storeFull.logDue(time.Now()) {
			r.s.log.Error("history database at its size cap (--max-store-bytes): refusing messages that need more space; raise the cap or lower --history/--history-bytes/--max-rooms",
				"room", r.name, "err", res.err)
		}
		r.sendTo(b, m, &protocol.Error{Code: protocol.ErrInternal, Message: "the relay's storage is full, so this message was not stored or sent; try again later, and tell the relay's operator", ID: res.rec.ClientID})
	default:
		r.s.metrics.StoreErrors.Inc()
		r.s.log.Error("message not stored", "room", r.name, "member", res.rec.MemberID, "seq", res.rec.Seq, "err", res.err)
		r.sendTo(b, m, &protocol.Error{Code: protocol.ErrInternal, Message: "the relay could not store this message, so it was not sent; send it again", ID: res.rec.ClientID})
	}
	// A failed record takes no seq, and the store fails every record queued
	// after it with a higher seq. Restart numbering after the last durable
	// one, once: at the first failure of the chain (the record the store
	// expected next).
	if res.rec.Seq == r.committed+1 {
		r.seq = r.committed
	}
}

// ack sends m the acks it is owed (n: the original and its duplicates).
func (r *room) ack(b *fanBatch, m *member, n int, a *protocol.Ack) {
	for range n {
		r.sendTo(b, m, a)
	}
}

// sendTo sends f to m alone, in b, so that it keeps its place among the
// other members' messages.
func (r *room) sendTo(b *fanBatch, m *member, f protocol.Frame) {
	if m == nil || m.conn == nil {
		return
	}
	if data, ok := r.s.encode(f); ok {
		b.addFrame(m, f.FrameType(), data)
	}
}
