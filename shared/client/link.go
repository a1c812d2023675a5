package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heartline/heartline/shared/protocol"
)

// Heartbeat settings used when a welcome does not carry usable ones.
const (
	fallbackInterval = 10 * time.Second
	fallbackTimeout  = 25 * time.Second
)

// inbound is what the reader goroutine hands to the link's loop.
type inbound struct {
	frame     protocol.Frame
	decodeErr error // a frame this client does not understand (ignored)
	readErr   error // the socket failed or closed: the link is over
}

// link is one WebSocket connection, from the hello to its close. Its run
// goroutine owns every field below the goroutine plumbing; the reader and
// writer goroutines only move bytes.
type link struct {
	c    *Client
	conn *websocket.Conn

	frames   chan inbound
	activity chan struct{} // a control frame (ping/pong) arrived
	writes   *queue[[]byte]
	writeErr chan error
	done     chan struct{} // closed when the link ends: reader and writer return
	wg       sync.WaitGroup

	welcomed    bool
	leaving     bool
	resumeSent  bool
	you         protocol.Member
	heartbeat   protocol.Heartbeat
	observed    string
	stunPorts   []int
	interval    time.Duration
	timeout     time.Duration
	connectedAt time.Time
	welcomedAt  time.Time
	lastFrameAt time.Time
	lastPingAt  time.Time
	lastPongAt  time.Time
	rtt         time.Duration

	pingT, deadT, pauseT, byeT Timer

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

func newLink(c *Client, conn *websocket.Conn) *link {
	return &link{
		c:            c,
		conn:         conn,
		frames:       make(chan inbound),
		activity:     make(chan struct{}, 1),
		writes:       newQueue[[]byte](),
		writeErr:     make(chan error, 1),
		done:         make(chan struct{}),
		written:      make(map[string]bool),
		inflight:     make(map[string]int),
		rateRefusals: make(map[string]int),
	}
}

func timerC(t Timer) <-chan time.Time {
	if t == nil {
		return nil
	}
	return t.C()
}

// run says hello and serves the link until it ends. When run returns, the
// socket is closed and the reader and writer goroutines have exited.
func (l *link) run(ctx context.Context) linkResult {
	c := l.c
	l.connectedAt = c.clock.Now()
	l.lastFrameAt = l.connectedAt
	l.conn.SetReadLimit(maxInboundFrame)
	l.conn.SetPingHandler(func(data string) error {
		l.sawControl()
		err := l.conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		if errors.Is(err, websocket.ErrCloseSent) {
			return nil
		}
		return err
	})
	l.conn.SetPongHandler(func(string) error { l.sawControl(); return nil })
	l.wg.Add(2)
	go l.readLoop()
	go l.writeLoop()
	defer l.shutdown()

	hello := &protocol.Hello{
		V: protocol.Version, Room: c.cfg.Room, Name: c.cfg.Name, Key: c.cfg.Key,
		Avatar: c.cfg.Avatar, Token: c.cfg.Token, Client: c.cfg.Client,
	}
	c.mu.Lock()
	if c.epoch != "" {
		hello.Resume = &protocol.Resume{Epoch: c.epoch, LastSeq: c.seqs.last}
		l.resumeSent = true
	}
	c.mu.Unlock()
	l.sendFrame(hello)

	helloT := c.clock.NewTimer(c.cfg.HelloTimeout)
	defer helloT.Stop()
	helloC := helloT.C()
	leaveC := c.leave

	for {
		select {
		case in := <-l.frames:
			l.sawFrame()
			if in.readErr != nil {
				return l.readFailed(in.readErr)
			}
			if in.decodeErr != nil {
				// A newer relay may send frames this client does not know.
				c.log.Debug("ignoring a frame", "err", in.decodeErr)
				continue
			}
			l.handle(in.frame)
			if l.welcomed && helloC != nil {
				helloT.Stop()
				helloC = nil
			}
		case <-l.activity:
			l.sawFrame()
		case err := <-l.writeErr:
			return l.dropped(fmt.Sprintf("sending to the relay failed: %v", err), 0, DetectedWriteError)
		case <-helloC:
			return l.dropped(fmt.Sprintf("the relay took the connection but did not answer the hello within %s", seconds(c.cfg.HelloTimeout)), 0, DetectedHelloTimeout)
		case <-timerC(l.deadT):
			return l.dropped(fmt.Sprintf("no reply from the relay for %s", seconds(l.timeout)), 0, DetectedHeartbeat)
		case <-timerC(l.pingT):
			l.sendPing()
			l.pingT.Reset(l.interval)
		case <-timerC(l.pauseT):
			l.flushOutbox()
		case <-c.wake:
			l.flushOutbox()
		case <-leaveC:
			// bye, then wait (bounded) for the relay to close: the others
			// see the member leave at once instead of after the grace period.
			leaveC = nil
			l.leaving = true
			l.sendFrame(&protocol.Bye{})
			l.byeT = c.clock.NewTimer(byeWait)
		case <-timerC(l.byeT):
			return linkResult{outcome: outcomeLeft}
		case <-ctx.Done():
			// The app is quitting: a close frame lets the relay keep the
			// member away (not gone) for its grace period.
			l.conn.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.CloseGoingAway, "client shutting down"),
				time.Now().Add(200*time.Millisecond))
			return linkResult{outcome: outcomeCanceled}
		}
	}
}

