package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// leanFleet is a storm with the tool's own clients: each member runs its own
// loop (join, read until the link ends, reconnect with full-jitter backoff
// and resume), and the senders keep an outbox they resend after a resume.
type leanFleet struct {
	e       *env
	c       *common
	st      *stormSettings
	members []*member
	boxes   []*outbox
	acked   atomic.Int64
	sent    atomic.Int64
	resent  atomic.Int64

	stopping  atomic.Bool
	loops     sync.WaitGroup
	joined    atomic.Int64
	welcomes0 []int64

	hbStop context.CancelFunc
	hb     sync.WaitGroup

	statMu     sync.Mutex // guards the three below
	resumeLat  hist
	resumeErr  map[string]int
	closeCodes map[int]int
}

// outMsg is a sender's message awaiting its ack, resent after a resume with
// the same id (the relay must answer a duplicate with the same ack).
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

func newLeanFleet(e *env, c *common, st *stormSettings) *leanFleet {
	f := &leanFleet{e: e, c: c, st: st, members: newMembers(e, st.n, st.rooms, "m", 0),
		boxes: make([]*outbox, st.senders), resumeErr: map[string]int{}, closeCodes: map[int]int{}}
	for _, m := range f.members {
		m.track = true
	}
	for i := range f.boxes {
		box := &outbox{pending: map[uint64]*outMsg{}, seqOf: map[uint64]uint64{}}
		f.boxes[i] = box
		roomAck := st.roomMax[f.members[i].room]
		f.members[i].onAck = func(_ *member, h *frameHead, _ int64) {
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
			f.acked.Add(1)
			raise(roomAck, h.seq)
		}
	}
	return f
}

func (f *leanFleet) join(ctx context.Context) int {
	e, st := f.e, f.st
	hbCtx, hbStop := context.WithCancel(ctx)
	f.hbStop = hbStop
	f.hb.Go(func() { heartbeat(hbCtx, e, f.members) })
	firstJoin := make(chan struct{}, f.c.conc)
	joinStart := time.Now()
	for i, m := range f.members {
		f.loops.Go(func() {
			firstJoin <- struct{}{}
			err := e.join(ctx, m, false)
			<-firstJoin
			if err != nil {
				return
			}
			f.joined.Add(1)
			f.memberLoop(ctx, i, m)
		})
	}
	for f.joined.Load() < int64(st.n) && time.Since(joinStart) < 5*time.Minute && ctx.Err() == nil {
		fails := 0
		for _, v := range e.failures() {
			fails += v
		}
		if int(f.joined.Load())+fails >= st.n {
			break
		}
		sleepCtx(ctx, 100*time.Millisecond)
	}
	return int(f.joined.Load())
}

// memberLoop reads until the link ends, then reconnects and resumes, until
// the storm stops.
func (f *leanFleet) memberLoop(ctx context.Context, i int, m *member) {
	e, st := f.e, f.st
	for attempt := 0; ; {
		if i < len(f.boxes) {
			resend(m, f.boxes[i], &f.resent)
		}
		m.readLoop(e)
		if f.stopping.Load() || ctx.Err() != nil {
			return
		}
		st.markStorm(e.now())
		f.statMu.Lock()
		f.closeCodes[int(m.rawClose.Load())]++
		f.statMu.Unlock()
		for {
			if attempt == 0 {
				sleepCtx(ctx, time.Duration(rand.Int64N(int64(250*time.Millisecond))))
			} else {
				capd := min(5*time.Second, 250*time.Millisecond<<min(attempt, 5))
				sleepCtx(ctx, time.Duration(rand.Int64N(int64(capd))))
			}
			attempt++
			if f.stopping.Load() || ctx.Err() != nil {
				return
			}
			if err := e.join(ctx, m, true); err != nil {
				f.statMu.Lock()
				kind := dialErrKind(err)
				if len(f.resumeErr) < 20 || f.resumeErr[kind] > 0 {
					f.resumeErr[kind]++
				}
				f.statMu.Unlock()
				continue
			}
			break
		}
		attempt = 0
		m.closeCode.Store(0)
		if f.stopping.Load() {
			m.leaving.Store(true)
			m.wmu.Lock()
			m.ws.Close()
			m.ws = nil
			m.wmu.Unlock()
			return
		}
		f.statMu.Lock()
		f.resumeLat.add(uint64(max(0, e.now()-st.at.Load()) / 1000))
		f.statMu.Unlock()
	}
}

