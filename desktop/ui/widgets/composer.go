package widgets

import (
	"strings"
	"time"

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
	// OnKey sees a key first (Escape, Tab, arrows for the mention list);
	// true means it was handled and the Entry does not see it.
	OnKey func(ev *fyne.KeyEvent) bool
	// OnShortcut gets the shortcuts the Entry has no use for (Ctrl+K,
	// Alt+Up...): a focused widget receives every shortcut, so the app's own
	// would not work while the person types without this.
	OnShortcut func(s fyne.Shortcut) bool
	// BlinkFor is how long the cursor blinks after the last key, click or
	// focus change before RestCursor stops it (0: DefaultBlinkFor; negative:
	// it blinks for ever).
	BlinkFor time.Duration

	shift bool
	rest  cursorRest
}

// NewComposer makes an empty composer.
func NewComposer() *Composer {
	c := &Composer{}
	c.MultiLine = true
	c.Wrapping = fyne.TextWrapWord
	c.SetMinRowsVisible(2)
	c.ExtendBaseWidget(c)
	c.rest.entry = &c.Entry
	return c
}

// CreateRenderer is the Entry's renderer, kept steady while the cursor rests.
func (c *Composer) CreateRenderer() fyne.WidgetRenderer {
	return &restingRenderer{WidgetRenderer: c.Entry.CreateRenderer(), rest: &c.rest}
}

// RestCursor stops the cursor's blink (it stays drawn) if the box has the
// focus and nobody typed or clicked in it for BlinkFor; the app calls it
// every second. It reports whether the cursor rests.
func (c *Composer) RestCursor(now time.Time) bool { return c.rest.rest(now, c.BlinkFor) }

// FocusGained starts the blink afresh.
func (c *Composer) FocusGained() {
	c.rest.focusGained(time.Now())
	c.Entry.FocusGained()
}

// TypedRune wakes the cursor.
func (c *Composer) TypedRune(r rune) {
	c.rest.wake(time.Now())
	c.Entry.TypedRune(r)
}

// MouseDown wakes the cursor (a click moves it).
func (c *Composer) MouseDown(ev *desktop.MouseEvent) {
	c.rest.wake(time.Now())
	c.Entry.MouseDown(ev)
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
	c.rest.focusLost()
	c.Entry.FocusLost()
}

// TypedKey sends on Enter and lets Shift+Enter through as a newline.
func (c *Composer) TypedKey(ev *fyne.KeyEvent) {
	c.rest.wake(time.Now())
	if c.OnKey != nil && c.OnKey(ev) {
		return
	}
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
	c.rest.wake(time.Now())
	if ks, ok := s.(*desktop.CustomShortcut); ok &&
		(ks.KeyName == fyne.KeyReturn || ks.KeyName == fyne.KeyEnter) &&
		(ks.Modifier == fyne.KeyModifierShortcutDefault || ks.Modifier == fyne.KeyModifierControl) {
		c.Send()
		return
	}
	if c.OnShortcut != nil && !isEditShortcut(s) && c.OnShortcut(s) {
		return
	}
	c.Entry.TypedShortcut(s)
}

// isEditShortcut: copy, paste, undo... which an entry keeps for itself.
func isEditShortcut(s fyne.Shortcut) bool {
	_, custom := s.(*desktop.CustomShortcut)
	return !custom
}

// KeyEntry is a one-line entry that lets its owner see keys and shortcuts
// first: the quick switcher's and the search's box (arrows move in the
// results, Escape closes, the app's shortcuts keep working).
type KeyEntry struct {
	widget.Entry
	OnKey      func(ev *fyne.KeyEvent) bool
	OnShortcut func(s fyne.Shortcut) bool
	// BlinkFor: as the Composer's.
	BlinkFor time.Duration

	rest cursorRest
}

// NewKeyEntry makes an empty KeyEntry.
func NewKeyEntry() *KeyEntry {
	e := &KeyEntry{}
	e.ExtendBaseWidget(e)
	e.rest.entry = &e.Entry
	return e
}

// CreateRenderer is the Entry's renderer, kept steady while the cursor rests.
func (e *KeyEntry) CreateRenderer() fyne.WidgetRenderer {
	return &restingRenderer{WidgetRenderer: e.Entry.CreateRenderer(), rest: &e.rest}
}

// RestCursor: as the Composer's.
func (e *KeyEntry) RestCursor(now time.Time) bool { return e.rest.rest(now, e.BlinkFor) }

// FocusGained starts the blink afresh.
func (e *KeyEntry) FocusGained() {
	e.rest.focusGained(time.Now())
	e.Entry.FocusGained()
}

// FocusLost: the blink stops with the focus anyway.
func (e *KeyEntry) FocusLost() {
	e.rest.focusLost()
	e.Entry.FocusLost()
}

// TypedRune wakes the cursor.
func (e *KeyEntry) TypedRune(r rune) {
	e.rest.wake(time.Now())
	e.Entry.TypedRune(r)
}

// MouseDown wakes the cursor (a click moves it).
func (e *KeyEntry) MouseDown(ev *desktop.MouseEvent) {
	e.rest.wake(time.Now())
	e.Entry.MouseDown(ev)
}

// TypedKey offers the key to OnKey first.
func (e *KeyEntry) TypedKey(ev *fyne.KeyEvent) {
	e.rest.wake(time.Now())
	if e.OnKey != nil && e.OnKey(ev) {
		return
	}
	e.Entry.TypedKey(ev)
}

// TypedShortcut offers the app's shortcuts to OnShortcut first.
func (e *KeyEntry) TypedShortcut(s fyne.Shortcut) {
	e.rest.wake(time.Now())
	if e.OnShortcut != nil && !isEditShortcut(s) && e.OnShortcut(s) {
		return
	}
	e.Entry.TypedShortcut(s)
}

// Send hands the text to OnSend and clears the box, unless it is blank.
// Leading spaces stay (indented code), blank lines around the text go.
func (c *Composer) Send() {
	if strings.TrimSpace(c.Text) == "" {
		return
	}
	text := strings.TrimRight(strings.TrimLeft(c.Text, "\r\n"), " \t\r\n")
	c.rest.wake(time.Now())
	c.SetText("")
	if c.OnSend != nil {
		c.OnSend(text)
	}
}
