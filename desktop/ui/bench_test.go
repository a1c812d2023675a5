package ui

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"

	"github.com/heartline/heartline/desktop/settings"
)

// benchApp is the app with rooms rooms saved (on a relay that is not
// there: the start is offline, as on a train) and msgs messages in their
// local history, seeded once per data directory.
// seedRooms saves a profile named name that joins rooms rooms, room-01 and
// on, on a relay nobody listens at (127.0.0.1:9): the app starts with its
// sidebar full and every link reconnecting.
func seedRooms(a fyne.App, rooms int, name string) {
	st := settings.New(a.Preferences())
	var es []settings.RoomEntry
	for i := 1; i <= rooms; i++ {
		es = append(es, settings.RoomEntry{Relay: "127.0.0.1:9", Room: fmt.Sprintf("room-%02d", i), Notify: settings.NotifyAll})
	}
	st.SaveRooms(es)
	p := st.Load()
	p.Name, p.AutoJoin = name, true
	st.Save(p)
}

func benchApp(b *testing.B, rooms, msgs int) (fyne.App, string) {
	b.Helper()
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("heartline-bench-%d-%d", rooms, msgs))
	a := test.NewTempApp(b)
	seedRooms(a, rooms, "Bench")
	if _, err := os.Stat(filepath.Join(dir, "seeded")); err != nil {
		os.RemoveAll(dir)
		os.MkdirAll(dir, 0o700)
		u := New(a, Options{DataDir: dir, Do: func(func()) {}})
		if err := u.SeedHistory(msgs); err != nil {
			b.Fatal(err)
		}
		u.Close()
		os.WriteFile(filepath.Join(dir, "seeded"), nil, 0o600)
	}
	return a, dir
}

func benchSize(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkStartOffline: the app opens its 20 rooms from the settings, each
// with its newest page from a 200,000-message local history, and lays the
// window out with the last room on screen (no GL: the headless driver).
// HEARTLINE_BENCH_MESSAGES changes the history's size.
func BenchmarkStartOffline(b *testing.B) {
	a, dir := benchApp(b, 20, benchSize("HEARTLINE_BENCH_MESSAGES", 200_000))
	var total time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		u := New(a, Options{DataDir: dir, Do: func(func()) {}, Diagnose: (&diagCalls{}).run})
		u.Start(nil, false)
		u.win.Resize(fyne.NewSize(1000, 700))
		u.win.Content().Resize(u.win.Canvas().Size())
		if u.room == nil || u.room.tl.Messages() != pageSize {
			b.Fatalf("room on screen: %v", u.room)
		}
		total += time.Since(start)
		b.StopTimer()
		u.Close()
		u.win.Close() // else the test app re-themes every old window in the next New
		b.StartTimer()
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/start")
}

// BenchmarkSwitchRoom: Alt+Down to the next of 20 rooms, each holding its
// newest page, and the window laid out with it.
func BenchmarkSwitchRoom(b *testing.B) {
	a, dir := benchApp(b, 20, benchSize("HEARTLINE_BENCH_MESSAGES", 200_000))
	u := New(a, Options{DataDir: dir, Do: func(func()) {}, Diagnose: (&diagCalls{}).run})
	u.Start(nil, false)
	defer u.Close()
	u.win.Resize(fyne.NewSize(1000, 700))
	c := u.win.Canvas()
	next := &fyneShortcut{fyne.KeyDown, fyne.KeyModifierAlt}
	for range 20 { // every room laid out once, as after a few minutes of use
		u.handleShortcut(next.cs())
		c.Content().Resize(c.Size())
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		u.handleShortcut(next.cs())
		c.Content().Resize(c.Size())
	}
}

// BenchmarkSearchEveryRoom: a search of every room for a word in many
// messages and for a rare one, as the search box runs it.
func BenchmarkSearchEveryRoom(b *testing.B) {
	a, dir := benchApp(b, 20, benchSize("HEARTLINE_BENCH_MESSAGES", 200_000))
	u := New(a, Options{DataDir: dir, Do: func(func()) {}, Diagnose: (&diagCalls{}).run})
	u.Start(nil, false)
	defer u.Close()
	for _, q := range []string{"deploy", "kalomi", "the"} {
		b.Run(q, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, err := u.finder.search(q, "", maxHits); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

type fyneShortcut struct {
	k fyne.KeyName
	m fyne.KeyModifier
}

func (s *fyneShortcut) cs() fyne.Shortcut { return ctrlMod(s.k, s.m) }

// BenchmarkFirstSwitchRoom: Alt+Down to a room shown for the first time
// since the start (its rows are built then).
func BenchmarkFirstSwitchRoom(b *testing.B) {
	a, dir := benchApp(b, 20, benchSize("HEARTLINE_BENCH_MESSAGES", 200_000))
	next := &fyneShortcut{fyne.KeyDown, fyne.KeyModifierAlt}
	var u *UI
	for i := 0; i < b.N; i++ {
		if i%19 == 0 {
			b.StopTimer()
			if u != nil {
				u.Close()
				u.win.Close()
			}
			u = New(a, Options{DataDir: dir, Do: func(func()) {}, Diagnose: (&diagCalls{}).run})
			u.Start(nil, false)
			u.win.Resize(fyne.NewSize(1000, 700))
			u.selectRoom(u.rooms.items[0].Key())
			u.win.Content().Resize(u.win.Canvas().Size())
			b.StartTimer()
		}
		u.handleShortcut(next.cs())
		u.win.Content().Resize(u.win.Canvas().Size())
	}
	b.StopTimer()
	u.Close()
}