func (f *leanFleet) chat(ctx context.Context) {
	paceOutbox(ctx, f.e, f.members[:f.st.senders], f.boxes, f.st.rate, &f.sent)
}

func (f *leanFleet) arm() {
	f.welcomes0 = welcomeCounts(f.members, func(m *member) int64 { return m.welcomes.Load() })
}

func (f *leanFleet) back() (back, notRecovered int) {
	for i, m := range f.members {
		if m.welcomes.Load() > f.welcomes0[i] && m.closeCode.Load() == 0 {
			back++
			if !m.lastRecovered.Load() {
				notRecovered++
			}
		}
	}
	return back, notRecovered
}

func (f *leanFleet) settled() bool {
	for _, b := range f.boxes {
		b.mu.Lock()
		pending := len(b.pending)
		b.mu.Unlock()
		if pending > 0 {
			return false
		}
	}
	for _, m := range f.members {
		if m.closeCode.Load() == 0 && m.high.Load() < f.st.roomMax[m.room].Load() {
			return false
		}
	}
	return true
}

func (f *leanFleet) finish(res *stormResult) {
	f.hbStop()
	f.hb.Wait()
	f.stopping.Store(true)
	markEnd(f.members)
	leave(f.members, true, &f.loops, 3*time.Second)
	res.JoinFailures = f.e.failures()
	res.Sent, res.Resent, res.Acked = f.sent.Load(), f.resent.Load(), f.acked.Load()
	at := f.st.at.Load()
	for i, b := range f.boxes {
		res.Unacked += int64(len(b.pending))
		res.DupAccepts += b.dups
		for num, p := range b.pending {
			if len(res.UnackedDetail) < 20 {
				res.UnackedDetail = append(res.UnackedDetail, fmt.Sprintf(
					"sender %d msg %d: sent %.2fs after the restart began on link %d (now %d), resent %d times",
					i, num, float64(p.sent-at)/1e9, p.gen, f.members[i].welcomes.Load(), p.resent))
			}
		}
	}
	res.Loss = accountLoss(f.members, func(room string) uint64 { return f.st.roomMax[room].Load() })
	res.ErrorFrames = map[string]int{}
	for _, m := range f.members {
		for code, n := range m.errCodes {
			res.ErrorFrames[code] += n
		}
	}
	res.ResumeLatency = f.resumeLat.summary()
	res.ResumeFailures = f.resumeErr
	res.CloseCodes = f.closeCodes
}

func (f *leanFleet) report(res *stormResult) {
	fmt.Printf("  chat: sent %d (+%d resent from outboxes), acked %d, unacked %d, one id under two seqs %d; error frames %v\n",
		res.Sent, res.Resent, res.Acked, res.Unacked, res.DupAccepts, res.ErrorFrames)
	for _, d := range res.UnackedDetail {
		fmt.Printf("    unacked: %s\n", d)
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
func resend(m *member, box *outbox, resent *atomic.Int64) {
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
			resent.Add(1)
		}
	}
}

// paceOutbox is pace with an outbox: every message is kept until acked.
func paceOutbox(ctx context.Context, e *env, send []*member, boxes []*outbox, rate float64, sent *atomic.Int64) {
	text := strings.Repeat("s", 60)
	paced(ctx, len(send), rate, func(i int) {
		box := boxes[i]
		box.mu.Lock()
		var f []byte
		if send[i].connected() {
			box.n++
			now := e.now()
			f = msgFrame(nil, box.n, now, text)
			box.pending[box.n] = &outMsg{frame: f, sent: now, gen: send[i].welcomes.Load()}
		}
		box.mu.Unlock()
		if f != nil && send[i].write(f) == nil {
			sent.Add(1)
		}
	})
}
