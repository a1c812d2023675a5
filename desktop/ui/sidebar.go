package ui

import (
	"fmt"
	"image/color"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/driver/desktop"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/heartline/heartline/desktop/chatview"
	"github.com/heartline/heartline/desktop/settings"
	"github.com/heartline/heartline/desktop/ui/widgets"
)

// sidebar lists the rooms (u.rooms) with initials, unread count, mention
// marker and link dot; its buttons join, reorder and leave.
type sidebar struct {
	ui      *UI
	list    *widget.List
	content fyne.CanvasObject
	syncing bool // the list's selection is being set from code
	// items are the rows the list made (it shows some and keeps the others
	// for later); refreshRoom updates the one showing a room.
	items []*sidebarItem
}

// sidebarRow is one room's row: avatar with the link dot, name, the relay
// (or what is wrong with the link), the mention marker and unread count.
type sidebarRow struct {
	av      *widgets.Avatar
	name    *widget.Label
	note    *widget.RichText
	noteSeg *widget.TextSegment
	mention *fyne.Container
	badge   *fyne.Container
	count   *canvas.Text
}

var (
	mentionColor = color.NRGBA{0xe5, 0x39, 0x35, 0xff}
	badgeColor   = color.NRGBA{0x1e, 0x88, 0xe5, 0xff}
)

func pill(c color.Color, text *canvas.Text) *fyne.Container {
	bg := canvas.NewRectangle(c)
	bg.CornerRadius = 9
	text.Color = color.White
	text.TextStyle.Bold = true
	text.TextSize = 11
	text.Alignment = fyne.TextAlignCenter
	return container.NewStack(bg, container.New(layout.NewCustomPaddedLayout(1, 1, 6, 6), text))
}

func newSidebar(u *UI) *sidebar {
	sb := &sidebar{ui: u}
	sb.list = widget.NewList(
		func() int { return len(u.rooms.items) },
		func() fyne.CanvasObject {
			row := newSidebarRow()
			it := &sidebarItem{row: row, box: row.layout(), menu: sb.showMenu}
			it.ExtendBaseWidget(it)
			sb.items = append(sb.items, it)
			return it
		},
		func(id widget.ListItemID, o fyne.CanvasObject) {
			if id >= len(u.rooms.items) {
				return
			}
			o.(*sidebarItem).show(u.rooms.items[id], u.now())
		})
	sb.list.OnSelected = func(id widget.ListItemID) {
		if sb.syncing || id >= len(u.rooms.items) {
			return
		}
		u.selectRoom(u.rooms.items[id].Key())
	}

	add := widget.NewButtonWithIcon("Join", theme.ContentAddIcon(), func() { u.showJoinRoom() })
	up := widget.NewButtonWithIcon("", theme.MoveUpIcon(), func() { u.moveRoom(-1) })
	down := widget.NewButtonWithIcon("", theme.MoveDownIcon(), func() { u.moveRoom(1) })
	for _, b := range []*widget.Button{add, up, down} {
		b.Importance = widget.LowImportance
	}
	head := widget.NewLabelWithStyle("Rooms", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	help := widget.NewButtonWithIcon("", theme.QuestionIcon(), func() { u.showShortcuts() })
	help.Importance = widget.LowImportance
	top := container.NewBorder(nil, nil, nil, help, head)
	bottom := container.NewHBox(add, layout.NewSpacer(), up, down)
	sb.content = container.NewBorder(container.NewPadded(top), container.NewVBox(widget.NewSeparator(), bottom), nil, nil, sb.list)
	return sb
}

func newSidebarRow() *sidebarRow {
	row := &sidebarRow{av: widgets.NewAvatar(32), name: widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Bold: true}),
		count: canvas.NewText("", color.White)}
	row.name.Truncation = fyne.TextTruncateEllipsis
	row.noteSeg = &widget.TextSegment{Style: widget.RichTextStyle{ColorName: theme.ColorNamePlaceHolder, SizeName: theme.SizeNameCaptionText, Inline: true}}
	row.note = widget.NewRichText(row.noteSeg)
	row.note.Truncation = fyne.TextTruncateEllipsis
	row.mention = pill(mentionColor, canvas.NewText("@", color.White))
	row.badge = pill(badgeColor, row.count)
	return row
}

