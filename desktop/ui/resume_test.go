package ui

import (
	"context"
	"fmt"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"

	"github.com/heartline/heartline/desktop/chatview"
	"github.com/heartline/heartline/desktop/settings"
	"github.com/heartline/heartline/relay/server"
	"github.com/heartline/heartline/shared/client"
)

// poster is another member of the room (a headless engine) who writes while
// the app is closed.
type poster struct {
	t    *testing.T
	c    *client.Client
	stop func()
}

func newPoster(t *testing.T, addr, room string) *poster {
	t.Helper()
	c, err := client.New(client.Config{URL: addr, Room: room, Name: "Bob", Key: client.NewKey()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	go func() {
		for range c.Events() {
		}
	}()
	p := &poster{t: t, c: c, stop: func() { cancel(); <-done }}
	t.Cleanup(p.stop)
	waitConnected(t, c)
	return p
}

// post sends texts "<prefix> 1".."<prefix> n" and waits until the relay has
// accepted them all.
func (p *poster) post(prefix string, n int) {
	p.t.Helper()
	for i := 1; i <= n; i++ {
		if _, err := p.c.Send(fmt.Sprintf("%s %d", prefix, i)); err != nil {
			p.t.Fatal(err)
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for len(p.c.Outbox()) > 0 {
		if time.Now().After(deadline) {
			p.t.Fatalf("%d messages not accepted: %+v", len(p.c.Outbox()), p.c.State())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// resumeRelay is a real relay that lets the poster write fast and keeps
// history messages per room (0: the default 1000).
func resumeRelay(t *testing.T, history int) string {
	t.Helper()
	return runRelay(t, server.Config{History: history,
		Rate: 10000, Burst: 10000, ShutdownTimeout: 2 * time.Second}).Addr().String()
}

// openApp starts the app as it starts after a restart: with the
// preferences of app a, already joined to addr's room "team" as Alice.
func openApp(t *testing.T, a fyne.App, loop *uiLoop, addr string) *UI {
	t.Helper()
	var u *UI
	loop.wait(func() {
		u = New(a, Options{DataDir: t.TempDir(), Do: loop.do, Diagnose: (&diagCalls{}).run})
		u.Start(&settings.Profile{Relay: addr, Name: "Alice", Room: "team", HostPort: 7070, Theme: settings.ThemeSystem}, true)
	})
	eventually(t, loop, "Alice connected", func() bool {
		return u.room != nil && u.room.link.Phase == chatview.PhaseConnected
	})
	return u
}

// shown lists the timeline: "gap" for a marker, the text of each message.
func shown(u *UI) []string {
	var out []string
	for i := 0; i < u.room.tl.Len(); i++ {
		switch it := u.room.tl.Item(i); it.Kind {
		case chatview.KindGap:
			out = append(out, "gap: "+it.Text)
		case chatview.KindMessage:
			out = append(out, it.Msg.Text)
		}
	}
	return out
}

func texts(prefix string, from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf("%s %d", prefix, i))
	}
	return out
}

func sameList(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// waitShown waits until the timeline is exactly want.
func waitShown(t *testing.T, loop *uiLoop, u *UI, want []string) {
	t.Helper()
	var got []string
	deadline := time.Now().Add(15 * time.Second)
	for {
		loop.wait(func() { got = shown(u) })
		if sameList(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timeline has %d rows:\n%q\nwant %d:\n%q", len(got), got, len(want), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Closing the app and opening it later shows everything missed meanwhile,
// with the messages before it as context and no marker.
func TestRestartShowsEverythingMissed(t *testing.T) {
	addr := resumeRelay(t, 0)
	bob := newPoster(t, addr, "team")
	bob.post("before", 80)

	a := test.NewTempApp(t)
	loop := newUILoop(t)
	u := openApp(t, a, loop, addr)
	waitShown(t, loop, u, texts("before", 31, 80)) // a first join: the latest page
	// While the app runs, the point is saved without waiting for the close.
	store := settings.New(a.Preferences())
	var epoch string
	eventually(t, loop, "resume point saved while running", func() bool {
		rp, ok := store.ResumePoint(addr, "team")
		epoch = rp.Epoch
		return ok && rp.LastSeq == 80
	})
	bob.post("during", 3)
	waitShown(t, loop, u, append(texts("before", 31, 80), texts("during", 1, 3)...))
	loop.wait(u.Close)
	if rp, _ := store.ResumePoint(addr, "team"); rp != (settings.ResumePoint{Epoch: epoch, LastSeq: 83}) {
		t.Fatalf("saved on close: %+v, want epoch %s seq 83", rp, epoch)
	}

	bob.post("missed", 120) // seqs 84..203, while the app is closed

	u2 := openApp(t, a, loop, addr)
	defer loop.wait(u2.Close)
	// Read up to 83: the 50 before it are context, then all 120 missed.
	want := append(append(texts("before", 34, 80), texts("during", 1, 3)...), texts("missed", 1, 120)...)
	waitShown(t, loop, u2, want)
	eventually(t, loop, "new point saved", func() bool {
		rp, _ := store.ResumePoint(addr, "team")
		return rp == settings.ResumePoint{Epoch: epoch, LastSeq: 203}
	})
}

// When the relay no longer keeps all that was missed, the restarted app
// shows the latest page under the missing-messages marker.
func TestRestartAfterTooMuchMissedShowsMarker(t *testing.T) {
	addr := resumeRelay(t, 100)
	bob := newPoster(t, addr, "team")
	bob.post("before", 10)
	a := test.NewTempApp(t)
	loop := newUILoop(t)
	u := openApp(t, a, loop, addr)
	waitShown(t, loop, u, texts("before", 1, 10))
	loop.wait(u.Close)

	bob.post("missed", 120) // seqs 11..130; the relay keeps 31..130

	u2 := openApp(t, a, loop, addr)
	defer loop.wait(u2.Close)
	waitShown(t, loop, u2, append([]string{"gap: " + (client.HistoryGap{}).Text()}, texts("missed", 71, 120)...))
}

// A relay that keeps less than the context still replays everything missed:
// only the context is short, so no marker claims that messages are missing.
func TestRestartWithShortContextButNothingMissingHasNoMarker(t *testing.T) {
	addr := resumeRelay(t, 20)
	bob := newPoster(t, addr, "team")
	bob.post("before", 30)
	a := test.NewTempApp(t)
	loop := newUILoop(t)
	u := openApp(t, a, loop, addr)
	waitShown(t, loop, u, texts("before", 11, 30))
	loop.wait(u.Close)

	bob.post("missed", 5) // seqs 31..35; the relay keeps 16..35

	u2 := openApp(t, a, loop, addr)
	defer loop.wait(u2.Close)
	waitShown(t, loop, u2, append(texts("before", 16, 30), texts("missed", 1, 5)...))
}

// An app closed before the relay answered does not move the saved point
// back to the context it asked for.
func TestCloseBeforeWelcomeKeepsSavedPoint(t *testing.T) {
	a := test.NewTempApp(t)
	store := settings.New(a.Preferences())
	dead := "127.0.0.1:1" // nothing listens there
	saved := settings.ResumePoint{Epoch: "e1", LastSeq: 500}
	store.SaveResumePoint(dead, "team", saved)
	loop := newUILoop(t)
	var u *UI
	loop.wait(func() {
		u = New(a, Options{DataDir: t.TempDir(), Do: loop.do, Diagnose: (&diagCalls{}).run})
		u.Start(&settings.Profile{Relay: dead, Name: "Alice", Room: "team", HostPort: 7070}, true)
	})
	loop.wait(func() {
		if got := u.session.c.ResumePoint(); got != (client.ResumePoint{Epoch: "e1", LastSeq: 450}) {
			t.Errorf("engine resumes from %+v, want e1/450", got)
		}
	})
	eventually(t, loop, "a failed connection attempt", func() bool {
		return u.room.link.Phase == chatview.PhaseReconnecting
	})
	loop.wait(u.Close)
	if rp, _ := store.ResumePoint(dead, "team"); rp != saved {
		t.Fatalf("saved point %+v after a session without welcome, want %+v", rp, saved)
	}
}

// A message the relay refused can be thrown away: it leaves the room view
// and the outbox, and does not come back when the app starts again.
func TestDiscardFailedMessage(t *testing.T) {
	addr := runRelay(t, server.Config{MaxText: 20, ShutdownTimeout: 2 * time.Second}).Addr().String()

	a := test.NewTempApp(t)
	loop := newUILoop(t)
	dataDir := t.TempDir() // keeps the outbox file across the two starts
	start := func() *UI {
		var u *UI
		loop.wait(func() {
			u = New(a, Options{DataDir: dataDir, Do: loop.do, Diagnose: (&diagCalls{}).run})
			u.Start(&settings.Profile{Relay: addr, Name: "Alice", Room: "team", HostPort: 7070}, true)
		})
		eventually(t, loop, "connected", func() bool {
			return u.room != nil && u.room.link.Phase == chatview.PhaseConnected
		})
		return u
	}
	u := start()
	loop.wait(func() {
		u.Say("short one")
		u.Say("this one is far longer than twenty characters")
		u.Say("short two")
	})
	var failed *chatview.Message
	eventually(t, loop, "the long message failed, the others sent", func() bool {
		var sent int
		failed = nil
		for i := 0; i < u.room.tl.Len(); i++ {
			m := u.room.tl.Item(i).Msg
			switch {
			case m == nil:
			case m.Status == chatview.StatusFailed:
				failed = m
			case m.Status == chatview.StatusSent:
				sent++
			}
		}
		return failed != nil && sent == 2
	})
	loop.wait(func() {
		if len(u.session.c.Outbox()) != 1 {
			t.Errorf("outbox %+v, want the failed message", u.session.c.Outbox())
		}
		u.room.list.OnDiscard(failed.ID) // what the Discard link and menu item call
	})
	eventually(t, loop, "failed message gone", func() bool {
		return sameList(shown(u), []string{"short one", "short two"}) && len(u.session.c.Outbox()) == 0
	})
	loop.wait(u.Close)

	u2 := start()
	defer loop.wait(u2.Close)
	loop.wait(func() {
		if n := len(u2.session.c.Outbox()); n != 0 {
			t.Errorf("discarded message back in the outbox after a restart (%d items)", n)
		}
		if _, ok := u2.room.tl.Own(failed.ID); ok {
			t.Error("discarded message back on screen after a restart")
		}
	})
}

// A relay that lost its history (a new epoch) while the app was closed: the
// restarted app says so above what the relay has now.
func TestRestartAfterRelayHistoryResetShowsMarker(t *testing.T) {
	srv := startRelay(t, "127.0.0.1:0", t.TempDir())
	addr := srv.Addr().String()
	bob := newPoster(t, addr, "team")
	bob.post("old", 5)
	a := test.NewTempApp(t)
	loop := newUILoop(t)
	u := openApp(t, a, loop, addr)
	waitShown(t, loop, u, texts("old", 1, 5))
	loop.wait(u.Close)
	bob.stop()
	srv.Shutdown(context.Background())

	// Same address, empty data directory: the room starts over.
	srv = startRelay(t, addr, t.TempDir())
	defer srv.Shutdown(context.Background())
	newPoster(t, addr, "team").post("new", 3)

	u2 := openApp(t, a, loop, addr)
	defer loop.wait(u2.Close)
	reset := client.HistoryGap{EpochChanged: true}.Text()
	waitShown(t, loop, u2, append([]string{"gap: " + reset}, texts("new", 1, 3)...))
}
