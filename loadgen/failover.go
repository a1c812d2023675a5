package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/heartline/heartline/shared/client"
	"github.com/heartline/heartline/shared/protocol"
)

// failoverResult is what a failover or rolling run saw.
type failoverResult struct {
	Mode          string         `json:"mode"` // "failover" (SIGKILL one relay) or "rolling" (SIGTERM and restart each in turn)
	URLs          []string       `json:"urls"`
	Clients       int            `json:"clients"`
	Rooms         int            `json:"rooms"`
	Senders       int            `json:"senders"`
	RatePerSender float64        `json:"rate_per_sender"`
	Joined        int            `json:"joined"`
	JoinSeconds   float64        `json:"join_seconds"`
	JoinFailures  map[string]int `json:"join_failures,omitempty"`
	// ClientsPerRelay: where the clients were when the first relay went
	// down, and at the end (by URL).
	ClientsPerRelay    map[string]int `json:"clients_per_relay_start"`
	ClientsPerRelayEnd map[string]int `json:"clients_per_relay_end"`
	Outages            []outage       `json:"outages"`
	// Chat: Client.Send calls, acked, failed, still pending at the end, and
	// ids acked twice (the outbox resent through another relay and got a
	// second, different ack).
	Typed      int64 `json:"typed"`
	Acked      int64 `json:"acked"`
	Failed     int64 `json:"failed"`
	Unacked    int64 `json:"unacked"`
	AckedTwice int64 `json:"acked_twice"`
	// Lost: (receiver, acked message of its room) pairs the receiver never
	// got; LostReceivers: receivers missing at least one.
	Lost          uint64 `json:"lost"`
	LostReceivers int    `json:"lost_receivers"`
	// LostAtStopped: the same, at engines the relay closed for good (they
	// stop receiving anything).
	LostAtStopped uint64 `json:"lost_at_stopped_engines"`
	// Duplicated: a receiver got one message (sender, client id) under two
	// seqs. The engine drops a seq it already holds, so this is what a
	// person would see twice.
	Duplicated uint64 `json:"duplicated"`
	OutOfOrder uint64 `json:"out_of_order"`
	// OutOfOrderWhere: "live" or "in a resume's history", and the relay.
	OutOfOrderWhere map[string]int `json:"out_of_order_where,omitempty"`
	LateAcks        uint64         `json:"late_acks"`
	// HistoryGaps: resumes where the relay said it no longer had everything
	// (the engine admits a gap); NotRecovered: welcomes with recovered=false.
	HistoryGaps  int64 `json:"history_gaps"`
	NotRecovered int64 `json:"not_recovered"`
	// Presence seen by the members from the first outage on, about the
	// members who went through an outage and came back: left and joined
	// must be 0; away is how often another member saw one turn away
	// (AwayMembers: how many distinct members that was).
	LeftCameBack   int64 `json:"left_came_back"`
	JoinedCameBack int64 `json:"joined_came_back"`
	AwayEvents     int64 `json:"away_events"`
	AwayMembers    int   `json:"away_members"`
	// About members who were not moved (must be 0 too).
	LeftOthers   int64 `json:"left_others"`
	JoinedOthers int64 `json:"joined_others"`
	// About member ids this tool never saw welcomed: an engine that
	// stopped at its first join (the relay had it in the room, so it
	// leaves after --grace), or a member who left for good and came back
	// as a new member (new id).
	// A member who left for good and came back is a new member (new id):
	// its joined counts here.
	LeftNeverWelcomed   int64          `json:"left_never_welcomed"`
	LeftReasons         map[string]int `json:"left_reasons,omitempty"` // every left seen while counting, by reason
	JoinedNeverWelcomed int64          `json:"joined_never_welcomed"`
	RelayErrors         map[string]int `json:"relay_errors,omitempty"`
	FailReasons         map[string]int `json:"fail_reasons,omitempty"`
	Stopped             map[int]int    `json:"stopped,omitempty"` // engines that stopped for good, by close code
	Settled             bool           `json:"settled"`           // every message answered and delivered before the end
	TimedOut            bool           `json:"timed_out,omitempty"`
	LoadGenCPU          float64        `json:"loadgen_cpu_percent"`
	RelaysCPU           float64        `json:"relays_cpu_percent,omitempty"` // of the relays that ran throughout
}