func (row *sidebarRow) layout() *fyne.Container {
	texts := container.New(layout.NewCustomPaddedVBoxLayout(-10), row.name, row.note)
	marks := container.NewHBox(container.NewCenter(row.mention), container.NewCenter(row.badge))
	return container.NewBorder(nil, nil, container.NewCenter(row.av), marks, texts)
}

// sidebarItem is a list row (a widget, so the list can size and reuse it).
type sidebarItem struct {
	widget.BaseWidget
	row *sidebarRow
	box *fyne.Container
	tip string // the link's trouble in full (hover shows it)
	pop *widget.PopUp
	key string // the room shown
	// look is what the row shows; show skips a row that would look the same
	// (re-setting a label re-measures its text for the ellipsis).
	look rowLook
	// menu opens the room's menu (nil: none, as in the switcher).
	menu func(key string, at fyne.Position)
}

// TappedSecondary opens the room's menu (right click).
func (it *sidebarItem) TappedSecondary(ev *fyne.PointEvent) {
	if it.menu != nil && it.key != "" {
		it.menu(it.key, ev.AbsolutePosition)
	}
}

// MouseIn shows what is wrong with the room's link in full, beside the
// row (the row itself has room for the start of it only).
func (it *sidebarItem) MouseIn(*desktop.MouseEvent) {
	if it.tip == "" {
		return
	}
	c := fyne.CurrentApp().Driver().CanvasForObject(it)
	if c == nil {
		return
	}
	l := widget.NewLabel(it.tip)
	l.Wrapping = fyne.TextWrapWord
	it.pop = widget.NewPopUp(container.NewGridWrap(fyne.NewSize(320, l.MinSize().Height*3), l), c)
	pos := fyne.CurrentApp().Driver().AbsolutePositionForObject(it)
	it.pop.ShowAtPosition(pos.Add(fyne.NewPos(it.Size().Width+4, 0)))
}

// MouseMoved implements desktop.Hoverable.
func (it *sidebarItem) MouseMoved(*desktop.MouseEvent) {}

// MouseOut hides the full reason.
func (it *sidebarItem) MouseOut() {
	if it.pop != nil {
		it.pop.Hide()
		it.pop = nil
	}
}

func (it *sidebarItem) CreateRenderer() fyne.WidgetRenderer {
	return widget.NewSimpleRenderer(it.box)
}

// show fills the row from the room's state.
func (it *sidebarItem) show(r *roomState, now time.Time) {
	it.key = r.Key()
	row := it.row
	row.av.Set(r.Entry.Room, nil)
	row.av.SetDot(linkColor(r.Link))
	l := rowLook{title: r.Title(), mention: r.Mentions > 0}
	l.note = linkNote(r.Link, now)
	it.tip = l.note
	switch {
	case l.note == "":
		l.note = r.Where()
		l.noteColor = theme.ColorNamePlaceHolder
	case r.Link.Phase == chatview.PhaseStopped:
		l.noteColor = theme.ColorNameError
	default:
		l.noteColor = theme.ColorNameWarning
	}
	if r.Unread > 0 {
		l.count = fmt.Sprint(r.Unread)
		if r.Unread > 99 {
			l.count = "99+"
		}
	}
	if l == it.look {
		return
	}
	old := it.look
	it.look = l
	if l.note != old.note || l.noteColor != old.noteColor {
		row.noteSeg.Style.ColorName = l.noteColor
		row.noteSeg.Text = l.note
		row.note.Refresh()
	}
	if l.mention {
		row.mention.Show()
	} else {
		row.mention.Hide()
	}
	if l.count != "" {
		if row.count.Text != l.count {
			row.count.Text = l.count
			row.count.Refresh()
		}
		row.badge.Show()
	} else {
		row.badge.Hide()
	}
	if bold := l.count != ""; l.title != old.title || bold != row.name.TextStyle.Bold || old.title == "" {
		row.name.TextStyle.Bold = bold
		row.name.SetText(l.title) // refreshes
	}
}

