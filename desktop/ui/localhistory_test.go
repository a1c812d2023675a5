package ui

import (
	"context"
	"strings"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/heartline/heartline/desktop/chatview"
	"github.com/heartline/heartline/desktop/settings"
	"github.com/heartline/heartline/relay/server"
)

// startApp opens the app on app a's preferences and dataDir: joined to
// join (nil: only what the preferences hold, as after a restart).
func startApp(t *testing.T, a fyne.App, loop *uiLoop, dataDir string, join *settings.Profile, more ...settings.Profile) *UI {
	t.Helper()
	var u *UI
	loop.wait(func() {
		u = New(a, Options{DataDir: dataDir, Do: loop.do, Diagnose: (&diagCalls{}).run})
		if join != nil {
			u.Start(join, true)
		} else {
			u.Start(nil, false)
		}
		for _, p := range more {
			if err := u.join(p); err != nil {
				t.Fatal(err)
			}
		}
	})
	return u
}

func roomShown(v *roomView) []string {
	var out []string
	for i := 0; i < v.tl.Len(); i++ {
		switch it := v.tl.Item(i); it.Kind {
		case chatview.KindGap:
			out = append(out, "gap: "+it.Text)
		case chatview.KindMessage:
			out = append(out, it.Msg.Text)
		}
	}
	return out
}

func viewOf(u *UI, room string) *roomView {
	for _, r := range u.rooms.items {
		if r.Entry.Room == room {
			return u.views[r.Key()]
		}
	}
	return nil
}

func stateOf(u *UI, room string) *roomState {
	for _, r := range u.rooms.items {
		if r.Entry.Room == room {
			return r
		}
	}
	return nil
}

