package ui

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"

	"github.com/heartline/heartline/desktop/chatview"
	"github.com/heartline/heartline/desktop/settings"
	"github.com/heartline/heartline/relay/server"
	"github.com/heartline/heartline/shared/client"
	"github.com/heartline/heartline/shared/netdiag"
	"github.com/heartline/heartline/shared/protocol"
)

// uiLoop stands in for Fyne's main goroutine: one goroutine runs every UI
// function in order, as fyne.Do does in the app.
type uiLoop struct {
	mu   sync.Mutex
	q    []func()
	wake chan struct{}
	done chan struct{}
}

func newUILoop(t *testing.T) *uiLoop {
	l := &uiLoop{wake: make(chan struct{}, 1), done: make(chan struct{})}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-l.done:
				return
			case <-l.wake:
			}
			for {
				l.mu.Lock()
				q := l.q
				l.q = nil
				l.mu.Unlock()
				if len(q) == 0 {
					break
				}
				for _, f := range q {
					f()
				}
			}
		}
	}()
	t.Cleanup(func() { close(l.done); <-stopped })
	return l
}

func (l *uiLoop) do(f func()) {
	l.mu.Lock()
	l.q = append(l.q, f)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// wait runs f on the loop and returns when it has run.
func (l *uiLoop) wait(f func()) {
	ch := make(chan struct{})
	l.do(func() { f(); close(ch) })
	<-ch
}

// eventually polls cond on the UI loop until it holds or the deadline passes.
func eventually(t *testing.T, l *uiLoop, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var ok bool
		l.wait(func() { ok = cond() })
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func startRelay(t *testing.T, addr, dir string) *server.Server {
	t.Helper()
	return runRelay(t, server.Config{Listen: addr, DataDir: dir, ShutdownTimeout: 2 * time.Second})
}

// runRelay starts a real relay with cfg, on a free loopback port and a
// temporary data dir unless cfg names them, and shuts it down when the test
// ends (a test may shut it down sooner: Shutdown is idempotent).
func runRelay(t *testing.T, cfg server.Config) *server.Server {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return srv
}

// diagCalls stands in for netdiag.Run, which has its own tests against real
// sockets: here it only has to prove that a drop asks for a diagnosis.
type diagCalls struct {
	mu sync.Mutex
	n  int
}

func (d *diagCalls) run(ctx context.Context, tg netdiag.Target) netdiag.Report {
	d.mu.Lock()
	d.n++
	d.mu.Unlock()
	return netdiag.Report{Started: time.Now(), Relay: tg.RelayURL, Drop: tg.Drop,
		Verdict: netdiag.Verdict{Kind: netdiag.VerdictRelayDown, Summary: "The relay does not answer.", NextStep: "Wait."}}
}

func (d *diagCalls) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n
}

// TestRoomAgainstRealRelay drives the app's room screen with a real relay and
// a second member (a headless engine): join, members, messages both ways,
// unread count and notification while unfocused, the relay going away
// (banner, outbox), and coming back (the queued message delivered).
func TestRoomAgainstRealRelay(t *testing.T) {
	dataDir := t.TempDir()
	relayDir := t.TempDir()
	srv := startRelay(t, "127.0.0.1:0", relayDir)
	addr := srv.Addr().String()
	defer func() { srv.Shutdown(context.Background()) }()

	a := test.NewTempApp(t)
	loop := newUILoop(t)
	diag := &diagCalls{}
	var u *UI
	loop.wait(func() {
		u = New(a, Options{DataDir: dataDir, BannerGrace: 300 * time.Millisecond, Do: loop.do, Diagnose: diag.run})
		u.Start(&settings.Profile{Relay: addr, Name: "Alice", Room: "test", Avatar: "builtin:fox",
			Notifications: true, Theme: settings.ThemeSystem, HostPort: 7070}, true)
	})
	defer loop.wait(u.Close)

	eventually(t, loop, "Alice connected", func() bool {
		return u.room != nil && u.room.link.Phase == chatview.PhaseConnected
	})
	loop.wait(func() {
		if u.Screen() != "room" {
			t.Errorf("screen %q, want room", u.Screen())
		}
		if got := u.win.Title(); got != "#test - Heartline" {
			t.Errorf("title %q", got)
		}
		if !strings.HasPrefix(u.room.statusText.Text, "Connected") || u.room.banner.Visible() {
			t.Errorf("status %q banner=%v", u.room.statusText.Text, u.room.banner.Visible())
		}
	})

	// Bob joins with a headless engine.
	bob, err := client.New(client.Config{URL: addr, Room: "test", Name: "Bob", Key: client.NewKey()})
	if err != nil {
		t.Fatal(err)
	}
	bobCtx, bobStop := context.WithCancel(context.Background())
	bobDone := make(chan struct{})
	bobGot := make(chan string, 16)
	bobSaw := make(chan string, 64) // "changed:<name>" and "left:<name>"
	go func() { defer close(bobDone); bob.Run(bobCtx) }()
	go func() {
		for ev := range bob.Events() {
			switch e := ev.(type) {
			case client.MessageReceived:
				if !e.Own {
					bobGot <- e.Msg.Text
				}
			case client.MemberChanged:
				bobSaw <- "changed:" + e.Member.Name
			case client.MemberLeft:
				bobSaw <- "left:" + e.Member.Name
			}
		}
	}()
	defer func() { bobStop(); <-bobDone }()

	eventually(t, loop, "Bob in Alice's member list", func() bool {
		return u.room.roster.Len() == 2 && u.room.membersHead.Text == "2 members online"
	})

	// While Alice's window is in the background, Bob's message counts as
	// unread, shows in the title and raises a notification.
	loop.wait(func() { u.focusChanged(false) })
	waitConnected(t, bob)
	test.AssertNotificationSent(t, &fyne.Notification{Title: "Bob in #test", Content: "hello Alice"}, func() {
		if _, err := bob.Send("hello Alice"); err != nil {
			t.Fatal(err)
		}
		eventually(t, loop, "Bob's message shown", func() bool { return lastText(u) == "hello Alice" })
	})
	loop.wait(func() {
		if got := u.win.Title(); got != "(1) #test - Heartline" {
			t.Errorf("title while unfocused: %q", got)
		}
	})
	loop.wait(func() { u.focusChanged(true) })
	loop.wait(func() {
		if got := u.win.Title(); got != "#test - Heartline" {
			t.Errorf("title after focus: %q", got)
		}
	})

	// Alice types and presses Enter; Bob receives it.
	loop.wait(func() {
		test.Type(u.room.composer, "hi Bob")
		u.room.composer.TypedKey(&fyne.KeyEvent{Name: fyne.KeyReturn})
	})
	expectText(t, bobGot, "hi Bob")
	eventually(t, loop, "own message sent", func() bool {
		m := lastMsg(u)
		return m != nil && m.Own && m.Status == chatview.StatusSent
	})

	// The relay goes away: after the grace the banner says so, and what
	// Alice types waits in the outbox.
	srv.Shutdown(context.Background())
	eventually(t, loop, "reconnect banner", func() bool {
		return u.room.banner.Visible() && strings.HasPrefix(u.room.bannerText.Text, "Connection lost")
	})
	loop.wait(func() {
		if !u.room.bannerButton.Visible() || u.room.bannerButton.Text != "Retry now" {
			t.Errorf("banner button %q visible=%v", u.room.bannerButton.Text, u.room.bannerButton.Visible())
		}
		u.Say("sent while the relay is down")
	})
	eventually(t, loop, "pending message shown", func() bool {
		m := lastMsg(u)
		return m != nil && m.Text == "sent while the relay is down" && m.Status == chatview.StatusPending &&
			chatview.StatusText(m, false) == "Not sent yet: will send when connected"
	})
	eventually(t, loop, "a diagnosis after the drop", func() bool { return diag.count() > 0 })

	// The relay comes back on the same address with the same data.
	srv = startRelay(t, addr, relayDir)
	loop.wait(u.retryNow)
	bob.RetryNow()
	eventually(t, loop, "reconnected, banner gone, queued message sent", func() bool {
		m := lastMsg(u)
		return u.room.link.Phase == chatview.PhaseConnected && !u.room.banner.Visible() &&
			m != nil && m.Status == chatview.StatusSent
	})
	expectText(t, bobGot, "sent while the relay is down")

	// A new name in the settings: same member (same key, no bye), so Bob sees
	// a rename, not Alice leaving; the messages stay on Alice's screen.
	loop.wait(func() {
		p := u.prof
		p.Name = "Alicia"
		if err := u.join(p); err != nil {
			t.Error(err)
		}
	})
	eventually(t, loop, "reconnected as Alicia", func() bool {
		return u.room.link.Phase == chatview.PhaseConnected && u.room.me.Name == "Alicia"
	})
	loop.wait(func() {
		if lastText(u) != "sent while the relay is down" {
			t.Errorf("messages gone after a rename: last %q", lastText(u))
		}
	})
	expectText(t, bobSaw, "changed:Alicia")
	for {
		select {
		case s := <-bobSaw:
			if strings.HasPrefix(s, "left:") {
				t.Fatalf("Bob saw %s on a rename", s)
			}
			continue
		default:
		}
		break
	}
}

func waitConnected(t *testing.T, c *client.Client) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for c.State().Phase != client.Connected {
		if time.Now().After(deadline) {
			t.Fatalf("client not connected: %+v", c.State())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func expectText(t *testing.T, ch <-chan string, want string) {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case got := <-ch:
			if got == want {
				return
			}
		case <-timeout:
			t.Fatalf("never got %q", want)
		}
	}
}

func lastMsg(u *UI) *chatview.Message {
	if u.room == nil {
		return nil
	}
	for i := u.room.tl.Len() - 1; i >= 0; i-- {
		if it := u.room.tl.Item(i); it.Kind == chatview.KindMessage {
			return it.Msg
		}
	}
	return nil
}

func lastText(u *UI) string {
	if m := lastMsg(u); m != nil {
		return m.Text
	}
	return ""
}

func TestValidateProfileSaysWhatToFix(t *testing.T) {
	cases := []struct {
		p    settings.Profile
		want string
	}{
		{settings.Profile{Name: "", Room: "general", Relay: "h:1"}, "Your name:"},
		{settings.Profile{Name: "Ann", Room: "Not A Room", Relay: "h:1"}, "Room:"},
		{settings.Profile{Name: "Ann", Room: "general", Relay: ""}, "The relay address is empty"},
		{settings.Profile{Name: "Ann", Room: "general", Relay: "ftp://x"}, `Relay address "ftp://x": use ws://`},
	}
	for _, c := range cases {
		p := c.p
		err := validateProfile(&p)
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%+v: err %v, want prefix %q", c.p, err, c.want)
		}
	}
	ok := settings.Profile{Name: "  Ann  ", Room: " general ", Host: true, Avatar: "builtin:fox"}
	if err := validateProfile(&ok); err != nil || ok.Name != "Ann" || ok.Room != "general" {
		t.Fatalf("%v %+v", err, ok)
	}
}

