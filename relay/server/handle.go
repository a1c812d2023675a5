package server

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/heartline/heartline/relay/metrics"
	"github.com/heartline/heartline/shared/names"
	"github.com/heartline/heartline/shared/protocol"
)

// HandleText processes one inbound text frame on the connection's reader. It
// reports true when the reader should stop (the connection is closing).
func (c *conn) HandleText(data []byte) (stop bool) {
	f, err := protocol.DecodeClient(data)
	if err != nil {
		var fe *protocol.FrameError
		if !errors.As(err, &fe) {
			fe = &protocol.FrameError{Code: protocol.ErrBadFrame, Message: "the frame could not be read: " + err.Error()}
		}
		if fe.Close != 0 { // a hello with a field of the wrong type: counted as any refused hello
			c.s.frameCounter(c.s.framesIn, c.s.metrics.FramesIn, protocol.TypeHello).Inc()
			if c.Joined() {
				c.SendError(protocol.ErrBadFrame, alreadyJoined, "")
				return false
			}
			return c.refuse(fe.Code, fe.Message, fe.Close)
		}
		c.s.frameCounter(c.s.framesIn, c.s.metrics.FramesIn, fe.Code).Inc()
		c.Send(fe.Frame())
		return false
	}
	c.s.frameCounter(c.s.framesIn, c.s.metrics.FramesIn, f.FrameType()).Inc()
	switch f := f.(type) {
	case *protocol.Ping:
		c.Send(&protocol.Pong{T: f.T, ServerTime: c.s.cfg.now().UnixMilli()})
	case *protocol.Hello:
		return c.handleHello(f)
	case *protocol.Send:
		c.handleSend(f)
	case *protocol.HistoryRequest:
		c.handleHistory(f)
	case *protocol.Bye:
		r, m := c.roomMember()
		if r != nil {
			r.bye(m, c)
		}
		c.Close(protocol.CloseNormal, "bye", false, "")
		return true
	}
	return false
}

// refuse sends an error frame (when code is set) and closes with closeCode.
func (c *conn) refuse(code, msg string, closeCode int) bool {
	if code != "" {
		c.SendError(code, msg, "")
	}
	text := msg
	if len(text) > 120 { // a close reason holds at most 123 bytes
		text = protocol.CloseText(closeCode)
	}
	c.Close(closeCode, text, false, metrics.EvictRefused)
	c.s.log.Info("hello refused", "remote", c.Remote(), "code", closeCode, "why", msg)
	return true
}

const alreadyJoined = "this connection has already joined a room; open a new connection for another room"

func (c *conn) handleHello(h *protocol.Hello) bool {
	if c.Joined() {
		c.SendError(protocol.ErrBadFrame, alreadyJoined, "")
		return false
	}
	// A throttled address is refused before its credentials are looked at,
	// so a guess made now tells nothing, right or wrong.
	if d := c.s.authThrottle.wait(c.ip, c.s.cfg.now()); d > 0 {
		return c.throttled(d)
	}
	if err := h.Validate(); err != nil {
		var fe *protocol.FrameError
		if errors.As(err, &fe) {
			closeCode := fe.Close
			if closeCode == 0 {
				closeCode = protocol.CloseHelloRefused
			}
			return c.refuse(fe.Code, fe.Message, closeCode)
		}
		return c.refuse(protocol.ErrBadFrame, err.Error(), protocol.CloseHelloRefused)
	}
	name, err := names.Normalize(h.Name)
	if err != nil {
		var fe *protocol.FrameError
		if errors.As(err, &fe) {
			return c.refuse(fe.Code, fe.Message, protocol.CloseHelloRefused)
		}
		return c.refuse(protocol.ErrBadName, err.Error(), protocol.CloseHelloRefused)
	}
	h.Name = name
	if tok := c.s.cfg.Token; tok != "" {
		right := subtle.ConstantTimeCompare([]byte(h.Token), []byte(tok)) == 1
		// A missing token guesses nothing and is not counted.
		wait, ok := c.s.authThrottle.check(c.ip, c.s.cfg.now(), right, h.Token != "")
		switch {
		case wait > 0:
			return c.throttled(wait)
		case !ok:
			if h.Token != "" {
				c.s.metrics.AuthFailures.WithLabelValues(metrics.AuthToken).Inc()
				if d := c.s.authThrottle.wait(c.ip, c.s.cfg.now()); d > 0 {
					c.s.log.Warn("client address throttled after failed authentications", "addr", c.ip, "kind", metrics.AuthToken, "wait", d)
				}
			}
			return c.refuse("", "unauthorized: this relay needs the right token", protocol.CloseUnauthorized)
		}
	}
	if msg := c.s.checkAvatar(h.Avatar); msg != "" {
		return c.refuse(protocol.ErrBadAvatar, msg, protocol.CloseHelloRefused)
	}
	for range 3 {
		r, err := c.s.getRoom(h.Room, c.ip)
		var quota *roomRefusal
		if errors.As(err, &quota) {
			if quota.retry > 0 {
				ms := max((quota.retry + time.Millisecond - 1).Milliseconds(), 1)
				c.Send(&protocol.Error{Code: quota.code, RetryAfterMS: ms, Message: fmt.Sprintf("%s (in %d ms)", quota.msg, ms)})
				return c.refuse("", quota.msg, quota.close)
			}
			return c.refuse(quota.code, quota.msg, quota.close)
		}
		if err != nil {
			c.s.log.Error("cannot open room", "room", h.Room, "err", err)
			c.SendError(protocol.ErrInternal, "the relay cannot open this room right now; try again later", "")
			c.Close(protocol.CloseProtocolError, "relay error: try again later", false, "")
			return true
		}
		res := r.join(c, h)
		if res.retry {
			continue
		}
		if res.refused {
			// A name taken is not counted as a failed sign-in: a member
			// is found by its key whatever the name, so refusing the name
			// reveals nothing about keys, and honest people pick taken
			// (or look-alike) names.
			return c.refuse(res.code, res.msg, res.close)
		}
		return false
	}
	c.SendError(protocol.ErrInternal, "the relay is busy with this room; try again", "")
	c.Close(protocol.CloseProtocolError, "relay busy: try again", false, "")
	return true
}

