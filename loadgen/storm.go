package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type stormResult struct {
	Mode            string         `json:"mode"`
	Clients         string         `json:"clients"` // "lean" (the tool's own) or "engine" (shared/client)
	URL             string         `json:"url"`
	Conns           int            `json:"conns"`
	Rooms           int            `json:"rooms"`
	Senders         int            `json:"senders"`
	RatePerSender   float64        `json:"rate_per_sender"`
	RestartedByTool bool           `json:"restarted_by_tool"`
	Joined          int            `json:"joined"`
	JoinSeconds     float64        `json:"join_seconds"`
	JoinFailures    map[string]int `json:"join_failures,omitempty"`
	StopSeconds     float64        `json:"relay_stop_seconds,omitempty"`  // SIGTERM -> exit
	StartSeconds    float64        `json:"relay_start_seconds,omitempty"` // exec -> listening
	AllBackSeconds  float64        `json:"all_back_seconds"`              // restart began -> every member resumed
	FromUpSeconds   float64        `json:"all_back_after_listening_seconds,omitempty"`
	Back            int            `json:"back"`
	NotRecovered    int            `json:"not_recovered"` // resumed with recovered=false
	CloseCodes      map[int]int    `json:"restart_close_codes,omitempty"`
	ResumeFailures  map[string]int `json:"resume_failures,omitempty"`
	ResumeLatency   latency        `json:"resume_latency"` // restart began -> member's welcome
	Sent            int64          `json:"sent"`
	Resent          int64          `json:"resent"` // lean: outbox messages sent again after a resume
	Acked           int64          `json:"acked"`
	Unacked         int64          `json:"unacked"`
	DupAccepts      int64          `json:"dup_accepts"` // one client id accepted twice (lean: under two seqs)
	ErrorFrames     map[string]int `json:"error_frames,omitempty"`
	UnackedDetail   []string       `json:"unacked_detail,omitempty"`
	Loss            lossFigures    `json:"loss"`
	RSSBeforeKiB    int64          `json:"relay_rss_before_kib"`
	RSSPeakKiB      int64          `json:"relay_rss_peak_during_storm_kib"`
	RSSAfterKiB     int64          `json:"relay_rss_after_kib"`
	// RelayCPUStorm: relay CPU from the restart until all were back, in %
	// of one core: the stopping relay after its SIGTERM (tool restarts
	// only) and the new one.
	RelayCPUStorm float64 `json:"relay_cpu_percent_storm,omitempty"`
	// RelayFramesOut: frames the restarted relay had queued when all were
	// back, by type (its /metrics; a broadcast counts once per recipient).
	RelayFramesOut map[string]int64 `json:"relay_frames_out_storm,omitempty"`
	Relay          relayFigures     `json:"relay"`
	Engine         *engineFigures   `json:"engine,omitempty"`
	LoadGen        loadGenFigures   `json:"loadgen"`
	TimedOut       bool             `json:"timed_out,omitempty"`
}

// loadGenFigures is this process during a storm: with engine members it may
// be the bottleneck, so its share of the machine is part of the result.
type loadGenFigures struct {
	CPUPercentStorm float64 `json:"cpu_percent_storm"` // SIGTERM -> all back, % of one core
	CPUPercentRun   float64 `json:"cpu_percent_run"`   // chat start -> end of the drain
	// MachineBusyStorm: the whole machine's busy CPU during the storm, in %
	// of one core; what this process and the relay do not account for is
	// other tenants.
	MachineBusyStorm float64 `json:"machine_busy_percent_storm"`
	LoadAvgRestart   string  `json:"loadavg_at_restart"`
	RSSBeforeKiB     int64   `json:"rss_before_kib"`
	RSSPeakKiB       int64   `json:"rss_peak_kib"` // during the storm
	Goroutines       int     `json:"goroutines"`   // when all were back
	// Go scheduler latency (runnable -> running) during the storm: high
	// values mean the members' goroutines waited for a CPU.
	SchedP50MS float64 `json:"sched_latency_p50_ms"`
	SchedP99MS float64 `json:"sched_latency_p99_ms"`
}

// stormFleet is the members of a storm: the tool's lean clients or
// shared/client engines. Everything else (restarting and sampling the
// relay, timing, the drain) is the same for both.
type stormFleet interface {
	// join connects every member and waits for its first welcome; it
	// returns how many joined.
	join(ctx context.Context) int
	// chat runs the senders until ctx ends.
	chat(ctx context.Context)
	// arm says the restart comes next: back counts only later welcomes.
	arm()
	// back counts the members welcomed again since arm (and still
	// connected), and those of them whose welcome said recovered=false.
	back() (back, notRecovered int)
	// settled reports whether every message sent is answered and every
	// member holds its room's last seq.
	settled() bool
	// finish ends every member and fills res with what they saw.
	finish(res *stormResult)
	// report prints the summary lines about sending.
	report(res *stormResult)
}

