package client

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"
)

// What the engine does when the computer wakes from sleep or its network
// changes (netwatch.go tells it), so that a link killed meanwhile is made
// again within seconds instead of after the heartbeat timeout:
//
//   - connected, on an address the computer no longer has: the link is
//     dead; drop it and reconnect at once.
//   - connected otherwise: check the link, a ping that must be answered
//     within CheckTimeout (1.5 s); no answer, drop it and reconnect at once.
//   - waiting to reconnect: try now.
//   - dialing or waiting for the welcome: let the attempt finish, and if it
//     fails retry at once (a dial slower than CheckTimeout is abandoned).
//
// "At once" skips only the backoff's wait; a relay's own "come back later"
// (Retry-After) still holds.

// defaultCheckTimeout: a relay answers a ping within a round trip; 1.5 s
// leaves room for a slow mobile link and still keeps "connected again
// within 3 s" with the reconnect that follows.
const defaultCheckTimeout = 1500 * time.Millisecond

// CheckNow checks the link at once, as the engine does after a network
// change: connected, it pings the relay and reports a LinkChecked (and
// reconnects at once if the relay does not answer within CheckTimeout);
// waiting to reconnect, it tries now. While connecting, or when Run is not
// running, it does nothing. A "Check connection" button or command calls
// it.
func (c *Client) CheckNow() {
	c.mu.Lock()
	running := c.started && !c.finished
	c.mu.Unlock()
	if running {
		c.net.post(NetChange{manual: true, Detail: "asked"})
	}
}

// takeNetChange takes what the watcher posted and tells the person (not
// for CheckNow). ok is false for a token whose change was already taken.
func (c *Client) takeNetChange() (NetChange, bool) {
	ch, ok := c.net.take()
	if !ok {
		return ch, false
	}
	if !ch.manual && !ch.told {
		c.log.Info("network changed", "detail", ch.Detail, "woke", ch.Woke, "slept", ch.Slept)
		c.mu.Lock()
		c.emitLocked(NetworkChanged{Change: ch})
		c.mu.Unlock()
	}
	return ch, true
}

// onNetChange handles a change while the link is open; done means the
// link is over (res says how).
func (l *link) onNetChange() (res linkResult, done bool) {
	ch, ok := l.c.takeNetChange()
	if !ok || l.leaving {
		return res, false // leaving: the link ends within byeWait anyway
	}
	if ip, ok := l.localIP(); ok && slices.Contains(ch.Gone, ip) {
		cause := fmt.Sprintf("this computer no longer has the address %s the link was using (%s)", ip, ch.Detail)
		if l.welcomed {
			l.emitChecked(LinkChecked{Cause: cause})
		}
		l.retryAtOnce = true
		return l.dropped(cause, 0, DetectedAddressGone), true
	}
	if !l.welcomed {
		if !ch.manual {
			l.retryAtOnce = true // if the hello fails now, it was the old network
		}
		return res, false
	}
	l.startCheck(ch.manual)
	return res, false
}

// localIP is the address the link's socket is bound to, if it is an IP
// socket.
func (l *link) localIP() (netip.Addr, bool) {
	a, ok := l.conn.LocalAddr().(*net.TCPAddr)
	if !ok {
		return netip.Addr{}, false
	}
	ip, ok := netip.AddrFromSlice(a.IP)
	return ip.Unmap(), ok
}

// startCheck pings the relay now; its pong (onPong) or the check timer
// decides. A check already under way is not restarted: its deadline stands.
func (l *link) startCheck(manual bool) {
	if l.checkT != nil {
		return
	}
	l.checkManual = manual
	l.checkSince = l.c.clock.Now()
	l.sendPing()
	l.checkT = l.c.clock.NewTimer(l.c.cfg.CheckTimeout)
}

// checkAnswered ends the check if pong answers a ping sent since it began.
func (l *link) checkAnswered(now time.Time, pingT int64, rtt time.Duration) {
	if l.checkT == nil || pingT < l.checkSince.UnixMilli() {
		return
	}
	l.checkT.Stop()
	l.checkT = nil
	l.emitChecked(LinkChecked{Alive: true, RTT: rtt, Took: now.Sub(l.checkSince)})
}

// checkFailed: no answer in time. The link is dead (or too slow to use);
// the engine makes a new one at once.
func (l *link) checkFailed() linkResult {
	l.checkT = nil
	why := "after the network changed"
	if l.checkManual {
		why = "when asked"
	}
	cause := fmt.Sprintf("no answer from the relay within %s to a check %s", seconds(l.c.cfg.CheckTimeout), why)
	l.emitChecked(LinkChecked{Took: l.c.clock.Now().Sub(l.checkSince), Cause: cause})
	l.retryAtOnce = true
	return l.dropped(cause, 0, DetectedCheck)
}

func (l *link) emitChecked(e LinkChecked) {
	l.c.mu.Lock()
	l.c.emitLocked(e)
	l.c.mu.Unlock()
}
