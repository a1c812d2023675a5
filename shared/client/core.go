package client

import (
	"fmt"
	"slices"
	"time"

	"github.com/heartline/heartline/shared/protocol"
)

// core is the engine's state and send policy without any I/O: the outbox,
// the seqs held, the room's epoch, and what the current link has written.
// Its methods take what happened (a frame from the relay, a Send, a link
// coming up) and return what to do about it (effects); they start no
// goroutine, read no clock (times are passed in) and touch no socket or
// disk. The Client guards it with its mutex; link.go and client.go are the
// loop around it.
type core struct {
	outbox []OutboxItem // pending and failed items, in sending order
	seqs   seqTracker
	epoch  string
	l      linkCore // the current link; reset by linkUp
}

// linkCore is what core knows about the current link.
type linkCore struct {
	welcomed   bool
	leaving    bool
	resumeSent bool
	you        protocol.Member

	written      map[string]bool // outbox ids written on this link and not refused since
	inflight     map[string]int  // writes of an id not yet answered by an ack or error
	rateRefusals map[string]int
	pausedUntil  time.Time // rate limited: no msg frames before this
	// cautious: since a rate limit, one msg frame in flight at a time, so a
	// backlog is not resent whole after every pause; off once the outbox
	// is empty.
	cautious     bool
	lastRelayErr *protocol.Error // the last error frame not about an outbox item
}

// effects is what the loop must do after a core method, each kind in order.
type effects struct {
	frames []protocol.Frame // to write on the link
	events []Event          // to emit
	store  []storeOp        // to write to the outbox store
	pause  time.Duration    // > 0: no msg frames for this long; flush when it ends
}

func (e *effects) emit(ev Event)         { e.events = append(e.events, ev) }
func (e *effects) write(op storeOp)      { e.store = append(e.store, op) }
func (e *effects) send(f protocol.Frame) { e.frames = append(e.frames, f) }

func (k *core) index(id string) int {
	for i := range k.outbox {
		if k.outbox[i].ID == id {
			return i
		}
	}
	return -1
}

// queue adds a newly typed message.
func (k *core) queue(item OutboxItem) (eff effects) {
	k.outbox = append(k.outbox, item)
	eff.write(storeOp{kind: opPut, item: item})
	eff.emit(OutboxChanged{Item: item})
	return eff
}

// retry puts failed message id back in the queue, after every other.
func (k *core) retry(id string) (eff effects, err error) {
	i := k.index(id)
	if i < 0 {
		return eff, fmt.Errorf("no message %q in the outbox", id)
	}
	item := k.outbox[i]
	if item.Status != Failed {
		return eff, fmt.Errorf("message %q is %s, not failed", id, item.Status)
	}
	item.Status, item.Reason = Pending, ""
	k.outbox = append(append(k.outbox[:i:i], k.outbox[i+1:]...), item)
	// It moves to the end in the store too, so the order survives a restart.
	eff.write(storeOp{kind: opMoveToEnd, item: item})
	eff.emit(OutboxChanged{Item: item})
	return eff, nil
}

// discard throws failed message id away.
func (k *core) discard(id string) (eff effects, err error) {
	i := k.index(id)
	if i < 0 {
		return eff, fmt.Errorf("no message %q in the outbox", id)
	}
	item := k.outbox[i]
	if item.Status != Failed {
		return eff, fmt.Errorf("message %q is %s; only a failed message can be discarded", id, item.Status)
	}
	k.outbox = append(k.outbox[:i:i], k.outbox[i+1:]...)
	item.Status = Discarded
	eff.write(storeOp{kind: opDelete, id: id})
	eff.emit(OutboxChanged{Item: item})
	return eff, nil
}

// linkUp starts the state of a new link and returns the resume its hello
// asks for (nil: join fresh).
func (k *core) linkUp() *protocol.Resume {
	k.l = linkCore{
		written:      make(map[string]bool),
		inflight:     make(map[string]int),
		rateRefusals: make(map[string]int),
	}
	if k.epoch == "" {
		return nil
	}
	k.l.resumeSent = true
	return &protocol.Resume{Epoch: k.epoch, LastSeq: k.seqs.last}
}