// outage is one relay going down: its clients, and how long until each
// was welcomed again on some relay.
type outage struct {
	Relay   string  `json:"relay"`
	PID     int     `json:"pid"`
	Signal  string  `json:"signal"`
	Clients int     `json:"clients"` // connected to it when the signal went
	Back    int     `json:"back"`
	BackMax float64 `json:"back_max_seconds"` // signal -> the last of its clients welcomed elsewhere
	BackP99 float64 `json:"back_p99_seconds"`
	BackP50 float64 `json:"back_p50_seconds"`
	// Where they came back (by URL); a client may return to its own relay
	// once it listens again (rolling).
	BackOn map[string]int `json:"back_on"`
	// Rolling: SIGTERM -> exit, and start -> listening.
	StopSeconds  float64 `json:"stop_seconds,omitempty"`
	StartSeconds float64 `json:"start_seconds,omitempty"`
	TimedOut     bool    `json:"timed_out,omitempty"`
	LoadAvg      string  `json:"loadavg"`
	// Any member's welcomes with recovered=false and history gaps from the
	// signal until its clients were back (a relay that rotates a room's
	// epoch sends all of the room's members round again).
	NotRecovered int64 `json:"not_recovered"`
	HistoryGaps  int64 `json:"history_gaps"`
}

func failoverMode(fs *flag.FlagSet) func(ctx context.Context, e *env, c *common) (any, error) {
	return failoverLike(fs, "failover")
}

func rollingMode(fs *flag.FlagSet) func(ctx context.Context, e *env, c *common) (any, error) {
	return failoverLike(fs, "rolling")
}

// relayCmds is a repeatable -relay-cmd flag.
type relayCmds []string

func (r *relayCmds) String() string     { return strings.Join(*r, " | ") }
func (r *relayCmds) Set(v string) error { *r = append(*r, v); return nil }

