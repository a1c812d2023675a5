package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heartline/heartline/shared/protocol"
)

type churnResult struct {
	Mode          string         `json:"mode"`
	URL           string         `json:"url"`
	Members       int            `json:"members"`
	Senders       int            `json:"senders"`
	RatePerSender float64        `json:"rate_per_sender"`
	ChurnPerSec   float64        `json:"churn_per_sec"`
	StayMS        int64          `json:"stay_ms"`
	AbruptShare   float64        `json:"abrupt_share"`
	Seconds       float64        `json:"seconds"`
	Joined        int            `json:"stable_joined"`
	Churners      int64          `json:"churners_started"`
	ChurnJoined   int64          `json:"churners_joined"`
	ChurnSkipped  int64          `json:"churners_skipped"` // too many still in flight
	JoinFailures  map[string]int `json:"join_failures,omitempty"`
	JoinLatency   latency        `json:"churn_join_latency"` // dial -> welcome
	Byes          int64          `json:"byes"`
	ByeClosed1000 int64          `json:"bye_closed_1000"` // relay closed with 1000 within 2 s of bye
	ByeOther      map[int]int    `json:"bye_other,omitempty"`
	Abrupt        int64          `json:"abrupt_closes"`
	ChurnerClosed map[int]int    `json:"churners_closed_by_relay,omitempty"`
	Observed      map[string]int `json:"observer_frames"` // joined / presence:<state> / left:<reason>
	Sent          int64          `json:"sent"`
	Acked         int64          `json:"acked"`
	ErrorFrames   map[string]int `json:"error_frames,omitempty"`
	Loss          lossFigures    `json:"stable_loss"`
	Relay         relayFigures   `json:"relay"`
	RelayFDsEnd   int64          `json:"relay_fds_after_churn"`
	RelayRSSEnd   int64          `json:"relay_rss_after_churn_kib"`
}

