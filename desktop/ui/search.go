package ui

import (
	"fmt"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/heartline/heartline/desktop/chatview"
	"github.com/heartline/heartline/desktop/ui/widgets"
)

// searchHit is one message a search found, with where the query matched.
type searchHit struct {
	RoomKey string // the sidebar entry's key
	Room    string
	Epoch   string
	Seq     uint64
	From    string
	TS      int64
	Text    string
	Spans   [][2]int // byte ranges of Text that matched
}

// messageSearch searches the local history: roomKey "" means every room.
type messageSearch interface {
	search(query, roomKey string, limit int) ([]searchHit, error)
}

// maxHits is how many results the search view lists.
const maxHits = 200

// searchView is Ctrl+F (this room) and Ctrl+Shift+F (every room): a box,
// then the messages that match, newest first, with the match in bold.
type searchView struct {
	ui      *UI
	all     bool
	roomKey string
	entry   *widgets.KeyEntry
	status  *widget.Label
	list    *widget.List
	hits    []searchHit
	pop     *widget.PopUp
	took    time.Duration
}

// showSearch opens the search over the window.
func (u *UI) showSearch(all bool) {
	if u.search != nil {
		u.search.close()
	}
	cur := u.rooms.current()
	if cur == nil && !all {
		return
	}
	sv := &searchView{ui: u, all: all}
	if !all {
		sv.roomKey = cur.Key()
	}
	sv.entry = widgets.NewKeyEntry()
	if all {
		sv.entry.SetPlaceHolder("Search every room…")
	} else {
		sv.entry.SetPlaceHolder("Search #" + cur.Entry.Room + "…")
	}
	sv.status = widget.NewLabel("Type a word or two; Enter searches.")
	sv.status.Importance = widget.LowImportance
	sv.list = widget.NewList(func() int { return len(sv.hits) },
		func() fyne.CanvasObject {
			head := widget.NewRichText()
			body := widget.NewRichText()
			body.Wrapping = fyne.TextWrapWord
			return container.NewVBox(head, body)
		},
		func(id widget.ListItemID, o fyne.CanvasObject) {
			if id >= len(sv.hits) {
				return
			}
			c := o.(*fyne.Container)
			head, body := c.Objects[0].(*widget.RichText), c.Objects[1].(*widget.RichText)
			h := sv.hits[id]
			head.Segments = hitHeading(h, u.now())
			head.Refresh()
			body.Segments = highlightSegments(h.Text, h.Spans)
			body.Refresh()
			sv.list.SetItemHeight(id, c.MinSize().Height)
		})
	sv.list.OnSelected = func(id widget.ListItemID) { sv.open(id) }
	sv.entry.OnChanged = func(string) { sv.run() }
	sv.entry.OnSubmitted = func(string) { sv.run() }
	sv.entry.OnShortcut = u.handleShortcut
	sv.entry.OnKey = func(ev *fyne.KeyEvent) bool {
		switch ev.Name {
		case fyne.KeyEscape:
			sv.close()
		case fyne.KeyDown:
			if len(sv.hits) > 0 {
				sv.list.Select(0)
			}
		default:
			return false
		}
		return true
	}
	closeBtn := widget.NewButtonWithIcon("", theme.CancelIcon(), sv.close)
	closeBtn.Importance = widget.LowImportance
	title := "Search this room"
	if all {
		title = "Search every room"
	}
	head := container.NewBorder(nil, nil, nil, closeBtn, widget.NewLabelWithStyle(title, fyne.TextAlignLeading, fyne.TextStyle{Bold: true}))
	body := container.NewBorder(container.NewVBox(head, sv.entry, sv.status), nil, nil, nil, sv.list)
	size := u.win.Canvas().Size()
	sv.pop = widget.NewModalPopUp(container.NewGridWrap(fyne.NewSize(min(640, size.Width-40), max(300, size.Height-120)), body), u.win.Canvas())
	u.search = sv
	sv.pop.Show()
	u.win.Canvas().Focus(sv.entry)
}

// run searches for what the box holds.
func (sv *searchView) run() {
	u := sv.ui
	q := sv.entry.Text
	sv.hits = nil
	switch {
	case u.finder == nil:
		sv.status.SetText("Search needs the local history, which could not be opened.")
	case len([]rune(q)) < 2:
		sv.status.SetText("Type a word or two.")
	default:
		start := time.Now()
		hits, err := u.finder.search(q, sv.roomKey, maxHits)
		sv.took = time.Since(start)
		switch {
		case err != nil:
			sv.status.SetText(err.Error())
		case len(hits) == 0:
			sv.status.SetText("No message on this computer matches.")
		default:
			sv.hits = hits
			more := ""
			if len(hits) == maxHits {
				more = " (the newest shown)"
			}
			sv.status.SetText(fmt.Sprintf("%d messages%s · %d ms", len(hits), more, sv.took.Milliseconds()))
		}
	}
	sv.list.UnselectAll()
	sv.list.Refresh()
	sv.list.ScrollToTop()
}

// open goes to a result: its room, scrolled to the message.
func (sv *searchView) open(id int) {
	if id >= len(sv.hits) {
		return
	}
	h := sv.hits[id]
	sv.close()
	sv.ui.openAt(h.RoomKey, h.Epoch, h.Seq)
}

func (sv *searchView) close() {
	sv.pop.Hide()
	if sv.ui.search == sv {
		sv.ui.search = nil
	}
	if r := sv.ui.room; r != nil && sv.ui.screen == "room" {
		sv.ui.win.Canvas().Focus(r.composer)
	}
}

// hitHeading is a result's first line: room, sender, time.
func hitHeading(h searchHit, now time.Time) []widget.RichTextSegment {
	t := time.UnixMilli(h.TS)
	when := chatview.ShortTime(t)
	if d := chatview.DayLabel(t, now); d != "" {
		when = d + " " + when
	}
	return []widget.RichTextSegment{
		&widget.TextSegment{Text: "#" + h.Room, Style: widget.RichTextStyle{Inline: true, ColorName: theme.ColorNamePrimary, TextStyle: fyne.TextStyle{Bold: true}}},
		&widget.TextSegment{Text: "  " + h.From, Style: widget.RichTextStyle{Inline: true, TextStyle: fyne.TextStyle{Bold: true}}},
		&widget.TextSegment{Text: "  " + when, Style: widget.RichTextStyle{Inline: true, ColorName: theme.ColorNamePlaceHolder, SizeName: theme.SizeNameCaptionText}},
	}
}

// highlightSegments splits text into plain and matched segments (the
// matches bold, in the primary colour). Text is never parsed as markup:
// each piece is a TextSegment holding the characters as they are.
func highlightSegments(text string, spans [][2]int) []widget.RichTextSegment {
	var out []widget.RichTextSegment
	plain := widget.RichTextStyle{Inline: true}
	hit := widget.RichTextStyle{Inline: true, ColorName: theme.ColorNamePrimary, TextStyle: fyne.TextStyle{Bold: true}}
	at := 0
	for _, s := range spans {
		a, b := max(s[0], at), min(s[1], len(text))
		if a >= b {
			continue
		}
		if a > at {
			out = append(out, &widget.TextSegment{Text: text[at:a], Style: plain})
		}
		out = append(out, &widget.TextSegment{Text: text[a:b], Style: hit})
		at = b
	}
	if at < len(text) || len(out) == 0 {
		out = append(out, &widget.TextSegment{Text: text[at:], Style: plain})
	}
	return out
}