func failoverLike(fs *flag.FlagSet, mode string) func(ctx context.Context, e *env, c *common) (any, error) {
	n := fs.Int("n", 10000, "shared/client engines, spread evenly over the -url relays")
	perRoom := fs.Int("per-room", 100, "members per room")
	senders := fs.Int("senders", 20, "members that chat with Client.Send (one per room first, spread over the relays)")
	rate := fs.Float64("rate", 2, "messages per second per sender")
	before := fs.Duration("before", 10*time.Second, "chat this long before the first relay goes down")
	after := fs.Duration("after", 10*time.Second, "chat this long after the last relay's clients are back")
	backTimeout := fs.Duration("back-timeout", 60*time.Second, "give up waiting for a relay's clients to come back after this")
	drain := fs.Duration("drain", 20*time.Second, "wait at most this long at the end for every message to be answered and delivered")
	var killPID int
	var cmds relayCmds
	var between *time.Duration
	var logDir *string
	if mode == "failover" {
		fs.IntVar(&killPID, "kill-pid", 0, "the relay process (one of -url's) to kill with SIGKILL after -before")
	} else {
		fs.Var(&cmds, "relay-cmd", "command line of a relay (split on spaces, no shell), once per -url in the same order; the tool starts each, then restarts them one after the other (SIGTERM, wait for the exit, start again) and stops them at the end")
		between = fs.Duration("between", 5*time.Second, "chat this long between one relay's clients being back and the next restart")
		logDir = fs.String("relay-log-dir", os.TempDir(), "the relays' output goes to relay-N.log here")
	}
	return func(ctx context.Context, e *env, c *common) (any, error) {
		if len(c.urls) < 2 {
			return nil, fmt.Errorf("%s needs at least two relays in -url (comma-separated), sharing one Redis", mode)
		}
		nRooms := (*n + *perRoom - 1) / max(*perRoom, 1)
		if *n < 1 || *perRoom < 1 || *senders < 0 || *rate <= 0 {
			return nil, errors.New("need -n >= 1, -per-room >= 1, -senders >= 0, -rate > 0")
		}
		if *n > 19000 {
			return nil, errors.New("-n: one process may hold at most 20,000 descriptors here")
		}
		if *senders > *n {
			return nil, fmt.Errorf("-senders %d: more than -n %d", *senders, *n)
		}
		hosts := make([]string, len(c.urls))
		for i, u := range c.urls {
			pu, _ := url.Parse(u)
			hosts[i] = pu.Host
		}
		res := &failoverResult{Mode: mode, URLs: c.urls, Clients: *n, Rooms: nRooms, Senders: *senders, RatePerSender: *rate}

		var procs []*relayProcess // rolling: the relays this tool runs
		killIdx := -1
		switch mode {
		case "failover":
			if killPID <= 0 {
				return nil, errors.New("-kill-pid: give the pid of the relay to kill (one of -url's)")
			}
			for i, u := range c.urls {
				if pid, err := pidListeningOn(urlPort(u)); err == nil && pid == killPID {
					killIdx = i
				}
			}
			if killIdx < 0 {
				return nil, fmt.Errorf("-kill-pid %d listens on none of the -url ports", killPID)
			}
		case "rolling":
			if len(cmds) != len(c.urls) {
				return nil, fmt.Errorf("-relay-cmd: give one per -url (%d), in the same order; got %d", len(c.urls), len(cmds))
			}
			procs = make([]*relayProcess, len(cmds))
			defer func() {
				for _, p := range procs {
					if p != nil {
						_ = p.stop()
					}
				}
			}()
			for i, cmd := range cmds {
				p, err := startRelay(ctx, cmd, relayLogPath(*logDir, i), urlPort(c.urls[i]))
				if err != nil {
					return nil, fmt.Errorf("relay %d: %w", i+1, err)
				}
				procs[i] = p
			}
			c.progress("rolling: %d relays started, logs in %s", len(procs), *logDir)
		}

		f := newFailoverFleet(e, c, mode, hosts, *n, nRooms, *senders, *rate)
		joinStart := time.Now()
		res.Joined = f.join(ctx)
		res.JoinSeconds = time.Since(joinStart).Seconds()
		c.progress("%s: %d of %d engines joined in %.1fs", mode, res.Joined, *n, res.JoinSeconds)
		if res.Joined < *n*99/100 {
			f.finish(res)
			return res, fmt.Errorf("only %d of %d engines joined (attempts that failed: %v; engines that stopped, by close code: %v)",
				res.Joined, *n, res.JoinFailures, res.Stopped)
		}
		if res.Joined < *n {
			// Measured with those that joined; the summary and the exit
			// status say how many did not, and why.
			f.mu.Lock()
			c.progress("%s: %d engines never joined (attempts that failed: %v; stopped, by close code: %v); going on with %d",
				mode, *n-res.Joined, f.joinFails, f.stopped, res.Joined)
			f.mu.Unlock()
		}
		res.ClientsPerRelay = f.perRelay()

		cpu0, _ := readCPU("self")
		relayPIDs := map[int]string{}
		for i, u := range c.urls {
			if i == killIdx {
				continue
			}
			if pid, err := pidListeningOn(urlPort(u)); err == nil {
				relayPIDs[i] = strconv.Itoa(pid)
			}
		}
		relayCPU0 := map[int]procSample{}
		for i, pid := range relayPIDs {
			relayCPU0[i], _ = readCPU(pid)
		}
		t0 := time.Now()

		chatCtx, chatStop := context.WithCancel(ctx)
		var chatting sync.WaitGroup
		chatting.Go(func() { f.chat(chatCtx) })
		stopChat := sync.OnceFunc(func() { chatStop(); chatting.Wait() })
		defer stopChat()
		c.progress("%s: chatting %v before the first outage", mode, *before)
		sleepCtx(ctx, *before)
		f.counting.Store(true)

		var err error
		switch mode {
		case "failover":
			o := f.outage(ctx, killIdx, killPID, "SIGKILL", *backTimeout, func() error {
				return syscall.Kill(killPID, syscall.SIGKILL)
			})
			res.Outages = append(res.Outages, o)
		case "rolling":
			for i := range procs {
				var stopSec, startSec float64
				o := f.outage(ctx, i, procs[i].cmd.Process.Pid, "SIGTERM", *backTimeout, func() error {
					t := time.Now()
					if err := procs[i].stop(); err != nil {
						c.progress("rolling: relay %d stop: %v", i+1, err)
					}
					stopSec = time.Since(t).Seconds()
					t = time.Now()
					p, err := startRelay(ctx, cmds[i], relayLogPath(*logDir, i), urlPort(c.urls[i]))
					procs[i] = p
					startSec = time.Since(t).Seconds()
					return err
				})
				o.StopSeconds, o.StartSeconds = stopSec, startSec
				res.Outages = append(res.Outages, o)
				if procs[i] == nil || o.TimedOut || ctx.Err() != nil {
					break
				}
				if i < len(procs)-1 {
					sleepCtx(ctx, *between)
				}
			}
		}
		for _, o := range res.Outages {
			res.TimedOut = res.TimedOut || o.TimedOut
		}
		if !res.TimedOut {
			c.progress("%s: chatting %v after the last outage", mode, *after)
			sleepCtx(ctx, *after)
		}
		stopChat()
		drainEnd := time.Now().Add(*drain)
		for time.Now().Before(drainEnd) && ctx.Err() == nil && !f.settled() {
			sleepCtx(ctx, 100*time.Millisecond)
		}
		res.Settled = f.settled()
		elapsed := time.Since(t0).Seconds()
		if cpu1, err := readCPU("self"); err == nil {
			res.LoadGenCPU = cpuPercent(cpu0, cpu1)
		}
		var relayTicks float64
		for i, pid := range relayPIDs {
			if mode == "rolling" {
				break // restarted: their CPU counters began again
			}
			if s, err := readCPU(pid); err == nil {
				relayTicks += float64(s.cpuTicks - relayCPU0[i].cpuTicks)
			}
		}
		if relayTicks > 0 && elapsed > 0 {
			res.RelaysCPU = relayTicks / clockTicks / elapsed * 100
		}
		res.ClientsPerRelayEnd = f.perRelay()
		f.counting.Store(false) // the run's own leave is not an outage's doing
		f.finish(res)
		f.print(res)
		switch {
		case res.TimedOut:
			err = errors.New("not every client of a relay that went down was back in time")
		case res.Joined < *n:
			err = fmt.Errorf("%d of %d engines never joined", *n-res.Joined, *n)
		}
		if err == nil {
			err = ctx.Err()
		}
		return res, err
	}
}

