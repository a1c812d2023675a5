package stunsrv

import (
	"container/list"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// sourceLimiter keeps one token bucket per source network and a global
// bucket on top. The map is bounded: when it is full the least recently seen
// source is forgotten, so a flood of spoofed source addresses costs a fixed
// amount of memory. Forgetting a source hands it a fresh bucket, which is why
// the global bucket exists: it caps what the responder sends in total, however
// many sources a flood pretends to come from.
type sourceLimiter struct {
	mu      sync.Mutex
	perRate rate.Limit
	burst   int
	max     int
	byKey   map[netip.Addr]*list.Element
	lru     *list.List // front = most recently seen
	global  *rate.Limiter
}

type sourceEntry struct {
	key netip.Addr
	lim *rate.Limiter
}

func newSourceLimiter(perSec float64, burst, maxSources int, globalPerSec float64, globalBurst int) *sourceLimiter {
	return &sourceLimiter{
		perRate: rate.Limit(perSec),
		burst:   burst,
		max:     maxSources,
		byKey:   make(map[netip.Addr]*list.Element, 64),
		lru:     list.New(),
		global:  rate.NewLimiter(rate.Limit(globalPerSec), globalBurst),
	}
}

// sourceKey groups IPv6 sources by /64: one host usually owns a whole /64,
// so per-address buckets would not limit it at all.
func sourceKey(ip netip.Addr) netip.Addr {
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.Addr()
	}
	return ip
}

// allow reports whether a reply to ip may be sent at now.
func (l *sourceLimiter) allow(ip netip.Addr, now time.Time) bool {
	key := sourceKey(ip)
	l.mu.Lock()
	defer l.mu.Unlock()
	var e *sourceEntry
	if el, ok := l.byKey[key]; ok {
		l.lru.MoveToFront(el)
		e = el.Value.(*sourceEntry)
	} else {
		if l.lru.Len() >= l.max {
			oldest := l.lru.Back()
			l.lru.Remove(oldest)
			delete(l.byKey, oldest.Value.(*sourceEntry).key)
		}
		e = &sourceEntry{key: key, lim: rate.NewLimiter(l.perRate, l.burst)}
		l.byKey[key] = l.lru.PushFront(e)
	}
	if !e.lim.AllowN(now, 1) {
		return false
	}
	return l.global.AllowN(now, 1)
}

// tracked returns how many sources the limiter currently remembers.
func (l *sourceLimiter) tracked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len()
}
