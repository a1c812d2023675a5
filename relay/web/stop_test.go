package web_test

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/heartline/heartline/relay/server"
	"github.com/heartline/heartline/shared/client"
)

// TestBrowserStopsAndAsks: the close codes a client must not retry on
// (4500 unauthorized, 4501 name taken) bring the person back to the form
// with what to do, and no reconnect.
func TestBrowserStopsAndAsks(t *testing.T) {
	r := startRelay(t, server.Config{Token: "open-sesame"})
	alice := newPage(t, 1280, 800)
	alice.do(
		chromedp.Navigate(r.base()+"/r/lobby"),
		chromedp.WaitVisible(chromedp.ID("name")),
		chromedp.SendKeys(chromedp.ID("name"), "Alice Chen"),
		chromedp.Click(chromedp.ID("join-button")),
	)
	alice.waitFor("the form asking for the token", `!document.getElementById('join').hidden && !document.getElementById('token-field').hidden && document.activeElement.id === 'token'`)
	if msg := eval[string](alice, `document.getElementById('join-error').textContent`); !strings.Contains(msg, "needs an access token") {
		t.Errorf("after 4500 the form says %q", msg)
	}
	alice.do(chromedp.SendKeys(chromedp.ID("token"), "open-sesame"), chromedp.Click(chromedp.ID("join-button")))
	alice.waitConnected()

	// An invite address carries the token: it is used, and leaves the address bar.
	bob := newPage(t, 390, 844)
	bob.do(
		chromedp.Navigate(r.base()+"/r/lobby#token=open-sesame"),
		chromedp.WaitVisible(chromedp.ID("name")),
		chromedp.SendKeys(chromedp.ID("name"), "alice chen"), // taken: names are unique case-insensitively
		chromedp.Click(chromedp.ID("join-button")),
	)
	bob.waitFor("the form asking for another name", `!document.getElementById('join').hidden && document.activeElement.id === 'name'`)
	if msg := eval[string](bob, `document.getElementById('join-error').textContent`); !strings.Contains(msg, "name is taken") {
		t.Errorf("after 4501 the form says %q", msg)
	}
	if u := eval[string](bob, `location.href`); strings.Contains(u, "sesame") {
		t.Errorf("the token stayed in the address bar: %s", u)
	}
	bob.do(chromedp.Evaluate[chromedp.Void](`document.getElementById('name').value = ''`),
		chromedp.SendKeys(chromedp.ID("name"), "Bob Stone"), chromedp.Click(chromedp.ID("join-button")))
	bob.waitConnected()
}

// blackhole is a TCP proxy in front of the relay that can stop passing
// bytes without closing anything: a path that silently drops, as a dead
// Wi-Fi or a NAT that forgot the mapping does.
type blackhole struct {
	ln      net.Listener
	target  string
	mu      sync.Mutex
	cond    *sync.Cond
	blocked bool
	conns   []net.Conn
}

func newBlackhole(t *testing.T, target string) *blackhole {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackhole{ln: ln, target: target}
	b.cond = sync.NewCond(&b.mu)
	go b.serve()
	t.Cleanup(func() {
		ln.Close()
		b.set(false)
		b.mu.Lock()
		for _, c := range b.conns {
			c.Close()
		}
		b.mu.Unlock()
	})
	return b
}

func (b *blackhole) set(blocked bool) {
	b.mu.Lock()
	b.blocked = blocked
	b.mu.Unlock()
	b.cond.Broadcast()
}

func (b *blackhole) wait() {
	b.mu.Lock()
	for b.blocked {
		b.cond.Wait()
	}
	b.mu.Unlock()
}

func (b *blackhole) serve() {
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		go func() {
			b.wait()
			up, err := net.Dial("tcp", b.target)
			if err != nil {
				c.Close()
				return
			}
			b.mu.Lock()
			b.conns = append(b.conns, c, up)
			b.mu.Unlock()
			go b.pipe(up, c)
			b.pipe(c, up)
		}()
	}
}

func (b *blackhole) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			b.wait() // held, not dropped: the peer just hears nothing
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
}

