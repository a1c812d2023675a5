package client

import (
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// watcherGoroutines counts the goroutines running a network watcher's
// code (other tests' goroutines may still be winding down, so the total
// count would not do).
func watcherGoroutines() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		for _, fn := range []string{"client.(*netWatcher)", "client.mergeSources", "client.openNetlinkWatch",
			"client.openResumeWatch", "client.sleepTicker", "client.pollInterfaces", "client.(*quietSource)"} {
			if strings.Contains(g, fn) {
				n++
				break
			}
		}
	}
	return n
}

// One source serves every engine: twenty subscribers start it once, on one
// goroutine; the last one out stops it, and the next one in starts it
// again.
func TestNetWatcherOneSourceForAllEngines(t *testing.T) {
	var src quietSource
	w := newNetWatcher(src.run)
	subs := make([]*netSub, 20)
	for i := range subs {
		subs[i] = newNetSub()
		w.subscribe(subs[i])
	}
	waitFor(t, "the source", func() bool { return src.running.Load() == 1 })
	if got := watcherGoroutines(); got != 1 {
		t.Fatalf("20 subscribers cost %d goroutines, want 1", got)
	}

	w.notify(NetChange{Gone: []netip.Addr{netip.MustParseAddr("198.18.1.2")}, Detail: "198.18.1.2 gone from wlan0"})
	w.notify(NetChange{Woke: true, Slept: time.Minute, Detail: "woke after 1 min"})
	for i, s := range subs {
		<-s.ready
		ch, ok := s.take()
		if !ok || !ch.Woke || ch.Slept != time.Minute || len(ch.Gone) != 1 ||
			ch.Detail != "198.18.1.2 gone from wlan0; woke after 1 min" {
			t.Fatalf("subscriber %d took %+v (%v): both changes, merged", i, ch, ok)
		}
		if _, again := s.take(); again {
			t.Fatal("a change taken twice")
		}
	}

	for _, s := range subs[:19] {
		w.unsubscribe(s)
	}
	if src.running.Load() != 1 {
		t.Fatal("the source stopped while an engine still listens")
	}
	w.unsubscribe(subs[19]) // returns once the source has returned
	if src.running.Load() != 0 {
		t.Fatal("the source still runs after the last engine left")
	}
	waitFor(t, "no watcher goroutine", func() bool { return watcherGoroutines() == 0 })
	w.subscribe(subs[0])
	waitFor(t, "the source again", func() bool { return src.running.Load() == 1 })
	w.unsubscribe(subs[0])
	if src.starts.Load() != 2 {
		t.Fatalf("source started %d times, want 2", src.starts.Load())
	}
}

// The machine's own watcher (rtnetlink and a timerfd on Linux) is cheap at
// rest and leaves nothing behind: two goroutines however many engines
// (parked in the netpoller on Linux), none after the last.
func TestSystemWatcherIdleCost(t *testing.T) {
	w := newNetWatcher(systemNetSource)
	subs := make([]*netSub, 20)
	for i := range subs {
		subs[i] = newNetSub()
		w.subscribe(subs[i])
	}
	waitFor(t, "the watcher's two goroutines", func() bool { return watcherGoroutines() == 2 })
	for _, s := range subs {
		w.unsubscribe(s)
	}
	// unsubscribe returned once the sources did; their goroutines end now.
	waitFor(t, "no watcher goroutine", func() bool { return watcherGoroutines() == 0 })
}

func TestSnapshotDiff(t *testing.T) {
	a := netip.MustParseAddr
	old := ifaceSnapshot{
		addrs:  map[netip.Addr]string{a("127.0.0.1"): "lo", a("198.18.1.2"): "wlan0", a("fe80::1"): "wlan0", a("10.0.0.7"): "eth0"},
		down:   map[string]bool{"usb0": true},
		routes: "default via 198.18.1.1",
	}
	if _, changed := old.diff(old); changed {
		t.Fatal("a snapshot differs from itself")
	}
	next := ifaceSnapshot{
		addrs:  map[netip.Addr]string{a("127.0.0.1"): "lo", a("10.0.0.7"): "eth0", a("172.20.10.2"): "usb0"},
		down:   map[string]bool{"wlan0": true},
		routes: "default via 172.20.10.1",
	}
	ch, changed := next.diff(old)
	if !changed {
		t.Fatal("no change seen")
	}
	if !slices.Equal(ch.Gone, []netip.Addr{a("198.18.1.2"), a("fe80::1")}) || !slices.Equal(ch.Added, []netip.Addr{a("172.20.10.2")}) {
		t.Fatalf("gone %v, added %v", ch.Gone, ch.Added)
	}
	if want := "172.20.10.2 new on usb0; 198.18.1.2 gone (wlan0 is down); fe80::1 gone (wlan0 is down); routes changed"; ch.Detail != want {
		t.Fatalf("detail %q, want %q", ch.Detail, want)
	}
	// A route change alone is a change (the path moved, the addresses did not).
	routed := old
	routed.routes = "default via 198.18.1.254"
	if ch, changed := routed.diff(old); !changed || len(ch.Gone)+len(ch.Added) != 0 || ch.Detail != "routes changed" {
		t.Fatalf("route change: %+v %v", ch, changed)
	}
}

func TestSleptBetween(t *testing.T) {
	s := time.Second
	for _, c := range []struct {
		name                               string
		prevTotal, prevAwake, total, awake time.Duration
		want                               time.Duration
	}{
		{"awake all along", 0, 0, s, s, 0},
		{"a timer late by a busy machine", 0, 0, 1300 * time.Millisecond, 1300 * time.Millisecond, 0},
		{"suspended: the monotonic clock stood still", 10 * s, 10 * s, 11*s + time.Hour, 11 * s, time.Hour},
		{"a clock that runs in sleep (Windows): the look came late", 10 * s, 10 * s, 10*s + time.Hour, 10*s + time.Hour, time.Hour - s},
		{"a nap under the threshold", 0, 0, 1900 * time.Millisecond, s, 0},
	} {
		if got := sleptBetween(c.prevTotal, c.prevAwake, c.total, c.awake, s); got != c.want {
			t.Errorf("%s: slept %v, want %v", c.name, got, c.want)
		}
	}
}

// What the watcher does once per burst of rtnetlink messages (and every
// 2 s where it polls): read the interfaces, their addresses and (Linux)
// the main routing table.
func BenchmarkTakeSnapshot(b *testing.B) {
	for b.Loop() {
		takeSnapshot()
	}
}
