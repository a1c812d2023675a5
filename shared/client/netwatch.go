package client

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// A laptop that wakes from sleep, or moves from one network to another,
// usually holds a link that is dead without knowing it: the relay dropped it
// during the sleep, or the address it was bound to is gone. Left alone the
// engine would notice only after the heartbeat timeout (25 s). The network
// watcher tells every engine of the process at once, and each one checks its
// link (wake.go).
//
// One watcher serves the whole process however many engines run (the
// desktop runs one per room): it starts with the first engine that
// subscribes and stops with the last, so a program with no engine running
// pays nothing.

// NetChange is what the network watcher noticed.
type NetChange struct {
	// Woke: the computer resumed from sleep (or the process was frozen);
	// Slept says for how long, as measured.
	Woke  bool
	Slept time.Duration
	// Gone lists the addresses this computer had, on an interface that was
	// up, and has no more (removed, or their interface went down); Added
	// the ones it gained.
	Gone, Added []netip.Addr
	// Detail says what changed, in words: "198.18.1.2 gone from wlan0",
	// "routes changed", "reported by the app".
	Detail string
	// manual: Client.CheckNow asked for a check. told: its NetworkChanged
	// event was emitted already. Neither is told (again).
	manual, told bool
}

// merge folds a later change into c (an engine busy elsewhere takes both at
// once).
func (c NetChange) merge(o NetChange) NetChange {
	out := NetChange{
		Woke:   c.Woke || o.Woke,
		Slept:  c.Slept + o.Slept,
		Gone:   mergeAddrs(c.Gone, o.Gone),
		Added:  mergeAddrs(c.Added, o.Added),
		manual: c.manual && o.manual,
		told:   c.told && o.told,
	}
	switch {
	case c.Detail == "" || c.Detail == o.Detail:
		out.Detail = o.Detail
	case o.Detail == "":
		out.Detail = c.Detail
	default:
		out.Detail = c.Detail + "; " + o.Detail
	}
	return out
}

func mergeAddrs(a, b []netip.Addr) []netip.Addr {
	if len(b) == 0 {
		return a
	}
	out := slices.Concat(a, b)
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

// netSource watches the machine and calls notify for each change until ctx
// ends; it returns once it has stopped (and calls notify no more). A source
// waiting on a file closes it with context.AfterFunc, which holds no
// goroutine while it waits.
type netSource func(ctx context.Context, notify func(NetChange))

// netWatcher fans one source's changes out to the engines subscribed to it.
type netWatcher struct {
	source netSource

	mu      sync.Mutex
	subs    map[*netSub]struct{}
	running *sourceRun // nil while nobody subscribes
}

type sourceRun struct {
	stop context.CancelFunc
	done chan struct{}
}

func newNetWatcher(source netSource) *netWatcher {
	return &netWatcher{source: source, subs: make(map[*netSub]struct{})}
}

// sharedWatcher is the process's watcher: every engine that does not set
// Config.NoNetworkWatch subscribes to it for as long as its Run runs.
var sharedWatcher = newNetWatcher(systemNetSource)

// NotifyNetworkChange tells every engine of the process that watches the
// network (not Config.NoNetworkWatch) that it changed, as if the watcher
// had noticed: each one checks its link at once
// (or retries at once, if it was waiting to reconnect). An app that learns
// of a change the watcher cannot see (a platform event, a VPN it manages)
// calls it; detail says what happened, for the NetworkChanged event.
func NotifyNetworkChange(detail string) {
	sharedWatcher.notify(NetChange{Detail: cmp.Or(detail, "reported by the app")})
}

// subscribe adds a subscriber, starting the source if it is the first.
func (w *netWatcher) subscribe(s *netSub) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.subs[s] = struct{}{}
	if w.running == nil {
		ctx, cancel := context.WithCancel(context.Background())
		r := &sourceRun{stop: cancel, done: make(chan struct{})}
		w.running = r
		go func() {
			defer close(r.done)
			w.source(ctx, w.notify)
		}()
	}
}

// unsubscribe removes s; the last one out stops the source and waits for
// it, so that no goroutine of the watcher outlives its last engine.
func (w *netWatcher) unsubscribe(s *netSub) {
	w.mu.Lock()
	delete(w.subs, s)
	var r *sourceRun
	if len(w.subs) == 0 {
		r, w.running = w.running, nil
	}
	w.mu.Unlock()
	if r != nil {
		r.stop()
		<-r.done // the source may be in notify, which takes w.mu: not held here
	}
}

func (w *netWatcher) notify(ch NetChange) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for s := range w.subs {
		s.post(ch)
	}
}

// netSub is one engine's mailbox for changes: they merge while the engine
// is busy, so a burst costs one check, and posting never waits.
type netSub struct {
	ready chan struct{} // holds a token while a change waits

	mu      sync.Mutex
	pending *NetChange
}

func newNetSub() *netSub { return &netSub{ready: make(chan struct{}, 1)} }

