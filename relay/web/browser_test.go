package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"

	"github.com/heartline/heartline/relay/server"
	"github.com/heartline/heartline/relay/web"
)

// The browser tests share one Chromium process (CI has 2 cores); each
// person in a test gets a browser context of its own (separate storage,
// like two browsers) and a tab in it.

var (
	browserOnce sync.Once
	browserCtx  context.Context
	browserErr  error
)

func chromiumPath() string {
	if p := os.Getenv("HEARTLINE_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	return ""
}

// browser returns the shared browser's context, or skips the test when
// there is no Chromium on this machine.
func browser(t testing.TB) context.Context {
	t.Helper()
	path := chromiumPath()
	if path == "" {
		t.Skip("no Chromium found (apt-get install chromium, or set HEARTLINE_CHROMIUM): the browser tests need it")
	}
	browserOnce.Do(func() {
		opts := append(chromedp.DefaultExecAllocatorOptions[:],
			chromedp.ExecPath(path),
			chromedp.DisableGPU,
			chromedp.WindowSize(1280, 800),
			chromedp.Flag("disable-dev-shm-usage", true),
		)
		if os.Geteuid() == 0 {
			opts = append(opts, chromedp.NoSandbox) // Chromium refuses to run as root with its sandbox
		}
		alloc, _ := chromedp.NewExecAllocator(context.Background(), opts...)
		ctx, _ := chromedp.NewContext(alloc)
		browserErr = chromedp.Do(ctx) // starts the browser, without a timeout
		browserCtx = ctx
	})
	if browserErr != nil {
		t.Fatalf("Chromium at %s did not start: %v", chromiumPath(), browserErr)
	}
	return browserCtx
}

// TestMain stops the shared browser after the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if browserCtx != nil {
		chromedp.Cancel(browserCtx)
	}
	os.Exit(code)
}

// page is one person's browser: a tab in a browser context of its own.
type page struct {
	t   testing.TB
	ctx context.Context
}

// newPage opens a tab at width x height in a fresh browser context; the
// tab is the same context's for reload.
func newPage(t testing.TB, width, height int64) *page {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser(t), chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	// The tab lives as long as the context of its first action: no timeout on it.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("browser: cannot open a tab: %v", err)
	}
	p := &page{t: t, ctx: ctx}
	p.do(chromedp.EmulateViewport(width, height))
	return p
}

func (p *page) do(steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.t.Fatalf("browser: %v", err)
	}
}

// eval runs a JavaScript expression (awaiting a promise) and decodes its value.
func eval[T any](p *page, expr string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("browser: evaluating %s: %v", expr, err)
	}
	return v
}

// waitFor polls a JavaScript condition until it holds (generous deadline:
// CI shares its cores with other jobs).
func (p *page) waitFor(what, cond string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 45*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](cond, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(40*time.Second))); err != nil {
		state, _ := chromedp.Run(p.ctx, chromedp.Evaluate[string](`JSON.stringify({state: window.heartline && heartline.state, banner: document.getElementById('banner').textContent.trim(), err: document.getElementById('join-error').textContent})`))
		p.t.Fatalf("browser: waiting for %s (%s): %v; page: %s", what, cond, err, state)
	}
}

// js quotes s as a JavaScript string literal.
func js(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// join opens the room's address and joins with the form, as a person does.
func (p *page) join(base, room, name string) {
	p.t.Helper()
	p.do(
		chromedp.Navigate(base+"/r/"+room),
		chromedp.WaitVisible(chromedp.ID("name")),
		chromedp.Evaluate[chromedp.Void](`document.getElementById('name').value = ''`),
		chromedp.SendKeys(chromedp.ID("name"), name),
		chromedp.Click(chromedp.ID("join-button")),
	)
	p.waitConnected()
}

func (p *page) waitConnected() {
	p.t.Helper()
	p.waitFor("the link", `!!(window.heartline && heartline.state && heartline.state.phase === 'connected')`)
}

// say types a message and presses Enter. The text goes in as an input
// method would put it (any character, U+202E included); Enter is a key.
func (p *page) say(text string) {
	p.t.Helper()
	p.do(chromedp.Focus(chromedp.ID("message")),
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := cdp.Call(ctx, t, input.InsertText, input.InsertTextParams{Text: text})
			return err
		}),
		chromedp.SendKeys(chromedp.ID("message"), "\r"))
}

// shown waits until a message with exactly this text is on screen.
func (p *page) shown(text string) {
	p.t.Helper()
	p.waitFor("message "+js(text), `[...document.querySelectorAll('#canvas .row.msg:not(.out) .text')].some(e => e.textContent === `+js(text)+`)`)
}

// relay is a real relay on a real socket, restartable on the same address
// and data dir.
type relay struct {
	t    testing.TB
	cfg  server.Config
	srv  *server.Server
	addr string
}

func startRelay(t testing.TB, cfg server.Config) *relay {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	cfg.Web = web.Handler()
	r := &relay{t: t, cfg: cfg}
	r.start()
	t.Cleanup(func() { r.stop() })
	return r
}

func (r *relay) start() {
	r.t.Helper()
	srv, err := server.New(r.cfg)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.srv = srv
	r.addr = srv.Addr().String()
	r.cfg.Listen = r.addr // a restart comes back on the same address
}

// stop shuts the relay down (close 1001 to every client), as on SIGTERM.
func (r *relay) stop() {
	if r.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	r.srv.Shutdown(ctx)
	r.srv = nil
}

func (r *relay) base() string { return "http://" + r.addr }

func (r *relay) ws() string { return "ws://" + r.addr + "/ws" }

func TestBrowserServesPageWithPolicy(t *testing.T) {
	r := startRelay(t, server.Config{})
	resp, err := http.Get(r.base() + "/r/lobby")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Fatalf("CSP %q", csp)
	}
	p := newPage(t, 1280, 800)
	p.do(chromedp.Navigate(r.base() + "/"))
	p.waitFor("the join form", `!document.getElementById('join').hidden`)
	// The page ran its module under the policy: a script the page adds
	// inline now is refused by the browser.
	blocked := eval[bool](p, `new Promise(res => {
		document.addEventListener('securitypolicyviolation', () => res(true), {once: true});
		const s = document.createElement('script'); s.textContent = 'window.inlineRan = true'; document.body.append(s);
		setTimeout(() => res(false), 2000);
	})`)
	if !blocked || eval[bool](p, `window.inlineRan === true`) {
		t.Errorf("an inline script ran: the policy does not hold (blocked %v)", blocked)
	}
	labels := eval[[]string](p, `[...document.querySelectorAll('label')].map(l => l.textContent.trim()).filter(Boolean)`)
	for _, want := range []string{"Your name", "Room"} {
		if !strings.Contains(strings.Join(labels, "|"), want) {
			t.Errorf("no label %q in %v", want, labels)
		}
	}
	// The link's timers tick in a worker, which the policy must allow.
	if !eval[bool](p, `import([...document.scripts].find(s => s.src.endsWith('/app.js')).src.replace('/app.js', '/timers.js')).then(m => new Promise(res => setTimeout(() => res(m.inWorker()), 200)))`) {
		t.Error("the link's timers do not run in a worker (hidden tabs would throttle the heartbeat)")
	}
	if eval[string](p, `document.getElementById('room-name').value`) != "lobby" {
		t.Error("the room field does not default to lobby")
	}
}
