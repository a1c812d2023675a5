package client

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heartline/heartline/shared/protocol"
)

// wakeBudget is the requirement: connected and resumed within 3 s of a
// wake or a network change.
const wakeBudget = 3 * time.Second

// quietSource is a network source that reports nothing by itself (a test
// posts changes with the watcher's notify) and counts its starts.
type quietSource struct{ starts, running atomic.Int32 }

func (q *quietSource) run(ctx context.Context, notify func(NetChange)) {
	q.starts.Add(1)
	q.running.Add(1)
	defer q.running.Add(-1)
	<-ctx.Done()
}

func isEvent[E Event](ev Event) bool { _, ok := ev.(E); return ok }

func lastOf[E Event](t *testing.T, evs []Event) E {
	t.Helper()
	for i := len(evs) - 1; i >= 0; i-- {
		if e, ok := evs[i].(E); ok {
			return e
		}
	}
	var zero E
	t.Fatalf("no %T among %d events", zero, len(evs))
	return zero
}

func countOf[E Event](evs []Event) int {
	n := 0
	for _, ev := range evs {
		if isEvent[E](ev) {
			n++
		}
	}
	return n
}

// The laptop sleeps ten minutes while connected; the relay has long dropped
// the link. On the fake clock, with the engine's own sleep detector: the
// wake is noticed within a look (1 s), the check goes unanswered for 1.5 s,
// and the reconnect starts at once (the clock does not move again) and
// resumes: connected within the 3 s budget, what was said meanwhile
// delivered once, what was typed meanwhile sent once.
func TestWakeFromSleepReconnectsWithinBudget(t *testing.T) {
	clk := newFakeClock()
	watcher := newNetWatcher(sleepTicker(clk, clk.clocks, sleepLookEvery))
	relay := newScriptedRelay(t)
	c, err := New(Config{URL: relay.addr, Room: "lobby", Name: "ann", Key: testKey, Clock: clk,
		Rand: randSeq(0.9), netWatcher: watcher}) // a backoff wait would be 450 ms: the clock never gives it
	if err != nil {
		t.Fatal(err)
	}
	col := collect(t, c)
	runClient(t, c)
	p := relay.accept()
	p.send(welcome("E", 2, false, msg(1, bob, "a"), msg(2, bob, "b")))
	col.until("connected", isPhase(Connected))
	p.expectPing() // the one after the welcome
	waitFor(t, "the sleep detector's look", func() bool { return hasTimerAt(clk, clk.start.Add(sleepLookEvery)) })

	clk.Sleep(10 * time.Minute)
	woke := clk.Now()
	id, err := c.Send("typed as the lid opened")
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(sleepLookEvery) // the first look after the wake
	evs := col.until("network changed", isEvent[NetworkChanged])
	nc := lastOf[NetworkChanged](t, evs)
	if !nc.Change.Woke || nc.Change.Slept != 10*time.Minute || nc.Text() != "Back from sleep, checking the link…" {
		t.Fatalf("NetworkChanged %+v (%q)", nc.Change, nc.Text())
	}
	check := p.expectPing()
	if check != clk.Now().UnixMilli() {
		t.Fatalf("check ping t=%d, want now %d", check, clk.Now().UnixMilli())
	}
	// The relay is not there any more: no pong.
	waitFor(t, "the check's timer", func() bool { return hasTimerAt(clk, clk.Now().Add(defaultCheckTimeout)) })
	clk.Advance(defaultCheckTimeout)
	evs = col.until("the drop", isEvent[LinkDropped])
	checked := lastOf[LinkChecked](t, evs)
	drop := lastOf[LinkDropped](t, evs).Drop
	if checked.Alive || checked.Took != defaultCheckTimeout || drop.Detected != DetectedCheck ||
		drop.Cause != "no answer from the relay within 1.5 s to a check after the network changed" {
		t.Fatalf("checked %+v, drop %q (%s)", checked, drop.Cause, drop.Detected)
	}
	evs = col.until("reconnecting", isPhase(Reconnecting))
	if s := lastOf[StateChanged](t, evs).State; !s.NextTry.Equal(clk.Now()) {
		t.Fatalf("next try at %v, want now (%v): no backoff wait after a failed check", s.NextTry, clk.Now())
	}

	p2 := relay.accept() // with the clock standing still
	if p2.hello.Resume == nil || *p2.hello.Resume != (protocol.Resume{Epoch: "E", LastSeq: 2}) {
		t.Fatalf("hello resume %+v, want E/2", p2.hello.Resume)
	}
	p2.send(welcome("E", 3, true, msg(3, bob, "said while you slept")))
	evs = col.until("connected again", isPhase(Connected))
	took := clk.Now().Sub(woke)
	t.Logf("wake -> connected and resumed: %v on the engine's clock (look %v + check %v)", took, sleepLookEvery, defaultCheckTimeout)
	if took > wakeBudget {
		t.Fatalf("connected %v after the wake, budget %v", took, wakeBudget)
	}
	if sent := p2.expectMsg(); sent.ID != id {
		t.Fatalf("resent %q, want the message typed on wake", sent.ID)
	}
	p2.send(&protocol.Ack{ID: id, Seq: 4, TS: 4})
	evs = append(evs, col.until("own message", func(ev Event) bool { m, ok := ev.(MessageReceived); return ok && m.Msg.ID == id })...)
	if got := receivedSeqs(evs); !slices.Equal(got, []uint64{3, 4}) {
		t.Fatalf("after the wake delivered %v, want [3 4] once each", got)
	}
	if rp := c.ResumePoint(); rp != (ResumePoint{"E", 4}) {
		t.Fatalf("resume point %+v", rp)
	}
}