// TestDeadLinkAndGap: the path to the relay goes silent (no close, no
// reset). The browser notices within the heartbeat timeout, keeps trying,
// and once the path is back resumes; the relay kept only its last five
// messages, so the browser shows a gap marker and the latest page.
func TestDeadLinkAndGap(t *testing.T) {
	r := startRelay(t, server.Config{HeartbeatInterval: time.Second, HeartbeatTimeout: 3 * time.Second, History: 5})
	path := newBlackhole(t, r.addr)
	eve := startEngine(t, r, "lobby", "Eve Desk")
	alice := newPage(t, 1280, 800)
	alice.join("http://"+path.ln.Addr().String(), "lobby", "Alice Chen")
	eve.c.Send("before the path died")
	alice.shown("before the path died")

	path.set(true)
	start := time.Now()
	alice.waitFor("the dead link noticed", `heartline.state.phase !== 'connected'`)
	noticed := time.Since(start)
	cause := eval[string](alice, `heartline.state.cause || ''`)
	t.Logf("dead link noticed after %v: %s", noticed.Round(time.Millisecond), cause)
	if !strings.Contains(cause, "no reply from the relay for 3 s") {
		t.Errorf("the link ended for another reason than the heartbeat timeout: %q", cause)
	}
	for i := 1; i <= 8; i++ {
		eve.c.Send("while you were away " + string(rune('0'+i)))
	}
	eve.received("while you were away 8")

	path.set(false)
	alice.waitConnected()
	alice.shown("while you were away 8")
	alice.waitFor("the gap marker", `[...document.querySelectorAll('#canvas .row.gap')].some(e => e.textContent.includes('missed'))`)
	if eval[bool](alice, `heartline.welcome.recovered`) {
		t.Error("the welcome says recovered though the relay kept only 5 messages")
	}
	shown := eval[[]string](alice, `[...document.querySelectorAll('#canvas .row.msg .text')].map(e => e.textContent)`)
	if strings.Contains(strings.Join(shown, "|"), "while you were away 1") {
		t.Errorf("a message the relay no longer has is shown: %q", shown)
	}
}

// TestRefusedMessageStaysUntilDiscarded: a message the relay refuses (too long)
// stays in the outbox, marked with the relay's reason, until the person
// discards it; it never blocks the messages after it.
func TestRefusedMessageStaysUntilDiscarded(t *testing.T) {
	r := startRelay(t, server.Config{MaxText: 20})
	eve := startEngine(t, r, "lobby", "Eve Desk")
	p := newPage(t, 390, 844)
	p.join(r.base(), "lobby", "Alice Chen")
	long := "this message is far longer than twenty characters"
	p.say(long)
	p.say("short one")
	eve.received("short one")
	p.waitFor("the refused message marked", `[...document.querySelectorAll('#canvas .row.out.failed .reason')].some(e => e.textContent.startsWith('Not sent: '))`)
	reason := eval[string](p, `document.querySelector('#canvas .row.out.failed .reason').textContent`)
	if !strings.Contains(reason, "20") {
		t.Errorf("the refusal does not say the limit: %q", reason)
	}
	if n := eval[int](p, `heartline.engine.o.store.load('lobby').then(items => items.filter(i => i.status === 'failed').length)`); n != 1 {
		t.Errorf("IndexedDB holds %d failed messages, want 1 (it must survive a reload until discarded)", n)
	}
	p.do(chromedp.Click(chromedp.CSS(`#canvas .row.out.failed button.ghost`)))
	p.waitFor("the refused message gone", `!document.querySelector('#canvas .row.out') && heartline.engine.outbox.length === 0`)
	if n := eval[int](p, `heartline.engine.o.store.load('lobby').then(items => items.length)`); n != 0 {
		t.Errorf("IndexedDB still holds %d items after Discard", n)
	}
}

// TestLeaveAndJoinAgain: Leave says bye (the others see the member leave at
// once, reason bye); Join again enters the room afresh, and the page shows
// each message once.
func TestLeaveAndJoinAgain(t *testing.T) {
	r := startRelay(t, server.Config{})
	eve := startEngine(t, r, "lobby", "Eve Desk")
	p := newPage(t, 1280, 800)
	p.join(r.base(), "lobby", "Alice Chen")
	p.say("hello before leaving")
	eve.received("hello before leaving")
	id := eval[string](p, `heartline.you.id`)

	p.do(chromedp.Click(chromedp.ID("leave")))
	eve.waitFor("Alice's bye", func(ev client.Event) bool {
		l, ok := ev.(client.MemberLeft)
		return ok && l.Member.ID == id && l.Reason == "bye"
	})
	p.waitFor("the banner saying so", `document.getElementById('banner-text').textContent.startsWith('You left the room.') && !document.getElementById('rejoin').hidden`)
	p.do(chromedp.Click(chromedp.ID("rejoin")))
	p.waitFor("the form", `!document.getElementById('join').hidden`)
	p.do(chromedp.Click(chromedp.ID("join-button")))
	p.waitConnected()
	p.shown("hello before leaving")
	eval[bool](p, `(() => { const l = document.getElementById('log'); l.scrollTop = 0; l.dispatchEvent(new Event('scroll')); return true; })()`)
	p.waitFor("one row per message", `[...document.querySelectorAll('#canvas .row.msg .text')].filter(e => e.textContent === 'hello before leaving').length === 1`)
	eval[bool](p, `new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))`)
	if n := eval[int](p, `[...document.querySelectorAll('#canvas .row.msg .text')].filter(e => e.textContent === 'hello before leaving').length`); n != 1 {
		t.Errorf("the message is shown %d times after leaving and joining again", n)
	}
}