func TestHostModeServesTheRoom(t *testing.T) {
	a := test.NewTempApp(t)
	loop := newUILoop(t)
	var u *UI
	loop.wait(func() {
		u = New(a, Options{DataDir: t.TempDir(), Do: loop.do, Diagnose: (&diagCalls{}).run})
		u.Start(nil, false)
	})
	defer loop.wait(u.Close)
	// A port below the ephemeral range: on a busy machine a port that was
	// free a moment ago may already be some outgoing connection's.
	var port int
	for attempt := 0; ; attempt++ {
		port = 20000 + rand.IntN(8000)
		var err error
		loop.wait(func() {
			err = u.join(settings.Profile{Name: "Host", Room: "lan", Host: true, HostPort: port, Theme: settings.ThemeDark})
		})
		if err == nil {
			break
		}
		if attempt == 10 || !strings.Contains(err.Error(), "Pick another port") {
			t.Fatal(err)
		}
	}
	eventually(t, loop, "joined own hosted room", func() bool {
		return u.room != nil && u.room.link.Phase == chatview.PhaseConnected
	})
	loop.wait(func() {
		if !u.room.hostInfo.Visible() || !strings.Contains(u.room.hostInfo.Text, fmt.Sprint(port)) {
			t.Errorf("host note %q visible=%v", u.room.hostInfo.Text, u.room.hostInfo.Visible())
		}
	})
	// The room has a token, kept with the settings, and every invite
	// address carries it.
	var invite, token string
	loop.wait(func() {
		token = u.prof.HostToken
		if len(token) != 24 || u.store.Load().HostToken != token {
			t.Errorf("host token %q, stored %q", token, u.store.Load().HostToken)
		}
		invites := u.hosting.invites()
		for _, inv := range invites {
			if _, tok := protocol.SplitInvite(inv); tok != token {
				t.Errorf("invite %q does not carry the room token", inv)
			}
		}
		// A LAN address when the machine has one (the relay listens on
		// every interface), else this machine's.
		invite = protocol.InviteAddress(u.hosting.localAddr(), token)
		if len(invites) > 0 {
			invite = invites[0]
		}
	})
	// Someone without the token is refused.
	stranger, err := client.New(client.Config{URL: fmt.Sprintf("127.0.0.1:%d", port), Room: "lan", Name: "Stranger", Key: client.NewKey()})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for range stranger.Events() {
		}
	}()
	sctx, scancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer scancel()
	var stop *client.StopError
	if err := stranger.Run(sctx); !errors.As(err, &stop) || stop.Code != protocol.CloseUnauthorized {
		t.Fatalf("joining without the token: %v, want a stop with %d", err, protocol.CloseUnauthorized)
	}
	// Someone else joins the hosted relay with the invite.
	guest, err := client.New(client.Config{URL: invite, Room: "lan", Name: "Guest", Key: client.NewKey()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); guest.Run(ctx) }()
	go func() {
		for range guest.Events() {
		}
	}()
	defer func() { cancel(); <-done }()
	eventually(t, loop, "guest in the host's member list", func() bool {
		g, ok := findMember(u, "Guest")
		return ok && g.State == protocol.StateOnline
	})
	// An invite pasted into a join form's relay field: the token moves to
	// the token field.
	loop.wait(func() {
		f := newProfileForm(u, settings.Profile{})
		f.relay.SetText(invite)
		if bare, _ := protocol.SplitInvite(invite); f.relay.Text != bare || f.token.Text != token {
			t.Errorf("pasted invite: relay %q, token %q", f.relay.Text, f.token.Text)
		}
	})
}

