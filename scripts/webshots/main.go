// Command webshots takes pictures of the browser client, at desktop width
// (1280x800) and phone width (390x844), from one scripted scenario: a
// relay in this process, two members on the shared/client engine (what the
// desktop app runs) writing, two browsers joining, the relay stopped and
// started again. `make screenshots` runs it after the desktop pictures.
//
//	go run ./scripts/webshots -out screenshots
//
// Needs Chromium (apt-get install chromium); -chromium names another one.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"

	"github.com/heartline/heartline/relay/server"
	"github.com/heartline/heartline/relay/web"
	"github.com/heartline/heartline/shared/client"
)

func main() {
	out := flag.String("out", "screenshots", "folder for the PNG files")
	chromium := flag.String("chromium", "", "Chromium or Chrome executable (default: chromium on PATH)")
	flag.Parse()
	if err := run(*out, *chromium); err != nil {
		log.Fatalf("webshots: %v", err)
	}
}

type shooter struct {
	out   string
	relay *server.Server
	cfg   server.Config
	base  string
}

func run(out, chromium string) error {
	if chromium == "" {
		p, err := exec.LookPath("chromium")
		if err != nil {
			return fmt.Errorf("no chromium on PATH (apt-get install chromium, or pass -chromium)")
		}
		chromium = p
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "webshots")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	s := &shooter{out: out, cfg: server.Config{
		Listen: "127.0.0.1:0", DataDir: dir, Web: web.Handler(),
		HeartbeatInterval: 2 * time.Second, HeartbeatTimeout: 5 * time.Second, Grace: 2 * time.Minute,
	}}
	if err := s.start(); err != nil {
		return err
	}
	defer s.stop()

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("lang", "en-GB"))
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox)
	}
	alloc, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	browser, cancel := chromedp.NewContext(alloc)
	defer cancel()
	if err := chromedp.Do(browser); err != nil {
		return fmt.Errorf("chromium did not start: %w", err)
	}

	ctx, stopEngines := context.WithCancel(context.Background())
	defer stopEngines()
	alice := engine(ctx, s.base, "Alice Chen", "builtin:fox")
	bob := engine(ctx, s.base, "Bob Stone", "")
	time.Sleep(500 * time.Millisecond) // let them join: the pictures need both in the list

	desk, err := tab(browser, 1280, 800)
	if err != nil {
		return err
	}
	phone, err := tab(browser, 390, 844)
	if err != nil {
		return err
	}
	say := func(c *client.Client, text string) { c.Send(text); time.Sleep(250 * time.Millisecond) }
	say(alice, "Morning! Is the relay on the new box yet?")
	say(bob, "Yes, since last night. Same address as before.")
	say(bob, "It keeps 1000 messages per room, so nothing gets lost if you drop off for a while.")
	say(alice, "Great. I'll point the office machines at it.")
	say(alice, "Release notes are at https://example.org/heartline/releases if anyone asks.")

	steps := []struct {
		name string
		do   func() error
	}{
		{"join form", func() error {
			if err := fill(desk, s.base+"/r/lobby", "Dana Web"); err != nil {
				return err
			}
			return s.shot(desk, "web-01-join-desktop.png")
		}},
		{"room", func() error {
			if err := chromedp.Do(desk, chromedp.Click(chromedp.ID("join-button")), waitConnected()); err != nil {
				return err
			}
			if err := type_(desk, "Joining from the browser, no install needed. <b>Tags</b> stay text."); err != nil {
				return err
			}
			say(bob, "Welcome Dana! Two things for the checklist:\n- open the relay's port on the firewall\n- the STUN port too, for diagnostics")
			time.Sleep(time.Second)
			return s.shot(desk, "web-02-room-desktop.png")
		}},
		{"phone join", func() error {
			if err := fill(phone, s.base+"/r/lobby", "Erin Phone"); err != nil {
				return err
			}
			return s.shot(phone, "web-03-join-phone.png")
		}},
		{"phone room", func() error {
			if err := chromedp.Do(phone, chromedp.Click(chromedp.ID("join-button")), waitConnected()); err != nil {
				return err
			}
			if err := type_(phone, "On my phone, on the train. Works fine."); err != nil {
				return err
			}
			time.Sleep(time.Second)
			return s.shot(phone, "web-04-room-phone.png")
		}},
		{"phone members", func() error {
			if err := chromedp.Do(phone, chromedp.Click(chromedp.ID("members-toggle"))); err != nil {
				return err
			}
			time.Sleep(300 * time.Millisecond)
			if err := s.shot(phone, "web-05-members-phone.png"); err != nil {
				return err
			}
			return chromedp.Do(phone, chromedp.Click(chromedp.ID("members-toggle")))
		}},
		{"jump to latest", func() error {
			for i := 1; i <= 24; i++ { // under the relay's 5 a second
				say(alice, fmt.Sprintf("Scrolling test line %d: the list keeps its place while you read older messages.", i))
			}
			time.Sleep(time.Second)
			if err := chromedp.Do(desk, chromedp.Evaluate[chromedp.Void](`document.getElementById('log').scrollTop = 150`)); err != nil {
				return err
			}
			time.Sleep(300 * time.Millisecond)
			say(bob, "Dana, did you see the backup schedule?")
			say(bob, "It runs at 02:00 now.")
			say(bob, "And the relay restarts itself after updates.")
			time.Sleep(time.Second)
			return s.shot(desk, "web-06-jump-desktop.png")
		}},
		{"reconnecting", func() error {
			if err := chromedp.Do(desk, chromedp.Evaluate[chromedp.Void](`heartline.timeline.jumpToLatest()`)); err != nil {
				return err
			}
			s.stop()
			time.Sleep(2500 * time.Millisecond)
			if err := type_(desk, "Typed while the relay is down: this waits in the outbox."); err != nil {
				return err
			}
			time.Sleep(500 * time.Millisecond)
			if err := s.shot(desk, "web-07-reconnecting-desktop.png"); err != nil {
				return err
			}
			return s.shot(phone, "web-08-reconnecting-phone.png")
		}},
		{"reconnected", func() error {
			if err := s.start(); err != nil {
				return err
			}
			if err := chromedp.Do(desk, chromedp.Click(chromedp.ID("retry")), waitConnected()); err != nil {
				return err
			}
			time.Sleep(time.Second)
			if err := chromedp.Do(desk, chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, 640, 790)); err != nil { // no hover on a row
				return err
			}
			return s.shot(desk, "web-09-reconnected-desktop.png")
		}},
		{"dark", func() error {
			dark := chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
				_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
					Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}})
				return err
			})
			if err := chromedp.Do(desk, dark); err != nil {
				return err
			}
			time.Sleep(300 * time.Millisecond)
			if err := s.shot(desk, "web-10-dark-desktop.png"); err != nil {
				return err
			}
			if err := chromedp.Do(phone, dark, chromedp.Click(chromedp.ID("members-toggle"))); err != nil {
				return err
			}
			time.Sleep(300 * time.Millisecond)
			return s.shot(phone, "web-11-dark-members-phone.png")
		}},
	}
	for _, st := range steps {
		tctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		errc := make(chan error, 1)
		go func() { errc <- st.do() }()
		select {
		case err := <-errc:
			cancel()
			if err != nil {
				return fmt.Errorf("%s: %w", st.name, err)
			}
		case <-tctx.Done():
			cancel()
			return fmt.Errorf("%s: took over a minute", st.name)
		}
	}
	return nil
}

