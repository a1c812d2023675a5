package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heartline/heartline/shared/protocol"
)

// lossFigures splits what members did not receive by cause.
type lossFigures struct {
	FinalSeq     uint64      `json:"final_seq"` // the highest room seq (of any room)
	Expected     uint64      `json:"expected"`  // member x seq pairs that should have arrived
	Received     uint64      `json:"received"`
	Gaps         uint64      `json:"gaps"`          // missing below a later seq the member got: silent loss
	Backlog      uint64      `json:"backlog"`       // not yet received at the end of the drain wait
	Evicted      uint64      `json:"evicted"`       // missing at members the relay cut off with 4001
	EvictedConns int         `json:"evicted_conns"` // members closed with 4001
	LostOnClose  uint64      `json:"lost_on_close"` // missing at members closed by the relay for another reason
	Closed       map[int]int `json:"closed_by_relay,omitempty"`
	Duplicates   uint64      `json:"duplicates"`
	OutOfOrder   uint64      `json:"out_of_order"` // msgs that came after a higher seq
	LateAcks     uint64      `json:"late_acks"`    // own acks that came after a higher seq's msg
}

// markEnd records how each member's link stands before the run's own leave
// (a mass bye can make the relay cut members off, which is no loss of the
// measured traffic).
func markEnd(members []*member) {
	for _, m := range members {
		m.endClose = m.closeCode.Load()
	}
}

// leaveCloses counts the close codes the relay sent during the run's leave.
func leaveCloses(members []*member) map[int]int {
	out := map[int]int{}
	for _, m := range members {
		if m.endClose == 0 {
			if code := m.rawClose.Load(); code != protocol.CloseNormal && code != 0 {
				out[int(code)]++
			}
		}
	}
	return out
}

// accountLoss compares every tracked member's seqs with (its welcome seq,
// final seq of its room]. Call it after the members' readers have stopped.
func accountLoss(members []*member, final func(room string) uint64) lossFigures {
	var l lossFigures
	for _, m := range members {
		if m.seqs != nil {
			l.add(m.seqs, final(m.room), int(m.endClose))
		}
	}
	return l
}

// add accounts one member's seqs against (its first welcome seq, finalSeq];
// code is how the relay had closed it when the measurement ended (0: open).
func (l *lossFigures) add(s *seqSet, finalSeq uint64, code int) {
	if l.Closed == nil {
		l.Closed = map[int]int{}
	}
	l.FinalSeq = max(l.FinalSeq, finalSeq)
	if finalSeq >= s.base {
		l.Expected += finalSeq - s.base + 1
	}
	holes, backlog := s.missing(finalSeq)
	l.Received += s.countRange(s.base, finalSeq)
	l.Duplicates += s.dups
	l.OutOfOrder += s.late
	l.LateAcks += s.lateAck
	switch code {
	case 0:
		l.Gaps += holes
		l.Backlog += backlog
	case 4001:
		l.EvictedConns++
		l.Evicted += holes + backlog
	default:
		l.LostOnClose += holes + backlog
	}
	if code != 0 {
		l.Closed[code]++
	}
}

func (l lossFigures) String() string {
	lost := l.Gaps + l.Backlog + l.Evicted + l.LostOnClose
	pct := 0.0
	if l.Expected > 0 {
		pct = float64(lost) / float64(l.Expected) * 100
	}
	return fmt.Sprintf("expected %d deliveries up to seq %d, received %d; missing %d (%.3f%%): gaps %d, backlog %d, evicted %d (%d members cut off with 4001), lost on other closes %d; duplicates %d, out of order %d, acks after a later msg %d; closed by relay %v",
		l.Expected, l.FinalSeq, l.Received, lost, pct, l.Gaps, l.Backlog, l.Evicted, l.EvictedConns, l.LostOnClose, l.Duplicates, l.OutOfOrder, l.LateAcks, l.Closed)
}

