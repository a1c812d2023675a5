package server

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heartline/heartline/relay/store"
	"github.com/heartline/heartline/shared/protocol"
)

// Rule 3: a duplicate id from the same member gets the same ack and is not
// broadcast again, while in flight, after commit, and across a restart.
func TestDuplicateIDsAcrossRestart(t *testing.T) {
	cfg := fastConfig(t)
	cfg.HeartbeatInterval, cfg.HeartbeatTimeout = time.Second, 3*time.Second
	cfg.Grace = 5 * time.Second
	tr := startRelay(t, cfg)
	key := newKey()
	a, _ := tr.join("d", "Alice", key)
	b, _ := tr.join("d", "Bob", newKey())
	a.expectNext(protocol.TypeJoined)

	// Send the same id twice back to back: the second lands while the first
	// is (very likely) still in the commit queue.
	a.msg("dup-1", "once")
	a.msg("dup-1", "once")
	ack1 := a.expectNext(protocol.TypeAck).(*protocol.Ack)
	ack2 := a.expectNext(protocol.TypeAck).(*protocol.Ack)
	if *ack1 != *ack2 {
		t.Fatalf("acks differ: %+v vs %+v", ack1, ack2)
	}
	// After commit: same ack again.
	a.msg("dup-1", "once")
	if ack3 := a.expectNext(protocol.TypeAck).(*protocol.Ack); *ack3 != *ack1 {
		t.Fatalf("ack after commit %+v, want %+v", ack3, ack1)
	}
	if m := b.expectNext(protocol.TypeMsg).(*protocol.Message); m.Seq != ack1.Seq {
		t.Fatalf("bob got %+v", m)
	}
	b.quiet(100 * time.Millisecond) // exactly one broadcast

	// Restart the relay on the same data dir.
	a.ws.Close()
	b.ws.Close()
	tr.stop()
	tr2 := startRelay(t, cfg)
	a2, w := tr2.join("d", "Alice", key)
	if w.Seq != ack1.Seq || len(w.History) != 1 || w.History[0].ID != "dup-1" {
		t.Fatalf("welcome after restart: seq %d history %+v", w.Seq, w.History)
	}
	a2.msg("dup-1", "once")
	if ack4 := a2.expectNext(protocol.TypeAck).(*protocol.Ack); *ack4 != *ack1 {
		t.Fatalf("ack after restart %+v, want %+v", ack4, ack1)
	}
	a2.msg("new-1", "next")
	if ack := a2.expectNext(protocol.TypeAck).(*protocol.Ack); ack.Seq != ack1.Seq+1 {
		t.Fatalf("seq after restart %d, want %d", ack.Seq, ack1.Seq+1)
	}
}

// Members survive a restart: they are away, a returning key keeps its id
// (presence, no joined), the others leave with reason timeout after grace.
func TestMembersSurviveRestart(t *testing.T) {
	cfg := fastConfig(t)
	cfg.HeartbeatInterval, cfg.HeartbeatTimeout = time.Second, 3*time.Second
	cfg.Grace = 500 * time.Millisecond
	tr := startRelay(t, cfg)
	ka, kb := newKey(), newKey()
	_, wa := tr.join("s", "Alice", ka)
	_, wb := tr.join("s", "Bob", kb)
	tr.stop()

	tr2 := startRelay(t, cfg)
	a, w := tr2.join("s", "Alice", ka)
	if w.You.ID != wa.You.ID {
		t.Fatalf("id after restart %s, want %s", w.You.ID, wa.You.ID)
	}
	states := map[string]string{}
	for _, m := range w.Members {
		states[m.ID] = m.State
	}
	if states[wb.You.ID] != protocol.StateAway || states[wa.You.ID] != protocol.StateOnline {
		t.Fatalf("members after restart: %+v", w.Members)
	}
	// Bob's name stays taken by his key while he is away.
	c := tr2.dial(nil)
	c.hello("s", "bob", newKey())
	c.expectClose(protocol.CloseNameTaken)
	stop := a.keepAlive(50 * time.Millisecond)
	defer stop()
	l := a.expectNext(protocol.TypeLeft).(*protocol.Left)
	if l.Member.ID != wb.You.ID || l.Reason != protocol.ReasonTimeout {
		t.Fatalf("left %+v", l)
	}
	// Once gone, Bob's key makes a new member.
	_, w2 := tr2.join("s", "Bob", kb)
	if w2.You.ID == wb.You.ID {
		t.Fatal("member id reused")
	}
}