func relayLogPath(dir string, i int) string {
	return fmt.Sprintf("%s/relay-%d.log", strings.TrimRight(dir, "/"), i+1)
}

// failoverFleet is N shared/client engines whose dialer tries their own
// relay first and the others in turn: a client of a dead relay lands on
// another, as behind a load balancer.
type failoverFleet struct {
	e       *env
	c       *common
	mode    string
	hosts   []string // host:port of every relay, -url order
	members []*foMember
	senders []*foMember
	rate    float64
	rooms   []string

	engineStarts

	counting atomic.Bool // presence is counted from the first outage until the run's own leave
	// Welcomes with recovered=false and history gaps, all members so far.
	notRecovered, historyGaps atomic.Int64

	mu          sync.Mutex
	roomAcked   map[string][]uint64 // every acked seq, per room
	roomMax     map[string]*atomic.Uint64
	joinFails   map[string]int
	relayErrors map[string]int
	failReasons map[string]int
	stopped     map[int]int
	leftReasons map[string]int
	outOfOrder  map[string]int // where out-of-order deliveries were seen
	// Presence about a member (by protocol id) seen while counting.
	left, joinedAgain, away map[string]int64
}

// foMember is one engine. The atomics are written by its reader and its
// dialer and read by the driver; the rest belongs to the reader until its
// Events channel closes.
type foMember struct {
	idx, home int
	room      string
	engineRun

	relay     atomic.Int32 // the relay its latest TCP connection reached
	welcomeAt atomic.Int64 // env.now() of the latest welcome
	onRelay   atomic.Int32 // the relay of the latest welcome
	connected atomic.Bool
	stopCode  atomic.Int64
	contig    atomic.Uint64
	typed     atomic.Int64
	answered  atomic.Int64
	id        atomic.Pointer[string] // protocol member id, from the first welcome

	seqs         *seqSet
	sinceWelcome int               // messages received since the latest welcome
	lastHistory  int               // how many that welcome carried
	byMsg        map[string]uint64 // sender id/msg id -> seq
	duplicated   uint64
	historyGaps  int64
	notRecovered int64
	outbox       map[string]client.OutboxStatus
	acked        int64
	ackedTwice   int64
	failed       int64
}