// stormSettings are the storm flags a fleet needs, and what it shares with
// the driver.
type stormSettings struct {
	n, senders int
	rate       float64
	rooms      []string
	// roomMax is per room the highest seq acked to a sender there: what
	// every member of the room must end up holding.
	roomMax map[string]*atomic.Uint64
	// at is env.now() when the restart began (0 before): set by the tool
	// as it sends SIGTERM, or by the first member to lose its link when
	// the operator restarts the relay.
	at *atomic.Int64
}

// welcomeCounts is how many welcomes each member has had so far.
func welcomeCounts[M any](members []M, welcomes func(M) int64) []int64 {
	out := make([]int64, len(members))
	for i, m := range members {
		out[i] = welcomes(m)
	}
	return out
}

// markStorm records now as the start of the restart unless it is known.
func (s *stormSettings) markStorm(now int64) { s.at.CompareAndSwap(0, now) }

func stormMode(fs *flag.FlagSet) func(ctx context.Context, e *env, c *common) (any, error) {
	n := fs.Int("n", 2000, "members to keep connected through the restart")
	perRoom := fs.Int("per-room", 100, "members per room")
	senders := fs.Int("senders", 10, "members that chat (spread over the rooms), with an outbox they resend after a resume")
	rate := fs.Float64("rate", 2, "messages per second per sender")
	engine := fs.Bool("engine", false, "members are shared/client engines (the apps' own backoff, resume, outbox and heartbeat) instead of the tool's lean clients; senders type with Client.Send whether connected or not. Costs this process far more CPU and memory per member")
	relayCmd := fs.String("relay-cmd", "", "command line that starts the relay (split on spaces, no shell); the tool starts it, restarts it with SIGTERM, and stops it at the end. Empty: restart it yourself when told")
	relayLog := fs.String("relay-log", "/tmp/heartline-load-relay.log", "with -relay-cmd: the relay's stdout and stderr go here")
	before := fs.Duration("before", 5*time.Second, "chat this long before the restart")
	after := fs.Duration("after", 5*time.Second, "chat this long after every member is back")
	stormTimeout := fs.Duration("storm-timeout", 60*time.Second, "give up waiting for members to come back after this")
	drain := fs.Duration("drain", 10*time.Second, "wait at most this long for messages in flight at the end")
	cpuProfile := fs.String("cpuprofile", "", "write this process's CPU profile from the restart until every member is back to this file (go tool pprof)")
	return func(ctx context.Context, e *env, c *common) (any, error) {
		if *n < 1 || *perRoom < 1 || *senders < 0 || *senders > *n || *rate <= 0 {
			return nil, errors.New("need -n >= 1, -per-room >= 1, 0 <= -senders <= -n, -rate > 0")
		}
		if *n > 19800 {
			return nil, errors.New("-n: one process may hold at most 20,000 descriptors here")
		}
		// A member reconnects to the URL it started on: to spread members
		// over several relays and let them move when one dies, give the
		// load balancer's URL.
		if err := c.oneRelay("storm", "reconnects each member to its own URL (give the load balancer's URL to spread members over several relays)"); err != nil {
			return nil, err
		}
		res := &stormResult{Mode: "storm", Clients: "lean", URL: c.url, Conns: *n, Senders: *senders, RatePerSender: *rate,
			RestartedByTool: *relayCmd != ""}
		if *engine {
			res.Clients = "engine"
		}
		var profile *os.File // opened first: a bad path must not cost a whole run
		if *cpuProfile != "" {
			var err error
			if profile, err = os.Create(*cpuProfile); err != nil {
				return nil, fmt.Errorf("-cpuprofile: %w", err)
			}
			defer profile.Close()
		}

		relay := &stormRelay{c: c, cmdline: *relayCmd, logPath: *relayLog}
		if *relayCmd != "" {
			if err := relay.start(ctx); err != nil {
				return nil, err
			}
			defer relay.stop() // the relay running at the end, not the first one
			c.progress("storm: relay started (pid %s), log in %s", relay.pid(), *relayLog)
		} else {
			relay.operatorPID = c.relayPID()
		}

		id := runID()
		st := &stormSettings{n: *n, senders: *senders, rate: *rate, at: new(atomic.Int64),
			rooms: make([]string, (*n+*perRoom-1) / *perRoom), roomMax: map[string]*atomic.Uint64{}}
		for i := range st.rooms {
			st.rooms[i] = fmt.Sprintf("storm-%s-%d", id, i)
			st.roomMax[st.rooms[i]] = new(atomic.Uint64)
		}
		res.Rooms = len(st.rooms)
		var fleet stormFleet
		if *engine {
			fleet = newEngineFleet(e, c, st)
		} else {
			e.readBuf = defaultReadBuf(c, 1024)
			fleet = newLeanFleet(e, c, st)
		}

		joinStart := time.Now()
		res.Joined = fleet.join(ctx)
		res.JoinSeconds = time.Since(joinStart).Seconds()
		c.progress("storm: %d of %d joined in %.1fs", res.Joined, *n, res.JoinSeconds)
		if res.Joined < *n {
			fleet.finish(res)
			return res, fmt.Errorf("only %d of %d members joined (%v)", res.Joined, *n, res.JoinFailures)
		}

		self0, _ := readProc("self")
		res.LoadGen.RSSBeforeKiB = self0.rssKiB
		chatCtx, chatStop := context.WithCancel(ctx)
		var chatting sync.WaitGroup
		chatting.Go(func() { fleet.chat(chatCtx) })
		stopChat := sync.OnceFunc(func() { chatStop(); chatting.Wait() })
		defer stopChat()

		c.progress("storm: chatting %v before the restart", *before)
		sleepCtx(ctx, *before)
		oldPID := relay.pid()
		if oldPID != "" {
			if s, err := readMem(oldPID); err == nil {
				res.RSSBeforeKiB = s.rssKiB
			}
		}
		fleet.arm()
		sampler := startStormSampler(ctx, relay.pid)
		selfStorm, _ := readCPU("self")
		sched0 := schedLatencies()
		machine0 := readMachineCPU()
		res.LoadGen.LoadAvgRestart = loadAvg()
		if profile != nil {
			if err := pprof.StartCPUProfile(profile); err != nil {
				c.progress("storm: no CPU profile: %v", err)
			}
			defer pprof.StopCPUProfile() // at the latest; normally once all are back
		}

		var upAt time.Time
		var stoppingCPU float64 // seconds the old relay spent after SIGTERM
		if *relayCmd != "" {
			c.progress("storm: restarting the relay (SIGTERM)")
			st.at.Store(e.now())
			var err error
			res.StopSeconds, res.StartSeconds, stoppingCPU, err = relay.restart(ctx)
			if err != nil {
				sampler.stop()
				stopChat()
				fleet.finish(res)
				return res, fmt.Errorf("restarting the relay: %w", err)
			}
			upAt = time.Now()
		} else {
			fmt.Fprintf(os.Stderr, "storm: restart the relay now; waiting up to %v\n", *stormTimeout)
			if e.restartNow != nil {
				close(e.restartNow)
			}
		}

		// Wait until every member has a newer welcome.
		deadline := time.Now().Add(*stormTimeout)
		for {
			res.Back, res.NotRecovered = fleet.back()
			if res.Back == *n {
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				res.TimedOut = true
				break
			}
			sleepCtx(ctx, 20*time.Millisecond)
		}
		if at := st.at.Load(); at > 0 {
			res.AllBackSeconds = float64(e.now()-at) / 1e9
		}
		if !upAt.IsZero() {
			res.FromUpSeconds = time.Since(upAt).Seconds()
		}
		selfBack, _ := readCPU("self")
		res.LoadGen.MachineBusyStorm = machine0.busyPercent(readMachineCPU(), runtime.NumCPU())
		pprof.StopCPUProfile()
		res.RelayFramesOut = relayCounters(c.url, "heartline_frames_out_total", "type")
		res.LoadGen.CPUPercentStorm = cpuPercent(selfStorm, selfBack)
		res.LoadGen.Goroutines = runtime.NumGoroutine()
		res.LoadGen.SchedP50MS, res.LoadGen.SchedP99MS = sched0.since(0.5), sched0.since(0.99)
		if pid := relay.pid(); pid != "" && pid != oldPID && res.AllBackSeconds > 0 {
			if s, err := readCPU(pid); err == nil { // the new relay's CPU since it started
				res.RelayCPUStorm = (stoppingCPU + float64(s.cpuTicks)/clockTicks) / res.AllBackSeconds * 100
			}
		}
		c.progress("storm: %d back (%d not recovered) %.2fs after the restart began", res.Back, res.NotRecovered, res.AllBackSeconds)
		sleepCtx(ctx, *after)
		stopChat()
		res.RSSPeakKiB, res.LoadGen.RSSPeakKiB = sampler.stop()

		drainEnd := time.Now().Add(*drain)
		for time.Now().Before(drainEnd) && ctx.Err() == nil && !fleet.settled() {
			sleepCtx(ctx, 50*time.Millisecond)
		}
		self1, _ := readCPU("self")
		res.LoadGen.CPUPercentRun = cpuPercent(self0, self1)
		if p := relay.pid(); p != "" {
			if s, err := readProc(p); err == nil {
				res.RSSAfterKiB = s.rssKiB
				res.Relay = relayFigures{PID: p, RSSKiB: s.rssKiB, HWMKiB: s.hwmKiB, Threads: s.threads, FDs: s.fds}
			}
		}
		fleet.finish(res)

		fmt.Printf("storm: %d %s members in %d rooms (%d senders at %g msg/s with an outbox), relay restarted %s\n",
			*n, res.Clients, res.Rooms, *senders, *rate, map[bool]string{true: "by the tool (SIGTERM, start again)", false: "by the operator"}[res.RestartedByTool])
		if res.RestartedByTool {
			fmt.Printf("  relay stop took %.2fs, start to listening %.2fs\n", res.StopSeconds, res.StartSeconds)
		}
		fmt.Printf("  back: %d/%d (%d with recovered=false) %.2fs after the restart began%s; close codes %v\n",
			res.Back, *n, res.NotRecovered, res.AllBackSeconds, map[bool]string{true: " - TIMED OUT", false: ""}[res.TimedOut], res.CloseCodes)
		fmt.Printf("  per-member resume after restart began: p50 %.0f ms, p99 %.0f, max %.0f; failed attempts %v\n",
			res.ResumeLatency.P50, res.ResumeLatency.P99, res.ResumeLatency.Max, res.ResumeFailures)
		fleet.report(res)
		fmt.Printf("  loss: %s\n", res.Loss)
		fmt.Printf("  relay RSS: %d KiB before, peak %d KiB during the storm, %d KiB after; relay CPU from its restart until all were back: %.0f%% of a core\n",
			res.RSSBeforeKiB, res.RSSPeakKiB, res.RSSAfterKiB, res.RelayCPUStorm)
		if len(res.RelayFramesOut) > 0 {
			fmt.Printf("  frames the restarted relay queued until all were back: %v\n", res.RelayFramesOut)
		}
		g := res.LoadGen
		fmt.Printf("  load generator: %.0f%% of a core during the storm (%.0f%% over the run), RSS %d KiB before, peak %d KiB; %d goroutines; scheduler latency p50 %.2f ms, p99 %.2f ms\n",
			g.CPUPercentStorm, g.CPUPercentRun, g.RSSBeforeKiB, g.RSSPeakKiB, g.Goroutines, g.SchedP50MS, g.SchedP99MS)
		fmt.Printf("  machine during the storm: busy %.0f%% of a core out of %d%% (this tool %.0f%%, the relay %.0f%%, the rest other processes); load average %s at the restart\n",
			g.MachineBusyStorm, 100*runtime.NumCPU(), g.CPUPercentStorm, res.RelayCPUStorm, g.LoadAvgRestart)
		if res.TimedOut {
			return res, fmt.Errorf("only %d of %d members were back after %v", res.Back, *n, *stormTimeout)
		}
		return res, ctx.Err()
	}
}