// Rule 6: resume with the epoch gets exactly what was missed with
// recovered:true; an unknown epoch or a gap gets the latest page and
// recovered:false; a fresh join gets the latest page.
func TestResumeAndHistoryPages(t *testing.T) {
	cfg := fastConfig(t)
	cfg.HeartbeatInterval, cfg.HeartbeatTimeout = time.Second, 3*time.Second
	cfg.HistoryPage = 5
	cfg.History = 20 // retention
	cfg.Rate, cfg.Burst = 1000, 1000
	tr := startRelay(t, cfg)
	a, w := tr.join("h", "Alice", newKey())
	epoch := w.Epoch
	for i := 1; i <= 12; i++ {
		a.msg(fmt.Sprintf("m%d", i), fmt.Sprintf("text %d", i))
		a.expectNext(protocol.TypeAck)
	}
	check := func(w *protocol.Welcome, recovered bool, first, last uint64) {
		t.Helper()
		if w.Recovered != recovered || w.Seq != 12 {
			t.Fatalf("recovered %v seq %d, want %v 12", w.Recovered, w.Seq, recovered)
		}
		if len(w.History) != int(last-first+1) || w.History[0].Seq != first || w.History[len(w.History)-1].Seq != last {
			t.Fatalf("history %d..%d (%d), want %d..%d", w.History[0].Seq, w.History[len(w.History)-1].Seq, len(w.History), first, last)
		}
		for i, m := range w.History {
			if m.Seq != first+uint64(i) || m.Text != fmt.Sprintf("text %d", m.Seq) || m.From.Name != "Alice" {
				t.Fatalf("history[%d] = %+v", i, m)
			}
		}
	}
	_, fresh := tr.join("h", "Bob", newKey())
	check(fresh, false, 8, 12)
	_, resumed := tr.join("h", "Carol", newKey(), withResume(&protocol.Resume{Epoch: epoch, LastSeq: 3}))
	check(resumed, true, 4, 12)
	_, other := tr.join("h", "Dave", newKey(), withResume(&protocol.Resume{Epoch: "another-epoch", LastSeq: 3}))
	check(other, false, 8, 12)
	_, ahead := tr.join("h", "Erin", newKey(), withResume(&protocol.Resume{Epoch: epoch, LastSeq: 99}))
	check(ahead, false, 8, 12)
	_, upToDate := tr.join("h", "Fay", newKey(), withResume(&protocol.Resume{Epoch: epoch, LastSeq: 12}))
	if !upToDate.Recovered || len(upToDate.History) != 0 {
		t.Fatalf("up-to-date resume: %v %d", upToDate.Recovered, len(upToDate.History))
	}

	// Retention 20: after 30 messages, seq 1..10 are gone; a resume from 3
	// must not be presented as complete.
	for i := 13; i <= 30; i++ {
		a.msg(fmt.Sprintf("m%d", i), fmt.Sprintf("text %d", i))
		a.expect(protocol.TypeAck)
	}
	_, gap := tr.join("h", "Gus", newKey(), withResume(&protocol.Resume{Epoch: epoch, LastSeq: 3}))
	if gap.Recovered || gap.Seq != 30 || len(gap.History) != 5 || gap.History[0].Seq != 26 {
		t.Fatalf("resume over a retention gap: recovered %v seq %d history %d from %d", gap.Recovered, gap.Seq, len(gap.History), gap.History[0].Seq)
	}
	_, ok := tr.join("h", "Hal", newKey(), withResume(&protocol.Resume{Epoch: epoch, LastSeq: 15}))
	if !ok.Recovered || len(ok.History) != 15 || ok.History[0].Seq != 16 {
		t.Fatalf("resume within retention: recovered %v, %d messages", ok.Recovered, len(ok.History))
	}
}

// failingStore fails Append while fail is set, like a full or broken disk.
type failingStore struct {
	*store.Store
	fail atomic.Bool
}

var errDiskFull = errors.New("disk full (test)")