type fanoutResult struct {
	Mode              string         `json:"mode"`
	URL               string         `json:"url"`
	Receivers         int            `json:"receivers"`
	Rooms             int            `json:"rooms,omitempty"` // more than one: members spread over them
	Senders           int            `json:"senders"`
	RatePerSender     float64        `json:"rate_per_sender"` // 0: closed loop
	Window            int            `json:"window,omitempty"`
	Echo              string         `json:"echo,omitempty"`
	TextBytes         int            `json:"text_bytes"`
	Joined            int            `json:"joined"`
	JoinFailures      map[string]int `json:"join_failures,omitempty"`
	SendSeconds       float64        `json:"send_seconds"`
	Sent              int64          `json:"sent"`
	Acked             int64          `json:"acked"`
	Refused           map[string]int `json:"refused,omitempty"`
	Unacked           int64          `json:"unacked"`
	MsgsPerSec        float64        `json:"msgs_per_sec"` // accepted (acked) per second of sending
	OfferedDelivPerS  float64        `json:"offered_deliveries_per_sec,omitempty"`
	DeliveriesPerSec  float64        `json:"deliveries_per_sec"` // received by all members during sending
	Deliveries        int64          `json:"deliveries"`         // received by all members, drain included
	Latency           latency        `json:"latency"`            // send -> receipt, all members
	AckLatency        latency        `json:"ack_latency"`        // send -> ack
	Loss              lossFigures    `json:"loss"`
	Relay             relayFigures   `json:"relay"`
	RelayUsPerDeliver float64        `json:"relay_cpu_us_per_delivery"`
	// DeliveriesPerWrite is deliveries per relay write syscall (from
	// /proc/<pid>/io): how well the relay coalesces frames per member.
	DeliveriesPerWrite float64     `json:"deliveries_per_relay_write,omitempty"`
	LoadCPU            float64     `json:"loadgen_cpu_percent"`
	Stalled            bool        `json:"stalled,omitempty"`
	LeaveCloses        map[int]int `json:"closes_during_leave,omitempty"` // after the measurement, on bye
	// PerRelay splits the members' figures by the relay they were on, when
	// -url names several (relays sharing one Redis).
	PerRelay []relayShare `json:"per_relay,omitempty"`
}

// relayShare is what the members on one relay saw.
type relayShare struct {
	URL        string      `json:"url"`
	Receivers  int         `json:"receivers"`
	Senders    int         `json:"senders"`
	Deliveries int64       `json:"deliveries"`
	Latency    latency     `json:"latency"` // send (on any relay) -> receipt on this one
	Loss       lossFigures `json:"loss"`
}

// perRelay groups members by their relay URL, in the order of urls.
func perRelay(urls []string, recv, send []*member, final func(string) uint64) []relayShare {
	out := make([]relayShare, len(urls))
	index := map[string]int{}
	groups := make([][]*member, len(urls))
	for i, u := range urls {
		out[i].URL, index[u] = u, i
	}
	for k, group := range [][]*member{recv, send} {
		for _, m := range group {
			i, ok := index[m.url]
			if !ok {
				continue
			}
			if k == 0 {
				out[i].Receivers++
			} else {
				out[i].Senders++
			}
			groups[i] = append(groups[i], m)
		}
	}
	for i, ms := range groups {
		lat := &hist{}
		for _, m := range ms {
			out[i].Deliveries += m.msgs.Load()
			lat.merge(m.lat)
		}
		out[i].Latency = lat.summary()
		out[i].Loss = accountLoss(ms, final)
	}
	return out
}