// shutdown closes the socket and waits for the reader and writer.
func (l *link) shutdown() {
	close(l.done)
	l.conn.Close()
	l.wg.Wait()
	for _, t := range []Timer{l.pingT, l.deadT, l.pauseT, l.byeT} {
		if t != nil {
			t.Stop()
		}
	}
}

func (l *link) readLoop() {
	defer l.wg.Done()
	for {
		_, data, err := l.conn.ReadMessage()
		in := inbound{readErr: err}
		if err == nil {
			in.frame, in.decodeErr = protocol.DecodeRelay(data)
		}
		select {
		case l.frames <- in:
		case <-l.done:
			return
		}
		if err != nil {
			return
		}
	}
}

func (l *link) writeLoop() {
	defer l.wg.Done()
	for {
		items, _ := l.writes.take()
		for _, b := range items {
			l.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
			if err := l.conn.WriteMessage(websocket.TextMessage, b); err != nil {
				select {
				case l.writeErr <- err:
				default:
				}
				return
			}
		}
		if len(items) > 0 {
			continue
		}
		select {
		case <-l.writes.signal:
		case <-l.done:
			return
		}
	}
}

func (l *link) sawControl() {
	select {
	case l.activity <- struct{}{}:
	default:
	}
}

// sawFrame notes that the relay is alive: any frame restarts the dead-link
// timer.
func (l *link) sawFrame() {
	l.lastFrameAt = l.c.clock.Now()
	if l.deadT != nil {
		l.deadT.Reset(l.timeout)
	}
}

func (l *link) sendFrame(f protocol.Frame) {
	b, err := protocol.Encode(f)
	if err != nil { // only for values json cannot represent: a bug
		l.c.log.Error("cannot encode a frame", "type", f.FrameType(), "err", err)
		return
	}
	l.writes.push(b)
}

func (l *link) sendPing() {
	now := l.c.clock.Now()
	l.lastPingAt = now
	l.sendFrame(&protocol.Ping{T: now.UnixMilli()})
}

func (l *link) handle(f protocol.Frame) {
	c := l.c
	switch f := f.(type) {
	case *protocol.Welcome:
		l.onWelcome(f)
	case *protocol.Message:
		c.mu.Lock()
		l.deliverLocked(*f)
		c.mu.Unlock()
	case *protocol.Ack:
		l.onAck(f)
		if l.cautious {
			l.flushOutbox()
		}
	case *protocol.Joined:
		c.mu.Lock()
		c.emitLocked(MemberJoined{Member: f.Member})
		c.mu.Unlock()
	case *protocol.Presence:
		if f.Member.ID == l.you.ID {
			l.you = f.Member
		}
		c.mu.Lock()
		c.emitLocked(MemberChanged{Member: f.Member})
		c.mu.Unlock()
	case *protocol.Left:
		c.mu.Lock()
		c.emitLocked(MemberLeft{Member: f.Member, Reason: f.Reason})
		c.mu.Unlock()
	case *protocol.Pong:
		l.onPong(f)
	case *protocol.Error:
		l.onError(f)
		if l.cautious {
			l.flushOutbox()
		}
	}
}