func (s *shooter) start() error {
	srv, err := server.New(s.cfg)
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return err
	}
	s.relay = srv
	s.cfg.Listen = srv.Addr().String() // a restart comes back on the same address
	s.base = "http://" + s.cfg.Listen
	return nil
}

func (s *shooter) stop() {
	if s.relay != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.relay.Shutdown(ctx)
		s.relay = nil
	}
}

func (s *shooter) shot(tab context.Context, name string) error {
	png, err := chromedp.Run(tab, chromedp.CaptureScreenshot())
	if err != nil {
		return err
	}
	path := filepath.Join(s.out, name)
	fmt.Println("webshots:", path)
	return os.WriteFile(path, png, 0o644)
}

func engine(ctx context.Context, base, name, avatar string) *client.Client {
	c, err := client.New(client.Config{URL: strings.TrimPrefix(base, "http://"), Room: "lobby", Name: name, Avatar: avatar, Key: client.NewKey(), Client: "webshots/1"})
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		for range c.Events() {
		}
	}()
	go c.Run(ctx)
	return c
}

// tab is a tab of its own browser context at width x height.
func tab(browser context.Context, w, h int64) (context.Context, error) {
	ctx, _ := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	if err := chromedp.Do(ctx); err != nil {
		return nil, err
	}
	mobile := []chromedp.EmulateViewportOption{}
	if w < 600 {
		mobile = append(mobile, chromedp.EmulateScale(1), chromedp.EmulateMobile)
	}
	return ctx, chromedp.Do(ctx, chromedp.EmulateViewport(w, h, mobile...))
}

func fill(tab context.Context, url, name string) error {
	return chromedp.Do(tab, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.ID("name")),
		chromedp.SendKeys(chromedp.ID("name"), name),
		chromedp.Click(chromedp.CSS(`label[for="av-builtin-owl"]`)))
}

func waitConnected() chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Poll[bool](`!!(window.heartline && heartline.state && heartline.state.phase === 'connected')`,
			chromedp.WithPollingTimeout(30*time.Second))(ctx, t)
		return err
	})
}

func type_(tab context.Context, text string) error {
	return chromedp.Do(tab, chromedp.Focus(chromedp.ID("message")),
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := cdp.Call(ctx, t, input.InsertText, input.InsertTextParams{Text: text})
			return err
		}),
		chromedp.Click(chromedp.ID("send")))
}
