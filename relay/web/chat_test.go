package web_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heartline/heartline/relay/server"
	"github.com/heartline/heartline/shared/client"
	"github.com/heartline/heartline/shared/protocol"
)

// engine is a shared/client engine (what the desktop app and the CLI run)
// in a room, recording what it sees.
type engine struct {
	t  testing.TB
	c  *client.Client
	mu sync.Mutex
	ev []client.Event
	ch chan struct{} // pinged on every event
	// stop ends the engine as an app that quits does: close 1001, no bye.
	stop func()
}

func startEngine(t testing.TB, r *relay, room, name string) *engine {
	t.Helper()
	c, err := client.New(client.Config{URL: r.ws(), Room: room, Name: name, Key: client.NewKey(), Avatar: "builtin:owl", Client: "web-test/1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	e := &engine{t: t, c: c, ch: make(chan struct{}, 1), stop: func() { cancel(); <-done }}
	go func() { defer close(done); c.Run(ctx) }()
	go func() {
		for ev := range c.Events() {
			e.mu.Lock()
			e.ev = append(e.ev, ev)
			e.mu.Unlock()
			select {
			case e.ch <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(e.stop)
	e.waitFor("its welcome", func(ev client.Event) bool { _, ok := ev.(client.Welcomed); return ok })
	return e
}

// waitFor waits for an event (seen before or after the call) that matches.
func (e *engine) waitFor(what string, match func(client.Event) bool) client.Event {
	e.t.Helper()
	deadline := time.After(45 * time.Second)
	for {
		e.mu.Lock()
		for _, ev := range e.ev {
			if match(ev) {
				e.mu.Unlock()
				return ev
			}
		}
		e.mu.Unlock()
		select {
		case <-e.ch:
		case <-deadline:
			e.t.Fatalf("engine: no %s within 45 s", what)
		}
	}
}

func (e *engine) received(text string) protocol.Message {
	e.t.Helper()
	ev := e.waitFor("message "+js(text), func(ev client.Event) bool {
		m, ok := ev.(client.MessageReceived)
		return ok && m.Msg.Text == text
	})
	return ev.(client.MessageReceived).Msg
}

// count is how many recorded events match.
func (e *engine) count(match func(client.Event) bool) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.ev {
		if match(ev) {
			n++
		}
	}
	return n
}

// TestTwoBrowsersChat: two people in two browsers chat in one room; each
// sees the other's messages with name and time, links are links, the
// member list has both, and hostile text stays text.
func TestTwoBrowsersChat(t *testing.T) {
	r := startRelay(t, server.Config{})
	alice := newPage(t, 1280, 800)
	bob := newPage(t, 1280, 800)
	alice.join(r.base(), "lobby", "Alice Chen")
	bob.join(r.base(), "lobby", "Bob Stone")

	alice.say("Hi Bob! Notes are at https://example.org/notes.")
	bob.shown("Hi Bob! Notes are at https://example.org/notes.")
	bob.say("Thanks, reading them now")
	alice.shown("Thanks, reading them now")

	// Bob's view of Alice's message: her name, a time, the link.
	got := eval[map[string]string](bob, `(() => {
		const row = [...document.querySelectorAll('#canvas .row.msg')].find(r => r.textContent.includes('Hi Bob'));
		const a = row.querySelector('a');
		return {name: row.querySelector('.name').textContent, time: row.querySelector('time').textContent,
			href: a.href, linkText: a.textContent, rel: a.rel, target: a.target};
	})()`)
	if got["name"] != "Alice Chen" || got["time"] == "" || got["href"] != "https://example.org/notes" ||
		got["linkText"] != "https://example.org/notes" || !strings.Contains(got["rel"], "noopener") || got["target"] != "_blank" {
		t.Errorf("Bob's view of Alice's message: %v", got)
	}
	alice.waitFor("Bob in the member list", `[...document.querySelectorAll('#member-list .member .name')].map(e => e.textContent).join('|') === 'Alice Chen|Bob Stone'`)

	// Hostile text: markup and a right-to-left override arrive as text.
	hostile := []string{
		`<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>`,
		"\u202Egnp.exe says hello",
		`<a href="javascript:window.pwned=3">click</a> javascript:window.pwned=4`,
	}
	for _, h := range hostile {
		bob.say(h)
	}
	for _, h := range hostile {
		alice.shown(h)
	}
	res := eval[map[string]any](alice, `(() => {
		const texts = [...document.querySelectorAll('#canvas .row.msg .text')];
		const rtl = texts.find(e => e.textContent.startsWith('\u202E'));
		return {pwned: window.pwned === undefined ? 0 : window.pwned,
			imgs: document.querySelectorAll('#canvas .text img, #canvas .text script').length,
			jsLinks: [...document.querySelectorAll('#canvas a')].filter(a => !a.href.startsWith('https:') && !a.href.startsWith('http:')).length,
			isolate: getComputedStyle(rtl).unicodeBidi, dir: rtl.dir,
			nameIsolate: getComputedStyle(document.querySelector('#canvas .name')).unicodeBidi};
	})()`)
	if res["pwned"].(float64) != 0 || res["imgs"].(float64) != 0 || res["jsLinks"].(float64) != 0 {
		t.Errorf("hostile text became markup: %v", res)
	}
	if res["isolate"] != "isolate" || res["dir"] != "auto" || res["nameIsolate"] != "isolate" {
		t.Errorf("a right-to-left override in a message can reorder what is around it: %v", res)
	}
}

// TestBrowserAndEngineChat: a browser and the shared/client engine (what
// the desktop app runs) chat in one room.
func TestBrowserAndEngineChat(t *testing.T) {
	r := startRelay(t, server.Config{})
	eve := startEngine(t, r, "lobby", "Eve Desk")
	alice := newPage(t, 1280, 800)
	alice.join(r.base(), "lobby", "Alice Chen")

	joined := eve.waitFor("Alice's join", func(ev client.Event) bool {
		j, ok := ev.(client.MemberJoined)
		return ok && j.Member.Name == "Alice Chen"
	}).(client.MemberJoined)
	alice.say("Hello from a browser ✓")
	m := eve.received("Hello from a browser ✓")
	if m.From.ID != joined.Member.ID || m.From.Name != "Alice Chen" {
		t.Errorf("the engine got the browser's message from %+v, want %+v", m.From, joined.Member)
	}
	if _, err := eve.c.Send("Hello from the desktop engine\nsecond line"); err != nil {
		t.Fatal(err)
	}
	alice.shown("Hello from the desktop engine\nsecond line")
	alice.waitFor("Eve's picture in the member list", `!!document.querySelector('#member-list img[src="/v1/avatars/builtin/owl"]')`)
}