// relayCounters reads one labelled counter family from the relay's
// /metrics (same host and port as the websocket URL), by label value; nil
// if the relay does not answer.
func relayCounters(wsURL, family, label string) map[string]int64 {
	u, err := url.Parse(wsURL)
	if err != nil || u.Scheme != "ws" {
		return nil
	}
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + u.Host + "/metrics")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	out := map[string]int64{}
	prefix := family + "{" + label + `="`
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), prefix)
		if !ok {
			continue
		}
		value, count, ok := strings.Cut(rest, `"} `)
		if !ok {
			continue
		}
		if n, err := strconv.ParseFloat(count, 64); err == nil && n > 0 {
			out[value] = int64(n)
		}
	}
	return out
}

// stormRelay is the relay under test: one the tool starts and restarts
// (-relay-cmd), or one the operator runs and restarts.
type stormRelay struct {
	c                *common
	cmdline, logPath string

	mu          sync.Mutex // guards proc (replaced at the restart) and operatorPID for the samplers
	proc        *relayProcess
	operatorPID string
}

func (r *stormRelay) start(ctx context.Context) error {
	p, err := startRelay(ctx, r.cmdline, r.logPath, r.c.relayPort())
	r.mu.Lock()
	r.proc = p // nil on failure: stop skips it
	r.mu.Unlock()
	return err
}