// pairOverStore starts a relay on a real store wrapped by wrap, with Alice
// and Bob in room (Alice has seen Bob join). tweaks adjust the relay's config.
func pairOverStore(t *testing.T, room string, wrap func(*store.Store) Store, tweaks ...func(*Config)) (tr *testRelay, a, b *tclient) {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() }) // after the relay's shutdown (cleanups run last-in first-out)
	cfg := fastConfig(t)
	cfg.HeartbeatInterval, cfg.HeartbeatTimeout = time.Second, 3*time.Second
	cfg.Store = wrap(st)
	for _, tweak := range tweaks {
		tweak(&cfg)
	}
	tr = startRelay(t, cfg)
	a, _ = tr.join(room, "Alice", newKey())
	b, _ = tr.join(room, "Bob", newKey())
	a.expectNext(protocol.TypeJoined)
	return tr, a, b
}

func (f *failingStore) TryAppend(room string, rec store.Record, done func(error)) bool {
	if f.fail.Load() {
		go done(errDiskFull) // the store reports from its own goroutine
		return true
	}
	return f.Store.TryAppend(room, rec, done)
}

// A failed write: error internal to the sender, no ack, no broadcast, no
// seq taken; the relay keeps serving.
func TestFailedWriteGetsInternalError(t *testing.T) {
	var fs *failingStore
	_, a, b := pairOverStore(t, "f", func(st *store.Store) Store {
		fs = &failingStore{Store: st}
		return fs
	})
	a.msg("ok-1", "stored")
	if ack := a.expectNext(protocol.TypeAck).(*protocol.Ack); ack.Seq != 1 {
		t.Fatalf("ack %+v", ack)
	}
	b.expectNext(protocol.TypeMsg)

	fs.fail.Store(true)
	a.msg("lost-1", "not stored")
	if e := a.expectNext(protocol.TypeError).(*protocol.Error); e.Code != protocol.ErrInternal || e.ID != "lost-1" {
		t.Fatalf("error %+v", e)
	}
	b.quiet(100 * time.Millisecond)

	fs.fail.Store(false)
	a.msg("lost-1", "stored now")
	if ack := a.expectNext(protocol.TypeAck).(*protocol.Ack); ack.Seq != 2 {
		t.Fatalf("after the failure the next seq is %d, want 2", ack.Seq)
	}
	if m := b.expectNext(protocol.TypeMsg).(*protocol.Message); m.Seq != 2 || m.Text != "stored now" {
		t.Fatalf("bob got %+v", m)
	}
}

// Messages from many members into one room get unique consecutive seqs, each
// sender sees its acks in order and every member sees every message in seq
// order (the room owner assigns seqs; the store commits in order).
func TestConcurrentSendersGetOrderedSeqs(t *testing.T) {
	cfg := fastConfig(t)
	cfg.HeartbeatInterval, cfg.HeartbeatTimeout = time.Second, 3*time.Second
	cfg.Rate, cfg.Burst = 10000, 10000
	tr := startRelay(t, cfg)
	const senders, each = 5, 40
	clients := make([]*tclient, senders)
	for i := range clients {
		clients[i], _ = tr.join("c", fmt.Sprintf("S%d", i), newKey())
	}
	for i, c := range clients {
		for range senders - 1 - i {
			c.expectNext(protocol.TypeJoined)
		}
	}
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range each {
				c.msg(fmt.Sprintf("%d-%d", i, k), "x")
			}
		}()
	}
	wg.Wait()
	for i, c := range clients {
		var last uint64
		acks, msgs := 0, 0
		for acks+msgs < senders*each {
			switch f := c.expect2(protocol.TypeAck, protocol.TypeMsg).(type) {
			case *protocol.Ack:
				acks++
				if f.Seq <= last {
					t.Fatalf("client %d: seq %d after %d", i, f.Seq, last)
				}
				last = f.Seq
			case *protocol.Message:
				msgs++
				if f.Seq <= last {
					t.Fatalf("client %d: seq %d after %d", i, f.Seq, last)
				}
				last = f.Seq
			}
		}
		if acks != each || last != senders*each {
			t.Fatalf("client %d: %d acks, last seq %d", i, acks, last)
		}
	}
}

