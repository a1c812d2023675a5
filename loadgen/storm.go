package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type stormResult struct {
	Mode            string         `json:"mode"`
	URL             string         `json:"url"`
	Conns           int            `json:"conns"`
	Rooms           int            `json:"rooms"`
	Senders         int            `json:"senders"`
	RatePerSender   float64        `json:"rate_per_sender"`
	RestartedByTool bool           `json:"restarted_by_tool"`
	Joined          int            `json:"joined"`
	JoinSeconds     float64        `json:"join_seconds"`
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
	Resent          int64          `json:"resent"` // outbox messages sent again after a resume
	Acked           int64          `json:"acked"`
	Unacked         int64          `json:"unacked"`
	DupAccepts      int64          `json:"dup_accepts"` // one client id accepted under two seqs
	ErrorFrames     map[string]int `json:"error_frames,omitempty"`
	UnackedDetail   []string       `json:"unacked_detail,omitempty"`
	Loss            lossFigures    `json:"loss"`
	RSSBeforeKiB    int64          `json:"relay_rss_before_kib"`
	RSSPeakKiB      int64          `json:"relay_rss_peak_during_storm_kib"`
	RSSAfterKiB     int64          `json:"relay_rss_after_kib"`
	Relay           relayFigures   `json:"relay"`
	TimedOut        bool           `json:"timed_out,omitempty"`
}

// outbox is a sender's messages awaiting their ack, resent after a resume
// with the same ids (the relay must answer a duplicate with the same ack).
type outMsg struct {
	frame  []byte
	sent   int64 // env.now() of the first send
	gen    int64 // the sender's welcome count when first sent (which link)
	resent int
}

type outbox struct {
	mu      sync.Mutex
	pending map[uint64]*outMsg // message number -> message awaiting its ack
	seqOf   map[uint64]uint64  // message number -> acked seq
	n       uint64
	dups    int64
}

