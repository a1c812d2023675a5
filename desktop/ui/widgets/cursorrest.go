package widgets

import (
	"sync/atomic"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/widget"
)

// DefaultBlinkFor is how long a focused box's cursor blinks after the last
// key, click or focus change; then it stays lit until the next one (as GTK
// does after gtk-cursor-blink-timeout, 10 s by default).
//
// Why: Fyne's Entry fades its cursor in and out for as long as it has the
// focus, and every step of the fade is a new frame of the whole window. With
// a GPU that is next to nothing; with a software renderer (Mesa's llvmpipe:
// virtual machines, remote desktops, some laptops without drivers) it was
// 13-16% of a core while the app sat idle with the composer focused.
const DefaultBlinkFor = 10 * time.Second

// cursorRest stops an Entry's cursor animation once the box has been left
// alone for a while, keeping the cursor drawn (solid) where it is.
//
// Fyne v2.7 has no switch for this: the Entry starts its blink in its
// renderer's Refresh whenever it is focused and the app's settings allow
// animations, and stops it only when it is refreshed unfocused. So resting
// refreshes the Entry once unfocused (the animation stops) and once focused
// again while Settings().ShowAnimations() answers false, which makes the
// Entry draw a steady cursor; any later refresh while resting (the Entry
// refreshes itself for many reasons) goes through restingRenderer, which
// answers false again, so the blink does not come back by itself. The next
// key, click or focus change wakes it: the blink starts again at once.
type cursorRest struct {
	entry      *widget.Entry
	focused    bool
	resting    bool
	lastActive time.Time
}

// wake records activity; a resting cursor starts blinking again.
func (r *cursorRest) wake(now time.Time) {
	r.lastActive = now
	if r.resting {
		r.resting = false
		r.entry.Refresh() // focused, animations allowed: Fyne starts the blink
	}
}

// rest stops the blink if the box has the focus and was left alone for
// d (0: DefaultBlinkFor; negative: never). It reports whether the cursor
// rests (after the call).
func (r *cursorRest) rest(now time.Time, d time.Duration) bool {
	if d == 0 {
		d = DefaultBlinkFor
	}
	if r.resting || !r.focused || d < 0 || now.Sub(r.lastActive) < d {
		return r.resting
	}
	r.resting = true
	// The canvas keeps its focus on the box: only the Entry's own state
	// flips, inside one UI turn, so no frame shows it unfocused.
	r.entry.FocusLost()   // refreshed unfocused: the animation stops
	r.entry.FocusGained() // refreshed focused, no animations: a steady cursor
	return true
}

func (r *cursorRest) focusGained(now time.Time) {
	r.focused = true
	r.resting = false
	r.lastActive = now
}

func (r *cursorRest) focusLost() {
	r.focused = false
	r.resting = false
}

// restingRenderer is the Entry's renderer, refreshed with animations
// turned off while the cursor rests.
type restingRenderer struct {
	fyne.WidgetRenderer
	rest *cursorRest
}

func (r *restingRenderer) Refresh() {
	if !r.rest.resting {
		r.WidgetRenderer.Refresh()
		return
	}
	withoutAnimations(r.WidgetRenderer.Refresh)
}

// stillDepth counts the withoutAnimations calls running (on the UI
// goroutine; atomic because other goroutines may still hold stillApp).
var stillDepth atomic.Int32

// withoutAnimations runs f with the current app's settings answering
// ShowAnimations() == false, which is all the Entry looks at to decide
// between a blinking and a steady cursor. The app is replaced by a wrapper
// only while f runs; everything but ShowAnimations goes to the real one.
func withoutAnimations(f func()) {
	cur := fyne.CurrentApp()
	if cur == nil {
		f()
		return
	}
	stillDepth.Add(1)
	fyne.SetCurrentApp(stillApp{App: cur})
	defer func() {
		fyne.SetCurrentApp(cur)
		stillDepth.Add(-1)
	}()
	f()
}

type stillApp struct{ fyne.App }

func (a stillApp) Settings() fyne.Settings { return stillSettings{a.App.Settings()} }

type stillSettings struct{ fyne.Settings }

func (s stillSettings) ShowAnimations() bool {
	return stillDepth.Load() == 0 && s.Settings.ShowAnimations()
}