// rowLook is what a sidebar row shows.
type rowLook struct {
	title, note string
	noteColor   fyne.ThemeColorName
	mention     bool
	count       string // unread ("" none)
}

// roomMenu is a room's right-click menu: open, notifications, move, leave.
func (sb *sidebar) roomMenu(key string) *fyne.Menu {
	u := sb.ui
	r := u.rooms.find(key)
	if r == nil {
		return nil
	}
	var levels []*fyne.MenuItem
	for _, l := range settings.NotifyLevels {
		l := l
		it := fyne.NewMenuItem(notifyLabels[l], func() { u.rooms.setNotify(key, l) })
		it.Checked = r.Entry.Notify == l || (r.Entry.Notify == "" && l == settings.NotifyAll)
		levels = append(levels, it)
	}
	notify := fyne.NewMenuItem("Notify me of", nil)
	notify.ChildMenu = fyne.NewMenu("", levels...)
	move := func(d int) func() {
		return func() {
			if u.rooms.move(key, d) {
				u.sidebar.syncSelection()
			}
		}
	}
	return fyne.NewMenu(r.Title(),
		fyne.NewMenuItem("Open", func() { u.selectRoom(key); u.showRoom() }),
		notify,
		fyne.NewMenuItem("Move up", move(-1)),
		fyne.NewMenuItem("Move down", move(1)),
		fyne.NewMenuItemSeparator(),
		fyne.NewMenuItem("Leave "+r.Title(), func() { u.selectRoom(key); u.leaveRoom() }),
	)
}

func (sb *sidebar) showMenu(key string, at fyne.Position) {
	if m := sb.roomMenu(key); m != nil {
		widget.ShowPopUpMenuAtPosition(m, sb.ui.win.Canvas(), at)
	}
}

// linkColor is the sidebar dot: green connected, amber connecting or
// reconnecting, red stopped, grey offline.
func linkColor(l chatview.Link) color.Color {
	switch l.Phase {
	case chatview.PhaseConnected:
		return widgets.OnlineColor
	case chatview.PhaseConnecting, chatview.PhaseReconnecting:
		return widgets.AwayColor
	case chatview.PhaseStopped:
		return mentionColor
	}
	return color.NRGBA{0x9e, 0x9e, 0x9e, 0xff}
}

// refresh redraws the rows and shows the selected room as selected.
func (sb *sidebar) refresh() {
	sb.list.Refresh()
	sb.syncSelection()
}

func (sb *sidebar) syncSelection() {
	i := sb.ui.rooms.index(sb.ui.rooms.selected)
	sb.syncing = true
	if i >= 0 {
		sb.list.Select(i)
	} else {
		sb.list.UnselectAll()
	}
	sb.syncing = false
}

// refreshRoom redraws one room's row, if it is showing. (Fyne's
// List.RefreshItem refreshes the whole list, every visible row, first: 20
// rooms connecting at start cost 20 x 20 rows re-measured.)
func (sb *sidebar) refreshRoom(r *roomState) {
	key := r.Key()
	now := sb.ui.now()
	for _, it := range sb.items {
		if it.key == key {
			it.show(r, now)
		}
	}
}

// notifyLabels names the notification levels in the room's menu.
var notifyLabels = map[settings.NotifyLevel]string{
	settings.NotifyAll:      "All messages",
	settings.NotifyMentions: "Only mentions of me",
	settings.NotifyNone:     "Nothing (mentions still notify)",
}
