package ui

import (
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/driver/desktop"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"github.com/heartline/heartline/desktop/chatview"
	"github.com/heartline/heartline/desktop/settings"
)

// openUI starts the app with one room joined and n more added from the
// sidebar's join, all on real relays.
func openUI(t *testing.T, loop *uiLoop, first settings.Profile, more ...settings.Profile) *UI {
	t.Helper()
	a := test.NewTempApp(t)
	var u *UI
	dir := t.TempDir()
	loop.wait(func() {
		u = New(a, Options{DataDir: dir, Do: loop.do, Diagnose: (&diagCalls{}).run})
		u.Start(&first, true)
		for _, p := range more {
			if err := u.join(p); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Cleanup(func() { loop.wait(u.Close) })
	eventually(t, loop, "every room connected", func() bool {
		for _, r := range u.rooms.items {
			if r.Link.Phase != chatview.PhaseConnected {
				return false
			}
		}
		return len(u.rooms.items) == 1+len(more)
	})
	return u
}

// sidebarRowOf is the rendered row of room i.
func sidebarRowOf(t *testing.T, u *UI, i int) *sidebarRow {
	t.Helper()
	var row *sidebarRow
	test.WidgetRenderer(u.sidebar.list) // lays the list out
	for _, o := range test.LaidOutObjects(u.sidebar.list) {
		if it, ok := o.(*sidebarItem); ok && it.row.name.Text == u.rooms.items[i].Title() {
			row = it.row
		}
	}
	if row == nil {
		t.Fatalf("no row drawn for %s", u.rooms.items[i].Title())
	}
	return row
}

// The sidebar draws every room with its unread count, mention marker and
// link dot; the keyboard moves between rooms (Alt+Down, Ctrl+digit,
// Alt+Shift+Up for unread) and the quick switcher opens a room by part of
// its name, all while the composer has the focus.
func TestSidebarCountsAndKeyboard(t *testing.T) {
	relayA, relayB := resumeRelay(t, 0), resumeRelay(t, 0)
	loop := newUILoop(t)
	p := settings.Profile{Relay: relayA, Room: "alpha", Name: "Alice", Notifications: true, HostPort: 7070}
	p2, p3 := p, p
	p2.Room = "beta"
	p3.Relay, p3.Room = relayB, "gamma"
	u := openUI(t, loop, p, p2, p3)
	loop.wait(func() {
		u.win.Resize(fyne.NewSize(1000, 700))
		u.selectRoom(u.rooms.items[0].Key())
		if u.Screen() != "room" || u.room.room != "alpha" {
			t.Fatalf("screen %q room %q, want alpha", u.Screen(), u.room.room)
		}
	})

	newPoster(t, relayA, "beta").post("beta news", 2)
	newPoster(t, relayB, "gamma").post("@Alice ping", 1)
	eventually(t, loop, "counts in the sidebar", func() bool {
		return u.rooms.items[1].Unread == 2 && u.rooms.items[2].Mentions == 1
	})
	loop.wait(func() {
		u.sidebar.refresh()
		beta, gamma, alpha := sidebarRowOf(t, u, 1), sidebarRowOf(t, u, 2), sidebarRowOf(t, u, 0)
		if !beta.badge.Visible() || beta.count.Text != "2" || beta.mention.Visible() {
			t.Errorf("beta: badge %v %q mention %v, want 2 and no mention", beta.badge.Visible(), beta.count.Text, beta.mention.Visible())
		}
		if !gamma.mention.Visible() || gamma.count.Text != "1" {
			t.Errorf("gamma: mention %v count %q", gamma.mention.Visible(), gamma.count.Text)
		}
		if alpha.badge.Visible() || alpha.noteSeg.Text != relayA {
			t.Errorf("alpha (on screen): badge %v note %q", alpha.badge.Visible(), alpha.noteSeg.Text)
		}
		if got := u.win.Title(); got != "(3) #alpha - Heartline" {
			t.Errorf("title %q", got)
		}

		key := func(k fyne.KeyName, m fyne.KeyModifier) {
			u.room.composer.TypedShortcut(&desktop.CustomShortcut{KeyName: k, Modifier: m})
		}
		key(fyne.KeyDown, fyne.KeyModifierAlt)
		if u.room.room != "beta" || u.rooms.items[1].Unread != 0 {
			t.Errorf("Alt+Down: room %q unread %d, want beta read", u.room.room, u.rooms.items[1].Unread)
		}
		key(fyne.KeyUp, fyne.KeyModifierAlt|fyne.KeyModifierShift)
		if u.room.room != "gamma" {
			t.Errorf("Alt+Shift+Up from beta: %q, want gamma (the only unread)", u.room.room)
		}
		key(fyne.Key1, fyne.KeyModifierShortcutDefault)
		if u.room.room != "alpha" {
			t.Errorf("Ctrl+1: %q", u.room.room)
		}

		key(fyne.KeyK, fyne.KeyModifierShortcutDefault)
		if u.switcher == nil {
			t.Fatal("Ctrl+K opened no switcher")
		}
		test.Type(u.switcher.entry, "gam")
		if len(u.switcher.matches) != 1 {
			t.Fatalf("switcher shows %d rooms for 'gam'", len(u.switcher.matches))
		}
		u.switcher.entry.TypedKey(&fyne.KeyEvent{Name: fyne.KeyReturn})
		if u.switcher != nil || u.room.room != "gamma" {
			t.Errorf("Enter in the switcher: open=%v room %q", u.switcher != nil, u.room.room)
		}
		key(fyne.KeyK, fyne.KeyModifierShortcutDefault)
		test.Type(u.switcher.entry, "zzz")
		if len(u.switcher.matches) != 0 {
			t.Error("the switcher matched zzz")
		}
		u.switcher.entry.TypedKey(&fyne.KeyEvent{Name: fyne.KeyEscape})
		if u.switcher != nil || u.room.room != "gamma" {
			t.Error("Esc did not close the switcher, or changed room")
		}

		key(fyne.KeySlash, fyne.KeyModifierShortcutDefault)
		if u.sheet == nil {
			t.Fatal("Ctrl+/ showed no shortcuts sheet")
		}
		found := false
		for _, o := range test.LaidOutObjects(u.win.Canvas().Overlays().Top()) {
			if l, ok := o.(*widget.Label); ok && l.Text == "Ctrl+K" {
				found = true
			}
		}
		if !found {
			t.Error("the sheet does not list Ctrl+K")
		}
		u.sheet.Hide()
	})

	// The row's menu sets the room's notifications and leaves it.
	loop.wait(func() {
		m := u.sidebar.roomMenu(u.rooms.items[1].Key())
		var notify *fyne.MenuItem
		for _, it := range m.Items {
			if it.Label == "Notify me of" {
				notify = it
			}
		}
		if notify == nil || len(notify.ChildMenu.Items) != 3 || !notify.ChildMenu.Items[0].Checked {
			t.Fatalf("menu %+v: no notification levels, or 'all' not checked", m.Items)
		}
		notify.ChildMenu.Items[1].Action()
		if u.rooms.items[1].Entry.Notify != settings.NotifyMentions || u.store.Rooms()[1].Notify != settings.NotifyMentions {
			t.Errorf("level after the menu: %q (saved %q)", u.rooms.items[1].Entry.Notify, u.store.Rooms()[1].Notify)
		}
	})
	// The order is kept across a restart, with the room that was open.
	loop.wait(func() { u.moveRoom(-2) })
	loop.wait(func() {
		if u.rooms.items[0].Entry.Room != "gamma" {
			t.Fatalf("gamma not moved to the top")
		}
		rs := u.store.Rooms()
		if len(rs) != 3 || rs[0].Room != "gamma" || rs[1].Room != "alpha" || u.store.SelectedRoom() != u.rooms.items[0].Key() {
			t.Errorf("saved %+v selected %q", rs, u.store.SelectedRoom())
		}
	})
}

func ctrl1(k fyne.KeyName) fyne.Shortcut {
	return &desktop.CustomShortcut{KeyName: k, Modifier: fyne.KeyModifierShortcutDefault}
}

func ctrlShift(k fyne.KeyName) fyne.Shortcut {
	return &desktop.CustomShortcut{KeyName: k, Modifier: fyne.KeyModifierShortcutDefault | fyne.KeyModifierShift}
}

func ctrlMod(k fyne.KeyName, m fyne.KeyModifier) fyne.Shortcut {
	return &desktop.CustomShortcut{KeyName: k, Modifier: m}
}

// Typing "@" and the start of a member's name offers the name; Tab puts
// it in. A message that mentions me is tinted in the list, and notifies
// although the room's notifications are off and the app's are too.
func TestMentionCompletionAndHighlight(t *testing.T) {
	relay := resumeRelay(t, 0)
	loop := newUILoop(t)
	u := openUI(t, loop, settings.Profile{Relay: relay, Room: "alpha", Name: "Alice", HostPort: 7070})
	bob := newPoster(t, relay, "alpha")
	eventually(t, loop, "Bob in the member list", func() bool { return u.room.roster.Len() == 2 })
	loop.wait(func() {
		c := u.room.composer
		u.win.Canvas().Focus(c)
		test.Type(c, "thanks @bo")
		if !u.room.mentions.box.Visible() || len(u.room.mentions.candidates) != 1 || u.room.mentions.candidates[0] != "Bob" {
			t.Fatalf("suggestions %v visible=%v, want Bob", u.room.mentions.candidates, u.room.mentions.box.Visible())
		}
		c.TypedKey(&fyne.KeyEvent{Name: fyne.KeyTab})
		if c.Text != "thanks @Bob " || u.room.mentions.box.Visible() {
			t.Errorf("after Tab: %q (row visible %v)", c.Text, u.room.mentions.box.Visible())
		}
		test.Type(c, "@al")
		if u.room.mentions.box.Visible() {
			t.Error("offered my own name")
		}
		c.SetText("")

		u.prof.Notifications = false
		u.rooms.setNotify(u.rooms.current().Key(), settings.NotifyNone)
		u.focusChanged(false)
	})
	test.AssertNotificationSent(t, &fyne.Notification{Title: "Bob mentioned you in #alpha", Content: "@alice look 1"}, func() {
		bob.post("@alice look", 1)
		eventually(t, loop, "the mention shown", func() bool { return u.rooms.current().Mentions == 1 })
	})
	loop.wait(func() {
		last := u.room.tl.Item(u.room.tl.Len() - 1).Msg
		if last == nil || !u.room.list.Highlight(last) {
			t.Error("the mention is not highlighted")
		}
		if first := u.room.tl.Item(u.room.tl.Len() - 1); first.Msg.Text != "@alice look 1" {
			t.Errorf("last row %q", first.Msg.Text)
		}
	})
	test.AssertNotificationSent(t, nil, func() {
		bob.post("no mention here", 1)
		eventually(t, loop, "the plain message counted", func() bool { return u.rooms.current().Unread == 2 })
	})
}
