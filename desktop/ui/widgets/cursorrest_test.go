package widgets

import (
	"image/color"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/driver/desktop"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/theme"
)

// animApp is the test app with a driver that keeps the animations started
// and not yet stopped: the Entry's cursor blink is one of them (the test
// driver itself only ticks an animation once).
type animApp struct {
	fyne.App
	d *animDriver
}

func (a animApp) Driver() fyne.Driver { return a.d }

type animDriver struct {
	fyne.Driver
	running map[*fyne.Animation]bool
}

func (d *animDriver) StartAnimation(a *fyne.Animation) {
	d.running[a] = true
	d.Driver.StartAnimation(a)
}

func (d *animDriver) StopAnimation(a *fyne.Animation) {
	delete(d.running, a)
	d.Driver.StopAnimation(a)
}

func newAnimApp(t *testing.T) *animDriver {
	a := test.NewTempApp(t)
	d := &animDriver{Driver: a.Driver(), running: map[*fyne.Animation]bool{}}
	fyne.SetCurrentApp(animApp{App: a, d: d})
	t.Cleanup(func() { fyne.SetCurrentApp(a) })
	return d
}

// cursorOf finds the Entry's cursor: a thin rectangle (a few pixels wide)
// of the theme's primary colour, at any opacity.
func cursorOf(t *testing.T, w fyne.Widget) *canvas.Rectangle {
	t.Helper()
	var found *canvas.Rectangle
	var walk func(o fyne.CanvasObject)
	walk = func(o fyne.CanvasObject) {
		switch x := o.(type) {
		case fyne.Widget:
			for _, c := range test.WidgetRenderer(x).Objects() {
				walk(c)
			}
		case *fyne.Container:
			for _, c := range x.Objects {
				walk(c)
			}
		case *canvas.Rectangle:
			r, g, b, _ := theme.Color(theme.ColorNamePrimary).RGBA()
			if x.FillColor == nil || x.Size().Width > 4 {
				return
			}
			fr, fg, fb, fa := color.NRGBAModel.Convert(x.FillColor).RGBA()
			if fa > 0 {
				// un-premultiply to compare the hue
				fr, fg, fb = fr*0xffff/fa, fg*0xffff/fa, fb*0xffff/fa
			}
			if near(fr, r) && near(fg, g) && near(fb, b) {
				found = x
			}
		}
	}
	walk(w)
	if found == nil {
		t.Fatal("no cursor rectangle in the entry")
	}
	return found
}

func near(a, b uint32) bool { return a+0x400 >= b && b+0x400 >= a }

func TestComposerCursorStopsBlinkingWhenLeftAlone(t *testing.T) {
	d := newAnimApp(t)
	c := NewComposer()
	w := test.NewTempWindow(t, c)
	w.Resize(fyne.NewSize(400, 100))

	w.Canvas().Focus(c)
	if len(d.running) != 1 {
		t.Fatalf("focused: %d animations running, want the cursor's blink", len(d.running))
	}
	start := time.Now()
	if c.RestCursor(start.Add(DefaultBlinkFor / 2)) {
		t.Fatal("the cursor rested before BlinkFor")
	}
	if len(d.running) != 1 {
		t.Fatalf("%d animations running before BlinkFor, want 1", len(d.running))
	}
	if !c.RestCursor(start.Add(DefaultBlinkFor + time.Second)) {
		t.Fatal("the cursor did not rest after BlinkFor")
	}
	if len(d.running) != 0 {
		t.Fatalf("resting: %d animations running, want none (each blink step redraws the window)", len(d.running))
	}
	// Still there, lit, and the box still has the focus.
	cur := cursorOf(t, c)
	if !cur.Visible() {
		t.Fatal("the resting cursor is hidden")
	}
	_, _, _, a := cur.FillColor.RGBA()
	if want := theme.Color(theme.ColorNamePrimary); cur.FillColor != want || a < 0xff00 {
		t.Fatalf("resting cursor colour %v, want the solid primary %v", cur.FillColor, want)
	}
	if w.Canvas().Focused() != c {
		t.Fatal("resting took the focus away")
	}
	// A refresh of its own (Fyne refreshes an Entry for many reasons) does
	// not bring the blink back.
	c.Refresh()
	if len(d.running) != 0 {
		t.Fatalf("a refresh restarted the blink: %d animations", len(d.running))
	}

	// Typing wakes it, and the text goes in.
	test.Type(c, "hi")
	if len(d.running) != 1 {
		t.Fatalf("after typing: %d animations running, want the blink back", len(d.running))
	}
	if c.Text != "hi" {
		t.Fatalf("text %q", c.Text)
	}
	// It rests again only BlinkFor after the last key.
	if c.RestCursor(time.Now().Add(DefaultBlinkFor / 2)) {
		t.Fatal("rested too soon after typing")
	}
	if !c.RestCursor(time.Now().Add(DefaultBlinkFor+time.Second)) || len(d.running) != 0 {
		t.Fatalf("did not rest again (%d animations)", len(d.running))
	}
	// A click wakes it too.
	c.MouseDown(&desktop.MouseEvent{PointEvent: fyne.PointEvent{Position: fyne.NewPos(5, 5)}, Button: desktop.MouseButtonPrimary})
	c.MouseUp(&desktop.MouseEvent{PointEvent: fyne.PointEvent{Position: fyne.NewPos(5, 5)}, Button: desktop.MouseButtonPrimary})
	if len(d.running) != 1 {
		t.Fatalf("after a click: %d animations running, want the blink back", len(d.running))
	}

	// Unfocused there is nothing to rest; focused again it blinks afresh.
	w.Canvas().Unfocus()
	if len(d.running) != 0 || c.RestCursor(time.Now().Add(time.Hour)) {
		t.Fatalf("unfocused: %d animations, or rested", len(d.running))
	}
	w.Canvas().Focus(c)
	if len(d.running) != 1 {
		t.Fatalf("refocused: %d animations running", len(d.running))
	}

	// Animations are the real app's again outside the resting refreshes.
	if !fyne.CurrentApp().Settings().ShowAnimations() {
		t.Fatal("the app's animations stayed off")
	}
}

func TestComposerBlinkForeverWhenNegative(t *testing.T) {
	d := newAnimApp(t)
	c := NewComposer()
	c.BlinkFor = -1
	w := test.NewTempWindow(t, c)
	w.Canvas().Focus(c)
	if c.RestCursor(time.Now().Add(time.Hour)) || len(d.running) != 1 {
		t.Fatalf("BlinkFor < 0 rested (%d animations)", len(d.running))
	}
}

func TestKeyEntryCursorStopsBlinkingWhenLeftAlone(t *testing.T) {
	d := newAnimApp(t)
	e := NewKeyEntry()
	w := test.NewTempWindow(t, e)
	w.Resize(fyne.NewSize(300, 50))
	w.Canvas().Focus(e)
	if len(d.running) != 1 {
		t.Fatalf("focused: %d animations", len(d.running))
	}
	if !e.RestCursor(time.Now().Add(DefaultBlinkFor+time.Second)) || len(d.running) != 0 {
		t.Fatalf("did not rest (%d animations)", len(d.running))
	}
	test.Type(e, "x")
	if len(d.running) != 1 || e.Text != "x" {
		t.Fatalf("typing: %d animations, text %q", len(d.running), e.Text)
	}
}