func newFailoverFleet(e *env, c *common, mode string, hosts []string, n, nRooms, senders int, rate float64) *failoverFleet {
	f := &failoverFleet{e: e, c: c, mode: mode, hosts: hosts, members: make([]*foMember, n), rate: rate, rooms: make([]string, nRooms),
		roomAcked: map[string][]uint64{}, roomMax: map[string]*atomic.Uint64{}, joinFails: map[string]int{},
		relayErrors: map[string]int{}, failReasons: map[string]int{}, stopped: map[int]int{}, leftReasons: map[string]int{}, outOfOrder: map[string]int{},
		left: map[string]int64{}, joinedAgain: map[string]int64{}, away: map[string]int64{}}
	id := runID()
	for i := range f.rooms {
		f.rooms[i] = fmt.Sprintf("failover-%s-%d", id, i)
		f.roomMax[f.rooms[i]] = new(atomic.Uint64)
	}
	// As newMembers: member i is in room i mod rooms, and a room's members
	// take the relays in turn from relay (room mod relays) on.
	for i := range f.members {
		m := &foMember{idx: i, room: f.rooms[i%nRooms], home: (i/nRooms + i%nRooms) % len(hosts), byMsg: map[string]uint64{}}
		m.relay.Store(-1)
		m.onRelay.Store(-1)
		f.members[i] = m
	}
	// Sender k is member k: room k mod rooms, spread over the relays.
	for k := range senders {
		m := f.members[k]
		m.outbox = map[string]client.OutboxStatus{}
		f.senders = append(f.senders, m)
	}
	return f
}

// dial connects to the member's own relay, or when that fails to the
// others in turn (the address the engine asks for is ignored: every URL
// has the same path).
func (f *failoverFleet) dial(m *foMember) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: f.e.srcs[m.idx%len(f.e.srcs)]}}
	return func(ctx context.Context, network, _ string) (net.Conn, error) {
		var firstErr error
		for k := range f.hosts {
			// Its own relay, then the others in turn, half of a relay's
			// clients starting with the next one and half with the one
			// after (with three relays): the clients of a dead relay spread
			// over the living ones, as a round-robin balancer spreads them.
			r := m.home
			if k > 0 {
				r = (m.home + 1 + (m.idx+k-1)%(len(f.hosts)-1)) % len(f.hosts)
			}
			conn, err := d.DialContext(ctx, network, f.hosts[r])
			if err == nil {
				m.relay.Store(int32(r))
				return conn, nil
			}
			if firstErr == nil {
				firstErr = err
			}
			if ctx.Err() != nil {
				break
			}
		}
		return nil, firstErr
	}
}

func (f *failoverFleet) count(m map[string]int, key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(m) < 20 || m[key] > 0 {
		m[key]++
	} else {
		m["other"]++
	}
}

func (f *failoverFleet) join(ctx context.Context) int {
	engines := make([]*engineRun, len(f.members))
	for i, m := range f.members {
		engines[i] = &m.engineRun
	}
	return f.start(ctx, engines, f.c.conc, engineHooks{
		newClient: func(i int) (*client.Client, error) {
			m := f.members[i]
			return client.New(client.Config{
				URL: f.e.urls[m.home], Room: m.room, Name: "m" + strconv.Itoa(i), Key: client.NewKey(), Token: f.e.token,
				Client: "heartline-load-failover/1", NetDialContext: f.dial(m),
			})
		},
		read:   func(i int) { f.read(f.members[i]) },
		failed: func(err error) { f.count(f.joinFails, "config: "+err.Error()) },
		stopped: func(code int) {
			f.mu.Lock()
			f.stopped[code]++
			f.mu.Unlock()
		},
	})
}

