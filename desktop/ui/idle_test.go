package ui

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"

	"github.com/heartline/heartline/desktop/chatview"
	"github.com/heartline/heartline/desktop/settings"
	"github.com/heartline/heartline/shared/client"
)

// redrawApp is the test app with a driver whose canvases count Refresh
// calls: each is a request to redraw the window (a full frame in the real
// driver).
type redrawApp struct {
	fyne.App
	d *redrawDriver
}

func (a redrawApp) Driver() fyne.Driver { return a.d }

type redrawDriver struct {
	fyne.Driver
	n atomic.Int64
}

func (d *redrawDriver) CanvasForObject(o fyne.CanvasObject) fyne.Canvas {
	c := d.Driver.CanvasForObject(o)
	if c == nil {
		return nil
	}
	return redrawCanvas{Canvas: c, n: &d.n}
}

type redrawCanvas struct {
	fyne.Canvas
	n *atomic.Int64
}

func (c redrawCanvas) Refresh(o fyne.CanvasObject) {
	c.n.Add(1)
	c.Canvas.Refresh(o)
}

// idleApp is an app with rooms rooms saved on a relay that is not there,
// opened (its engines' events are dropped: the test feeds the views), and
// a counter of redraw requests.
func idleApp(t *testing.T, rooms int) (*UI, *redrawDriver) {
	t.Helper()
	a := test.NewTempApp(t)
	d := &redrawDriver{Driver: a.Driver()}
	fyne.SetCurrentApp(redrawApp{App: a, d: d})
	t.Cleanup(func() { fyne.SetCurrentApp(a) })
	seedRooms(a, rooms, "Idle")
	u := New(a, Options{DataDir: t.TempDir(), Do: func(func()) {}, Diagnose: (&diagCalls{}).run})
	u.Start(nil, false)
	t.Cleanup(u.Close)
	u.win.Resize(fyne.NewSize(1000, 680))
	return u, d
}

// A heartbeat's new round-trip time that says nothing new (a few ms of
// jitter) does not redraw the window; a real change does.
func TestHeartbeatJitterDoesNotRedraw(t *testing.T) {
	u, d := idleApp(t, 1)
	v := u.room
	beat := func(rtt time.Duration) int64 {
		before := d.n.Load()
		v.apply([]client.Event{client.StateChanged{State: client.State{Phase: client.Connected, RTT: rtt}}})
		return d.n.Load() - before
	}
	if n := beat(40 * time.Millisecond); n == 0 {
		t.Fatal("connecting did not redraw the header")
	}
	if got := v.statusText.Text; got != "Connected · 40 ms" {
		t.Fatalf("header %q", got)
	}
	for _, rtt := range []time.Duration{41, 39, 44, 37, 40} {
		if n := beat(rtt * time.Millisecond); n != 0 {
			t.Fatalf("a heartbeat at %d ms (shown 40 ms) asked for %d redraws", rtt, n)
		}
	}
	if n := beat(90 * time.Millisecond); n == 0 || v.statusText.Text != "Connected · 90 ms" {
		t.Fatalf("a real change (40 -> 90 ms): %d redraws, header %q", n, v.statusText.Text)
	}
}

// The app's once-a-second tick rests the focused composer's cursor after
// widgets.DefaultBlinkFor without a key (the widget's own test checks the
// blink stops).
func TestTickRestsTheComposerCursor(t *testing.T) {
	u, _ := idleApp(t, 1)
	if u.win.Canvas().Focused() != u.room.composer {
		t.Fatal("the composer does not have the focus")
	}
	now := time.Now()
	u.tick(now)
	if u.room.composer.RestCursor(now) {
		t.Fatal("rested at once")
	}
	u.tick(now.Add(time.Minute))
	// (RestCursor at a time within BlinkFor only reports.)
	if !u.room.composer.RestCursor(now) {
		t.Fatal("the tick did not rest the cursor")
	}
}

