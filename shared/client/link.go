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

// link is one WebSocket connection, from the hello to its close: the loop
// around the Client's core for that connection (timers, socket, heartbeat).
// Its run goroutine owns every field below the goroutine plumbing; the
// reader and writer goroutines only move bytes.
type link struct {
	c    *Client
	conn *websocket.Conn

	frames   chan inbound
	activity chan struct{} // a control frame (ping/pong) arrived
	writes   *queue[[]byte]
	writeErr chan error
	done     chan struct{} // closed when the link ends: reader and writer return
	wg       sync.WaitGroup

	welcomed    bool // mirrors c.core.l, for the loop's own use
	leaving     bool
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

	// A check after a network change (wake.go): running while checkT is
	// set. retryAtOnce: the network changed, so if this link ends the next
	// attempt need not wait out the backoff.
	checkSince  time.Time
	checkManual bool
	retryAtOnce bool

	pingT, deadT, pauseT, byeT, checkT Timer
}

func newLink(c *Client, conn *websocket.Conn) *link {
	return &link{
		c:        c,
		conn:     conn,
		frames:   make(chan inbound),
		activity: make(chan struct{}, 1),
		writes:   newQueue[[]byte](),
		writeErr: make(chan error, 1),
		done:     make(chan struct{}),
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
	hello.Resume = c.core.linkUp()
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
		case <-c.net.ready:
			if res, done := l.onNetChange(); done {
				return res
			}
		case <-timerC(l.checkT):
			return l.checkFailed()
		case <-c.wake:
			l.flushOutbox()
			l.flushHistory()
		case <-leaveC:
			// bye, then wait (bounded) for the relay to close: the others
			// see the member leave at once instead of after the grace period.
			leaveC = nil
			l.leaving = true
			c.mu.Lock()
			c.core.leave()
			c.mu.Unlock()
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
	for _, t := range []Timer{l.pingT, l.deadT, l.pauseT, l.byeT, l.checkT} {
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
		l.applyLocked(c.core.message(*f))
		c.mu.Unlock()
	case *protocol.Ack:
		now := c.clock.Now()
		c.mu.Lock()
		l.applyLocked(c.core.ack(f, now))
		c.mu.Unlock()
	case *protocol.Joined:
		c.mu.Lock()
		c.emitLocked(MemberJoined{Member: f.Member})
		c.mu.Unlock()
	case *protocol.Presence:
		c.mu.Lock()
		l.applyLocked(c.core.presence(f.Member))
		c.mu.Unlock()
	case *protocol.Left:
		c.mu.Lock()
		c.emitLocked(MemberLeft{Member: f.Member, Reason: f.Reason})
		c.mu.Unlock()
	case *protocol.Pong:
		l.onPong(f)
	case *protocol.History:
		l.onHistory(f)
	case *protocol.Error:
		if l.historyRefused(f) {
			return
		}
		now := c.clock.Now()
		c.mu.Lock()
		l.applyLocked(c.core.relayError(f, now))
		c.mu.Unlock()
	}
}

// applyLocked does what the core asked for: events and store writes (see
// Client.applyLocked), frames onto this socket, and the rate-limit pause.
// c.mu is held.
func (l *link) applyLocked(eff effects) {
	l.c.applyLocked(eff)
	for _, f := range eff.frames {
		l.sendFrame(f)
	}
	if eff.pause > 0 {
		if l.pauseT == nil {
			l.pauseT = l.c.clock.NewTimer(eff.pause)
		} else {
			l.pauseT.Reset(eff.pause)
		}
	}
}

func (l *link) onWelcome(w *protocol.Welcome) {
	c := l.c
	now := c.clock.Now()
	c.mu.Lock()
	eff, first := c.core.welcome(w)
	if !first {
		c.mu.Unlock()
		return // a relay sends one welcome per link; ignore a stray second one
	}
	l.welcomed = true
	l.welcomedAt = now
	l.heartbeat = w.Heartbeat
	l.observed = w.ObservedAddr
	l.stunPorts = slices.Clone(w.STUN)
	l.interval = time.Duration(w.Heartbeat.IntervalMS) * time.Millisecond
	l.timeout = time.Duration(w.Heartbeat.TimeoutMS) * time.Millisecond
	if l.interval <= 0 || l.timeout <= l.interval {
		l.interval, l.timeout = fallbackInterval, fallbackTimeout
	}
	c.historyServed(w)
	l.deadT = c.clock.NewTimer(l.timeout)
	l.pingT = c.clock.NewTimer(l.interval)
	l.sendPing() // measure the round trip now rather than one interval later
	c.setStateLocked(State{
		Phase:       Connected,
		ClockOffset: time.UnixMilli(w.ServerTime).Sub(now),
		LastError:   c.state.LastError,
		CloseCode:   c.state.CloseCode,
	})
	l.applyLocked(eff)
	c.mu.Unlock()
	c.log.Info("connected", "url", c.url, "room", w.Room, "member", w.You.ID,
		"recovered", w.Recovered, "seq", w.Seq, "history", len(w.History))
	l.flushOutbox()
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
	l.checkAnswered(now, p.T, rtt)
}

// flushOutbox writes every pending message not yet written on this link.
func (l *link) flushOutbox() {
	c := l.c
	now := c.clock.Now()
	c.mu.Lock()
	l.applyLocked(c.core.flush(now))
	c.mu.Unlock()
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

	c.mu.Lock()
	if code == websocket.CloseMessageTooBig {
		l.applyLocked(c.core.oversized())
	}
	relayErr := c.core.l.lastRelayErr
	c.mu.Unlock()
	if code != 0 && !protocol.ShouldReconnect(code) {
		return linkResult{outcome: outcomeStop, closeCode: code, reason: cause,
			stop: &StopError{Code: code, Reason: stopReason(code, relayErr), Relay: relayErr}}
	}
	var stable time.Duration
	if l.welcomed {
		stable = now.Sub(l.welcomedAt)
	}
	// A link that ends while a check is under way ended because of the
	// network change (after a wake the relay resets the old connection).
	atOnce := l.retryAtOnce || l.checkT != nil
	res := linkResult{outcome: outcomeRetry, reason: cause, closeCode: code, stableFor: stable, atOnce: atOnce}
	if relayErr != nil && relayErr.RetryAfterMS > 0 && !l.welcomed {
		// A hello refused for now (failed sign-ins, rooms made too fast)
		// says when to come back.
		res.notBefore = min(time.Duration(relayErr.RetryAfterMS)*time.Millisecond, maxRetryAfter)
	}
	return res
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
