package server

import (
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/heartline/heartline/relay/internal/wsconn"
	"github.com/heartline/heartline/relay/metrics"
	"github.com/heartline/heartline/shared/protocol"
)

// sweeper is the relay's one timer: every SweepInterval it closes silent
// connections (4000), connections without a hello (4003), ends grace
// periods and forgets idle avatar-upload limiters and auth-failure records.
// No connection has a timer of its own.
func (s *Server) sweeper() {
	defer s.bgWG.Done()
	t := time.NewTicker(s.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			s.sweep(now)
		}
	}
}

func (s *Server) sweep(now time.Time) {
	timeout := s.cfg.HeartbeatTimeout.Nanoseconds()
	var silent, noHello []*conn
	nowNano := now.UnixNano()
	helloTimeout := s.cfg.HelloTimeout.Nanoseconds()
	s.connsMu.Lock()
	s.conns.Each(func(c *conn, l *wsconn.Liveness) {
		flags := l.Flags.Load()
		// A reader busy with a frame is alive: the relay's own delay must
		// not count as the client's silence.
		switch {
		case flags&(wsconn.Closed|wsconn.Busy) != 0:
		case flags&wsconn.Joined == 0:
			if nowNano-l.Opened >= helloTimeout {
				noHello = append(noHello, c)
			}
		case nowNano-l.LastSeen.Load() >= timeout:
			silent = append(silent, c)
		}
	})
	s.connsMu.Unlock()

	for _, c := range noHello {
		c.Evict(protocol.CloseProtocolError, fmt.Sprintf("no hello within %v", s.cfg.HelloTimeout), protocol.ReasonClosed, metrics.EvictHelloTimeout)
	}
	for _, c := range silent {
		s.metrics.HeartbeatTimeouts.Inc()
		c.Evict(protocol.CloseHeartbeatTimeout, fmt.Sprintf("heartbeat timeout: nothing received for %v", s.cfg.HeartbeatTimeout),
			protocol.ReasonTimeout, metrics.EvictHeartbeat)
	}

	s.roomsMu.Lock()
	rooms := make([]*room, 0, len(s.rooms))
	for _, r := range s.rooms {
		rooms = append(rooms, r)
	}
	s.roomsMu.Unlock()
	for _, r := range rooms {
		select {
		case <-r.ready:
			r.sweep(now)
		default: // still being created
		}
	}
	s.avatarLimits.prune(now)
	s.roomCreates.prune(now)
	s.authThrottle.prune(s.cfg.now())
}

// ipLimiter rate-limits by client address (avatar uploads, new rooms).
type ipLimiter struct {
	limit rate.Limit
	burst int
	t     addrTable[ipEntry]
}

type ipEntry struct {
	lim  *rate.Limiter
	seen time.Time
}

func newIPLimiter(perSecond float64, burst int) *ipLimiter {
	return &ipLimiter{limit: rate.Limit(perSecond), burst: burst}
}

// allow takes one token for ip, or says how long to wait.
func (l *ipLimiter) allow(ip string, now time.Time) (time.Duration, bool) {
	l.t.mu.Lock()
	defer l.t.mu.Unlock()
	e := l.t.get(ip)
	if e.lim == nil {
		e.lim = rate.NewLimiter(l.limit, l.burst)
	}
	e.seen = now
	if e.lim.AllowN(now, 1) {
		return 0, true
	}
	r := e.lim.ReserveN(now, 1)
	d := r.DelayFrom(now)
	r.CancelAt(now)
	return d, false
}

// prune forgets addresses whose bucket has refilled (they would start full anyway).
func (l *ipLimiter) prune(now time.Time) {
	// A day bounds it: a rate so small that its bucket refills more slowly
	// would overflow the Duration.
	full := time.Duration(min(float64(l.burst)/float64(l.limit), 86400) * float64(time.Second))
	l.t.prune(func(e *ipEntry) bool { return now.Sub(e.seen) > full })
}

// logThrottle lets a condition that repeats with every message be logged
// at most once every logThrottleEvery.
type logThrottle struct{ next atomic.Int64 }

const logThrottleEvery = 10 * time.Second

// logDue reports whether to log now.
func (l *logThrottle) logDue(now time.Time) bool {
	next := l.next.Load()
	return now.UnixNano() >= next && l.next.CompareAndSwap(next, now.Add(logThrottleEvery).UnixNano())
}