// restart stops the tool's relay with SIGTERM and starts it again; it
// returns how long each took, and the CPU seconds the old relay used after
// the SIGTERM (its shutdown: a close frame to every member).
func (r *stormRelay) restart(ctx context.Context) (stopSec, startSec, stoppingCPU float64, err error) {
	before, sampleErr := readCPU(strconv.Itoa(r.proc.cmd.Process.Pid))
	t0 := time.Now()
	if err := r.proc.stop(); err != nil {
		r.c.progress("storm: relay stop: %v", err)
	}
	t1 := time.Now()
	if ps := r.proc.cmd.ProcessState; ps != nil && sampleErr == nil {
		stoppingCPU = max(0, (ps.UserTime()+ps.SystemTime()).Seconds()-float64(before.cpuTicks)/clockTicks)
	}
	err = r.start(ctx)
	return t1.Sub(t0).Seconds(), time.Since(t1).Seconds(), stoppingCPU, err
}

func (r *stormRelay) stop() {
	r.mu.Lock()
	p := r.proc
	r.mu.Unlock()
	if p != nil {
		_ = p.stop()
	}
}

// pid is the relay process now: the one the tool started, or (operator
// restarts) whichever process listens on the port, looked up quietly since
// the relay is gone for part of the storm.
func (r *stormRelay) pid() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc != nil {
		return strconv.Itoa(r.proc.cmd.Process.Pid)
	}
	if r.cmdline != "" {
		return "" // the restart failed
	}
	if r.c.pid > 0 {
		return r.operatorPID
	}
	if r.operatorPID != "" {
		if _, err := os.Stat("/proc/" + r.operatorPID); err == nil {
			return r.operatorPID
		}
	}
	if pid, err := pidListeningOn(r.c.relayPort()); err == nil {
		r.operatorPID = strconv.Itoa(pid)
		return r.operatorPID
	}
	return ""
}