// A change in one room redraws its sidebar row only, not every row (20
// rooms connecting at start re-measured 20 x 20 rows), and a row that
// would look the same is not redrawn at all.
func TestSidebarRedrawsOnlyTheRoomThatChanged(t *testing.T) {
	u, d := idleApp(t, 6)
	test.WidgetRenderer(u.sidebar.list)
	u.sidebar.list.Resize(fyne.NewSize(220, 600))
	r := u.rooms.items[3]
	var it *sidebarItem
	for _, x := range u.sidebar.items {
		if x.key == r.Key() {
			it = x
		}
	}
	if it == nil {
		t.Fatal("no row shows room 4")
	}
	// What drawing one row costs, as a yardstick.
	before := d.n.Load()
	it.look = rowLook{}
	it.show(r, u.now())
	oneRow := d.n.Load() - before
	if oneRow == 0 {
		t.Fatal("drawing a row asked for no redraw")
	}

	r.Link = chatview.Link{Phase: chatview.PhaseStopped, StopReason: "the relay said no"}
	before = d.n.Load()
	u.roomChanged(r)
	if n := d.n.Load() - before; n == 0 || n >= 2*oneRow {
		t.Fatalf("one room's change asked for %d redraws; one row costs %d (a redraw of every row, as before, 6 times that)", n, oneRow)
	}
	if it.row.noteSeg.Text != linkNote(r.Link, u.now()) {
		t.Fatalf("row note %q", it.row.noteSeg.Text)
	}
	before = d.n.Load()
	u.roomChanged(r)
	if n := d.n.Load() - before; n != 0 {
		t.Fatalf("no change asked for %d redraws", n)
	}
}

// StagedStart shows the window with the room selected last time before the
// other saved rooms are opened; they follow, each in its saved place, and
// the saved list is never cut short meanwhile.
func TestStagedStartShowsTheLastRoomFirst(t *testing.T) {
	a := test.NewTempApp(t)
	st := settings.New(a.Preferences())
	var es []settings.RoomEntry
	var want []string
	for i := 1; i <= 5; i++ {
		es = append(es, settings.RoomEntry{Relay: "127.0.0.1:9", Room: fmt.Sprintf("room-%02d", i), Notify: settings.NotifyAll})
		want = append(want, es[i-1].Key())
	}
	st.SaveRooms(es)
	st.SaveSelectedRoom(es[2].Key())
	p := st.Load()
	p.Name, p.AutoJoin = "Staged", true
	st.Save(p)
	saved := func() []string {
		var ks []string
		for _, e := range st.Rooms() {
			ks = append(ks, e.Key())
		}
		return ks
	}
	open := func(u *UI) []string {
		var ks []string
		for _, r := range u.rooms.items {
			ks = append(ks, r.Key())
		}
		return ks
	}

	loop := newUILoop(t)
	var u *UI
	loop.wait(func() {
		u = New(a, Options{DataDir: t.TempDir(), Do: loop.do, Diagnose: (&diagCalls{}).run, StagedStart: true})
		u.Start(nil, false)
		// The window is shown with the selected room only.
		if got := open(u); len(got) != 1 || got[0] != want[2] {
			t.Errorf("rooms open when the window is shown: %v, want only %s", got, want[2])
		}
		if u.screen != "room" || u.room == nil || u.room.state.Key() != want[2] {
			t.Errorf("screen %q, room %v", u.screen, u.room)
		}
		if got := saved(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("saved rooms while starting: %v, want %v", got, want)
		}
	})
	t.Cleanup(func() { loop.wait(u.Close) })
	eventually(t, loop, "every saved room open", func() bool { return len(u.rooms.items) == len(want) && u.rooms.startOrder == nil })
	loop.wait(func() {
		if got := open(u); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("sidebar order %v, want %v", got, want)
		}
		if got := saved(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("saved rooms %v, want %v", got, want)
		}
		if u.room.state.Key() != want[2] || u.rooms.selected != want[2] {
			t.Errorf("selected %s, want %s", u.rooms.selected, want[2])
		}
		if u.views[want[0]] == nil || u.views[want[4]] == nil {
			t.Error("rooms opened later have no screen")
		}
	})
}