func stormMode(fs *flag.FlagSet) func(ctx context.Context, e *env, c *common) (any, error) {
	n := fs.Int("n", 2000, "members to keep connected through the restart")
	perRoom := fs.Int("per-room", 100, "members per room")
	senders := fs.Int("senders", 10, "members that chat (spread over the rooms), with an outbox they resend after a resume")
	rate := fs.Float64("rate", 2, "messages per second per sender")
	relayCmd := fs.String("relay-cmd", "", "command line that starts the relay (split on spaces, no shell); the tool starts it, restarts it with SIGTERM, and stops it at the end. Empty: restart it yourself when told")
	relayLog := fs.String("relay-log", "/tmp/heartline-load-relay.log", "with -relay-cmd: the relay's stdout and stderr go here")
	before := fs.Duration("before", 5*time.Second, "chat this long before the restart")
	after := fs.Duration("after", 5*time.Second, "chat this long after every member is back")
	stormTimeout := fs.Duration("storm-timeout", 60*time.Second, "give up waiting for members to come back after this")
	drain := fs.Duration("drain", 10*time.Second, "wait at most this long for messages in flight at the end")
	return func(ctx context.Context, e *env, c *common) (any, error) {
		if *n < 1 || *perRoom < 1 || *senders < 0 || *senders > *n || *rate <= 0 {
			return nil, errors.New("need -n >= 1, -per-room >= 1, 0 <= -senders <= -n, -rate > 0")
		}
		if *n > 19800 {
			return nil, errors.New("-n: one process may hold at most 20,000 descriptors here")
		}
		e.readBuf = defaultReadBuf(c, 1024)
		res := &stormResult{Mode: "storm", URL: c.url, Conns: *n, Senders: *senders, RatePerSender: *rate,
			CloseCodes: map[int]int{}, RestartedByTool: *relayCmd != ""}

		var relay *relayProcess
		var pidMu sync.Mutex // guards relay (replaced at the restart) and operatorPID for the RSS sampler
		if *relayCmd != "" {
			var err error
			if relay, err = startRelay(ctx, *relayCmd, *relayLog, c.relayPort()); err != nil {
				return nil, err
			}
			defer func() { // the relay running at the end, not the first one
				if relay != nil {
					_ = relay.stop()
				}
			}()
			c.progress("storm: relay started (pid %d), log in %s", relay.cmd.Process.Pid, *relayLog)
		}
		// pidNow is the relay process now: the one the tool started, or
		// (operator restarts) whichever process listens on the port,
		// looked up quietly since the relay is gone for part of the storm.
		operatorPID := ""
		if relay == nil {
			operatorPID = c.relayPID()
		}
		pidNow := func() string {
			pidMu.Lock()
			defer pidMu.Unlock()
			if relay != nil {
				return strconv.Itoa(relay.cmd.Process.Pid)
			}
			if c.pid > 0 {
				return operatorPID
			}
			if operatorPID != "" {
				if _, err := os.Stat("/proc/" + operatorPID); err == nil {
					return operatorPID
				}
			}
			if pid, err := pidListeningOn(c.relayPort()); err == nil {
				operatorPID = strconv.Itoa(pid)
				return operatorPID
			}
			return ""
		}

		id := runID()
		rooms := make([]string, (*n+*perRoom-1) / *perRoom)
		for i := range rooms {
			rooms[i] = fmt.Sprintf("storm-%s-%d", id, i)
		}
		res.Rooms = len(rooms)
		members := newMembers(e, *n, rooms, "m")
		for _, m := range members {
			m.track = true
		}
		boxes := make([]*outbox, *senders)
		maxAck := map[string]*atomic.Uint64{} // per room; filled before any reader runs
		for _, r := range rooms {
			maxAck[r] = new(atomic.Uint64)
		}
		var acked atomic.Int64
		for i := range boxes {
			box := &outbox{pending: map[uint64]*outMsg{}, seqOf: map[uint64]uint64{}}
			boxes[i] = box
			roomAck := maxAck[members[i].room]
			members[i].onAck = func(_ *member, h *frameHead, _ int64) {
				num, ok := msgNumber(h.id)
				if !ok {
					return
				}
				box.mu.Lock()
				if prev, seen := box.seqOf[num]; seen && prev != h.seq {
					box.dups++
				}
				box.seqOf[num] = h.seq
				delete(box.pending, num)
				box.mu.Unlock()
				acked.Add(1)
				for cur := roomAck.Load(); h.seq > cur && !roomAck.CompareAndSwap(cur, h.seq); cur = roomAck.Load() {
				}
			}
		}

		// Each member runs its own loop: join, read until the link ends,
		// reconnect with full-jitter backoff and resume.
		var (
			stopping  atomic.Bool
			stormAt   atomic.Int64 // env.now() when the restart began; 0 before
			statMu    sync.Mutex
			resumeLat hist
			resumeErr = map[string]int{}
			firstJoin = make(chan struct{}, c.conc)
			loops     sync.WaitGroup
			joined    atomic.Int64
		)
		bgCtx, bgStop := context.WithCancel(ctx)
		var bg sync.WaitGroup
		bg.Add(1)
		go func() { defer bg.Done(); heartbeat(bgCtx, e, members) }()
		joinStart := time.Now()
		for i, m := range members {
			loops.Add(1)
			go func() {
				defer loops.Done()
				firstJoin <- struct{}{}
				err := e.join(ctx, m, false)
				<-firstJoin
				if err != nil {
					return
				}
				joined.Add(1)
				for attempt := 0; ; {
					if i < len(boxes) {
						resend(m, boxes[i], &res.Resent)
					}
					m.readLoop(e)
					if stopping.Load() || ctx.Err() != nil {
						return
					}
					if at := stormAt.Load(); at == 0 {
						stormAt.CompareAndSwap(0, e.now())
					}
					statMu.Lock()
					res.CloseCodes[int(m.rawClose.Load())]++
					statMu.Unlock()
					for {
						if attempt == 0 {
							sleepCtx(ctx, time.Duration(rand.Int64N(int64(250*time.Millisecond))))
						} else {
							capd := min(5*time.Second, 250*time.Millisecond<<min(attempt, 5))
							sleepCtx(ctx, time.Duration(rand.Int64N(int64(capd))))
						}
						attempt++
						if stopping.Load() || ctx.Err() != nil {
							return
						}
						if err := e.join(ctx, m, true); err != nil {
							statMu.Lock()
							kind := dialErrKind(err)
							if len(resumeErr) < 20 || resumeErr[kind] > 0 {
								resumeErr[kind]++
							}
							statMu.Unlock()
							continue
						}
						break
					}
					attempt = 0
					m.closeCode.Store(0)
					if stopping.Load() {
						m.leaving.Store(true)
						m.wmu.Lock()
						m.ws.Close()
						m.ws = nil
						m.wmu.Unlock()
						return
					}
					statMu.Lock()
					resumeLat.add(uint64(max(0, e.now()-stormAt.Load()) / 1000))
					statMu.Unlock()
				}
			}()
		}
		// Wait for the first joins.
		for joined.Load() < int64(*n) && time.Since(joinStart) < 5*time.Minute && ctx.Err() == nil {
			fails := 0
			for _, v := range e.failures() {
				fails += v
			}
			if int(joined.Load())+fails >= *n {
				break
			}
			sleepCtx(ctx, 100*time.Millisecond)
		}
		res.Joined, res.JoinSeconds = int(joined.Load()), time.Since(joinStart).Seconds()
		c.progress("storm: %d of %d joined in %.1fs", res.Joined, *n, res.JoinSeconds)
		if res.Joined < *n {
			bgStop()
			bg.Wait()
			stopping.Store(true)
			var none sync.WaitGroup
			leave(members, true, &none, 0)
			loops.Wait()
			return res, fmt.Errorf("only %d of %d members joined (%v)", res.Joined, *n, e.failures())
		}
		welcomes0 := make([]int64, len(members))
		for i, m := range members {
			welcomes0[i] = m.welcomes.Load()
		}

		bg.Add(1)
		var sent atomic.Int64
		go func() { defer bg.Done(); paceOutbox(bgCtx, e, members[:*senders], boxes, *rate, &sent) }()

		c.progress("storm: chatting %v before the restart", *before)
		sleepCtx(ctx, *before)
		pid := pidNow()
		if pid != "" {
			if s, err := readProc(pid); err == nil {
				res.RSSBeforeKiB = s.rssKiB
			}
		}
		peakCtx, peakStop := context.WithCancel(ctx)
		var peak int64
		var peakWG sync.WaitGroup
		peakWG.Add(1)
		go func() {
			defer peakWG.Done()
			for peakCtx.Err() == nil {
				if p := pidNow(); p != "" {
					if s, err := readProc(p); err == nil {
						peak = max(peak, s.rssKiB)
					}
				}
				sleepCtx(peakCtx, 50*time.Millisecond)
			}
		}()

		var upAt time.Time
		if relay != nil {
			c.progress("storm: restarting the relay (SIGTERM)")
			stormAt.Store(e.now())
			t0 := time.Now()
			if err := relay.stop(); err != nil {
				c.progress("storm: relay stop: %v", err)
			}
			res.StopSeconds = time.Since(t0).Seconds()
			t1 := time.Now()
			next, err := startRelay(ctx, *relayCmd, *relayLog, c.relayPort())
			pidMu.Lock()
			relay = next // nil on failure: the deferred stop skips it
			pidMu.Unlock()
			if err != nil {
				stopping.Store(true)
				peakStop()
				bgStop()
				return res, fmt.Errorf("restarting the relay: %w", err)
			}
			upAt = time.Now()
			res.StartSeconds = upAt.Sub(t1).Seconds()
		} else {
			fmt.Fprintf(os.Stderr, "storm: restart the relay now; waiting up to %v\n", *stormTimeout)
			if e.restartNow != nil {
				close(e.restartNow)
			}
		}

		// Wait until every member has a newer welcome with recovered=true.
		deadline := time.Now().Add(*stormTimeout)
		for {
			back, notRec := 0, 0
			for i, m := range members {
				if m.welcomes.Load() > welcomes0[i] && m.closeCode.Load() == 0 {
					back++
					if !m.lastRecovered.Load() {
						notRec++
					}
				}
			}
			res.Back, res.NotRecovered = back, notRec
			if back == len(members) {
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				res.TimedOut = true
				break
			}
			sleepCtx(ctx, 20*time.Millisecond)
		}
		if at := stormAt.Load(); at > 0 {
			res.AllBackSeconds = float64(e.now()-at) / 1e9
		}
		if !upAt.IsZero() {
			res.FromUpSeconds = time.Since(upAt).Seconds()
		}
		c.progress("storm: %d back (%d not recovered) %.2fs after the restart began", res.Back, res.NotRecovered, res.AllBackSeconds)
		sleepCtx(ctx, *after)
		bgStop()
		bg.Wait()
		peakStop()
		peakWG.Wait()
		res.RSSPeakKiB = peak
		res.Sent = sent.Load()

		drainEnd := time.Now().Add(*drain)
		for time.Now().Before(drainEnd) && ctx.Err() == nil {
			pending := 0
			for _, b := range boxes {
				b.mu.Lock()
				pending += len(b.pending)
				b.mu.Unlock()
			}
			done := pending == 0
			for _, m := range members {
				if done && m.closeCode.Load() == 0 && m.high.Load() < maxAck[m.room].Load() {
					done = false
				}
			}
			if done {
				break
			}
			sleepCtx(ctx, 50*time.Millisecond)
		}
		if p := pidNow(); p != "" {
			if s, err := readProc(p); err == nil {
				res.RSSAfterKiB = s.rssKiB
				res.Relay = relayFigures{PID: p, RSSKiB: s.rssKiB, HWMKiB: s.hwmKiB, Threads: s.threads, FDs: s.fds}
			}
		}
		stopping.Store(true)
		markEnd(members)
		leave(members, true, &loops, 3*time.Second)
		res.Acked = acked.Load()
		for i, b := range boxes {
			res.Unacked += int64(len(b.pending))
			res.DupAccepts += b.dups
			for num, p := range b.pending {
				if len(res.UnackedDetail) < 20 {
					res.UnackedDetail = append(res.UnackedDetail, fmt.Sprintf(
						"sender %d msg %d: sent %.2fs after the restart began on link %d (now %d), resent %d times",
						i, num, float64(p.sent-stormAt.Load())/1e9, p.gen, members[i].welcomes.Load(), p.resent))
				}
			}
		}
		res.Loss = accountLoss(members, func(room string) uint64 { return maxAck[room].Load() })
		res.ErrorFrames = map[string]int{}
		for _, m := range members {
			for code, n := range m.errCodes {
				res.ErrorFrames[code] += n
			}
		}
		res.ResumeLatency = resumeLat.summary()
		res.ResumeFailures = resumeErr

		fmt.Printf("storm: %d members in %d rooms (%d senders at %g msg/s with an outbox), relay restarted %s\n",
			*n, res.Rooms, *senders, *rate, map[bool]string{true: "by the tool (SIGTERM, start again)", false: "by the operator"}[res.RestartedByTool])
		if res.RestartedByTool {
			fmt.Printf("  relay stop took %.2fs, start to listening %.2fs\n", res.StopSeconds, res.StartSeconds)
		}
		fmt.Printf("  back: %d/%d (%d with recovered=false) %.2fs after the restart began%s; close codes %v\n",
			res.Back, *n, res.NotRecovered, res.AllBackSeconds, map[bool]string{true: " - TIMED OUT", false: ""}[res.TimedOut], res.CloseCodes)
		fmt.Printf("  per-member resume after restart began: p50 %.0f ms, p99 %.0f, max %.0f; failed attempts %v\n",
			res.ResumeLatency.P50, res.ResumeLatency.P99, res.ResumeLatency.Max, res.ResumeFailures)
		fmt.Printf("  chat: sent %d (+%d resent from outboxes), acked %d, unacked %d, one id under two seqs %d; error frames %v\n",
			res.Sent, res.Resent, res.Acked, res.Unacked, res.DupAccepts, res.ErrorFrames)
		for _, d := range res.UnackedDetail {
			fmt.Printf("    unacked: %s\n", d)
		}
		fmt.Printf("  loss: %s\n", res.Loss)
		fmt.Printf("  relay RSS: %d KiB before, peak %d KiB during the storm, %d KiB after\n", res.RSSBeforeKiB, res.RSSPeakKiB, res.RSSAfterKiB)
		if res.TimedOut {
			return res, fmt.Errorf("only %d of %d members were back after %v", res.Back, *n, *stormTimeout)
		}
		return res, ctx.Err()
	}
}