func (l *link) onWelcome(w *protocol.Welcome) {
	c := l.c
	if l.welcomed {
		return // a relay sends one welcome per link; ignore a stray second one
	}
	now := c.clock.Now()
	l.welcomed = true
	l.welcomedAt = now
	l.you = w.You
	l.heartbeat = w.Heartbeat
	l.observed = w.ObservedAddr
	l.stunPorts = slices.Clone(w.STUN)
	l.interval = time.Duration(w.Heartbeat.IntervalMS) * time.Millisecond
	l.timeout = time.Duration(w.Heartbeat.TimeoutMS) * time.Millisecond
	if l.interval <= 0 || l.timeout <= l.interval {
		l.interval, l.timeout = fallbackInterval, fallbackTimeout
	}
	l.deadT = c.clock.NewTimer(l.timeout)
	l.pingT = c.clock.NewTimer(l.interval)
	l.sendPing() // measure the round trip now rather than one interval later

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

	c.mu.Lock()
	c.setStateLocked(State{
		Phase:       Connected,
		ClockOffset: time.UnixMilli(w.ServerTime).Sub(now),
		LastError:   c.state.LastError,
		CloseCode:   c.state.CloseCode,
	})
	c.emitLocked(Welcomed{Welcome: *w})
	switch {
	case w.Epoch != c.epoch:
		// A first join, or the relay's history was reset: seqs start over.
		if l.resumeSent {
			c.emitLocked(HistoryGap{EpochChanged: true, HeldUpTo: c.seqs.last})
		}
		c.epoch = w.Epoch
		c.seqs.reset(0)
		for _, m := range history {
			l.deliverLocked(m)
		}
		c.seqs.acceptGapUpTo(w.Seq)
	case w.Recovered:
		for _, m := range history {
			l.deliverLocked(m)
		}
	default:
		// Same history, but the relay no longer has everything after our
		// last_seq: say so, then show its latest page.
		c.emitLocked(HistoryGap{HeldUpTo: c.seqs.last})
		for _, m := range history {
			l.deliverLocked(m)
		}
		c.seqs.acceptGapUpTo(w.Seq)
	}
	c.mu.Unlock()
	c.log.Info("connected", "url", c.url, "room", w.Room, "member", w.You.ID,
		"recovered", w.Recovered, "seq", w.Seq, "history", len(w.History))
	l.flushOutbox()
}

// deliverLocked emits a room message unless its seq is already held. A
// message of our own still in the outbox (its ack was lost with a link)
// counts as acked: the room has it. onAck relies on this: an item still in
// the outbox has never been delivered.
func (l *link) deliverLocked(m protocol.Message) {
	c := l.c
	own := l.you.ID != "" && m.From.ID == l.you.ID
	if own {
		if i := c.outboxIndexLocked(m.ID); i >= 0 {
			l.markSentLocked(i, m.Seq, m.TS)
		}
	}
	if c.seqs.add(m.Seq) {
		c.emitLocked(MessageReceived{Msg: m, Own: own})
	}
}

func (l *link) onAck(a *protocol.Ack) {
	c := l.c
	c.mu.Lock()
	defer c.mu.Unlock()
	i := c.outboxIndexLocked(a.ID)
	if i < 0 || c.outbox[i].Status != Pending {
		return // a second ack for a message resent after a rewind
	}
	item := l.markSentLocked(i, a.Seq, a.TS)
	// A pending item was never delivered (see deliverLocked), so it is
	// delivered now even if its seq already counts as held: the duplicate
	// ack of a message whose first ack was lost repeats its old seq, which
	// may lie in a gap the client accepted after a welcome without recovery.
	c.seqs.add(a.Seq)
	c.emitLocked(MessageReceived{
		Msg: protocol.Message{Seq: a.Seq, ID: a.ID, From: l.you, Text: item.Text, TS: a.TS},
		Own: true,
	})
}

// markSentLocked takes item i out of the outbox as accepted by the relay.
func (l *link) markSentLocked(i int, seq uint64, ts int64) OutboxItem {
	c := l.c
	item := c.outbox[i]
	item.Status, item.Seq, item.TS, item.Reason = Sent, seq, ts, ""
	c.store.push(storeOp{kind: opDelete, id: item.ID})
	c.outbox = slices.Delete(c.outbox, i, i+1)
	delete(l.written, item.ID)
	delete(l.inflight, item.ID)
	delete(l.rateRefusals, item.ID)
	c.emitLocked(OutboxChanged{Item: item})
	return item
}

