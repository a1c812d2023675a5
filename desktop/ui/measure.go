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

	// Two rounds through every room: the first shows most of them for the
	// first time (their rows are built then), the second is the usual case.
	var switchLog []any
	for _, round := range []string{"first", "again"} {
		var took []time.Duration
		var cpu time.Duration
		fyne.DoAndWait(func() {
			keys := make([]string, 0, total)
			for _, r := range u.rooms.items {
				keys = append(keys, r.Key())
			}
			c := u.win.Canvas()
			cpu0 := cpuTime()
			for _, k := range keys {
				start := time.Now()
				u.selectRoom(k)
				u.showRoom()
				c.Content().Resize(c.Size()) // lay the new screen out now, as a frame would
				took = append(took, time.Since(start))
			}
			if len(keys) > 0 {
				cpu = (cpuTime() - cpu0) / time.Duration(len(keys))
			}
		})
		slices.Sort(took)
		if n := len(took); n > 0 {
			switchLog = append(switchLog, "switch_"+round+"_median_ms", ms(took[n/2]),
				"switch_"+round+"_max_ms", ms(took[n-1]), "switch_"+round+"_cpu_ms", ms(cpu))
		}
	}
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
			searchLog = append(searchLog, "search_"+strings.ReplaceAll(q, " ", "_")+"_ms", ms(took),
				"hits_"+strings.ReplaceAll(q, " ", "_"), len(h))
		}
	}
	var mst runtime.MemStats
	runtime.ReadMemStats(&mst)
	u.log.Warn("measure", append([]any{"rooms", total, "connected", connected, "goroutines", runtime.NumGoroutine(),
		"rss_mb", rssMB(), "go_heap_inuse_mb", mst.HeapInuse >> 20, "go_sys_mb", mst.Sys >> 20, "idle_cpu_pct", strconv.FormatFloat(idleCPU, 'f', 2, 64),
		"idle_cpu_unfocused_pct", strconv.FormatFloat(idleUnfocused, 'f', 2, 64), "idle_s", d.Seconds()},
		append(switchLog, searchLog...)...)...)
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

// ProcessCPU is the CPU time the process used so far (0 where unknown),
// for the start-up log.
func ProcessCPU() time.Duration { return cpuTime() }

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