// read drains one engine's events until the channel closes.
func (f *failoverFleet) read(m *foMember) {
	phase := client.Offline
	var myID string
	for ev := range m.cl.Events() {
		switch ev := ev.(type) {
		case client.StateChanged:
			s := ev.State
			if s.Phase == client.Reconnecting && phase == client.Connecting && m.welcomes.Load() == 0 {
				f.count(f.joinFails, s.LastError)
			}
			if s.Phase == client.Stopped {
				m.stopCode.Store(int64(s.CloseCode))
			}
			phase = s.Phase
			m.connected.Store(phase == client.Connected)
		case client.Welcomed:
			w := ev.Welcome
			if m.seqs == nil {
				m.seqs = newSeqSet(w.Seq + 1)
				m.contig.Store(w.Seq)
				myID = w.You.ID
				m.id.Store(&myID)
			} else if !w.Recovered {
				m.notRecovered++
				f.notRecovered.Add(1)
			}
			m.onRelay.Store(m.relay.Load())
			m.sinceWelcome, m.lastHistory = 0, len(w.History)
			m.welcomeAt.Store(f.e.now())
			if m.welcomes.Add(1) == 1 {
				f.joined.Add(1)
				m.release()
			}
		case client.MessageReceived:
			if m.seqs == nil {
				continue
			}
			f.received(m, ev.Msg.From.ID, ev.Msg.ID, ev.Msg.Seq)
			if ev.Msg.Seq >= m.seqs.base && ev.Msg.Seq < m.seqs.highest && !m.seqs.has(ev.Msg.Seq) {
				// Out of order: where, and whether it came with a resume.
				where := "live"
				if m.welcomes.Load() > 1 && m.sinceWelcome < m.lastHistory {
					where = "in a resume's history"
				}
				f.count(f.outOfOrder, fmt.Sprintf("%s on %s", where, f.e.urls[max(0, m.onRelay.Load())]))
			}
			m.sinceWelcome++
			m.seqs.add(ev.Msg.Seq)
			m.contig.Store(m.seqs.contig)
		case client.HistoryGap:
			m.historyGaps++
			f.historyGaps.Add(1)
		case client.OutboxChanged:
			f.outboxChanged(m, myID, ev.Item)
		case client.MemberJoined:
			f.presence(f.joinedAgain, ev.Member.ID)
		case client.MemberLeft:
			f.presence(f.left, ev.Member.ID)
			if f.counting.Load() {
				f.count(f.leftReasons, ev.Reason)
			}
		case client.MemberChanged:
			if ev.Member.State == protocol.StateAway {
				f.presence(f.away, ev.Member.ID)
			}
		case client.RelayError:
			f.count(f.relayErrors, ev.Error.Code)
		}
	}
}

// received notes a message's client id: the same one under another seq is
// a duplicate a person would see.
func (f *failoverFleet) received(m *foMember, from, msgID string, seq uint64) {
	key := from + "/" + msgID
	if prev, ok := m.byMsg[key]; ok {
		if prev != seq {
			m.duplicated++
		}
		return
	}
	m.byMsg[key] = seq
}

func (f *failoverFleet) presence(counts map[string]int64, id string) {
	if !f.counting.Load() {
		return
	}
	f.mu.Lock()
	counts[id]++
	f.mu.Unlock()
}

func (f *failoverFleet) outboxChanged(m *foMember, myID string, it client.OutboxItem) {
	if m.outbox == nil {
		return
	}
	prev := m.outbox[it.ID]
	switch it.Status {
	case client.Sent:
		if prev == client.Sent {
			m.ackedTwice++
			return
		}
		m.acked++
		m.answered.Add(1)
		if m.seqs != nil {
			f.received(m, myID, it.ID, it.Seq)
			m.seqs.addAck(it.Seq)
			m.contig.Store(m.seqs.contig)
		}
		f.mu.Lock()
		f.roomAcked[m.room] = append(f.roomAcked[m.room], it.Seq)
		f.mu.Unlock()
		raise(f.roomMax[m.room], it.Seq)
	case client.Failed:
		m.failed++
		m.answered.Add(1)
		f.count(f.failReasons, it.Reason)
	}
	m.outbox[it.ID] = it.Status
}

func (f *failoverFleet) chat(ctx context.Context) {
	text := strings.Repeat("f", 60)
	paced(ctx, len(f.senders), f.rate, func(i int) {
		// Typed whether or not the engine is connected: the outbox keeps it.
		if _, err := f.senders[i].cl.Send(text); err != nil {
			f.count(f.failReasons, "send: "+err.Error())
			return
		}
		f.senders[i].typed.Add(1)
	})
}

// perRelay counts the connected engines by the relay of their latest welcome.
func (f *failoverFleet) perRelay() map[string]int {
	out := map[string]int{}
	for _, m := range f.members {
		if r := m.onRelay.Load(); r >= 0 && m.connected.Load() {
			out[f.e.urls[r]]++
		} else {
			out["not connected"]++
		}
	}
	return out
}