func churnMode(fs *flag.FlagSet) func(ctx context.Context, e *env, c *common) (any, error) {
	stable := fs.Int("members", 200, "members that stay for the whole run (they are checked for loss)")
	senders := fs.Int("senders", 5, "of the stable members, how many chat")
	rate := fs.Float64("rate", 2, "messages per second per sender")
	churn := fs.Float64("churn", 20, "new members joining per second (each leaves again)")
	stay := fs.Duration("stay", 2*time.Second, "how long a churning member stays (uniform 0.5x-1.5x)")
	abrupt := fs.Float64("abrupt", 0.5, "share of churning members that vanish by closing TCP (no bye, no close frame)")
	duration := fs.Duration("duration", 30*time.Second, "how long to churn")
	drain := fs.Duration("drain", 5*time.Second, "after churning, wait at most this long for messages in flight")
	return func(ctx context.Context, e *env, c *common) (any, error) {
		if *stable < 1 || *senders < 0 || *senders > *stable || *rate <= 0 || *churn <= 0 || *abrupt < 0 || *abrupt > 1 {
			return nil, errors.New("need -members >= 1, 0 <= -senders <= -members, -rate > 0, -churn > 0, 0 <= -abrupt <= 1")
		}
		maxInFlight := int(*churn*stay.Seconds()*1.5) + 16
		if *stable+maxInFlight > 19800 {
			return nil, errors.New("-members plus churning members in flight exceed one process's 20,000 descriptors")
		}
		e.readBuf = defaultReadBuf(c, 1024)
		pid := c.relayPID()
		res := &churnResult{Mode: "churn", URL: c.url, Members: *stable, Senders: *senders, RatePerSender: *rate,
			ChurnPerSec: *churn, StayMS: stay.Milliseconds(), AbruptShare: *abrupt,
			ByeOther: map[int]int{}, ChurnerClosed: map[int]int{}, Observed: map[string]int{}, ErrorFrames: map[string]int{}}
		res.Relay.PID = pid
		var r0 procSample
		if pid != "" {
			r0, _ = readProc(pid)
			res.Relay.RSSBaseKiB, res.Relay.FDsBase = r0.rssKiB, r0.fds
		}
		room := "churn-" + runID()
		members := newMembers(e, *stable, []string{room}, "m", 0)
		for _, m := range members {
			m.track = true
		}
		var obsMu sync.Mutex
		observed := map[string]int{} // by the observer, members[0]
		members[0].onMeta = func(_ *member, typ string, frame []byte) {
			key := typ
			if f, err := protocol.DecodeRelay(frame); err == nil {
				switch f := f.(type) {
				case *protocol.Left:
					key += ":" + f.Reason
				case *protocol.Presence:
					key += ":" + f.Member.State
				}
			}
			obsMu.Lock()
			observed[key]++
			obsMu.Unlock()
		}
		var maxAck atomic.Uint64
		var acked atomic.Int64
		for _, m := range members[len(members)-*senders:] {
			m.onAck = func(_ *member, h *frameHead, _ int64) {
				acked.Add(1)
				raise(&maxAck, h.seq)
			}
		}
		var readers sync.WaitGroup
		bgCtx, bgStop := context.WithCancel(ctx)
		var bg sync.WaitGroup
		bg.Add(1)
		go func() { defer bg.Done(); heartbeat(bgCtx, e, members) }()
		// The observer joins first, so it must see a joined frame for each
		// of the others: waiting for those keeps them out of its counts.
		first, _ := e.joinAll(ctx, members[:1], 1, &readers, nil)
		rest, took := e.joinAll(ctx, members[1:], c.conc, &readers, nil)
		joined := first + rest
		res.Joined = joined
		c.progress("churn: %d stable members joined in %.1fs", joined, took.Seconds())
		if joined < len(members) {
			bgStop()
			bg.Wait()
			leave(members, true, &readers, 3*time.Second)
			res.JoinFailures = e.failures()
			return res, fmt.Errorf("only %d of %d stable members joined: %v", joined, len(members), res.JoinFailures)
		}

		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
			obsMu.Lock()
			seen := observed["joined"]
			obsMu.Unlock()
			if seen >= len(members)-1 {
				break
			}
			sleepCtx(ctx, 10*time.Millisecond)
		}
		// The observer's counts from here on are the churn's own.
		obsMu.Lock()
		obsBase := maps.Clone(observed)
		obsMu.Unlock()
		start := time.Now()
		runCtx, runStop := context.WithTimeout(ctx, *duration)
		var sent atomic.Int64
		if *senders > 0 {
			bg.Add(1)
			go func() {
				defer bg.Done()
				send := members[len(members)-*senders:]
				pace(runCtx, e, send, *rate, strings.Repeat("c", 60), make([]uint64, len(send)), &sent)
			}()
		}

		// Churners: one goroutine each, at most maxInFlight at a time.
		var (
			churners sync.WaitGroup
			statMu   sync.Mutex
			joinLat  hist
			inFlight = make(chan struct{}, maxInFlight)
		)
		tick := time.NewTicker(time.Duration(float64(time.Second) / *churn))
		for k := 0; runCtx.Err() == nil; k++ {
			select {
			case <-runCtx.Done():
				continue
			case <-tick.C:
			}
			select {
			case inFlight <- struct{}{}:
			default:
				res.ChurnSkipped++
				continue
			}
			res.Churners++
			m := &member{idx: k, room: room, name: "c" + strconv.Itoa(k), key: newKey(), src: e.srcs[k%len(e.srcs)], url: e.urlFor(k)}
			churners.Add(1)
			go func() {
				defer func() { <-inFlight; churners.Done() }()
				t0 := time.Now()
				if err := e.join(ctx, m, false); err != nil {
					return
				}
				statMu.Lock()
				joinLat.add(uint64(time.Since(t0).Microseconds()))
				res.ChurnJoined++
				statMu.Unlock()
				done := make(chan struct{})
				go func() { defer close(done); m.readLoop(e) }()
				wait := time.Duration(float64(*stay) * (0.5 + rand.Float64()))
				select {
				case <-done: // the relay closed it early
					statMu.Lock()
					res.ChurnerClosed[int(m.rawClose.Load())]++
					statMu.Unlock()
					return
				case <-time.After(wait):
				case <-ctx.Done():
				}
				m.leaving.Store(true)
				if rand.Float64() < *abrupt {
					m.cut()
					<-done
					statMu.Lock()
					res.Abrupt++
					statMu.Unlock()
					return
				}
				_ = m.write([]byte(`{"type":"bye"}`))
				select {
				case <-done:
				case <-time.After(2 * time.Second):
					m.cut()
					<-done
				}
				statMu.Lock()
				res.Byes++
				if code := m.rawClose.Load(); code == protocol.CloseNormal {
					res.ByeClosed1000++
				} else {
					res.ByeOther[int(code)]++
				}
				statMu.Unlock()
			}()
		}
		tick.Stop()
		runStop()
		churners.Wait()
		res.Seconds = time.Since(start).Seconds()
		c.progress("churn: %d churners in %.1fs; draining", res.Churners, res.Seconds)
		res.Sent = sent.Load()
		// Leaves are announced within 1 s (spec rule 5); give the last ones that.
		sleepCtx(ctx, time.Second)
		obsMu.Lock()
		for k, v := range observed {
			if d := v - obsBase[k]; d != 0 {
				res.Observed[k] = d
			}
		}
		obsMu.Unlock()
		drainEnd := time.Now().Add(*drain)
		for time.Now().Before(drainEnd) && ctx.Err() == nil {
			if acked.Load() >= res.Sent {
				final, done := maxAck.Load(), true
				for _, m := range members {
					if m.closeCode.Load() == 0 && m.high.Load() < final {
						done = false
					}
				}
				if done {
					break
				}
			}
			sleepCtx(ctx, 20*time.Millisecond)
		}
		if pid != "" {
			if r1, err := readProc(pid); err == nil {
				res.RelayFDsEnd, res.RelayRSSEnd = r1.fds, r1.rssKiB
				res.Relay.CPUPercent, res.Relay.CPUSeconds = cpuPercent(r0, r1), cpuSeconds(r0, r1)
				res.Relay.RSSKiB, res.Relay.HWMKiB, res.Relay.Threads, res.Relay.FDs = r1.rssKiB, r1.hwmKiB, r1.threads, r1.fds
			}
		}
		bgStop()
		bg.Wait()
		res.Acked = acked.Load()
		markEnd(members)
		leave(members, true, &readers, 3*time.Second)
		res.Loss = accountLoss(members, func(string) uint64 { return maxAck.Load() })
		res.JoinLatency = joinLat.summary()
		res.JoinFailures = e.failures()
		for _, m := range members {
			for code, n := range m.errCodes {
				res.ErrorFrames[code] += n
			}
		}

		fmt.Printf("churn: %d stable members (%d sending %g msg/s), %g joins/s staying ~%v, %.0f%% abrupt, %.1fs\n",
			*stable, *senders, *rate, *churn, *stay, *abrupt*100, res.Seconds)
		fmt.Printf("  churners: %d started, %d joined (join p50 %.1f ms, p99 %.1f, max %.1f), %d skipped; failures %v\n",
			res.Churners, res.ChurnJoined, res.JoinLatency.P50, res.JoinLatency.P99, res.JoinLatency.Max, res.ChurnSkipped, res.JoinFailures)
		fmt.Printf("  leaves: %d bye (%d closed 1000 by the relay, other %v), %d abrupt; churners cut off early %v\n",
			res.Byes, res.ByeClosed1000, res.ByeOther, res.Abrupt, res.ChurnerClosed)
		fmt.Printf("  observer saw during the churn: %v (expected joined %d, left:bye %d, presence:away %d)\n",
			res.Observed, res.ChurnJoined, res.Byes, res.Abrupt)
		fmt.Printf("  chat: sent %d, acked %d; error frames %v\n", res.Sent, res.Acked, res.ErrorFrames)
		fmt.Printf("  stable members' loss: %s\n", res.Loss)
		if pid != "" {
			fmt.Printf("  %s: fds %d before -> %d after churn (%d stable members); RSS %d -> %d KiB; %.0f%% CPU\n",
				relayLabel(pid), res.Relay.FDsBase, res.RelayFDsEnd, *stable, res.Relay.RSSBaseKiB, res.RelayRSSEnd, res.Relay.CPUPercent)
		}
		return res, ctx.Err()
	}
}