// stormSampler follows the RSS of the relay (whichever process serves) and
// of this process every 50 ms during the storm.
type stormSampler struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex
	peakRelay int64
	peakSelf  int64
}

func startStormSampler(ctx context.Context, pidNow func() string) *stormSampler {
	ctx, cancel := context.WithCancel(ctx)
	s := &stormSampler{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for ctx.Err() == nil {
			var relay procSample
			relayErr := errNotConnected
			if p := pidNow(); p != "" {
				relay, relayErr = readMem(p)
			}
			self, selfErr := readMem("self")
			s.mu.Lock()
			if relayErr == nil {
				s.peakRelay = max(s.peakRelay, relay.rssKiB)
			}
			if selfErr == nil {
				s.peakSelf = max(s.peakSelf, self.rssKiB)
			}
			s.mu.Unlock()
			sleepCtx(ctx, 50*time.Millisecond)
		}
	}()
	return s
}

// stop ends the sampling and returns the peak RSS of the relay and of this
// process, in KiB.
func (s *stormSampler) stop() (relayKiB, selfKiB int64) {
	s.cancel()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peakRelay, s.peakSelf
}

// relayProcess is a relay the tool started.
type relayProcess struct {
	cmd      *exec.Cmd
	log      *os.File
	done     chan error
	stopOnce sync.Once
	stopErr  error
}

// startRelay runs cmdline and waits until the port accepts connections.
func startRelay(ctx context.Context, cmdline, logPath string, port int) (*relayProcess, error) {
	args := strings.Fields(cmdline)
	if len(args) == 0 {
		return nil, errors.New("-relay-cmd is empty")
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("relay log: %w", err)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting the relay %q: %w", args[0], err)
	}
	p := &relayProcess{cmd: cmd, log: logf, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
		if err == nil {
			conn.Close()
			return p, nil
		}
		select {
		case err := <-p.done:
			logf.Close()
			return nil, fmt.Errorf("the relay exited at start (%v): see %s", err, logPath)
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			_ = p.stop()
			return nil, fmt.Errorf("the relay did not listen on port %d within 30 s: see %s", port, logPath)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for the exit (SIGKILL after 30 s). Safe to call twice.
func (p *relayProcess) stop() error {
	p.stopOnce.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case p.stopErr = <-p.done:
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
			p.stopErr = fmt.Errorf("relay ignored SIGTERM for 30 s and was killed (%v)", <-p.done)
		}
		p.log.Close()
	})
	return p.stopErr
}
