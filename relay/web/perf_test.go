package web_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/heartline/heartline/relay/server"
)

// TestWebPerformance measures what docs/BENCHMARKS.md reports: the first
// render on loopback (the join form; the room with its history page after
// a reload) and scrolling a room of 10,000 messages, frame by frame. It
// logs the figures (run with -v) and asserts only what does not depend on
// the machine's speed: the room keeps a few dozen rows in the DOM, not
// 10,000.
func TestWebPerformance(t *testing.T) {
	r := startRelay(t, server.Config{Rate: 1000, Burst: 1000})
	eve := startEngine(t, r, "lobby", "Eve Desk")
	for i := 1; i <= 50; i++ {
		eve.c.Send(fmt.Sprintf("history message %d, long enough to wrap on a phone: the quick brown fox jumps over the lazy dog", i))
	}
	eve.received("history message 50, long enough to wrap on a phone: the quick brown fox jumps over the lazy dog")

	// The join form: a fresh browser context (cold cache, a new renderer),
	// then four more loads of the page (files from the cache).
	p := newPage(t, 1280, 800)
	var forms, fcps []float64
	for i := range 5 {
		if i == 0 {
			p.do(chromedp.Navigate(r.base() + "/"))
		} else {
			p.do(chromedp.Reload())
		}
		p.waitFor("the join form mark", `performance.getEntriesByName('heartline-join-form').length > 0`)
		forms = append(forms, eval[float64](p, `Math.round(performance.getEntriesByName('heartline-join-form')[0].startTime)`))
		fcps = append(fcps, eval[float64](p, `Math.round((performance.getEntriesByName('first-contentful-paint')[0] || {startTime: -1}).startTime)`))
	}
	p.join(r.base(), "lobby", "Alice Chen")
	p.shown("history message 50, long enough to wrap on a phone: the quick brown fox jumps over the lazy dog")
	if n := eval[int](p, `document.querySelectorAll('#announce p').length`); n != 0 {
		t.Errorf("joining read out %d history messages in the live log", n)
	}

	// A reload goes straight back into the room (saved settings): the
	// room's first render is the page, the module, the websocket, the
	// welcome with 50 messages, and their layout.
	var rooms []float64
	for range 5 {
		p.do(chromedp.Reload())
		p.waitFor("the room mark", `performance.getEntriesByName('heartline-room').length > 0`)
		rooms = append(rooms, eval[float64](p, `Math.round(performance.getEntriesByName('heartline-room')[0].startTime)`))
	}
	t.Logf("first render on loopback: join form %v ms (first contentful paint %v ms); room with 50 messages after a reload %v ms", forms, fcps, rooms)

	// 10,000 messages, as a long-lived room accumulates them, laid out by
	// the same code as live ones.
	start := time.Now()
	eval[bool](p, `(() => {
		const you = heartline.you, other = {id: 'bench', name: 'Bench Sender', avatar: 'builtin:fox', state: 'online'};
		const base = Date.now() - 10000 * 60000, msgs = [];
		for (let i = 1; i <= 10000; i++) {
			const from = i % 7 === 0 ? you : other;
			msgs.push({seq: 100000 + i, id: 'b' + i, from, ts: base + i * 60000,
				text: 'Message ' + i + (i % 3 ? ' with a link https://example.org/' + i : ' that is longer and wraps over more than one line at phone width, so that rows have different heights; '.repeat(1 + i % 3))});
		}
		heartline.timeline.addMany(msgs);
		return true;
	})()`)
	p.waitFor("the 10,000 messages laid out", `heartline.timeline.rows.length > 10000 && !heartline.timeline.scheduled`)
	t.Logf("10,000 messages added and laid out in %v", time.Since(start).Round(time.Millisecond))

	for _, sc := range []struct {
		name         string
		step, frames int
	}{{"a fast flick, 120 px a frame (7,200 px/s)", 120, 300}, {"a dragged scrollbar, 2,000 px a frame", 2000, 160}} {
		res := eval[map[string]float64](p, `((STEP, FRAMES) => new Promise(resolve => {
		const log = document.getElementById('log');
		log.scrollTop = 0;
		const loaf = {n: 0, dur: 0, script: 0, layout: 0, render: 0};
		const obs = new PerformanceObserver(l => { for (const e of l.getEntries()) { loaf.n++; loaf.dur += e.duration; loaf.render += e.renderStart ? e.startTime + e.duration - e.renderStart : 0; loaf.layout += e.styleAndLayoutStart ? e.startTime + e.duration - e.styleAndLayoutStart : 0; for (const s of e.scripts) loaf.script += s.duration; } });
		obs.observe({type: 'long-animation-frame'});
		window.loaf = loaf;
		const frames = [];
		let last = 0, n = 0, maxRows = 0;
		const step = (ts) => {
			if (last) frames.push(ts - last);
			last = ts;
			maxRows = Math.max(maxRows, document.querySelectorAll('#canvas .row').length);
			log.scrollTop += STEP;
			if (++n < FRAMES && log.scrollTop + log.clientHeight < log.scrollHeight) requestAnimationFrame(step);
			else {
				frames.sort((a, b) => a - b);
				const q = (p) => frames[Math.min(frames.length - 1, Math.floor(p * frames.length))];
				resolve({frames: frames.length, p50: q(0.5), p95: q(0.95), p99: q(0.99), max: frames[frames.length - 1],
					over50: frames.filter(f => f > 50).length, maxRows, height: log.scrollHeight});
			}
		};
		requestAnimationFrame(step);
	}))(`+fmt.Sprint(sc.step, ",", sc.frames)+`)`)
		t.Logf("long animation frames (over 50 ms) while scrolling: %v", eval[map[string]float64](p, `window.loaf`))
		t.Logf("scrolling 10,000 messages (%.0f px), %s: %.0f frames, frame time p50 %.1f ms, p95 %.1f ms, p99 %.1f ms, max %.1f ms, %.0f frames over 50 ms; at most %.0f rows in the DOM",
			res["height"], sc.name, res["frames"], res["p50"], res["p95"], res["p99"], res["max"], res["over50"], res["maxRows"])
		if res["maxRows"] > 200 || res["maxRows"] < 5 {
			t.Errorf("the room kept %.0f rows in the DOM while scrolling 10,000 messages: the list is not virtual", res["maxRows"])
		}
		if res["height"] < 10000*20 {
			t.Errorf("the scroll height %.0f px cannot hold 10,000 messages", res["height"])
		}
	}
}
