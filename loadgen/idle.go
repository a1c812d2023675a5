package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"sort"
	"sync"
	"time"
)

type idleResult struct {
	Mode          string         `json:"mode"`
	URL           string         `json:"url"`
	Conns         int            `json:"conns"`
	Rooms         int            `json:"rooms"`
	Sources       int            `json:"sources"`
	Joined        int            `json:"joined"`
	JoinSeconds   float64        `json:"join_seconds"`
	JoinFailures  map[string]int `json:"join_failures,omitempty"`
	HoldSeconds   float64        `json:"hold_seconds"`
	HeartbeatMS   int64          `json:"heartbeat_interval_ms"`
	Pongs         int64          `json:"pongs"`
	PongRTTMeanMS float64        `json:"pong_rtt_mean_ms"`
	PongRTTMaxMS  float64        `json:"pong_rtt_max_ms"`
	Closed        map[int]int    `json:"closed_by_relay,omitempty"` // close code -> connections
	Relay         relayFigures   `json:"relay"`
	KiBPerConn    float64        `json:"kib_per_conn"`       // (RSS during hold - RSS before) / joined
	KiBPerConnAll float64        `json:"kib_per_conn_total"` // RSS during hold / joined
	LoadCPU       float64        `json:"loadgen_cpu_percent"`
	LoadRSSKiB    int64          `json:"loadgen_rss_kib"`
}

