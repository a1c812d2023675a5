package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heartline/heartline/shared/client"
)

// engineFleet is a storm whose members are shared/client engines, the code
// the apps run: their own backoff, resume, outbox and heartbeat. Each member
// is two goroutines of ours (Run, and a reader that drains Events: the
// engine never drops an event, so an unread channel would grow without
// bound) plus the engine's own.
type engineFleet struct {
	e       *env
	c       *common
	st      *stormSettings
	members []*engineMember

	engineStarts
	armed     atomic.Bool
	welcomes0 []int64

	mu          sync.Mutex // guards the maps below (written by the readers)
	joinFails   map[string]int
	resumeFails map[string]int
	drops       map[string]int
	closeCodes  map[int]int
	relayErrors map[string]int
	failReasons map[string]int
	sendErrors  map[string]int
	stopped     map[int]int
}

// engineMember is one engine. The atomics are written by its event reader
// and read by the storm driver; the rest belongs to the reader until the
// Events channel closes, then to finish.
type engineMember struct {
	room string
	engineRun

	recovered atomic.Bool // the latest welcome's flag
	connected atomic.Bool
	contig    atomic.Uint64 // every room seq up to this one was received
	stopCode  atomic.Int64  // the engine stopped for good with this close code
	typed     atomic.Int64  // sender: Send calls that queued a message (written by chat)
	answered  atomic.Int64  // sender: of those, acked or failed

	seqs          *seqSet // from the first welcome on
	historyGaps   int
	outbox        map[string]client.OutboxStatus // sender: the latest status of every id
	acked         int64
	ackedTwice    int64
	failed        int64
	queuedOffline int64
	attempt       int   // the latest Connecting state's attempt number
	attemptAt     int64 // and when it started (env.now())
	// The resume after the restart (env.now() values; 0: none).
	dropAt, resumedAt int64
	resumeAttempt     int   // the attempt that resumed
	resumeAttemptAt   int64 // and when it started
	resumeReadLag     int64 // the relay stamped that welcome -> this reader had it (ns)
	// Events read after the restart began: member changes (presence),
	// room messages, and all kinds.
	stormChanges, stormMsgs, stormEvents int64
}

func newEngineFleet(e *env, c *common, st *stormSettings) *engineFleet {
	f := &engineFleet{e: e, c: c, st: st, members: make([]*engineMember, st.n),
		joinFails: map[string]int{}, resumeFails: map[string]int{}, drops: map[string]int{}, closeCodes: map[int]int{},
		relayErrors: map[string]int{}, failReasons: map[string]int{}, sendErrors: map[string]int{}, stopped: map[int]int{}}
	for i := range f.members {
		f.members[i] = &engineMember{room: st.rooms[i%len(st.rooms)]}
		if i < st.senders {
			f.members[i].outbox = map[string]client.OutboxStatus{}
		}
	}
	return f
}

// count adds one to m[key], keeping the variety of keys bounded (error
// texts may carry addresses).
func (f *engineFleet) count(m map[string]int, key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(m) < 20 || m[key] > 0 {
		m[key]++
	} else {
		m["other"]++
	}
}