// outage takes relay idx down with down() and waits until every engine
// that was welcomed on it is welcomed again (on any relay) and connected.
func (f *failoverFleet) outage(ctx context.Context, idx, pid int, signal string, timeout time.Duration, down func() error) outage {
	o := outage{Relay: f.e.urls[idx], PID: pid, Signal: signal, BackOn: map[string]int{}, LoadAvg: loadAvg()}
	var victims []*foMember
	var w0 []int64
	for _, m := range f.members {
		if m.onRelay.Load() == int32(idx) {
			victims = append(victims, m)
			w0 = append(w0, m.welcomes.Load())
		}
	}
	o.Clients = len(victims)
	f.c.progress("%s: %s to relay %s (pid %d, %d clients)", f.mode, signal, o.Relay, pid, o.Clients)
	at := f.e.now()
	nr0, hg0 := f.notRecovered.Load(), f.historyGaps.Load()
	err := down()
	if err != nil {
		f.c.progress("%s: %v", f.mode, err)
	}
	deadline := time.Now().Add(timeout)
	for {
		o.Back = 0
		for i, m := range victims {
			if m.welcomes.Load() > w0[i] && m.connected.Load() {
				o.Back++
			}
		}
		if o.Back == len(victims) {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			o.TimedOut = true
			break
		}
		sleepCtx(ctx, 20*time.Millisecond)
	}
	o.NotRecovered, o.HistoryGaps = f.notRecovered.Load()-nr0, f.historyGaps.Load()-hg0
	var h hist
	for i, m := range victims {
		if m.welcomes.Load() > w0[i] {
			// The latest welcome: a client that was dropped twice counts
			// until it was back for good.
			h.add(uint64(max(0, m.welcomeAt.Load()-at) / 1000))
			if r := m.onRelay.Load(); r >= 0 {
				o.BackOn[f.e.urls[r]]++
			}
		}
	}
	s := h.summary()
	o.BackMax, o.BackP99, o.BackP50 = s.Max/1000, s.P99/1000, s.P50/1000
	f.c.progress("%s: %d of %d clients of %s back, the last %.2fs after the %s", f.mode, o.Back, o.Clients, o.Relay, o.BackMax, signal)
	return o
}

// settled: every message typed is answered and every member holds its
// room's highest acked seq.
func (f *failoverFleet) settled() bool {
	for _, m := range f.senders {
		if m.typed.Load() != m.answered.Load() {
			return false
		}
	}
	for _, m := range f.members {
		if m.stopCode.Load() == 0 && m.contig.Load() < f.roomMax[m.room].Load() {
			return false
		}
	}
	return true
}

// finish says bye from every engine, waits for them, and adds up what they
// saw.
func (f *failoverFleet) finish(res *failoverResult) {
	for _, m := range f.members {
		if m.cl != nil {
			m.cl.Leave()
		}
	}
	ran := make(chan struct{})
	go func() { f.runs.Wait(); close(ran) }()
	select {
	case <-ran:
	case <-time.After(20 * time.Second):
		f.runCancel()
		<-ran
	}
	if f.runCancel != nil {
		f.runCancel()
	}
	f.readers.Wait()

	f.mu.Lock()
	defer f.mu.Unlock()
	moved := map[string]bool{} // members who went through an outage and came back
	known := map[string]bool{} // every member welcomed at least once
	for _, m := range f.members {
		if p := m.id.Load(); p != nil {
			known[*p] = true
			if m.welcomes.Load() > 1 {
				moved[*p] = true
			}
		}
	}
	for id, k := range f.left {
		switch {
		case moved[id]:
			res.LeftCameBack += k
		case known[id]:
			res.LeftOthers += k
		default:
			res.LeftNeverWelcomed += k
		}
	}
	for id, k := range f.joinedAgain {
		switch {
		case moved[id]:
			res.JoinedCameBack += k
		case known[id]:
			res.JoinedOthers += k
		default:
			res.JoinedNeverWelcomed += k
		}
	}
	for _, k := range f.away {
		res.AwayEvents += k
	}
	res.AwayMembers = len(f.away)
	for _, s := range f.roomAcked {
		slices.Sort(s)
	}
	for _, m := range f.members {
		res.Typed += m.typed.Load()
		res.Acked += m.acked
		res.AckedTwice += m.ackedTwice
		res.Failed += m.failed
		for _, s := range m.outbox {
			if s == client.Pending {
				res.Unacked++
			}
		}
		res.HistoryGaps += m.historyGaps
		res.NotRecovered += m.notRecovered
		res.Duplicated += m.duplicated
		if m.seqs == nil {
			continue
		}
		res.OutOfOrder += m.seqs.late
		res.LateAcks += m.seqs.lateAck
		var lost uint64
		for _, seq := range f.roomAcked[m.room] {
			if seq >= m.seqs.base && !m.seqs.has(seq) {
				lost++
			}
		}
		switch {
		case lost == 0:
		case m.stopCode.Load() != 0:
			// The relay closed it for good (4002 and the like): what it
			// missed is that close's doing, counted apart.
			res.LostAtStopped += lost
		default:
			res.Lost += lost
			res.LostReceivers++
		}
	}
	res.JoinFailures, res.RelayErrors, res.FailReasons, res.Stopped = f.joinFails, f.relayErrors, f.failReasons, f.stopped
	res.LeftReasons, res.OutOfOrderWhere = f.leftReasons, f.outOfOrder
}

