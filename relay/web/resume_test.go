package web_test

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/heartline/heartline/relay/server"
	"github.com/heartline/heartline/shared/client"
)

// TestRelayRestartBrowserResumes: the relay stops while a browser is in
// a room; the browser says so (banner with Retry now), keeps what is typed
// meanwhile in its outbox (IndexedDB), and when the relay is back on the
// same address and data, reconnects by itself, resumes without a gap and
// delivers the outbox exactly once.
func TestRelayRestartBrowserResumes(t *testing.T) {
	r := startRelay(t, server.Config{HeartbeatInterval: time.Second, HeartbeatTimeout: 3 * time.Second})
	eve := startEngine(t, r, "lobby", "Eve Desk")
	alice := newPage(t, 1280, 800)
	alice.join(r.base(), "lobby", "Alice Chen")
	if _, err := eve.c.Send("before the restart"); err != nil {
		t.Fatal(err)
	}
	alice.shown("before the restart")

	// Every reason the banner gives from here, in order.
	eval[bool](alice, `(() => { const e = heartline.engine, on = e.o.onEvent; window.causes = [];
		e.o.onEvent = (type, d) => { if (type === 'state' && d.phase === 'waiting') causes.push(d.cause); on(type, d); }; return true; })()`)
	r.stop()
	alice.waitFor("the banner with Retry now", `!document.getElementById('banner').hidden && !document.getElementById('retry').hidden`)
	// The relay said goodbye (1001), and the tries while it is down could
	// not reach it: nothing was "dropped".
	alice.waitFor("a try while the relay is down", `causes.length >= 2`)
	causes := eval[[]string](alice, `causes`)
	if count := eval[string](alice, `document.getElementById('member-count').textContent`); !strings.HasPrefix(count, "last seen: ") {
		t.Errorf("offline, the member count reads %q: it should say it is what was last seen", count)
	}
	if want := "closed by the relay: 1001 relay shutting down"; causes[0] != want {
		t.Errorf("the banner's first reason is %q, want %q", causes[0], want)
	}
	for _, c := range causes[1:] {
		if c != "cannot reach the relay" {
			t.Errorf("a try while the relay is down gave the reason %q, want \"cannot reach the relay\"", c)
		}
	}
	const typed = "typed while the relay was down"
	alice.say(typed)
	alice.waitFor("the message waiting in the outbox", `[...document.querySelectorAll('#canvas .row.out.pending .text')].some(e => e.textContent === `+js(typed)+`)`)
	if n := eval[int](alice, `heartline.engine.o.store.load('lobby').then(items => items.filter(i => i.text === `+js(typed)+`).length)`); n != 1 {
		t.Fatalf("the outbox in IndexedDB holds %d copies of the message typed offline, want 1", n)
	}
	banner := eval[string](alice, `document.getElementById('banner-text').textContent`)
	if want := "1 message waits to be sent"; !strings.Contains(banner, want) {
		t.Errorf("banner %q does not say %q", banner, want)
	}

	r.start() // same address, same data dir
	alice.waitConnected()
	eve.received(typed)
	alice.shown(typed)
	alice.waitFor("the outbox emptied", `heartline.engine.outbox.length === 0 && !document.querySelector('#canvas .row.out')`)
	if n := eval[int](alice, `heartline.engine.o.store.load('lobby').then(items => items.length)`); n != 0 {
		t.Errorf("IndexedDB still holds %d outbox items after the ack", n)
	}
	if !eval[bool](alice, `heartline.welcome.recovered === true`) || eval[int](alice, `document.querySelectorAll('#canvas .row.gap').length`) != 0 {
		t.Errorf("the browser did not resume without a gap: welcome %v", eval[map[string]any](alice, `heartline.welcome`))
	}
	alice.waitFor("the banner gone", `document.getElementById('banner').hidden`)
	alice.waitFor("the member count current again", `!document.getElementById('member-count').textContent.startsWith('last seen')`)

	// Exactly once: a message sent after it arrives after it, and the
	// engine saw the offline message one time.
	alice.say("after the restart")
	eve.received("after the restart")
	if n := eve.count(func(ev client.Event) bool {
		m, ok := ev.(client.MessageReceived)
		return ok && m.Msg.Text == typed
	}); n != 1 {
		t.Errorf("the engine got the offline message %d times, want 1", n)
	}
}

// TestReloadKeepsIdentityAndOutbox: a message the relay has not accepted
// yet (refused as too fast) survives a reload; the reloaded page comes back
// as the same member (no leave/join for the others) and delivers it once.
func TestReloadKeepsIdentityAndOutbox(t *testing.T) {
	// One message per 100 s per connection: the second waits.
	r := startRelay(t, server.Config{Rate: 0.01, Burst: 1})
	eve := startEngine(t, r, "lobby", "Eve Desk")
	alice := newPage(t, 1280, 800)
	alice.join(r.base(), "lobby", "Alice Chen")
	alice.say("first")
	eve.received("first")
	alice.say("second, refused as too fast for now")
	alice.waitFor("the refusal", `heartline.engine.l.pausedUntil > Date.now() + 10000`)
	alice.waitFor("the message pending", `!!document.querySelector('#canvas .row.out.pending')`)
	id := eval[string](alice, `heartline.you.id`)
	outboxID := eval[string](alice, `heartline.engine.outbox[0].id`)

	alice.do(chromedp.Reload())
	alice.waitConnected()
	if got := eval[string](alice, `heartline.you.id`); got != id {
		t.Errorf("after a reload the browser is member %s, was %s", got, id)
	}
	m := eve.received("second, refused as too fast for now")
	if m.ID != outboxID {
		t.Errorf("the outbox message came with id %q, was %q", m.ID, outboxID)
	}
	alice.shown("second, refused as too fast for now")
	alice.shown("first") // the history page after the reload
	left := eve.count(func(ev client.Event) bool { l, ok := ev.(client.MemberLeft); return ok && l.Member.ID == id })
	joined := eve.count(func(ev client.Event) bool { j, ok := ev.(client.MemberJoined); return ok && j.Member.ID == id })
	if left != 0 || joined != 1 {
		t.Errorf("the engine saw Alice leave %d and join %d times across the reload, want 0 and 1", left, joined)
	}
	if n := eval[int](alice, `heartline.engine.o.store.load('lobby').then(items => items.length)`); n != 0 {
		t.Errorf("IndexedDB holds %d outbox items after the ack", n)
	}
}

// TestOnlineEventSkipsTheBackoff: while the relay is away the browser
// backs off further and further; when the browser says the network is back
// (the online event), it tries at once instead of at the end of its wait.
func TestOnlineEventSkipsTheBackoff(t *testing.T) {
	r := startRelay(t, server.Config{})
	alice := newPage(t, 1280, 800)
	alice.join(r.base(), "lobby", "Alice Chen")
	r.stop()
	// Some attempts later the next one is seconds away.
	alice.waitFor("a long wait before the next try", `heartline.engine.phase === 'waiting' && heartline.engine.retryAt - Date.now() > 3000`)
	r.start()
	retryAt := eval[float64](alice, `(() => { const at = heartline.engine.retryAt; window.dispatchEvent(new Event('online')); return at; })()`)
	alice.waitConnected()
	if at := eval[float64](alice, `Date.now()`); at >= retryAt {
		t.Errorf("the online event did not shorten the wait: connected at %.0f, the backoff ended at %.0f", at, retryAt)
	}
}