func (f *engineFleet) join(ctx context.Context) int {
	f.c.progress("storm: starting %d engines, at most %d joining at a time", len(f.members), f.c.conc)
	engines := make([]*engineRun, len(f.members))
	for i, m := range f.members {
		engines[i] = &m.engineRun
	}
	return f.start(ctx, engines, f.c.conc, engineHooks{
		newClient: func(i int) (*client.Client, error) {
			return client.New(client.Config{
				URL: f.e.url, Room: f.members[i].room, Name: fmt.Sprintf("m%d", i), Key: client.NewKey(), Token: f.e.token,
				Client: "heartline-load-engine/1",
				// Spread over source addresses: one address has ~28,000 ephemeral ports.
				NetDialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: f.e.srcs[i%len(f.e.srcs)]}}).DialContext,
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

// read drains one engine's events until the channel closes (after Run
// returned) and keeps the member's figures.
func (f *engineFleet) read(m *engineMember) {
	e := f.e
	phase := client.Offline
	var nextTry time.Time // when the pending attempt starts
	for ev := range m.cl.Events() {
		if f.armed.Load() {
			m.stormEvents++
			switch ev.(type) {
			case client.MemberChanged:
				m.stormChanges++
			case client.MessageReceived:
				m.stormMsgs++
			}
		}
		switch ev := ev.(type) {
		case client.StateChanged:
			s := ev.State
			switch s.Phase {
			case client.Reconnecting:
				if phase == client.Connecting { // an attempt ended without a welcome
					if m.welcomes.Load() == 0 {
						f.count(f.joinFails, s.LastError)
					} else {
						f.count(f.resumeFails, s.LastError)
					}
				}
				nextTry = s.NextTry
			case client.Connecting:
				m.attempt = s.Attempt
				m.attemptAt = e.now()
				if !nextTry.IsZero() {
					m.attemptAt = int64(nextTry.Sub(e.start)) // the engine's own time for it
				}
			case client.Stopped:
				m.stopCode.Store(int64(s.CloseCode))
			}
			phase = s.Phase
			m.connected.Store(phase == client.Connected)
		case client.Welcomed:
			w := ev.Welcome
			if m.seqs == nil { // the first join: what follows its seq is expected live
				m.seqs = newSeqSet(w.Seq + 1)
				m.contig.Store(w.Seq)
			} else if f.armed.Load() && m.resumedAt == 0 {
				m.resumedAt, m.resumeAttempt, m.resumeAttemptAt = e.now(), m.attempt, m.attemptAt
				m.resumeReadLag = int64(time.Since(time.UnixMilli(w.ServerTime))) // same machine, same clock
			}
			m.recovered.Store(w.Recovered)
			if m.welcomes.Add(1) == 1 {
				f.joined.Add(1)
				m.release()
			}
		case client.MessageReceived:
			if m.seqs != nil {
				m.seqs.add(ev.Msg.Seq)
				m.contig.Store(m.seqs.contig)
			}
		case client.HistoryGap:
			m.historyGaps++
		case client.OutboxChanged:
			f.outboxChanged(m, ev.Item, phase)
		case client.LinkDropped:
			d := ev.Drop
			if !d.Welcomed {
				continue // an attempt that failed: counted at its Reconnecting
			}
			at := int64(d.At.Sub(e.start))
			if f.armed.Load() {
				f.st.markStorm(at)
				if m.dropAt == 0 {
					m.dropAt = at
				}
			}
			f.mu.Lock()
			f.closeCodes[d.CloseCode]++
			f.mu.Unlock()
			f.count(f.drops, fmt.Sprintf("%d %s", d.CloseCode, d.Detected))
		case client.RelayError:
			f.count(f.relayErrors, ev.Error.Code)
		}
	}
}

// outboxChanged follows a sender's messages: each must end Sent exactly once.
func (f *engineFleet) outboxChanged(m *engineMember, it client.OutboxItem, phase client.Phase) {
	if m.outbox == nil {
		return
	}
	prev, known := m.outbox[it.ID]
	switch it.Status {
	case client.Pending:
		if !known && phase != client.Connected {
			m.queuedOffline++ // typed while the relay was away: the outbox must carry it
		}
	case client.Sent:
		if prev == client.Sent {
			m.ackedTwice++
			return
		}
		m.acked++
		m.answered.Add(1)
		raise(f.st.roomMax[m.room], it.Seq)
	case client.Failed:
		m.failed++
		m.answered.Add(1)
		f.count(f.failReasons, it.Reason)
	}
	m.outbox[it.ID] = it.Status
}

func (f *engineFleet) chat(ctx context.Context) {
	senders := f.members[:f.st.senders]
	text := strings.Repeat("s", 60)
	paced(ctx, len(senders), f.st.rate, func(i int) {
		// Typed whether or not the engine is connected: the outbox keeps it.
		if _, err := senders[i].cl.Send(text); err != nil {
			f.count(f.sendErrors, err.Error())
			return
		}
		senders[i].typed.Add(1)
	})
}

func (f *engineFleet) arm() {
	f.welcomes0 = welcomeCounts(f.members, func(m *engineMember) int64 { return m.welcomes.Load() })
	f.armed.Store(true)
}

func (f *engineFleet) back() (back, notRecovered int) {
	for i, m := range f.members {
		if m.welcomes.Load() > f.welcomes0[i] && m.connected.Load() {
			back++
			if !m.recovered.Load() {
				notRecovered++
			}
		}
	}
	return back, notRecovered
}

func (f *engineFleet) settled() bool {
	for _, m := range f.members[:f.st.senders] {
		if m.typed.Load() != m.answered.Load() {
			return false
		}
	}
	for _, m := range f.members {
		if m.stopCode.Load() == 0 && m.contig.Load() < f.st.roomMax[m.room].Load() {
			return false
		}
	}
	return true
}

// finish says bye from every engine, waits for Run and the readers to end,
// and adds up what the readers kept.
func (f *engineFleet) finish(res *stormResult) {
	endCode := make([]int, len(f.members))
	for i, m := range f.members {
		endCode[i] = int(m.stopCode.Load())
		if m.cl != nil {
			m.cl.Leave()
		}
	}
	ran := make(chan struct{})
	go func() { f.runs.Wait(); close(ran) }()
	select {
	case <-ran:
	case <-time.After(15 * time.Second): // a bye is answered within 2 s; this is a relay in trouble
		f.runCancel()
		<-ran
	}
	f.readers.Wait()
	f.runCancel()

	g := &engineFigures{Attempts: map[int]int{}}
	var resume, noticed, attemptStart, handshake, readLag hist
	at := f.st.at.Load()
	for i, m := range f.members {
		g.HistoryGaps += m.historyGaps
		g.QueuedOffline += m.queuedOffline
		g.Failed += m.failed
		g.StormEvents += m.stormEvents
		g.StormMemberChanges += m.stormChanges
		g.StormMessages += m.stormMsgs
		res.Sent += m.typed.Load()
		res.Acked += m.acked
		res.DupAccepts += m.ackedTwice
		for _, s := range m.outbox {
			if s == client.Pending {
				res.Unacked++
			}
		}
		if m.seqs != nil {
			res.Loss.add(m.seqs, f.st.roomMax[m.room].Load(), endCode[i])
		}
		if m.resumedAt > 0 && at > 0 {
			resume.add(uint64(max(0, m.resumedAt-at) / 1000))
			attemptStart.add(uint64(max(0, m.resumeAttemptAt-at) / 1000))
			handshake.add(uint64(max(0, m.resumedAt-m.resumeAttemptAt) / 1000))
			readLag.add(uint64(max(0, m.resumeReadLag) / 1000))
			g.Attempts[m.resumeAttempt]++
		}
		if m.dropAt > 0 && at > 0 {
			noticed.add(uint64(max(0, m.dropAt-at) / 1000))
		}
	}
	res.ResumeLatency = resume.summary()
	g.DropNoticed, g.AttemptStart, g.AttemptToWelcome, g.WelcomeReadLag = noticed.summary(), attemptStart.summary(), handshake.summary(), readLag.summary()
	f.mu.Lock()
	res.JoinFailures, res.ResumeFailures, res.CloseCodes, res.ErrorFrames = f.joinFails, f.resumeFails, f.closeCodes, f.relayErrors
	g.Drops, g.FailReasons, g.SendErrors, g.Stopped = f.drops, f.failReasons, f.sendErrors, f.stopped
	f.mu.Unlock()
	res.Engine = g
}

// engineFigures is what only engine members tell.
type engineFigures struct {
	HistoryGaps   int            `json:"history_gaps"`   // HistoryGap events: the engine admits missing messages
	QueuedOffline int64          `json:"queued_offline"` // Send while the sender's engine was not connected
	Failed        int64          `json:"failed"`         // outbox items that ended Failed: lost
	FailReasons   map[string]int `json:"fail_reasons,omitempty"`
	SendErrors    map[string]int `json:"send_errors,omitempty"` // Send refused to queue
	Drops         map[string]int `json:"link_drops"`            // LinkDropped after a welcome: "<close code> <how noticed>"
	Stopped       map[int]int    `json:"stopped,omitempty"`     // engines that stopped for good, by close code
	// Events the readers took after the restart began (until the end):
	// every resume costs the other members of its room a presence frame
	// each, which the engine decodes in full.
	StormEvents        int64 `json:"storm_events"`
	StormMemberChanges int64 `json:"storm_member_changes"`
	StormMessages      int64 `json:"storm_messages"`
	// Attempts: which reconnect attempt resumed (1: the first after the
	// drop); the engine waits a full-jitter backoff before each.
	Attempts map[int]int `json:"resume_attempt"`
	// From the restart's start: the engine noticed the drop, started the
	// attempt that resumed (after its backoff), and got that attempt's welcome.
	DropNoticed      latency `json:"drop_noticed"`
	AttemptStart     latency `json:"resume_attempt_start"`
	AttemptToWelcome latency `json:"resume_attempt_to_welcome"`
	// WelcomeReadLag: the relay built the resume's welcome (its
	// server_time, ms, stamped as the join is done) -> the event reader had
	// it: the relay's queue and write, then this process's read, decode and
	// event hand-off, all of which wait for a CPU on a busy machine.
	WelcomeReadLag latency `json:"welcome_read_lag"`
}

func (f *engineFleet) report(res *stormResult) {
	g := res.Engine
	fmt.Printf("  chat: typed %d with Client.Send (%d while the sender's engine was offline), acked %d, failed %d %v, still pending %d, acked twice %d; send errors %v, relay errors %v\n",
		res.Sent, g.QueuedOffline, res.Acked, g.Failed, g.FailReasons, res.Unacked, res.DupAccepts, g.SendErrors, res.ErrorFrames)
	fmt.Printf("  engine: history gaps %d; link drops %v; stopped %v; events read after the restart began %d (%d member changes, %d messages)\n",
		g.HistoryGaps, g.Drops, g.Stopped, g.StormEvents, g.StormMemberChanges, g.StormMessages)
	fmt.Printf("  engine resume: attempt that resumed %v; after the restart began: drop noticed p50 %.0f ms, p99 %.0f, max %.0f; that attempt started p50 %.0f ms, p99 %.0f, max %.0f\n",
		g.Attempts, g.DropNoticed.P50, g.DropNoticed.P99, g.DropNoticed.Max, g.AttemptStart.P50, g.AttemptStart.P99, g.AttemptStart.Max)
	fmt.Printf("  engine resume: attempt start -> welcome read p50 %.0f ms, p99 %.0f, max %.0f; of which relay built the welcome -> read p50 %.0f ms, p99 %.0f, max %.0f\n",
		g.AttemptToWelcome.P50, g.AttemptToWelcome.P99, g.AttemptToWelcome.Max, g.WelcomeReadLag.P50, g.WelcomeReadLag.P99, g.WelcomeReadLag.Max)
}