func (f *failoverFleet) print(res *failoverResult) {
	fmt.Printf("%s: %d shared/client engines in %d rooms over %d relays (%d senders at %g msg/s with an outbox); joined %d in %.1fs\n",
		res.Mode, res.Clients, res.Rooms, len(res.URLs), res.Senders, res.RatePerSender, res.Joined, res.JoinSeconds)
	fmt.Printf("  clients per relay before: %v; at the end: %v\n", res.ClientsPerRelay, res.ClientsPerRelayEnd)
	for _, o := range res.Outages {
		extra := ""
		if o.Signal == "SIGTERM" {
			extra = fmt.Sprintf(" (stop took %.2fs, start to listening %.2fs)", o.StopSeconds, o.StartSeconds)
		}
		fmt.Printf("  %s to %s%s: %d/%d of its clients back, p50 %.2fs, p99 %.2fs, max %.2fs after the signal, on %v%s; meanwhile %d welcomes with recovered=false, %d history gaps; load average %s\n",
			o.Signal, o.Relay, extra, o.Back, o.Clients, o.BackP50, o.BackP99, o.BackMax, o.BackOn,
			map[bool]string{true: " - TIMED OUT", false: ""}[o.TimedOut], o.NotRecovered, o.HistoryGaps, o.LoadAvg)
	}
	fmt.Printf("  chat: typed %d, acked %d, failed %d %v, still pending %d, acked twice %d; relay errors %v; settled %v\n",
		res.Typed, res.Acked, res.Failed, res.FailReasons, res.Unacked, res.AckedTwice, res.RelayErrors, res.Settled)
	fmt.Printf("  delivery: lost %d (at %d receivers; %d more at engines the relay stopped for good), duplicated %d, out of order %d (late own acks %d); history gaps %d, welcomes with recovered=false %d\n",
		res.Lost, res.LostReceivers, res.LostAtStopped, res.Duplicated, res.OutOfOrder, res.LateAcks, res.HistoryGaps, res.NotRecovered)
	fmt.Printf("  presence after the first outage, about members who came back: left %d, joined %d; about the others: left %d, joined %d; about engines never welcomed: left %d, joined %d; away seen %d times (%d members)\n",
		res.LeftCameBack, res.JoinedCameBack, res.LeftOthers, res.JoinedOthers, res.LeftNeverWelcomed, res.JoinedNeverWelcomed, res.AwayEvents, res.AwayMembers)
	if len(res.OutOfOrderWhere) > 0 {
		fmt.Printf("  out-of-order deliveries: %v\n", res.OutOfOrderWhere)
	}
	if len(res.LeftReasons) > 0 {
		fmt.Printf("  left events by reason: %v\n", res.LeftReasons)
	}
	if res.Joined < res.Clients {
		fmt.Printf("  NOT JOINED: %d engines (failed attempts %v)\n", res.Clients-res.Joined, res.JoinFailures)
	}
	fmt.Printf("  stopped engines (by close code) %v; load generator %.0f%% of a core, surviving relays %.0f%%\n", res.Stopped, res.LoadGenCPU, res.RelaysCPU)
}