// leave notes that a bye was sent: no more messages on this link.
func (k *core) leave() { k.l.leaving = true }

// welcome takes the link's welcome (the first one only: it reports false
// for a stray second one) and delivers its history; the loop sets the
// Connected state before emitting eff.
func (k *core) welcome(w *protocol.Welcome) (eff effects, first bool) {
	if k.l.welcomed {
		return eff, false // a relay sends one welcome per link
	}
	k.l.welcomed = true
	k.l.you = w.You
	history := slices.Clone(w.History)
	slices.SortStableFunc(history, func(a, b protocol.Message) int {
		switch {
		case a.Seq < b.Seq:
			return -1
		case a.Seq > b.Seq:
			return 1
		}
		return 0
	})
	eff.emit(Welcomed{Welcome: *w})
	switch {
	case w.Epoch != k.epoch:
		// A first join, or the relay's history was reset: seqs start over.
		if k.l.resumeSent {
			eff.emit(HistoryGap{EpochChanged: true, HeldUpTo: k.seqs.last})
		}
		k.epoch = w.Epoch
		k.seqs.reset(0)
		for _, m := range history {
			k.deliver(&eff, m)
		}
		k.seqs.acceptGapUpTo(w.Seq)
	case w.Recovered:
		for _, m := range history {
			k.deliver(&eff, m)
		}
	default:
		// Same history, but the relay no longer has everything after our
		// last_seq: say so, then show its latest page.
		eff.emit(HistoryGap{HeldUpTo: k.seqs.last})
		for _, m := range history {
			k.deliver(&eff, m)
		}
		k.seqs.acceptGapUpTo(w.Seq)
	}
	return eff, true
}

// message takes a room message broadcast on the link.
func (k *core) message(m protocol.Message) (eff effects) {
	k.deliver(&eff, m)
	return eff
}

// presence takes a member's new presence (ours included).
func (k *core) presence(m protocol.Member) (eff effects) {
	if m.ID == k.l.you.ID {
		k.l.you = m
	}
	eff.emit(MemberChanged{Member: m})
	return eff
}

// deliver emits a room message unless its seq is already held. A message
// of our own still in the outbox (its ack was lost with a link) counts as
// acked: the room has it. ack relies on this: an item still in the outbox
// has never been delivered.
func (k *core) deliver(eff *effects, m protocol.Message) {
	own := k.l.you.ID != "" && m.From.ID == k.l.you.ID
	if own {
		if i := k.index(m.ID); i >= 0 {
			k.markSent(eff, i, m.Seq, m.TS)
		}
	}
	if k.seqs.add(m.Seq) {
		eff.emit(MessageReceived{Msg: m, Own: own})
	}
}

// ack takes the relay's acceptance of one of our messages.
func (k *core) ack(a *protocol.Ack, now time.Time) (eff effects) {
	defer k.flushIfCautious(&eff, now)
	i := k.index(a.ID)
	if i < 0 || k.outbox[i].Status != Pending {
		return eff // a second ack for a message resent after a rewind
	}
	item := k.markSent(&eff, i, a.Seq, a.TS)
	// A pending item was never delivered (see deliver), so it is delivered
	// now even if its seq already counts as held: the duplicate ack of a
	// message whose first ack was lost repeats its old seq, which may lie
	// in a gap the client accepted after a welcome without recovery.
	k.seqs.add(a.Seq)
	eff.emit(MessageReceived{
		Msg: protocol.Message{Seq: a.Seq, ID: a.ID, From: k.l.you, Text: item.Text, TS: a.TS},
		Own: true,
	})
	return eff
}

// markSent takes item i out of the outbox as accepted by the relay.
func (k *core) markSent(eff *effects, i int, seq uint64, ts int64) OutboxItem {
	item := k.outbox[i]
	item.Status, item.Seq, item.TS, item.Reason = Sent, seq, ts, ""
	k.outbox = slices.Delete(k.outbox, i, i+1)
	k.forget(item.ID)
	eff.write(storeOp{kind: opDelete, id: item.ID})
	eff.emit(OutboxChanged{Item: item})
	return item
}