// A wake after which the relay still answers keeps the link: one check,
// answered, no reconnect.
func TestWakeWithLiveLinkKeepsIt(t *testing.T) {
	clk := newFakeClock()
	watcher := newNetWatcher(sleepTicker(clk, clk.clocks, sleepLookEvery))
	relay := newScriptedRelay(t)
	c, err := New(Config{URL: relay.addr, Room: "lobby", Name: "ann", Key: testKey, Clock: clk, netWatcher: watcher})
	if err != nil {
		t.Fatal(err)
	}
	col := collect(t, c)
	runClient(t, c)
	p := relay.accept()
	p.send(welcome("E", 0, false))
	col.until("connected", isPhase(Connected))
	p.expectPing()
	waitFor(t, "the sleep detector's look", func() bool { return hasTimerAt(clk, clk.start.Add(sleepLookEvery)) })

	clk.Sleep(40 * time.Second)
	clk.Advance(sleepLookEvery)
	check := p.expectPing()
	clk.Advance(30 * time.Millisecond)
	p.send(&protocol.Pong{T: check, ServerTime: check})
	evs := col.until("the check's answer", isEvent[LinkChecked])
	if got := lastOf[LinkChecked](t, evs); !got.Alive || got.RTT != 30*time.Millisecond || got.Took != 30*time.Millisecond {
		t.Fatalf("LinkChecked %+v", got)
	}
	if n := countOf[LinkDropped](evs); n != 0 || c.State().Phase != Connected {
		t.Fatalf("%d drops, state %v: a live link was given up", n, c.State().Phase)
	}
	// The check timer is gone with its answer: nothing fires later.
	clk.Advance(defaultCheckTimeout)
	p.send(&protocol.Message{Seq: 1, ID: "b1", From: bob, Text: "still here"})
	evs = col.until("seq 1", func(ev Event) bool { m, ok := ev.(MessageReceived); return ok && m.Msg.Seq == 1 })
	if n := countOf[LinkDropped](evs); n != 0 {
		t.Fatal("the answered check dropped the link later")
	}
}

// Moving to another network takes away the address the link was bound to:
// the link is dead, so the engine reconnects without checking or waiting
// (the clock never moves).
func TestAddressGoneReconnectsAtOnce(t *testing.T) {
	clk := newFakeClock()
	var src quietSource
	watcher := newNetWatcher(src.run)
	relay := newScriptedRelay(t)
	c, err := New(Config{URL: relay.addr, Room: "lobby", Name: "ann", Key: testKey, Clock: clk,
		Rand: randSeq(0.9), netWatcher: watcher})
	if err != nil {
		t.Fatal(err)
	}
	col := collect(t, c)
	runClient(t, c)
	p := relay.accept()
	p.send(welcome("E", 5, false))
	col.until("connected", isPhase(Connected))

	// An address the link does not use changes nothing but a check.
	watcher.notify(NetChange{Gone: []netip.Addr{netip.MustParseAddr("198.18.9.9")}, Detail: "198.18.9.9 gone from eth1"})
	col.until("network changed", isEvent[NetworkChanged])
	p.expectPing()

	watcher.notify(NetChange{
		Gone:   []netip.Addr{netip.MustParseAddr("127.0.0.1")},
		Added:  []netip.Addr{netip.MustParseAddr("198.18.2.2")},
		Detail: "127.0.0.1 gone from lo; 198.18.2.2 new on usb0",
	})
	evs := col.until("the drop", isEvent[LinkDropped])
	drop := lastOf[LinkDropped](t, evs).Drop
	if drop.Detected != DetectedAddressGone ||
		drop.Cause != "this computer no longer has the address 127.0.0.1 the link was using (127.0.0.1 gone from lo; 198.18.2.2 new on usb0)" {
		t.Fatalf("drop %q (%s)", drop.Cause, drop.Detected)
	}
	if checked := lastOf[LinkChecked](t, evs); checked.Alive || checked.Cause != drop.Cause {
		t.Fatalf("LinkChecked %+v", checked)
	}
	p2 := relay.accept()
	if p2.hello.Resume == nil || p2.hello.Resume.LastSeq != 5 {
		t.Fatalf("hello resume %+v", p2.hello.Resume)
	}
	p2.send(welcome("E", 5, true))
	col.until("connected again", isPhase(Connected))
	if moved := clk.Now().Sub(clk.start); moved != 0 {
		t.Fatalf("the clock moved %v: the reconnect waited", moved)
	}
}