// msgNumber is the n of a message id "<n>.<ns>".
func msgNumber(id []byte) (uint64, bool) {
	var n uint64
	for i, c := range id {
		if c == '.' {
			return n, i > 0
		}
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return 0, false
}

// resend sends a sender's unacked messages again, oldest first.
func resend(m *member, box *outbox, resent *int64) {
	box.mu.Lock()
	nums := make([]uint64, 0, len(box.pending))
	for k := range box.pending {
		nums = append(nums, k)
	}
	sort.Slice(nums, func(i, j int) bool { return nums[i] < nums[j] })
	frames := make([][]byte, len(nums))
	for i, k := range nums {
		frames[i] = box.pending[k].frame
		box.pending[k].resent++
	}
	box.mu.Unlock()
	for _, f := range frames {
		if m.write(f) == nil {
			atomic.AddInt64(resent, 1)
		}
	}
}

// paceOutbox is pace with an outbox: every message is kept until acked.
func paceOutbox(ctx context.Context, e *env, send []*member, boxes []*outbox, rate float64, sent *atomic.Int64) {
	if len(send) == 0 {
		return
	}
	interval := time.Duration(float64(time.Second) / (rate * float64(len(send))))
	next := time.Now()
	text := strings.Repeat("s", 60)
	for k := 0; ctx.Err() == nil; {
		for !time.Now().Before(next) && ctx.Err() == nil {
			i := k % len(send)
			box := boxes[i]
			box.mu.Lock()
			connected := send[i].connected()
			var f []byte
			if connected {
				box.n++
				now := e.now()
				f = msgFrame(nil, box.n, now, text)
				box.pending[box.n] = &outMsg{frame: f, sent: now, gen: send[i].welcomes.Load()}
			}
			box.mu.Unlock()
			if f != nil && send[i].write(f) == nil {
				sent.Add(1)
			}
			k++
			next = next.Add(interval)
		}
		sleepCtx(ctx, time.Until(next))
	}
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