func (k *core) fail(eff *effects, i int, reason string) {
	item := k.outbox[i]
	item.Status, item.Reason = Failed, reason
	k.outbox[i] = item
	k.forget(item.ID)
	eff.write(storeOp{kind: opPut, item: item})
	eff.emit(OutboxChanged{Item: item})
}

func (k *core) forget(id string) {
	delete(k.l.written, id)
	delete(k.l.inflight, id)
	delete(k.l.rateRefusals, id)
}

// relayError takes an error frame: a refusal of one of our messages (too
// fast: resend later, or Failed after maxRateLimitRetries; anything else:
// Failed), or news for the person.
func (k *core) relayError(e *protocol.Error, now time.Time) (eff effects) {
	defer k.flushIfCautious(&eff, now)
	if e.ID != "" {
		if i := k.index(e.ID); i >= 0 && k.outbox[i].Status == Pending {
			if e.Code == protocol.ErrRateLimited {
				k.rateLimited(&eff, i, e, now)
			} else {
				reason := e.Message
				if reason == "" {
					reason = "the relay refused this message (" + e.Code + ")"
				}
				k.fail(&eff, i, reason)
			}
			return eff
		}
	}
	copied := *e
	k.l.lastRelayErr = &copied
	eff.emit(RelayError{Error: copied})
	return eff
}

// rateLimited handles a "too fast" refusal of item i. The relay refuses
// every later msg on this link until retry_after_ms has passed, so item i
// and everything after it is sent again, in order, after the pause.
func (k *core) rateLimited(eff *effects, i int, e *protocol.Error, now time.Time) {
	id := k.outbox[i].ID
	k.l.inflight[id]--
	if k.l.inflight[id] > 0 {
		return // answers an older write; the newer one is still on its way
	}
	if !k.l.written[id] {
		return // refused as part of a streak that is already being resent
	}
	k.l.rateRefusals[id]++
	if n := k.l.rateRefusals[id]; n > maxRateLimitRetries {
		k.fail(eff, i, fmt.Sprintf("The relay refused this message %d times as sent too fast: try again later.", n))
	}
	for _, it := range k.outbox[i:] {
		delete(k.l.written, it.ID)
	}
	k.l.cautious = true
	wait := time.Duration(e.RetryAfterMS) * time.Millisecond
	if wait <= 0 {
		wait = time.Second
	}
	if until := now.Add(wait); until.After(k.l.pausedUntil) {
		k.l.pausedUntil = until
		eff.pause = wait
	}
}

func (k *core) flushIfCautious(eff *effects, now time.Time) {
	if k.l.cautious {
		k.flushInto(eff, now)
	}
}

// flush writes every pending message not yet written on this link, in
// outbox order (one at a time while cautious).
func (k *core) flush(now time.Time) (eff effects) {
	k.flushInto(&eff, now)
	return eff
}

func (k *core) flushInto(eff *effects, now time.Time) {
	if !k.l.welcomed || k.l.leaving || now.Before(k.l.pausedUntil) {
		return
	}
	pending := false
	for _, it := range k.outbox {
		if it.Status != Pending {
			continue
		}
		pending = true
		if k.l.written[it.ID] {
			if k.l.cautious {
				return // wait for its answer
			}
			continue
		}
		k.l.written[it.ID] = true
		k.l.inflight[it.ID]++
		eff.send(&protocol.Send{ID: it.ID, Text: it.Text})
		if k.l.cautious {
			return
		}
	}
	if !pending {
		k.l.cautious = false
	}
}

// oversized handles a 1009 close: the relay cut the link over a frame too
// large for it, which can only be one of the messages written on this
// link. Resending it would cut every link the same way, so the largest of
// them fails instead. Largest on the wire, as the relay counts: JSON
// escaping makes some texts several times longer than they look.
func (k *core) oversized() (eff effects) {
	worst, worstSize := -1, 0
	for i, it := range k.outbox {
		if it.Status != Pending || !k.l.written[it.ID] {
			continue
		}
		if size := frameSize(&protocol.Send{ID: it.ID, Text: it.Text}); size > worstSize {
			worst, worstSize = i, size
		}
	}
	if worst >= 0 {
		k.fail(&eff, worst, "This message is too large for the relay: shorten it or split it, then retry.")
	}
	return eff
}
