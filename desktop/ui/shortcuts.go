package ui

import (
	"fmt"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/driver/desktop"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/heartline/heartline/desktop/settings"
	"github.com/heartline/heartline/desktop/ui/widgets"
)

// appShortcut is one keyboard shortcut of the app: the keys, what the
// shortcuts sheet says, and what it does.
type appShortcut struct {
	key  fyne.KeyName
	mod  fyne.KeyModifier
	keys string // as the sheet shows it
	what string
	do   func(u *UI)
}

const ctrl, alt, shift = fyne.KeyModifierShortcutDefault, fyne.KeyModifierAlt, fyne.KeyModifierShift

// appShortcuts is the table the app registers and the sheet lists.
func appShortcuts() []appShortcut {
	s := []appShortcut{
		{fyne.KeyK, ctrl, "Ctrl+K", "Quick switcher: type part of a room's name, Enter opens it", (*UI).showSwitcher},
		{fyne.KeyUp, alt, "Alt+Up", "Previous room", func(u *UI) { u.selectRoom(u.rooms.neighbour(-1, false)) }},
		{fyne.KeyDown, alt, "Alt+Down", "Next room", func(u *UI) { u.selectRoom(u.rooms.neighbour(1, false)) }},
		{fyne.KeyUp, alt | shift, "Alt+Shift+Up", "Previous room with unread messages", func(u *UI) { u.selectRoom(u.rooms.neighbour(-1, true)) }},
		{fyne.KeyDown, alt | shift, "Alt+Shift+Down", "Next room with unread messages", func(u *UI) { u.selectRoom(u.rooms.neighbour(1, true)) }},
		{fyne.KeyF, ctrl, "Ctrl+F", "Search this room", func(u *UI) { u.showSearch(false) }},
		{fyne.KeyF, ctrl | shift, "Ctrl+Shift+F", "Search every room", func(u *UI) { u.showSearch(true) }},
		{fyne.KeySlash, ctrl, "Ctrl+/", "This list of shortcuts", (*UI).showShortcuts},
	}
	for i := 1; i <= 9; i++ {
		i := i
		s = append(s, appShortcut{fyne.KeyName(fmt.Sprint(i)), ctrl, "", "", func(u *UI) { u.selectRoom(u.rooms.nth(i - 1)) }})
	}
	return s
}

// sheetExtra are the keys the sheet lists that are not shortcuts of the
// canvas (plain keys, or a range).
var sheetExtra = [][2]string{
	{"Ctrl+1 … Ctrl+9", "The first to ninth room of the list"},
	{"Esc", "Jump to the latest message (and close a popup)"},
	{"Enter / Shift+Enter", "Send / new line"},
	{"@ then Tab", "Complete a member's name"},
}

// setupShortcuts registers the table on the window's canvas (nothing
// focused); focused boxes pass them on through handleShortcut.
func (u *UI) setupShortcuts() {
	c := u.win.Canvas()
	u.keys = appShortcuts()
	for _, sc := range u.keys {
		sc := sc
		c.AddShortcut(&desktop.CustomShortcut{KeyName: sc.key, Modifier: sc.mod}, func(fyne.Shortcut) { u.runShortcut(sc) })
	}
	c.SetOnTypedKey(func(ev *fyne.KeyEvent) { u.typedKey(ev) })
}

// handleShortcut runs the app's shortcut s, if it is one (a focused box
// gets every shortcut first and hands the app's own here).
func (u *UI) handleShortcut(s fyne.Shortcut) bool {
	cs, ok := s.(*desktop.CustomShortcut)
	if !ok {
		return false
	}
	for _, sc := range u.keys {
		if sc.key == cs.KeyName && sc.mod == cs.Modifier {
			u.runShortcut(sc)
			return true
		}
	}
	return false
}

func (u *UI) runShortcut(sc appShortcut) {
	if len(u.rooms.items) == 0 && sc.key != fyne.KeySlash {
		return // the join screen: no rooms to go to
	}
	sc.do(u)
}

// closePopups closes the switcher, the search and the shortcuts sheet.
func (u *UI) closePopups() {
	if u.switcher != nil {
		u.switcher.close()
	}
	if u.search != nil {
		u.search.close()
	}
	if u.sheet != nil {
		u.sheet.Hide()
	}
}

// typedKey handles plain keys the focused box did not want.
func (u *UI) typedKey(ev *fyne.KeyEvent) bool {
	if ev.Name == fyne.KeyEscape && (u.switcher != nil || u.search != nil) {
		u.closePopups()
		return true
	}
	if ev.Name == fyne.KeyEscape && u.screen == "room" && u.room != nil {
		u.room.list.JumpToLatest()
		return true
	}
	return false
}

// showShortcuts shows the shortcuts sheet.
func (u *UI) showShortcuts() {
	rows := container.NewGridWithColumns(2)
	add := func(keys, what string) {
		rows.Add(widget.NewLabelWithStyle(keys, fyne.TextAlignTrailing, fyne.TextStyle{Monospace: true}))
		rows.Add(widget.NewLabel(what))
	}
	for _, sc := range u.keys {
		if sc.keys != "" {
			add(sc.keys, sc.what)
		}
	}
	for _, e := range sheetExtra {
		add(e[0], e[1])
	}
	d := dialog.NewCustom("Keyboard shortcuts", "Close", rows, u.win)
	u.sheet = d
	d.SetOnClosed(func() { u.sheet = nil })
	d.Show()
}