func idleMode(fs *flag.FlagSet) func(ctx context.Context, e *env, c *common) (any, error) {
	n := fs.Int("n", 1000, "members (connections) to hold")
	perRoom := fs.Int("per-room", 100, "members per room (each join costs a joined frame to every member of its room)")
	hold := fs.Duration("hold", 30*time.Second, "how long to hold the members idle while sampling the relay")
	settle := fs.Duration("settle", 0, "wait after the last join before sampling; 0 means one heartbeat interval")
	return func(ctx context.Context, e *env, c *common) (any, error) {
		if *n < 1 || *perRoom < 1 {
			return nil, errors.New("-n and -per-room must be at least 1")
		}
		if *n > 19800 {
			return nil, fmt.Errorf("-n %d: one process may hold at most 20,000 descriptors here; run two processes with -n %d each", *n, (*n+1)/2)
		}
		e.readBuf = defaultReadBuf(c, 512)
		pid := c.relayPID()
		res := &idleResult{Mode: "idle", URL: c.url, Conns: *n, Sources: len(e.srcs), Closed: map[int]int{}}
		res.Relay.PID = pid
		var base procSample
		if pid != "" {
			var err error
			if base, err = readProc(pid); err != nil {
				res.Relay.SampleError = err.Error()
				pid = ""
			}
			res.Relay.RSSBaseKiB, res.Relay.FDsBase = base.rssKiB, base.fds
		}

		id := runID()
		rooms := make([]string, (*n+*perRoom-1) / *perRoom)
		for i := range rooms {
			rooms[i] = fmt.Sprintf("idle-%s-%d", id, i)
		}
		res.Rooms = len(rooms)
		members := newMembers(e, *n, rooms, "m", 0)
		var readers sync.WaitGroup
		hbCtx, hbStop := context.WithCancel(ctx)
		var hb sync.WaitGroup
		hb.Add(1)
		go func() { defer hb.Done(); heartbeat(hbCtx, e, members) }()
		c.progress("idle: joining %d members in %d rooms from %d source addresses", *n, len(rooms), len(e.srcs))
		joined, took := e.joinAll(ctx, members, c.conc, &readers, func(i int) { c.progress("idle: %d dialled", i) })
		res.Joined, res.JoinSeconds = joined, took.Seconds()
		res.JoinFailures = e.failures()
		c.progress("idle: %d joined in %.1fs, failures %v", joined, took.Seconds(), res.JoinFailures)
		if joined == 0 {
			hbStop()
			hb.Wait()
			leave(members, false, &readers, 0)
			return res, errors.New("no member joined: is the relay running at -url?")
		}
		interval := time.Duration(e.hbInterval.Load())
		res.HeartbeatMS = interval.Milliseconds()

		wait := *settle
		if wait == 0 {
			wait = interval
		}
		c.progress("idle: settling %v, then holding %v", wait, *hold)
		sleepCtx(ctx, wait)

		var pongs0 int64
		for _, m := range members {
			pongs0 += m.pongs.Load()
		}
		self0, _ := readProc("self")
		var first procSample
		var rssSamples []int64
		var peak int64
		if pid != "" {
			first, _ = readProc(pid)
		}
		holdStart := time.Now()
		for time.Since(holdStart) < *hold && ctx.Err() == nil {
			sleepCtx(ctx, min(time.Second, *hold-time.Since(holdStart)))
			if pid != "" {
				if s, err := readProc(pid); err == nil {
					rssSamples = append(rssSamples, s.rssKiB)
					peak = max(peak, s.rssKiB)
				}
			}
		}
		var last procSample
		if pid != "" {
			last, _ = readProc(pid)
		}
		self1, _ := readProc("self")
		res.HoldSeconds = time.Since(holdStart).Seconds()
		var pongs1, rttSum, rttN, rttMax int64
		for _, m := range members {
			pongs1 += m.pongs.Load()
			rttSum += m.rttSum.Load()
			rttN += m.rttN.Load()
			rttMax = max(rttMax, m.rttMax.Load())
			if code := m.closeCode.Load(); code != 0 {
				res.Closed[int(code)]++
			}
		}
		res.Pongs = pongs1 - pongs0
		if rttN > 0 {
			res.PongRTTMeanMS = float64(rttSum) / float64(rttN) / 1e6
		}
		res.PongRTTMaxMS = float64(rttMax) / 1e6
		res.LoadCPU = cpuPercent(self0, self1)
		res.LoadRSSKiB = self1.rssKiB
		if pid != "" && len(rssSamples) > 0 {
			sort.Slice(rssSamples, func(i, j int) bool { return rssSamples[i] < rssSamples[j] })
			med := rssSamples[len(rssSamples)/2]
			res.Relay.RSSKiB, res.Relay.RSSPeakKiB, res.Relay.HWMKiB = med, peak, last.hwmKiB
			res.Relay.CPUPercent, res.Relay.CPUSeconds = cpuPercent(first, last), cpuSeconds(first, last)
			res.Relay.Threads, res.Relay.FDs = last.threads, last.fds
			res.KiBPerConn = float64(med-base.rssKiB) / float64(joined)
			res.KiBPerConnAll = float64(med) / float64(joined)
		}
		hbStop()
		hb.Wait()
		c.progress("idle: leaving")
		leave(members, false, &readers, 0)

		fmt.Printf("idle: %d/%d members joined in %d rooms (%.1fs), held %.0fs, heartbeat every %v\n",
			res.Joined, res.Conns, res.Rooms, res.JoinSeconds, res.HoldSeconds, interval)
		if len(res.JoinFailures) > 0 {
			fmt.Printf("  join failures: %v\n", res.JoinFailures)
		}
		fmt.Printf("  pongs during hold: %d (expected ~%.0f), rtt mean %.2f ms, max %.1f ms; closed by relay: %v\n",
			res.Pongs, float64(joined)*res.HoldSeconds/interval.Seconds(), res.PongRTTMeanMS, res.PongRTTMaxMS, res.Closed)
		if pid != "" {
			fmt.Printf("  %s: RSS %d KiB before, %d KiB held (median, peak %d)\n", relayLabel(pid), base.rssKiB, res.Relay.RSSKiB, res.Relay.RSSPeakKiB)
			fmt.Printf("  relay memory per connection: %.2f KiB (delta) / %.2f KiB (whole RSS / conns)\n", res.KiBPerConn, res.KiBPerConnAll)
			fmt.Printf("  relay CPU while idle: %.2f%% of one core; %d threads, %d fds\n", res.Relay.CPUPercent, res.Relay.Threads, res.Relay.FDs)
		}
		fmt.Printf("  load generator: %.1f%% CPU, %d KiB RSS\n", res.LoadCPU, res.LoadRSSKiB)
		return res, ctx.Err()
	}
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