func fanoutMode(fs *flag.FlagSet) func(ctx context.Context, e *env, c *common) (any, error) {
	receivers := fs.Int("receivers", 1000, "members that only receive")
	senders := fs.Int("senders", 10, "members that send (they receive each other's messages too)")
	rate := fs.Float64("rate", 10, "messages per second per sender; 0 runs a closed loop with -window")
	window := fs.Int("window", 16, "closed loop: at most this many messages awaiting their echo")
	echo := fs.String("echo", "receiver", `closed loop: what ends a message's wait: "receiver" (the last receiver got it) or "ack" (the sender's ack)`)
	duration := fs.Duration("duration", 20*time.Second, "how long to send")
	warmup := fs.Duration("warmup", 2*time.Second, "latency is not recorded for messages sent in this first part")
	drain := fs.Duration("drain", 10*time.Second, "after sending, wait at most this long for every message to arrive")
	size := fs.Int("size", 80, "message text length in bytes (ASCII)")
	nRooms := fs.Int("rooms", 1, "rooms to spread the receivers and senders over (round robin); a message reaches the members of its own room. More than one needs -rate > 0 or -echo ack")
	return func(ctx context.Context, e *env, c *common) (any, error) {
		if *receivers < 1 || *senders < 1 || *rate < 0 || *window < 1 || *size < 1 || *size > 4000 {
			return nil, errors.New("need -receivers >= 1, -senders >= 1, -rate >= 0, -window >= 1, 1 <= -size <= 4000")
		}
		if *echo != "receiver" && *echo != "ack" {
			return nil, fmt.Errorf(`-echo %q: use "receiver" or "ack"`, *echo)
		}
		if *nRooms < 1 || *nRooms > *receivers+*senders {
			return nil, errors.New("-rooms must be between 1 and -receivers + -senders")
		}
		if *nRooms > 1 && *rate == 0 && *echo == "receiver" {
			return nil, errors.New(`-rooms > 1 with a closed loop needs -echo ack (the watching receiver sees only its own room)`)
		}
		if *receivers+*senders > 19800 {
			return nil, errors.New("-receivers + -senders exceeds what one process may hold here (20,000 descriptors)")
		}
		closed := *rate == 0
		e.readBuf = defaultReadBuf(c, 4096)
		pid := c.relayPID()
		res := &fanoutResult{Mode: "fanout", URL: c.url, Receivers: *receivers, Senders: *senders,
			RatePerSender: *rate, TextBytes: *size, Refused: map[string]int{}}
		if *nRooms > 1 {
			res.Rooms = *nRooms
		}
		res.Relay.PID = pid
		if closed {
			res.Window, res.Echo = *window, *echo
		} else {
			perRoom := float64(*receivers+*senders) / float64(*nRooms)
			res.OfferedDelivPerS = *rate * float64(*senders) * (perRoom - 1)
		}
		rooms := []string{"fan-" + runID()}
		if *nRooms > 1 {
			id := rooms[0]
			rooms = rooms[:0]
			for k := range *nRooms {
				rooms = append(rooms, fmt.Sprintf("%s-%d", id, k))
			}
		}
		// Each room's highest acked seq: what its members must all receive.
		finals := make(map[string]*atomic.Uint64, len(rooms))
		for _, r := range rooms {
			finals[r] = new(atomic.Uint64)
		}
		final := func(room string) uint64 { return finals[room].Load() }
		recv := newMembers(e, *receivers, rooms, "r", 0)
		send := newMembers(e, *senders, rooms, "s", 1)
		all := append(append([]*member{}, recv...), send...)
		for _, m := range all {
			m.track, m.lat = true, &hist{}
		}
		e.latFrom.Store(1 << 62) // nothing counts until sending starts

		// Closed loop: a slot is taken per message sent and given back by its echo.
		slots := make(chan struct{}, *window)
		release := func() {
			select {
			case <-slots:
			default:
			}
		}
		var acked atomic.Int64
		var refusedMu sync.Mutex
		for _, m := range send {
			m.ackLat = &hist{}
			m.onAck = func(m *member, h *frameHead, _ int64) {
				acked.Add(1)
				raise(finals[m.room], h.seq)
				if closed && *echo == "ack" {
					release()
				}
			}
			m.onErr = func(_ *member, h *frameHead) {
				if len(h.id) == 0 {
					return
				}
				refusedMu.Lock()
				res.Refused[string(h.code)]++
				refusedMu.Unlock()
				if closed {
					release()
				}
			}
		}
		if closed && *echo == "receiver" {
			recv[len(recv)-1].onMsg = func(*member, *frameHead, int64) { release() }
		}

		var readers sync.WaitGroup
		hbCtx, hbStop := context.WithCancel(ctx)
		var bg sync.WaitGroup
		bg.Add(1)
		go func() { defer bg.Done(); heartbeat(hbCtx, e, all) }()
		c.progress("fanout: joining %d receivers and %d senders", *receivers, *senders)
		joined, took := e.joinAll(ctx, all, c.conc, &readers, nil)
		res.Joined, res.JoinFailures = joined, e.failures()
		c.progress("fanout: %d joined in %.1fs", joined, took.Seconds())
		if joined < len(all) {
			hbStop()
			bg.Wait()
			leave(all, true, &readers, 3*time.Second)
			return res, fmt.Errorf("only %d of %d members joined (%v): fix the relay's limits (max room members, max conns, rate) first", joined, len(all), res.JoinFailures)
		}

		text := strings.Repeat("x", *size)
		var r0, r1 procSample
		var sampleErr error
		if pid != "" {
			r0, sampleErr = readProc(pid)
		}
		self0, _ := readProc("self")
		sendStart := time.Now()
		e.latFrom.Store(e.now() + int64(*warmup))
		sendCtx, sendStop := context.WithTimeout(ctx, *duration)
		var sent atomic.Int64
		counters := make([]uint64, len(send))
		buf := make([]byte, 0, *size+64)
		// sendOne sends the next message from the k-th live sender; it
		// reports false once every sender has lost its link.
		dead := make([]bool, len(send))
		sendOne := func(k int) bool {
			for range len(send) {
				i := k % len(send)
				if dead[i] {
					k++
					continue
				}
				counters[i]++
				buf = msgFrame(buf, counters[i], e.now(), text)
				if err := send[i].write(buf); err != nil {
					counters[i]--
					dead[i] = true
					continue
				}
				sent.Add(1)
				return true
			}
			return false // every sender lost its link
		}
		if closed {
			stall := time.NewTimer(0)
			for k := 0; sendCtx.Err() == nil; k++ {
				stall.Reset(10 * time.Second)
				select {
				case slots <- struct{}{}:
				case <-sendCtx.Done():
				case <-stall.C:
					res.Stalled = true
				}
				if res.Stalled || sendCtx.Err() != nil {
					break
				}
				if !sendOne(k) {
					release() // the slot this message would have used
					break
				}
			}
			stall.Stop()
		} else {
			pace(sendCtx, e, send, *rate, text, counters, &sent)
		}
		sendStop()
		res.SendSeconds = time.Since(sendStart).Seconds()
		res.Sent = sent.Load()
		var deliveriesSending int64
		for _, m := range all {
			deliveriesSending += m.msgs.Load()
		}
		res.DeliveriesPerSec = float64(deliveriesSending) / res.SendSeconds
		c.progress("fanout: sent %d in %.1fs; draining", res.Sent, res.SendSeconds)

		// Drain: every message answered (ack or refusal) and delivered, or the wait ends.
		drainEnd := time.Now().Add(*drain)
		for time.Now().Before(drainEnd) && ctx.Err() == nil {
			refusedMu.Lock()
			var refused int64
			for _, v := range res.Refused {
				refused += int64(v)
			}
			refusedMu.Unlock()
			if acked.Load()+refused >= res.Sent {
				done := true
				for _, m := range all {
					if m.closeCode.Load() == 0 && m.high.Load() < final(m.room) {
						done = false
						break
					}
				}
				if done {
					break
				}
			}
			sleepCtx(ctx, 20*time.Millisecond)
		}
		if pid != "" && sampleErr == nil {
			r1, sampleErr = readProc(pid)
		}
		self1, _ := readProc("self")
		res.LoadCPU = cpuPercent(self0, self1)
		res.Acked = acked.Load()
		hbStop()
		bg.Wait()
		markEnd(all)
		leave(all, true, &readers, 3*time.Second)
		res.LeaveCloses = leaveCloses(all)

		// Readers have stopped: their histograms and seq sets are ours now.
		lat, ackLat := &hist{}, &hist{}
		for _, m := range all {
			lat.merge(m.lat)
			res.Deliveries += m.msgs.Load()
			if m.ackLat != nil {
				ackLat.merge(m.ackLat)
			}
		}
		res.Latency, res.AckLatency = lat.summary(), ackLat.summary()
		var refused int64
		for _, v := range res.Refused {
			refused += int64(v)
		}
		res.Unacked = res.Sent - res.Acked - refused
		res.MsgsPerSec = float64(res.Acked) / res.SendSeconds
		res.Loss = accountLoss(all, final)
		if len(e.urls) > 1 {
			res.PerRelay = perRelay(e.urls, recv, send, final)
		}
		if pid != "" {
			if sampleErr != nil {
				res.Relay.SampleError = sampleErr.Error()
			} else {
				res.Relay.CPUPercent, res.Relay.CPUSeconds = cpuPercent(r0, r1), cpuSeconds(r0, r1)
				res.Relay.RSSBaseKiB, res.Relay.RSSKiB, res.Relay.HWMKiB = r0.rssKiB, r1.rssKiB, r1.hwmKiB
				res.Relay.Threads, res.Relay.FDs = r1.threads, r1.fds
				if res.Deliveries > 0 {
					res.RelayUsPerDeliver = res.Relay.CPUSeconds * 1e6 / float64(res.Deliveries)
				}
				if w := r1.syscw - r0.syscw; r0.syscw >= 0 && w > 0 {
					res.DeliveriesPerWrite = float64(res.Deliveries) / float64(w)
				}
			}
		}

		if closed {
			fmt.Printf("fanout (closed loop, window %d, echo %s): %d receivers + %d senders, %d-byte texts, %.1fs\n",
				*window, *echo, *receivers, *senders, *size, res.SendSeconds)
		} else {
			fmt.Printf("fanout: %d receivers + %d senders at %g msg/s each (%.0f deliveries/s offered), %d-byte texts, %.1fs\n",
				*receivers, *senders, *rate, res.OfferedDelivPerS, *size, res.SendSeconds)
		}
		if *nRooms > 1 {
			fmt.Printf("  members spread round robin over %d rooms\n", *nRooms)
		}
		if len(e.urls) > 1 {
			fmt.Printf("  members spread round robin over %d relays: %s\n", len(e.urls), strings.Join(e.urls, " "))
		}
		fmt.Printf("  sent %d, acked %d (%.0f msg/s), refused %v, unacked %d%s\n", res.Sent, res.Acked, res.MsgsPerSec, res.Refused, res.Unacked,
			map[bool]string{true: " - STALLED: no echo for 10 s", false: ""}[res.Stalled])
		fmt.Printf("  deliveries: %d (%.0f/s while sending)\n", res.Deliveries, res.DeliveriesPerSec)
		fmt.Printf("  latency send->receipt: p50 %.2f ms, p90 %.2f, p99 %.2f, p99.9 %.2f, max %.2f (%d samples after %v warm-up)\n",
			res.Latency.P50, res.Latency.P90, res.Latency.P99, res.Latency.P999, res.Latency.Max, res.Latency.Count, *warmup)
		fmt.Printf("  latency send->ack:     p50 %.2f ms, p99 %.2f, max %.2f\n", res.AckLatency.P50, res.AckLatency.P99, res.AckLatency.Max)
		fmt.Printf("  loss: %s\n", res.Loss)
		for _, r := range res.PerRelay {
			lost := r.Loss.Gaps + r.Loss.Backlog + r.Loss.Evicted + r.Loss.LostOnClose
			fmt.Printf("  on %s: %d receivers + %d senders, %d deliveries, p50 %.2f ms, p99 %.2f, max %.2f; missing %d (gaps %d), duplicates %d\n",
				r.URL, r.Receivers, r.Senders, r.Deliveries, r.Latency.P50, r.Latency.P99, r.Latency.Max, lost, r.Loss.Gaps, r.Loss.Duplicates)
		}
		if len(res.LeaveCloses) > 0 {
			fmt.Printf("  after the measurement, while all members said bye, the relay closed: %v (1006: no close frame in 3 s)\n", res.LeaveCloses)
		}
		if pid != "" && sampleErr == nil {
			fmt.Printf("  %s: %.2f s CPU (%.0f%% of a core), %.3f us per delivery, %.1f deliveries per write syscall; RSS %d -> %d KiB (peak ever %d)\n",
				relayLabel(pid), res.Relay.CPUSeconds, res.Relay.CPUPercent, res.RelayUsPerDeliver, res.DeliveriesPerWrite, r0.rssKiB, r1.rssKiB, r1.hwmKiB)
		}
		fmt.Printf("  load generator: %.0f%% CPU\n", res.LoadCPU)
		if res.Stalled {
			return res, errors.New("the closed loop stalled: no echo for 10 s (was the watcher cut off?)")
		}
		return res, ctx.Err()
	}
}

