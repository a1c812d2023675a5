package server

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// clientAddr is what per-address limits count by: the client's IP, or for
// IPv6 its /64, since one host usually holds a whole /64.
func clientAddr(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return host
	}
	return addrOf(ip)
}

func addrOf(ip net.IP) string {
	if v4 := ip.To4(); v4 != nil {
		return v4.String()
	}
	return (&net.IPNet{IP: ip.Mask(net.CIDRMask(64, 128)), Mask: net.CIDRMask(64, 128)}).String()
}

// proxies are the reverse proxies whose X-Forwarded-For the relay believes
// (Config.TrustedProxies). Anyone else could put any address there, so for
// everyone else the TCP peer is the client.
type proxies []netip.Prefix

// parseProxies reads Config.TrustedProxies: IP addresses or CIDR prefixes.
func parseProxies(list []string) (proxies, error) {
	var out proxies
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q is not an IP address or a CIDR prefix (e.g. 127.0.0.1 or 10.0.0.0/8)", s)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

func (ps proxies) trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// client returns the address per-address limits count for r. When the TCP
// peer is a trusted proxy, the client is the last address in
// X-Forwarded-For that is not a trusted proxy itself (the ones before it
// were written by whoever sent the request, and prove nothing).
func (ps proxies) client(r *http.Request) string {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil || len(ps) == 0 || !ps.trusted(peer.Addr()) {
		return clientAddr(r.RemoteAddr)
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop := strings.TrimSpace(hops[i])
		a, err := netip.ParseAddr(hop)
		if err != nil {
			ap, perr := netip.ParseAddrPort(hop) // some proxies write ip:port
			if perr != nil {
				break // a garbled hop: nothing before it can be placed
			}
			a = ap.Addr()
		}
		if !ps.trusted(a) {
			return addrOf(net.IP(a.Unmap().AsSlice()))
		}
	}
	return clientAddr(r.RemoteAddr)
}

// maxTrackedAddrs bounds every per-address table, so that traffic from many
// addresses costs bounded memory. A new address beyond it pushes out an
// arbitrary one (Go's map order), which at worst forgets a limit early.
const maxTrackedAddrs = 1 << 16

// addrTable is per-client-address state; the user holds mu around get.
type addrTable[E any] struct {
	mu sync.Mutex
	m  map[string]*E
}

// get returns addr's entry, creating it.
func (t *addrTable[E]) get(addr string) *E {
	e := t.m[addr]
	if e != nil {
		return e
	}
	if t.m == nil {
		t.m = map[string]*E{}
	}
	if len(t.m) >= maxTrackedAddrs {
		for k := range t.m {
			delete(t.m, k)
			break
		}
	}
	e = new(E)
	t.m[addr] = e
	return e
}

// prune forgets the entries stale reports.
func (t *addrTable[E]) prune(stale func(*E) bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, e := range t.m {
		if stale(e) {
			delete(t.m, k)
		}
	}
}

// Auth throttle timing: the first wait after the free failures, and how
// fast failures are forgiven.
const (
	authFirstBackoff = time.Second
	authHalfLife     = 10 * time.Minute
)

// authThrottle makes guessing credentials slow: each client address has a
// failure score that decays with time; once it exceeds the free failures,
// the address must wait, twice as long for each further failure (capped).
// Refusals while it waits do not add to the score: they tell the guesser
// nothing, and a legitimate client retrying behind the same address gets in
// once the wait is over.
type authThrottle struct {
	free    float64 // failures before the first wait
	maxWait time.Duration
	off     bool
	t       addrTable[authEntry]
}

type authEntry struct {
	score float64   // failures, decayed to at
	at    time.Time // when score was last updated
	until time.Time // refused until then
}

func newAuthThrottle(free int, maxWait time.Duration) *authThrottle {
	return &authThrottle{free: float64(free), maxWait: maxWait, off: free < 0}
}

func (e *authEntry) decayed(now time.Time) float64 {
	if e.at.IsZero() || !now.After(e.at) {
		return e.score
	}
	return e.score * math.Exp2(-float64(now.Sub(e.at))/float64(authHalfLife))
}

// wait says how long addr must still wait before it may try again (0: now).
func (a *authThrottle) wait(addr string, now time.Time) time.Duration {
	if a.off {
		return 0
	}
	a.t.mu.Lock()
	defer a.t.mu.Unlock()
	if e := a.t.m[addr]; e != nil && now.Before(e.until) {
		return e.until.Sub(now)
	}
	return 0
}

// fail records a wrong credential from addr and returns the wait it now
// has to sit out (0 while it has free failures left).
func (a *authThrottle) fail(addr string, now time.Time) time.Duration {
	if a.off {
		return 0
	}
	a.t.mu.Lock()
	defer a.t.mu.Unlock()
	return a.failLocked(addr, now)
}

func (a *authThrottle) failLocked(addr string, now time.Time) time.Duration {
	e := a.t.get(addr)
	e.score, e.at = e.decayed(now)+1, now
	// Rounded: failures a few seconds apart have decayed a little, and the
	// one after the free ones must still wait.
	over := e.score - a.free
	if over < 0.5 {
		return 0
	}
	d := a.maxWait
	if over < 40 { // 2^40 s is past any cap
		d = min(time.Duration(float64(authFirstBackoff)*math.Exp2(max(over-1, 0))), a.maxWait)
	}
	d = d.Round(time.Millisecond) // a trace of old failures must not add a second to Retry-After
	if until := now.Add(d); until.After(e.until) {
		e.until = until
	}
	return e.until.Sub(now)
}

// check settles a credential from addr in one hold of the lock, so that
// attempts sent together (on sockets opened before any failed) cannot all
// pass the wait before the first failure counts: while addr waits it
// returns the wait and the credential counts for nothing; otherwise a wrong
// one (right false) counts if it was a guess at all (guessed: a credential
// was given). ok reports a right credential let through.
func (a *authThrottle) check(addr string, now time.Time, right, guessed bool) (wait time.Duration, ok bool) {
	if a.off {
		return 0, right
	}
	a.t.mu.Lock()
	defer a.t.mu.Unlock()
	if e := a.t.m[addr]; e != nil && now.Before(e.until) {
		return e.until.Sub(now), false
	}
	if !right && guessed {
		a.failLocked(addr, now)
	}
	return 0, right
}

// prune forgets addresses that wait no longer and whose failures have
// decayed to less than one.
func (a *authThrottle) prune(now time.Time) {
	a.t.prune(func(e *authEntry) bool { return !now.Before(e.until) && e.decayed(now) < 1 })
}