// Waiting out a long backoff when the network changes: the engine tries
// at once, on the fake clock without moving it.
func TestNetworkChangeEndsTheBackoffWait(t *testing.T) {
	clk := newFakeClock()
	var src quietSource
	watcher := newNetWatcher(src.run)
	c, err := New(Config{URL: closedPort(t), Room: "lobby", Name: "ann", Key: testKey, Clock: clk,
		Rand: randSeq(0.999), netWatcher: watcher})
	if err != nil {
		t.Fatal(err)
	}
	events := c.Events()
	runClient(t, c)
	s := nextState(t, events, Reconnecting)
	if wait := s.NextTry.Sub(clk.Now()); wait < 400*time.Millisecond {
		t.Fatalf("backoff wait %v", wait)
	}
	watcher.notify(NetChange{Added: []netip.Addr{netip.MustParseAddr("198.18.2.2")}, Detail: "198.18.2.2 new on wlan0"})
	deadline := time.After(10 * time.Second)
	sawChange := false
	for {
		select {
		case ev := <-events:
			if e, ok := ev.(NetworkChanged); ok && e.Text() == "Network changed, checking the link…" {
				sawChange = true
			}
			if sc, ok := ev.(StateChanged); ok && sc.State.Phase == Connecting {
				if !sawChange {
					t.Fatal("connecting again without a NetworkChanged event first")
				}
				if !clk.Now().Equal(clk.start) {
					t.Fatal("the clock moved")
				}
				return
			}
		case <-deadline:
			t.Fatal("the network change did not end the backoff wait")
		}
	}
}

// CheckNow pings a connected relay and reports the answer, with no
// NetworkChanged (nothing changed); NoNetworkWatch keeps the watcher from
// starting at all.
func TestCheckNowWithoutWatcher(t *testing.T) {
	clk := newFakeClock()
	var src quietSource
	watcher := newNetWatcher(src.run)
	relay := newScriptedRelay(t)
	c, err := New(Config{URL: relay.addr, Room: "lobby", Name: "ann", Key: testKey, Clock: clk,
		NoNetworkWatch: true, CheckTimeout: 700 * time.Millisecond, netWatcher: watcher})
	if err != nil {
		t.Fatal(err)
	}
	c.CheckNow() // before Run: nothing to check, and nothing kept for later
	col := collect(t, c)
	runClient(t, c)
	p := relay.accept()
	p.send(welcome("E", 0, false))
	col.until("connected", isPhase(Connected))
	p.expectPing()
	watcher.notify(NetChange{Detail: "not for this engine"}) // nobody subscribed

	c.CheckNow()
	check := p.expectPing()
	p.send(&protocol.Pong{T: check, ServerTime: check})
	evs := col.until("the check's answer", isEvent[LinkChecked])
	if !lastOf[LinkChecked](t, evs).Alive {
		t.Fatal("answered check reported dead")
	}
	// Unanswered, the link is made again at once, after CheckTimeout.
	c.CheckNow()
	p.expectPing()
	waitFor(t, "the check's timer", func() bool { return hasTimerAt(clk, clk.Now().Add(700*time.Millisecond)) })
	clk.Advance(700 * time.Millisecond)
	evs = append(evs, col.until("the drop", isEvent[LinkDropped])...)
	if d := lastOf[LinkDropped](t, evs).Drop; d.Cause != "no answer from the relay within 0.7 s to a check when asked" {
		t.Fatalf("drop cause %q", d.Cause)
	}
	relay.accept()
	if n := countOf[NetworkChanged](evs); n != 0 {
		t.Fatalf("%d NetworkChanged events for CheckNow and an unsubscribed watcher", n)
	}
	if src.starts.Load() != 0 {
		t.Fatal("NoNetworkWatch started the watcher")
	}
}