func (s *netSub) post(ch NetChange) {
	s.mu.Lock()
	if s.pending == nil {
		s.pending = &ch
	} else {
		merged := s.pending.merge(ch)
		s.pending = &merged
	}
	s.mu.Unlock()
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// take returns what changed since the last take; ok is false if nothing did
// (the token of a change already taken).
func (s *netSub) take() (NetChange, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending == nil {
		return NetChange{}, false
	}
	ch := *s.pending
	s.pending = nil
	return ch, true
}

// ifaceSnapshot is what the watcher compares to tell a change: each usable
// address (on an interface that is up and running) with its interface, and
// on Linux a digest of the main routing table.
type ifaceSnapshot struct {
	addrs  map[netip.Addr]string // address -> interface name
	down   map[string]bool       // interfaces that exist but are not up and running
	routes string
}

// takeSnapshot reads the interfaces and their addresses. A failure gives an
// empty snapshot: the next good one then looks like a change, which costs
// one check.
func takeSnapshot() ifaceSnapshot {
	s := ifaceSnapshot{addrs: make(map[netip.Addr]string), down: make(map[string]bool)}
	ifaces, err := net.Interfaces()
	if err != nil {
		return s
	}
	for _, ifi := range ifaces {
		if ifi.Flags&net.FlagUp == 0 || ifi.Flags&net.FlagRunning == 0 {
			s.down[ifi.Name] = true
			continue
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if p, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(p.IP); ok {
					s.addrs[ip.Unmap()] = ifi.Name
				}
			}
		}
	}
	s.routes = routeDigest()
	return s
}

// diff says what changed from old to s; ok is false if nothing did.
func (s ifaceSnapshot) diff(old ifaceSnapshot) (ch NetChange, ok bool) {
	var parts []string
	for a, ifname := range old.addrs {
		if _, still := s.addrs[a]; !still {
			ch.Gone = append(ch.Gone, a)
			if s.down[ifname] {
				parts = append(parts, fmt.Sprintf("%s gone (%s is down)", a, ifname))
			} else {
				parts = append(parts, fmt.Sprintf("%s gone from %s", a, ifname))
			}
		}
	}
	for a, ifname := range s.addrs {
		if _, had := old.addrs[a]; !had {
			ch.Added = append(ch.Added, a)
			parts = append(parts, fmt.Sprintf("%s new on %s", a, ifname))
		}
	}
	slices.SortFunc(ch.Gone, netip.Addr.Compare)
	slices.SortFunc(ch.Added, netip.Addr.Compare)
	slices.Sort(parts)
	if s.routes != old.routes {
		parts = append(parts, "routes changed")
	}
	if len(parts) == 0 {
		return NetChange{}, false
	}
	ch.Detail = strings.Join(parts, "; ")
	return ch, true
}

// Sleep detection compares two clocks between looks: one that counts the
// time the computer slept (the wall clock; Linux's CLOCK_BOOTTIME) and one
// that does not (the monotonic clock). A look that comes much later than
// planned counts too: on Windows both clocks run during sleep, but the
// process did not.
const (
	// minSleep: shorter gaps are not reported (a busy machine delays a
	// timer by a fraction of that; a link survives such a nap anyway).
	minSleep = time.Second
	// sleepLookEvery is how often the portable detector looks. It bounds
	// the delay from a wake to its notice, so with the check's 1.5 s it
	// keeps "connected again within 3 s"; a look is two clock reads.
	sleepLookEvery = time.Second
)

// clockPair reads the two clocks: total counts time asleep, awake does not.
type clockPair func() (total, awake time.Duration)

// sleptBetween says how long the computer slept between two looks planned
// interval apart (0: it did not, or not long enough to matter).
func sleptBetween(prevTotal, prevAwake, total, awake, interval time.Duration) time.Duration {
	slept := (total - prevTotal) - (awake - prevAwake)
	if late := (awake - prevAwake) - interval; late > slept {
		slept = late
	}
	if slept < minSleep {
		return 0
	}
	return slept
}

// sleepTicker looks every interval on clock (the engine's kind of clock, so
// a test drives it with a fake one) and reports a sleep.
func sleepTicker(clock Clock, read clockPair, interval time.Duration) netSource {
	return func(ctx context.Context, notify func(NetChange)) {
		prevTotal, prevAwake := read()
		t := clock.NewTimer(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C():
			}
			total, awake := read()
			if slept := sleptBetween(prevTotal, prevAwake, total, awake, interval); slept > 0 {
				notify(NetChange{Woke: true, Slept: slept, Detail: "woke after " + roughly(slept)})
			}
			prevTotal, prevAwake = total, awake
			t.Reset(interval)
		}
	}
}

// wallAndMonotonic is the portable clock pair: Go's time.Now carries both
// the wall clock and a monotonic reading that stops while the computer
// sleeps (Linux, macOS).
func wallAndMonotonic() clockPair {
	start := time.Now()
	return func() (total, awake time.Duration) {
		now := time.Now()
		return now.Round(0).Sub(start.Round(0)), now.Sub(start)
	}
}

// roughly formats a sleep for a person: "3 s", "12 min", "2 h 5 min".
func roughly(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Round(time.Second)/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Round(time.Minute)/time.Minute))
	}
	d = d.Round(time.Minute)
	return fmt.Sprintf("%d h %d min", int(d/time.Hour), int(d%time.Hour/time.Minute))
}

// mergeSources runs several sources as one; the last runs on the caller's
// goroutine, so two sources cost two goroutines.
func mergeSources(sources ...netSource) netSource {
	return func(ctx context.Context, notify func(NetChange)) {
		if len(sources) == 0 {
			<-ctx.Done()
			return
		}
		var wg sync.WaitGroup
		for _, src := range sources[:len(sources)-1] {
			wg.Go(func() { src(ctx, notify) })
		}
		sources[len(sources)-1](ctx, notify)
		wg.Wait()
	}
}

// pollInterfaces compares the interfaces every interval: the portable way
// to notice a network change, where the system offers no notification the
// watcher can use without a dependency.
func pollInterfaces(every time.Duration) netSource {
	return func(ctx context.Context, notify func(NetChange)) {
		snap := takeSnapshot()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			next := takeSnapshot()
			if ch, ok := next.diff(snap); ok {
				notify(ch)
			}
			snap = next
		}
	}
}
