package ui

import (
	"context"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"fyne.io/fyne/v2"

	"github.com/heartline/heartline/desktop/chatview"
)

// measure logs what the running app costs, for docs/BENCHMARKS.md: how
// many rooms are connected, goroutines, resident memory, CPU used while
// idle for d, and how long switching to each room takes on the UI
// goroutine (select, build the screen, lay it out).
func (u *UI) measure(ctx context.Context, d time.Duration) {
	var connected, total int
	fyne.DoAndWait(func() {
		total = len(u.rooms.items)
		for _, r := range u.rooms.items {
			if r.Link.Phase == chatview.PhaseConnected {
				connected++
			}
		}
	})
	idle := func() float64 {
		runtime.GC()
		cpu0, t0 := cpuTime(), time.Now()
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
		return float64(cpuTime()-cpu0) / float64(time.Since(t0)) * 100
	}
	// With the composer focused Fyne redraws the window for the blinking
	// cursor (a full frame each time under a software renderer); with
	// nothing focused the window is still.
	idleCPU := idle()
	fyne.DoAndWait(func() { u.win.Canvas().Unfocus() })
	idleUnfocused := idle()

	var switches []time.Duration
	fyne.DoAndWait(func() {
		keys := make([]string, 0, total)
		for _, r := range u.rooms.items {
			keys = append(keys, r.Key())
		}
		c := u.win.Canvas()
		for _, k := range keys {
			start := time.Now()
			u.selectRoom(k)
			u.showRoom()
			c.Content().Resize(c.Size()) // lay the new screen out now, as a frame would
			switches = append(switches, time.Since(start))
		}
	})
	// Searches of every room: the commonest word (in most messages), a
	// middling one, a rare one, two words, and a prefix being typed.
	var searchLog []any
	if u.finder != nil {
		for _, q := range []string{"the", "deploy", "kalomi", "deploy ticket", "kal"} {
			start := time.Now()
			h, err := u.finder.search(q, "", maxHits)
			took := time.Since(start)
			if err != nil {
				searchLog = append(searchLog, "search_err", err.Error())
				continue
			}
			searchLog = append(searchLog, "search_"+strings.ReplaceAll(q, " ", "_")+"_ms", float64(took.Microseconds())/1000,
				"hits_"+strings.ReplaceAll(q, " ", "_"), len(h))
		}
	}
	slices.Sort(switches)
	var worst, median time.Duration
	if n := len(switches); n > 0 {
		worst, median = switches[n-1], switches[n/2]
	}
	u.log.Warn("measure", append([]any{"rooms", total, "connected", connected, "goroutines", runtime.NumGoroutine(),
		"rss_mb", rssMB(), "idle_cpu_pct", strconv.FormatFloat(idleCPU, 'f', 2, 64),
		"idle_cpu_unfocused_pct", strconv.FormatFloat(idleUnfocused, 'f', 2, 64), "idle_s", d.Seconds(),
		"switch_median_ms", float64(median.Microseconds()) / 1000, "switch_max_ms", float64(worst.Microseconds()) / 1000},
		searchLog...)...)
}

// rssMB is the resident set size from /proc (0 where there is none).
func rssMB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return float64(kb) / 1024
		}
	}
	return 0
}