// A dial under way when the network changes: a young one is let finish
// (it is probably on the new network already); one that has hung for
// CheckTimeout is abandoned, and the next starts at once. Never two sockets.
func TestNetworkChangeWhileDialing(t *testing.T) {
	clk := newFakeClock()
	var src quietSource
	watcher := newNetWatcher(src.run)
	var dialer countingDialer
	c, err := New(Config{URL: hungServer(t), Room: "lobby", Name: "ann", Key: testKey, Clock: clk,
		Rand: randSeq(0.9), NetDialContext: dialer.DialContext, netWatcher: watcher})
	if err != nil {
		t.Fatal(err)
	}
	col := collect(t, c)
	runClient(t, c)
	col.until("connecting", isPhase(Connecting))
	waitFor(t, "the TCP connection", func() bool { return dialer.open.Load() == 1 })
	waitFor(t, "the dial timer", func() bool { return hasTimerAt(clk, clk.Now().Add(defaultDialTimeout)) })

	watcher.notify(NetChange{Detail: "a young dial"})
	col.until("the first change", isEvent[NetworkChanged])
	clk.Advance(defaultCheckTimeout)
	if dialer.total.Load() != 1 {
		t.Fatal("a dial younger than CheckTimeout was abandoned")
	}
	watcher.notify(NetChange{Detail: "198.18.2.2 new on usb0"})
	evs := col.until("reconnecting", isPhase(Reconnecting))
	if n := countOf[NetworkChanged](evs); n != 1 {
		t.Fatalf("%d NetworkChanged events for the second change", n)
	}
	if s := lastOf[StateChanged](t, evs).State; !s.NextTry.Equal(clk.Now()) || s.LastError != "the network changed while connecting" {
		t.Fatalf("after the change: %+v", s)
	}
	col.until("connecting again", isPhase(Connecting))
	waitFor(t, "the second dial", func() bool { return dialer.total.Load() == 2 })
	if dialer.max.Load() != 1 {
		t.Fatalf("%d sockets open at once", dialer.max.Load())
	}
}

// The relay took the connection but has not welcomed it when the network
// changes: if the welcome then never comes, the next attempt is at once.
func TestNetworkChangeBeforeTheWelcome(t *testing.T) {
	clk := newFakeClock()
	var src quietSource
	watcher := newNetWatcher(src.run)
	c, err := New(Config{URL: silentRelay(t), Room: "lobby", Name: "ann", Key: testKey, Clock: clk,
		Rand: randSeq(0.9), HelloTimeout: 3 * time.Second, netWatcher: watcher})
	if err != nil {
		t.Fatal(err)
	}
	col := collect(t, c)
	runClient(t, c)
	waitFor(t, "the hello timer", func() bool { return hasTimerAt(clk, clk.Now().Add(3*time.Second)) })
	watcher.notify(NetChange{Detail: "routes changed"})
	col.until("network changed", isEvent[NetworkChanged])
	clk.Advance(3 * time.Second)
	evs := col.until("reconnecting", isPhase(Reconnecting))
	if s := lastOf[StateChanged](t, evs).State; !s.NextTry.Equal(clk.Now()) {
		t.Fatalf("next try %v, want now %v", s.NextTry, clk.Now())
	}
}

// A dial that completes just after the network changed may have been made
// on the old network: if its address is the one that went, the new link
// is dropped at once, and the next dial starts at once. The change is told
// once.
func TestDialCompletedOnAGoneAddress(t *testing.T) {
	clk := newFakeClock()
	var src quietSource
	watcher := newNetWatcher(src.run)
	relay := newScriptedRelay(t)
	release := make(chan struct{})
	var dials atomic.Int32
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		if dials.Add(1) == 1 {
			select {
			case <-release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	c, err := New(Config{URL: relay.addr, Room: "lobby", Name: "ann", Key: testKey, Clock: clk,
		Rand: randSeq(0.9), NetDialContext: dial, netWatcher: watcher})
	if err != nil {
		t.Fatal(err)
	}
	col := collect(t, c)
	runClient(t, c)
	waitFor(t, "the first dial", func() bool { return dials.Load() == 1 })
	watcher.notify(NetChange{Gone: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, Detail: "127.0.0.1 gone from lo"})
	evs := col.until("network changed", isEvent[NetworkChanged])
	close(release)
	evs = append(evs, col.until("the drop", isEvent[LinkDropped])...)
	if d := lastOf[LinkDropped](t, evs).Drop; d.Detected != DetectedAddressGone {
		t.Fatalf("drop %q (%s)", d.Cause, d.Detected)
	}
	waitFor(t, "the second dial", func() bool { return dials.Load() == 2 })
	if !clk.Now().Equal(clk.start) {
		t.Fatal("the clock moved: the second dial waited")
	}
	evs = append(evs, col.until("connecting again", isPhase(Connecting))...)
	if n := countOf[NetworkChanged](evs); n != 1 {
		t.Fatalf("the change was told %d times", n)
	}
	for len(relay.conns) > 0 { // close what the relay took
		relay.accept()
	}
}