// throttled refuses a hello from an address that must wait after failed
// authentications: rate_limited with the wait, and a close the client
// reconnects after by itself (the right credentials work once the wait is over).
func (c *conn) throttled(d time.Duration) bool {
	c.s.metrics.AuthThrottled.WithLabelValues(metrics.ThrottledHello).Inc()
	ms := max((d + time.Millisecond - 1).Milliseconds(), 1)
	c.Send(&protocol.Error{Code: protocol.ErrRateLimited, RetryAfterMS: ms,
		Message: fmt.Sprintf("too many failed sign-ins from your address: wait %s, then connect again", max(d.Round(time.Second), time.Second))})
	c.Close(protocol.CloseThrottled, "too many failed sign-ins from your address: wait, then reconnect", false, metrics.EvictRefused)
	return true
}

// authFailed counts a wrong credential from addr against its auth throttle.
func (s *Server) authFailed(addr, kind string) {
	s.metrics.AuthFailures.WithLabelValues(kind).Inc()
	if d := s.authThrottle.fail(addr, s.cfg.now()); d > 0 {
		s.log.Warn("client address throttled after failed authentications", "addr", addr, "kind", kind, "wait", d)
	}
}

// checkAvatar returns why an avatar reference cannot be used, or "".
func (s *Server) checkAvatar(a string) string {
	kind, value, err := protocol.ParseAvatar(a)
	if err != nil {
		return err.Error()
	}
	switch kind {
	case "builtin":
		if !s.builtin[value] {
			return fmt.Sprintf("there is no built-in avatar %q; GET /v1/avatars lists them", value)
		}
	case "sha256":
		if s.avatars == nil || !s.hasAvatar(value) {
			return "this relay has no uploaded picture " + a + "; upload it with POST /v1/avatars first"
		}
	}
	return ""
}

func (c *conn) handleSend(f *protocol.Send) {
	r, m := c.roomMember()
	if r == nil {
		c.SendError(protocol.ErrNotJoined, "send a hello and wait for the welcome before sending messages", f.ID)
		return
	}
	if err := protocol.ValidateMsgID(f.ID); err != nil {
		var fe *protocol.FrameError
		msg := err.Error()
		if errors.As(err, &fe) {
			msg = fe.Message
		}
		c.SendError(protocol.ErrBadFrame, msg, f.ID)
		return
	}
	if strings.TrimSpace(f.Text) == "" {
		c.SendError(protocol.ErrBadFrame, "the message is empty: type some text before sending", f.ID)
		return
	}
	if n := protocol.TextLen(f.Text); n > c.s.cfg.MaxText {
		c.SendError(protocol.ErrTooLong, fmt.Sprintf("the message has %d characters; this relay accepts at most %d", n, c.s.cfg.MaxText), f.ID)
		return
	}
	now := c.s.cfg.now()
	if now.Before(c.blockedUntil) {
		c.rateLimited(f.ID, c.blockedUntil.Sub(now))
		return
	}
	r.send(m, c, f, now)
}

// allow takes one message from the connection's budget (spent, which the
// caller cancels if it refuses the message after all), or returns how long
// to wait; a refused message consumes nothing.
func (c *conn) allow(now time.Time) (spent *rate.Reservation, wait time.Duration) {
	if c.limiter == nil {
		c.limiter = rate.NewLimiter(rate.Limit(c.s.cfg.Rate), c.s.cfg.Burst)
	}
	return reserve(c.limiter, now)
}

// reserve takes one token from l, or returns how long to wait for it; a
// refused request consumes nothing.
func reserve(l *rate.Limiter, now time.Time) (spent *rate.Reservation, wait time.Duration) {
	res := l.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return nil, d
	}
	return res, 0
}

// retryMS is d as a retry_after_ms: whole milliseconds, rounded up, at least 1.
func retryMS(d time.Duration) int64 {
	return max(1, (d + time.Millisecond - 1).Milliseconds())
}

// rateLimited refuses a message and refuses every later one until d has
// passed, so a client that resends in order keeps its order.
func (c *conn) rateLimited(id string, d time.Duration) {
	now := c.s.cfg.now()
	if until := now.Add(d); until.After(c.blockedUntil) {
		c.blockedUntil = until
	}
	ms := retryMS(d)
	c.Send(&protocol.Error{Code: protocol.ErrRateLimited, ID: id, RetryAfterMS: ms,
		Message: fmt.Sprintf("too many messages: wait %d ms, then send again", ms)})
}
