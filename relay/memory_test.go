package main

import (
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heartline/heartline/shared/protocol"
)

// TestIdleMemoryPerConnection measures what an idle member costs the relay
// process: it starts the real binary, joins N members (spread over rooms of
// 50), lets them sit idle, and reports the growth of the process's RSS and
// of the Go heap and stacks per connection. It is a measurement, not a unit
// test, so it runs only on request:
//
//	HEARTLINE_MEMTEST=5000 go test -run IdleMemory -v ./relay/
func TestIdleMemoryPerConnection(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("HEARTLINE_MEMTEST"))
	if n <= 0 {
		t.Skip("set HEARTLINE_MEMTEST=<connections> to measure memory per idle connection")
	}
	bin := buildRelay(t)
	// Long heartbeats so the members can be idle without pinging.
	cmd, addr, _ := startProcess(t, bin, "--listen", "127.0.0.1:0", "--stun-port", "0", "--data-dir", t.TempDir(),
		"--heartbeat-interval", "2m", "--heartbeat-timeout", "5m")
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	pid := cmd.Process.Pid

	settle := func() { time.Sleep(3 * time.Second) }
	settle()
	rss0, heap0, stack0 := rss(t, pid), metric(t, addr, "go_memstats_heap_inuse_bytes"), metric(t, addr, "go_memstats_stack_inuse_bytes")

	conns := make([]*websocket.Conn, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	var mu sync.Mutex
	var firstErr error
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws", nil)
			if err == nil {
				h, _ := protocol.Encode(&protocol.Hello{V: 1, Room: fmt.Sprintf("room-%d", i/50), Name: fmt.Sprintf("member-%d", i),
					Key: fmt.Sprintf("memtest-key-%08d", i)})
				err = ws.WriteMessage(websocket.TextMessage, h)
				if err == nil {
					ws.SetReadDeadline(time.Now().Add(30 * time.Second))
					_, _, err = ws.ReadMessage() // the welcome
					ws.SetReadDeadline(time.Time{})
				}
			}
			if err != nil {
				mu.Lock()
				firstErr = firstOf(firstErr, err)
				mu.Unlock()
				return
			}
			conns[i] = ws
		}()
	}
	wg.Wait()
	if firstErr != nil {
		t.Fatalf("joining: %v", firstErr)
	}
	// Drain the joined frames each member got (the relay's queues empty out,
	// as for any idle room), then let the relay settle.
	var dwg sync.WaitGroup
	for _, ws := range conns {
		dwg.Add(1)
		go func() {
			defer dwg.Done()
			for {
				ws.SetReadDeadline(time.Now().Add(2 * time.Second))
				if _, _, err := ws.ReadMessage(); err != nil {
					return
				}
			}
		}()
	}
	dwg.Wait()
	settle()
	// An idle relay allocates almost nothing, so the GC (which also shrinks
	// goroutine stacks that grew while handling the hello) may not run for
	// minutes. Scrape /metrics, as Prometheus would, until two GC cycles ran.
	gc0 := metric(t, addr, "go_gc_duration_seconds_count")
	for metric(t, addr, "go_gc_duration_seconds_count") < gc0+2 {
	}
	settle()
	settle() // the scavenger returns freed pages to the OS gradually
	rss1, heap1, stack1 := rss(t, pid), metric(t, addr, "go_memstats_heap_inuse_bytes"), metric(t, addr, "go_memstats_stack_inuse_bytes")
	goroutines := metric(t, addr, "go_goroutines")
	heapIdle := metric(t, addr, "go_memstats_heap_idle_bytes") - metric(t, addr, "go_memstats_heap_released_bytes")
	per := func(a, b float64) float64 { return (b - a) / float64(n) / 1024 }
	t.Logf("%d idle members in %d rooms: RSS %.1f -> %.1f MiB = %.2f KiB/conn; Go heap in use %.2f KiB/conn; stacks %.2f KiB/conn; goroutines %v; freed heap not yet returned to the OS %.1f MiB",
		n, (n+49)/50, rss0/1048576, rss1/1048576, per(rss0, rss1), per(heap0, heap1), per(stack0, stack1), goroutines, heapIdle/1048576)
	for _, ws := range conns {
		ws.Close()
	}
}

func firstOf(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

var rssRe = regexp.MustCompile(`VmRSS:\s+(\d+) kB`)

func rss(t *testing.T, pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := rssRe.FindSubmatch(b)
	if m == nil {
		t.Fatal("no VmRSS")
	}
	kb, _ := strconv.ParseFloat(string(m[1]), 64)
	return kb * 1024
}

func metric(t *testing.T, addr, name string) float64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 64<<10)
	for {
		k, err := resp.Body.Read(buf)
		sb.Write(buf[:k])
		if err != nil {
			break
		}
	}
	for _, line := range strings.Split(sb.String(), "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			v, _ := strconv.ParseFloat(rest, 64)
			return v
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}