// expect2 returns the next frame of either type.
func (c *tclient) expect2(a, b string) protocol.Frame {
	c.t.Helper()
	for {
		f, err := c.next(3 * time.Second)
		if err != nil {
			c.t.Fatalf("%s: waiting for %s/%s: %v", c.name, a, b, err)
		}
		if f.FrameType() == a || f.FrameType() == b {
			return f
		}
		if e, ok := f.(*protocol.Error); ok {
			c.t.Fatalf("%s: error %+v", c.name, e)
		}
	}
}

// gatedStore holds every Append's completion until the gate opens, so a test
// can see what happens while a message is in flight.
type gatedStore struct {
	*store.Store
	gate chan struct{}
}

func (g *gatedStore) TryAppend(room string, rec store.Record, done func(error)) bool {
	return g.Store.TryAppend(room, rec, func(err error) {
		go func() { <-g.gate; done(err) }()
	})
}

// busyStore refuses appends while busy is set, like a store whose commit
// queue is full because the disk is behind.
type busyStore struct {
	*store.Store
	busy atomic.Bool
}

func (b *busyStore) TryAppend(room string, rec store.Record, done func(error)) bool {
	if b.busy.Load() {
		return false
	}
	return b.Store.TryAppend(room, rec, done)
}

// A store that cannot take a message now makes the relay refuse it with
// rate_limited instead of holding the reader: no seq is taken, nothing is
// broadcast, no rate budget is spent, the connection stays, and the resend
// is accepted.
func TestBusyStoreRefusesInsteadOfBlocking(t *testing.T) {
	var bs *busyStore
	tr, a, b := pairOverStore(t, "b", func(st *store.Store) Store {
		bs = &busyStore{Store: st}
		return bs
	}, func(c *Config) {
		// One message of budget that never refills during the test: the
		// resend is accepted only if the refusal gave the token back.
		c.Rate, c.Burst = 0.001, 1
	})

	bs.busy.Store(true)
	a.msg("m1", "while the disk is behind")
	e := a.expectError(protocol.ErrRateLimited)
	if e.ID != "m1" || e.RetryAfterMS <= 0 {
		t.Fatalf("refusal %+v: want the id and a retry_after_ms", e)
	}
	a.send(&protocol.Ping{T: 7}) // the connection is fine
	a.expectNext(protocol.TypePong)
	b.quiet(50 * time.Millisecond)

	bs.busy.Store(false)
	time.Sleep(time.Duration(e.RetryAfterMS) * time.Millisecond)
	a.msg("m1", "while the disk is behind")
	if ack := a.expectNext(protocol.TypeAck).(*protocol.Ack); ack.Seq != 1 {
		t.Fatalf("resend got seq %d; the refused attempt must not take a seq", ack.Seq)
	}
	if m := b.expectNext(protocol.TypeMsg).(*protocol.Message); m.Seq != 1 || m.ID != "m1" {
		t.Fatalf("bob got %+v", m)
	}
	_, body := tr.get("/metrics", nil)
	if !strings.Contains(string(body), "heartline_store_busy_total 1") {
		t.Error("the refusal is not counted in heartline_store_busy_total")
	}
}

// The ack waits for the commit; a duplicate sent while the original is in
// flight gets the same ack, and the message is broadcast once.
func TestAckWaitsForCommitAndInFlightDuplicate(t *testing.T) {
	var gs *gatedStore
	_, a, b := pairOverStore(t, "g", func(st *store.Store) Store {
		gs = &gatedStore{Store: st, gate: make(chan struct{})}
		return gs
	})

	a.msg("m1", "held")
	a.msg("m1", "held")
	// The reader does not wait for the disk: a ping is answered while the
	// message is still in flight.
	a.send(&protocol.Ping{T: 5})
	if p := a.expectNext(protocol.TypePong).(*protocol.Pong); p.T != 5 {
		t.Fatalf("pong %+v", p)
	}
	a.quiet(150 * time.Millisecond) // not durable yet: no ack
	b.quiet(10 * time.Millisecond)  // and nobody sees it
	close(gs.gate)
	ack1 := a.expectNext(protocol.TypeAck).(*protocol.Ack)
	ack2 := a.expectNext(protocol.TypeAck).(*protocol.Ack)
	if *ack1 != *ack2 || ack1.Seq != 1 {
		t.Fatalf("acks %+v %+v", ack1, ack2)
	}
	b.expectNext(protocol.TypeMsg)
	b.quiet(100 * time.Millisecond)
}