func findMember(u *UI, name string) (protocol.Member, bool) {
	for _, m := range u.room.roster.Sorted() {
		if m.Name == name {
			return m, true
		}
	}
	return protocol.Member{}, false
}

// A picture the person picks is shrunk, uploaded to the relay in the form,
// shown, and selected; a new start of the app remembers everything and goes
// straight back into the room.
func TestPictureUploadAndRememberedJoin(t *testing.T) {
	srv := startRelay(t, "127.0.0.1:0", t.TempDir())
	defer srv.Shutdown(context.Background())
	addr := srv.Addr().String()

	a := test.NewTempApp(t)
	loop := newUILoop(t)
	dataDir := t.TempDir()
	var u *UI
	var f *profileForm
	loop.wait(func() {
		u = New(a, Options{DataDir: dataDir, Do: loop.do, Diagnose: (&diagCalls{}).run})
		u.Start(nil, false)
		f = newProfileForm(u, u.Profile())
		f.relay.SetText(addr)
		f.name.SetText("Pic Person")
		f.picker.upload(testPNG(t, 640, 480))
	})
	eventually(t, loop, "picture uploaded and selected", func() bool {
		return strings.HasPrefix(f.picker.selected, "sha256:") && f.picker.status.Text == "Picture uploaded."
	})
	var ref string
	loop.wait(func() {
		ref = f.picker.selected
		if u.pictures(ref) == nil {
			t.Error("uploaded picture not shown")
		}
		p := u.Profile()
		f.into(&p)
		if err := u.join(p); err != nil {
			t.Error(err)
		}
	})
	eventually(t, loop, "joined with the picture", func() bool {
		return u.room != nil && u.room.link.Phase == chatview.PhaseConnected && u.room.me.Avatar == ref
	})
	loop.wait(u.Close)

	// Next start: same preferences, no flags.
	var u2 *UI
	loop.wait(func() {
		u2 = New(a, Options{DataDir: dataDir, Do: loop.do, Diagnose: (&diagCalls{}).run})
		u2.Start(nil, false)
	})
	defer loop.wait(u2.Close)
	eventually(t, loop, "back in the room on the next start", func() bool {
		return u2.Screen() == "room" && u2.room.link.Phase == chatview.PhaseConnected &&
			u2.room.me.Name == "Pic Person" && u2.room.me.Avatar == ref
	})
	// Leaving forgets the auto-join: the next start shows the join screen.
	loop.wait(u2.leaveRoom)
	loop.wait(func() {
		if u2.Screen() != "join" || u2.Profile().AutoJoin {
			t.Errorf("after leave: screen %s autojoin %v", u2.Screen(), u2.Profile().AutoJoin)
		}
	})
}

func testPNG(t *testing.T, w, h int) []byte {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = byte(i * 7)
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
