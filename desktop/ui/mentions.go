package ui

import (
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"

	"github.com/heartline/heartline/desktop/chatview"
)

// maxSuggestions is how many names the mention row offers.
const maxSuggestions = 5

// mentionRow is the row above the composer offering the members whose
// name starts with what follows the "@" being typed; Tab takes the first,
// a click takes any.
type mentionRow struct {
	box        *fyne.Container
	candidates []string
	query      chatview.MentionQuery
}

func (r *roomView) buildMentionRow() fyne.CanvasObject {
	r.mentions = &mentionRow{box: container.NewHBox()}
	r.mentions.box.Hide()
	r.composer.OnChanged = func(string) { r.updateSuggestions() }
	r.composer.OnCursorChanged = func() { r.updateSuggestions() }
	return r.mentions.box
}

// cursorOffset is the composer's cursor as a byte offset in its text.
func cursorOffset(text string, row, col int) int {
	off := 0
	lines := strings.Split(text, "\n")
	for i := 0; i < row && i < len(lines); i++ {
		off += len(lines[i]) + 1
	}
	if row < len(lines) {
		rs := []rune(lines[row])
		off += len(string(rs[:min(col, len(rs))]))
	}
	return min(off, len(text))
}

// updateSuggestions offers the names that complete the "@..." at the cursor.
func (r *roomView) updateSuggestions() {
	m := r.mentions
	text := r.composer.Text
	q, ok := chatview.MentionAt(text, cursorOffset(text, r.composer.CursorRow, r.composer.CursorColumn))
	m.candidates = nil
	if ok {
		var names []string
		for _, mb := range r.roster.Sorted() {
			names = append(names, mb.Name)
		}
		m.candidates = chatview.CompleteMention(q.Prefix, names, r.me.Name, maxSuggestions)
		m.query = q
	}
	if len(m.candidates) == 0 {
		if m.box.Visible() {
			m.box.Hide()
		}
		return
	}
	m.box.Objects = nil
	for i, name := range m.candidates {
		name := name
		b := widget.NewButton("@"+name, func() { r.complete(name) })
		if i == 0 {
			b.Importance = widget.HighImportance
		} else {
			b.Importance = widget.LowImportance
		}
		m.box.Add(b)
	}
	hint := widget.NewLabel("Tab completes")
	hint.Importance = widget.LowImportance
	m.box.Add(hint)
	m.box.Show()
	m.box.Refresh()
}

// complete puts "@name " in place of the "@..." being typed.
func (r *roomView) complete(name string) {
	text := r.composer.Text
	cur := cursorOffset(text, r.composer.CursorRow, r.composer.CursorColumn)
	nt, at := chatview.InsertMention(text, cur, r.mentions.query, name)
	r.composer.SetText(nt)
	before := nt[:at]
	r.composer.CursorRow = strings.Count(before, "\n")
	r.composer.CursorColumn = len([]rune(before[strings.LastIndexByte(before, '\n')+1:]))
	r.composer.Refresh()
	r.mentions.box.Hide()
	r.ui.win.Canvas().Focus(r.composer)
}

// completeKey: Tab takes the first suggestion, Escape closes the row.
func (r *roomView) completeKey(ev *fyne.KeyEvent) bool {
	m := r.mentions
	if m == nil || !m.box.Visible() || len(m.candidates) == 0 {
		return false
	}
	switch ev.Name {
	case fyne.KeyTab:
		r.complete(m.candidates[0])
		return true
	case fyne.KeyEscape:
		m.box.Hide()
		return true
	}
	return false
}