// pace sends rate messages per second from each sender (see paced). A
// sender without a live link is skipped (its message is not sent). counters
// holds each sender's last message number.
func pace(ctx context.Context, e *env, send []*member, rate float64, text string, counters []uint64, sent *atomic.Int64) {
	buf := make([]byte, 0, len(text)+64)
	paced(ctx, len(send), rate, func(i int) {
		counters[i]++
		buf = msgFrame(buf, counters[i], e.now(), text)
		if send[i].write(buf) == nil {
			sent.Add(1)
		} else {
			counters[i]--
		}
	})
}

// raise makes a hold at least v.
func raise(a *atomic.Uint64, v uint64) {
	for cur := a.Load(); v > cur && !a.CompareAndSwap(cur, v); cur = a.Load() {
	}
}

// paced calls send(i) for i = 0, 1, ..., n-1 in turn, rate times per second
// for each i, spread evenly, from this one goroutine, until ctx ends.
func paced(ctx context.Context, n int, rate float64, send func(i int)) {
	if n == 0 {
		return
	}
	interval := time.Duration(float64(time.Second) / (rate * float64(n)))
	next := time.Now()
	for k := 0; ctx.Err() == nil; {
		for !time.Now().Before(next) && ctx.Err() == nil {
			send(k % n)
			k++
			next = next.Add(interval)
		}
		sleepCtx(ctx, time.Until(next))
	}
}
