package widgets

import (
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/driver/desktop"
	"fyne.io/fyne/v2/widget"
)

// Composer is the message box: Enter sends, Shift+Enter inserts a newline.
// (Fyne's multi-line Entry does the opposite, and its maintainers keep it so;
// a chat box has to follow what every chat app does.) Ctrl+Enter sends too.
type Composer struct {
	widget.Entry

	// OnSend receives the text (surrounding blank lines trimmed) when the
	// person sends; the box is cleared first. Empty messages are not sent.
	OnSend func(text string)

	shift bool
}

// NewComposer makes an empty composer.
func NewComposer() *Composer {
	c := &Composer{}
	c.MultiLine = true
	c.Wrapping = fyne.TextWrapWord
	c.SetMinRowsVisible(2)
	c.ExtendBaseWidget(c)
	return c
}

// KeyDown tracks Shift, which Fyne reports as a key of its own.
func (c *Composer) KeyDown(ev *fyne.KeyEvent) {
	if ev.Name == desktop.KeyShiftLeft || ev.Name == desktop.KeyShiftRight {
		c.shift = true
	}
	c.Entry.KeyDown(ev)
}

// KeyUp tracks Shift.
func (c *Composer) KeyUp(ev *fyne.KeyEvent) {
	if ev.Name == desktop.KeyShiftLeft || ev.Name == desktop.KeyShiftRight {
		c.shift = false
	}
	c.Entry.KeyUp(ev)
}

// FocusLost forgets Shift: its release may go to another widget.
func (c *Composer) FocusLost() {
	c.shift = false
	c.Entry.FocusLost()
}

// TypedKey sends on Enter and lets Shift+Enter through as a newline.
func (c *Composer) TypedKey(ev *fyne.KeyEvent) {
	if (ev.Name == fyne.KeyReturn || ev.Name == fyne.KeyEnter) && !c.shift {
		c.Send()
		return
	}
	// With OnSubmitted unset, the multi-line Entry inserts a newline on
	// Return whether or not Shift is held.
	c.Entry.TypedKey(ev)
}

// TypedShortcut sends on Ctrl+Enter (Cmd+Enter on macOS); other shortcuts
// (copy, paste, undo...) are the Entry's.
func (c *Composer) TypedShortcut(s fyne.Shortcut) {
	if ks, ok := s.(*desktop.CustomShortcut); ok &&
		(ks.KeyName == fyne.KeyReturn || ks.KeyName == fyne.KeyEnter) &&
		(ks.Modifier == fyne.KeyModifierShortcutDefault || ks.Modifier == fyne.KeyModifierControl) {
		c.Send()
		return
	}
	c.Entry.TypedShortcut(s)
}

// Send hands the text to OnSend and clears the box, unless it is blank.
// Leading spaces stay (indented code), blank lines around the text go.
func (c *Composer) Send() {
	if strings.TrimSpace(c.Text) == "" {
		return
	}
	text := strings.TrimRight(strings.TrimLeft(c.Text, "\r\n"), " \t\r\n")
	c.SetText("")
	if c.OnSend != nil {
		c.OnSend(text)
	}
}