// switcher is the Ctrl+K quick switcher: a box and the rooms that match.
type switcher struct {
	ui      *UI
	entry   *widgets.KeyEntry
	list    *widget.List
	matches []*roomState
	sel     int
	pop     *widget.PopUp
}

// showSwitcher opens the quick switcher over the window.
func (u *UI) showSwitcher() {
	if u.switcher != nil {
		u.win.Canvas().Focus(u.switcher.entry)
		return
	}
	sw := &switcher{ui: u}
	sw.entry = widgets.NewKeyEntry()
	sw.entry.SetPlaceHolder("Go to room…")
	sw.list = widget.NewList(func() int { return len(sw.matches) },
		func() fyne.CanvasObject {
			it := &sidebarItem{row: nil}
			row := newSidebarRow()
			it.row, it.box = row, row.layout()
			it.ExtendBaseWidget(it)
			return it
		},
		func(id widget.ListItemID, o fyne.CanvasObject) {
			if id < len(sw.matches) {
				o.(*sidebarItem).show(sw.matches[id], u.now())
			}
		})
	sw.list.OnSelected = func(id widget.ListItemID) { sw.sel = id }
	sw.entry.OnChanged = func(string) { sw.update() }
	sw.entry.OnSubmitted = func(string) { sw.open() }
	sw.entry.OnKey = func(ev *fyne.KeyEvent) bool {
		switch ev.Name {
		case fyne.KeyEscape:
			sw.close()
		case fyne.KeyDown:
			sw.move(1)
		case fyne.KeyUp:
			sw.move(-1)
		default:
			return false
		}
		return true
	}
	sw.entry.OnShortcut = u.handleShortcut
	title := widget.NewLabelWithStyle("Switch to a room", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	hint := widget.NewLabel("↑ ↓ choose · Enter opens · Esc closes")
	hint.Importance = widget.LowImportance
	hint.SizeName = theme.SizeNameCaptionText
	body := container.NewBorder(container.NewVBox(title, sw.entry), hint, nil, nil, sw.list)
	sw.pop = widget.NewModalPopUp(container.NewGridWrap(fyne.NewSize(440, 360), body), u.win.Canvas())
	u.switcher = sw
	sw.update()
	sw.pop.Show()
	u.win.Canvas().Focus(sw.entry)
}

func (sw *switcher) update() {
	sw.matches = sw.ui.rooms.match(sw.entry.Text)
	sw.sel = 0
	sw.list.Refresh()
	if len(sw.matches) > 0 {
		sw.list.Select(0)
	}
}

func (sw *switcher) move(d int) {
	if len(sw.matches) == 0 {
		return
	}
	sw.sel = (sw.sel + d + len(sw.matches)) % len(sw.matches)
	sw.list.Select(sw.sel)
}

// open goes to the chosen room.
func (sw *switcher) open() {
	if sw.sel < 0 || sw.sel >= len(sw.matches) {
		return
	}
	key := sw.matches[sw.sel].Key()
	sw.close()
	sw.ui.selectRoom(key)
	sw.ui.showRoom()
}

func (sw *switcher) close() {
	sw.pop.Hide()
	sw.ui.switcher = nil
	if sw.ui.room != nil && sw.ui.screen == "room" {
		sw.ui.win.Canvas().Focus(sw.ui.room.composer)
	}
}

// showJoinRoom asks for another room to join (this relay or another): it
// is added to the sidebar and opened; the others stay.
func (u *UI) showJoinRoom() {
	relay := widget.NewEntry()
	relay.SetPlaceHolder("192.168.1.20:7070, wss://chat.example.org/ws or an invite")
	if r := u.rooms.current(); r != nil && !r.Entry.Host {
		relay.SetText(r.Entry.Relay)
	}
	room := widget.NewEntry()
	room.SetPlaceHolder("general")
	token := widget.NewPasswordEntry()
	token.SetPlaceHolder("Only if the relay asks for one")
	notify := widget.NewSelect(notifyChoices(), nil)
	notify.SetSelected(notifyLabels[settings.NotifyAll])
	items := []*widget.FormItem{
		widget.NewFormItem("Relay address", relay),
		widget.NewFormItem("Room", room),
		widget.NewFormItem("Access token", token),
		widget.NewFormItem("Notify me of", notify),
	}
	d := dialog.NewForm("Join a room", "Join", "Cancel", items, func(ok bool) {
		if !ok {
			return
		}
		p := u.prof
		p.Relay, p.Room, p.Token, p.Host = relay.Text, room.Text, token.Text, false
		if err := u.join(p); err != nil {
			dialog.ShowError(err, u.win)
			return
		}
		if r := u.rooms.current(); r != nil {
			u.rooms.setNotify(r.Key(), notifyLevelOf(notify.Selected))
		}
	}, u.win)
	d.Resize(fyne.NewSize(520, 300))
	d.Show()
}

func notifyChoices() []string {
	var out []string
	for _, l := range settings.NotifyLevels {
		out = append(out, notifyLabels[l])
	}
	return out
}

func notifyLevelOf(label string) settings.NotifyLevel {
	for l, s := range notifyLabels {
		if s == label {
			return l
		}
	}
	return settings.NotifyAll
}