func (l *link) failLocked(i int, reason string) {
	c := l.c
	item := c.outbox[i]
	item.Status, item.Reason = Failed, reason
	c.store.push(storeOp{kind: opPut, item: item})
	c.outbox[i] = item
	delete(l.written, item.ID)
	delete(l.inflight, item.ID)
	delete(l.rateRefusals, item.ID)
	c.emitLocked(OutboxChanged{Item: item})
}

func (l *link) onPong(p *protocol.Pong) {
	c := l.c
	now := c.clock.Now()
	sent := time.UnixMilli(p.T)
	rtt := now.Sub(sent)
	if rtt < 0 || p.T > l.lastPingAt.UnixMilli() {
		return // not an echo of a ping of ours
	}
	l.rtt = rtt
	l.lastPongAt = now
	offset := time.UnixMilli(p.ServerTime).Sub(sent.Add(rtt / 2))
	c.mu.Lock()
	if c.state.Phase == Connected {
		s := c.state
		s.RTT, s.ClockOffset = rtt, offset
		c.setStateLocked(s)
	}
	c.mu.Unlock()
}

func (l *link) onError(e *protocol.Error) {
	c := l.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.ID != "" {
		if i := c.outboxIndexLocked(e.ID); i >= 0 && c.outbox[i].Status == Pending {
			if e.Code == protocol.ErrRateLimited {
				l.rateLimitedLocked(i, e)
			} else {
				reason := e.Message
				if reason == "" {
					reason = "the relay refused this message (" + e.Code + ")"
				}
				l.failLocked(i, reason)
			}
			return
		}
	}
	copied := *e
	l.lastRelayErr = &copied
	c.emitLocked(RelayError{Error: copied})
}

// rateLimitedLocked handles a "too fast" refusal of item i. The relay
// refuses every later msg on this link until retry_after_ms has passed, so
// item i and everything after it is sent again, in order, after the pause.
func (l *link) rateLimitedLocked(i int, e *protocol.Error) {
	c := l.c
	id := c.outbox[i].ID
	l.inflight[id]--
	if l.inflight[id] > 0 {
		return // answers an older write; the newer one is still on its way
	}
	if !l.written[id] {
		return // refused as part of a streak that is already being resent
	}
	l.rateRefusals[id]++
	if n := l.rateRefusals[id]; n > maxRateLimitRetries {
		l.failLocked(i, fmt.Sprintf("The relay refused this message %d times as sent too fast: try again later.", n))
	}
	for _, it := range c.outbox[i:] {
		delete(l.written, it.ID)
	}
	l.cautious = true
	wait := time.Duration(e.RetryAfterMS) * time.Millisecond
	if wait <= 0 {
		wait = time.Second
	}
	until := c.clock.Now().Add(wait)
	if until.After(l.pausedUntil) {
		l.pausedUntil = until
		if l.pauseT == nil {
			l.pauseT = c.clock.NewTimer(wait)
		} else {
			l.pauseT.Reset(wait)
		}
	}
}

// flushOutbox writes every pending message not yet written on this link,
// in outbox order.
func (l *link) flushOutbox() {
	c := l.c
	if !l.welcomed || l.leaving || c.clock.Now().Before(l.pausedUntil) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	pending := false
	for _, it := range c.outbox {
		if it.Status != Pending {
			continue
		}
		pending = true
		if l.written[it.ID] {
			if l.cautious {
				return // wait for its answer
			}
			continue
		}
		l.written[it.ID] = true
		l.inflight[it.ID]++
		l.sendFrame(&protocol.Send{ID: it.ID, Text: it.Text})
		if l.cautious {
			return
		}
	}
	if !pending {
		l.cautious = false
	}
}