// Every message the app sees is kept on the device: with the relay gone,
// the app opens again and shows each room's messages at once, with the
// unread count of the room that was not read; scrolling to the top loads
// older messages page by page from the device.
func TestOfflineStartShowsLocalHistory(t *testing.T) {
	srv := runRelay(t, server.Config{Rate: 10000, Burst: 10000})
	addr := srv.Addr().String()
	a := test.NewTempApp(t)
	dataDir := t.TempDir()
	loop := newUILoop(t)
	p := settings.Profile{Relay: addr, Name: "Alice", Room: "alpha", HostPort: 7070}
	pb := p
	pb.Room = "beta"
	u := startApp(t, a, loop, dataDir, &p, pb)
	loop.wait(func() { u.selectRoom(stateOf(u, "alpha").Key()) })
	eventually(t, loop, "both rooms connected", func() bool {
		return stateOf(u, "alpha").Link.Phase == chatview.PhaseConnected && stateOf(u, "beta").Link.Phase == chatview.PhaseConnected
	})
	newPoster(t, addr, "alpha").post("old news", 250)
	newPoster(t, addr, "beta").post("unread", 3)
	eventually(t, loop, "all messages shown", func() bool {
		return len(roomShown(viewOf(u, "alpha"))) == 250 && stateOf(u, "beta").Unread == 3
	})
	loop.wait(u.Close)
	srv.Shutdown(context.Background())

	// The network is gone: the rooms show what the device holds, at once.
	u2 := startApp(t, a, loop, dataDir, nil)
	defer loop.wait(u2.Close)
	loop.wait(func() {
		if len(u2.rooms.items) != 2 || u2.Screen() != "room" || u2.room.room != "alpha" {
			t.Fatalf("after the restart: %d rooms, screen %q", len(u2.rooms.items), u2.Screen())
		}
		alpha := roomShown(viewOf(u2, "alpha"))
		if len(alpha) != pageSize || alpha[len(alpha)-1] != "old news 250" || alpha[0] != "old news 151" {
			t.Fatalf("alpha offline shows %d messages (%q … %q), want the newest %d", len(alpha), first(alpha), last(alpha), pageSize)
		}
		if got := roomShown(viewOf(u2, "beta")); len(got) != 3 || got[2] != "unread 3" {
			t.Errorf("beta offline: %q", got)
		}
		if b := stateOf(u2, "beta"); b.Unread != 3 {
			t.Errorf("beta's unread count after the restart: %d, want 3", b.Unread)
		}
		if stateOf(u2, "alpha").Unread != 0 {
			t.Errorf("alpha was read, counts %d unread", stateOf(u2, "alpha").Unread)
		}

		v := viewOf(u2, "alpha")
		v.loadOlder()
		if got := roomShown(v); len(got) != 2*pageSize || got[0] != "old news 51" {
			t.Fatalf("after one page up: %d messages from %q", len(got), first(got))
		}
		v.loadOlder()
		v.loadOlder() // nothing more on the device: no change, no error
		if got := roomShown(v); len(got) != 250 || got[0] != "old news 1" || v.moreOnDevice {
			t.Fatalf("after the last page: %d messages from %q, more=%v", len(got), first(got), v.moreOnDevice)
		}
	})
	eventually(t, loop, "the offline link shown as reconnecting in the sidebar", func() bool {
		l := stateOf(u2, "alpha").Link
		return l.Phase == chatview.PhaseReconnecting || l.Phase == chatview.PhaseConnecting
	})
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func last(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[len(s)-1]
}

// A resume the relay could not fully serve (recovered: false) leaves a gap
// marker that the device keeps: opened offline later, the marker is still
// between what was read and what came after, never silently merged.
func TestGapMarkerKeptOnTheDevice(t *testing.T) {
	srv := runRelay(t, server.Config{History: 10, Rate: 10000, Burst: 10000})
	addr := srv.Addr().String()
	a := test.NewTempApp(t)
	dataDir := t.TempDir()
	loop := newUILoop(t)
	p := settings.Profile{Relay: addr, Name: "Alice", Room: "team", HostPort: 7070}
	bob := newPoster(t, addr, "team")

	u := startApp(t, a, loop, dataDir, &p)
	eventually(t, loop, "connected", func() bool { return u.room != nil && u.room.link.Phase == chatview.PhaseConnected })
	bob.post("before", 3)
	eventually(t, loop, "three shown", func() bool { return len(roomShown(u.room)) == 3 })
	loop.wait(u.Close)

	bob.post("missed", 30) // the relay keeps 10: 20 are gone for Alice
	u = startApp(t, a, loop, dataDir, nil)
	eventually(t, loop, "the newest after the resume", func() bool {
		s := roomShown(u.room)
		return len(s) > 0 && s[len(s)-1] == "missed 30"
	})
	loop.wait(func() {
		s := roomShown(u.room)
		if !hasGapBetween(s, "before 3", "missed 21") {
			t.Errorf("online after the resume: %q", s)
		}
	})
	loop.wait(u.Close)
	srv.Shutdown(context.Background())

	u = startApp(t, a, loop, dataDir, nil)
	defer loop.wait(u.Close)
	loop.wait(func() {
		s := roomShown(u.room)
		if !hasGapBetween(s, "before 3", "missed 21") || last(s) != "missed 30" {
			t.Errorf("offline, from the device: %q; want before 1-3, a gap, missed 21-30", s)
		}
		n := 0
		for _, x := range s {
			if strings.HasPrefix(x, "missed") || strings.HasPrefix(x, "before") {
				n++
			}
		}
		if n != 13 {
			t.Errorf("%d messages on the device, want 13 (each once)", n)
		}
	})
}

// hasGapBetween: a's row, then exactly one gap marker, then b's.
func hasGapBetween(s []string, a, b string) bool {
	for i := 0; i+2 < len(s); i++ {
		if s[i] == a && strings.HasPrefix(s[i+1], "gap: ") && s[i+2] == b {
			return true
		}
	}
	return false
}

// Search over the device's history: Ctrl+Shift+F finds a word in every
// room with the room, the sender and the match highlighted (as RichText
// segments: markup in a message stays text); Ctrl+F only in the room on
// screen; choosing a result opens its room at the message. Clearing a
// room's history from the privacy settings empties it on the device.
func TestSearchEveryRoomAndOpenAResult(t *testing.T) {
	addr := resumeRelay(t, 0)
	loop := newUILoop(t)
	p := settings.Profile{Relay: addr, Room: "alpha", Name: "Alice", HostPort: 7070}
	pb := p
	pb.Room = "beta"
	u := openUI(t, loop, p, pb)
	newPoster(t, addr, "alpha").post("the *deploy* checklist [link](x)", 1)
	pbeta := newPoster(t, addr, "beta")
	pbeta.post("filler", 150)
	pbeta.post("deploying tonight", 1)
	pbeta.post("more filler", 150)

	loop.wait(func() { u.selectRoom(stateOf(u, "alpha").Key()); u.win.Resize(fyne.NewSize(1000, 700)) })
	var hits []searchHit
	eventually(t, loop, "both stored and found", func() bool {
		var err error
		hits, err = u.finder.search("deploy", "", 50)
		return err == nil && len(hits) == 2
	})
	loop.wait(func() {
		u.room.composer.TypedShortcut(ctrlShift(fyne.KeyF))
		sv := u.search
		if sv == nil || !sv.all {
			t.Fatal("Ctrl+Shift+F opened no search of every room")
		}
		test.Type(sv.entry, "deploy")
		if len(sv.hits) != 2 || sv.hits[0].Room != "beta" || sv.hits[1].Room != "alpha" {
			t.Fatalf("hits %+v, want beta's (newest) then alpha's", sv.hits)
		}
		// The rendered result: room, sender, and the match on its own segment.
		var segs []widget.RichTextSegment
		for _, o := range test.LaidOutObjects(sv.list) {
			if rt, ok := o.(*widget.RichText); ok && len(rt.Segments) > 1 {
				if ts, ok := rt.Segments[0].(*widget.TextSegment); ok && ts.Text == "the *deploy* checklist [link](x) 1"[:5] {
					segs = rt.Segments
				}
			}
		}
		if segs == nil {
			t.Fatal("alpha's result is not drawn with highlight segments")
		}
		var matched, whole string
		for _, s := range segs {
			ts := s.(*widget.TextSegment)
			whole += ts.Text
			if ts.Style.ColorName == theme.ColorNamePrimary && ts.Style.TextStyle.Bold {
				matched += ts.Text
			}
		}
		if matched != "deploy" || whole != "the *deploy* checklist [link](x) 1" {
			t.Errorf("segments %q with %q highlighted", whole, matched)
		}

		sv.list.Select(0) // beta's result, far above beta's newest page
		if u.search != nil || u.room.room != "beta" {
			t.Fatalf("choosing a result: search open %v, room %q", u.search != nil, u.room.room)
		}
		if m := u.room.list.Marked; m == nil || m.Text != "deploying tonight 1" {
			t.Errorf("the result is not marked in beta: %+v", m)
		}

		u.room.composer.TypedShortcut(ctrl1(fyne.KeyF))
		if u.search == nil || u.search.all {
			t.Fatal("Ctrl+F opened no search of this room")
		}
		test.Type(u.search.entry, "deploy")
		if len(u.search.hits) != 1 || u.search.hits[0].Room != "beta" {
			t.Errorf("this room's search: %+v", u.search.hits)
		}
		u.search.entry.TypedKey(&fyne.KeyEvent{Name: fyne.KeyEscape})
		if u.search != nil {
			t.Error("Esc did not close the search")
		}

		u.clearRoomHistory(stateOf(u, "beta"))
		if got := roomShown(u.room); len(got) != 0 {
			t.Errorf("beta still shows %d rows after clearing", len(got))
		}
		hits, err := u.finder.search("deploy", "", 50)
		if err != nil || len(hits) != 1 || hits[0].Room != "alpha" {
			t.Errorf("after clearing beta, search finds %+v (%v)", hits, err)
		}
	})
}