// readFailed turns the reader's error into the link's end.
func (l *link) readFailed(err error) linkResult {
	var ce *websocket.CloseError
	if errors.As(err, &ce) && ce.Code != websocket.CloseAbnormalClosure {
		if l.leaving {
			return linkResult{outcome: outcomeLeft}
		}
		cause := fmt.Sprintf("closed by the relay: %d %s", ce.Code, protocol.CloseText(ce.Code))
		return l.dropped(cause, ce.Code, DetectedCloseFrame)
	}
	if l.leaving {
		return linkResult{outcome: outcomeLeft}
	}
	var cause string
	code := 0
	var netErr net.Error
	switch {
	case errors.As(err, &ce): // 1006: the TCP connection ended without a close frame
		cause, code = "the relay closed the connection without a close frame", websocket.CloseAbnormalClosure
	case errors.Is(err, syscall.ECONNRESET):
		cause = "the connection was reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		cause, code = "the relay closed the connection without a close frame", websocket.CloseAbnormalClosure
	case errors.Is(err, websocket.ErrReadLimit):
		cause = fmt.Sprintf("the relay sent a frame over %d bytes", maxInboundFrame)
	case errors.As(err, &netErr) && netErr.Timeout():
		cause = "reading from the relay timed out"
	default:
		cause = fmt.Sprintf("reading from the relay failed: %v", err)
	}
	return l.dropped(cause, code, DetectedReadError)
}

// dropped reports a link that ended on its own and decides whether to
// reconnect (the close code's class) or stop.
func (l *link) dropped(cause string, code int, detected string) linkResult {
	c := l.c
	if l.leaving {
		return linkResult{outcome: outcomeLeft} // the person left; the link's end is no news
	}
	now := c.clock.Now()
	drop := Drop{
		At: now, Cause: cause, CloseCode: code, Detected: detected, RelayURL: c.url,
		Welcomed: l.welcomed, ObservedAddr: l.observed, STUNPorts: l.stunPorts,
		Heartbeat: l.heartbeat, ConnectedAt: l.connectedAt, WelcomedAt: l.welcomedAt,
		LastFrameAt: l.lastFrameAt, LastPingAt: l.lastPingAt, LastPongAt: l.lastPongAt, RTT: l.rtt,
	}
	c.mu.Lock()
	c.emitLocked(LinkDropped{Drop: drop})
	c.mu.Unlock()
	c.log.Info("link dropped", "cause", cause, "code", code, "detected", detected)

	if code == websocket.CloseMessageTooBig {
		l.failOversized()
	}
	if code != 0 && !protocol.ShouldReconnect(code) {
		return linkResult{outcome: outcomeStop, closeCode: code, reason: cause,
			stop: &StopError{Code: code, Reason: stopReason(code, l.lastRelayErr), Relay: l.lastRelayErr}}
	}
	var stable time.Duration
	if l.welcomed {
		stable = now.Sub(l.welcomedAt)
	}
	return linkResult{outcome: outcomeRetry, reason: cause, closeCode: code, stableFor: stable}
}

// failOversized handles a 1009 close: the relay cut the link over a frame
// too large for it, which can only be one of the messages written on this
// link. Resending it would cut every link the same way, so the largest of
// them fails instead. Largest on the wire, as the relay counts: JSON
// escaping makes some texts several times longer than they look.
func (l *link) failOversized() {
	c := l.c
	c.mu.Lock()
	defer c.mu.Unlock()
	worst, worstSize := -1, 0
	for i, it := range c.outbox {
		if it.Status != Pending || !l.written[it.ID] {
			continue
		}
		if size := frameSize(&protocol.Send{ID: it.ID, Text: it.Text}); size > worstSize {
			worst, worstSize = i, size
		}
	}
	if worst >= 0 {
		l.failLocked(worst, "This message is too large for the relay: shorten it or split it, then retry.")
	}
}

// frameSize is the length of f as written to the socket.
func frameSize(f protocol.Frame) int {
	b, _ := protocol.Encode(f) // a msg frame always encodes
	return len(b)
}

// stopReason is the sentence shown when the relay refuses the client for good.
func stopReason(code int, relayErr *protocol.Error) string {
	detail := ""
	if relayErr != nil && relayErr.Message != "" {
		detail = relayErr.Message
	}
	switch code {
	case protocol.CloseNormal:
		return "The relay ended the session and asked this app not to reconnect: press Connect to join again."
	case protocol.CloseUnauthorized:
		return "The relay needs a token (or the token is wrong): check it in Settings."
	case protocol.CloseNameTaken:
		return "That name is taken in this room: choose another name."
	case protocol.CloseHelloRefused:
		if detail != "" {
			return "The relay refused to join: " + detail + ". Fix it in Settings."
		}
	case protocol.CloseRoomFull:
		return "The room is full: try again later, or ask whoever runs the relay to raise the limit."
	}
	return protocol.CloseText(code)
}
