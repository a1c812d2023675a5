package server

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heartline/heartline/shared/protocol"
)

// Several members sending at once make drains that carry many commits, which
// members get as one shared batch. Every member must still see the room in
// seq order with nothing missing: a watcher all the messages; a sender the
// others' messages with its own acks in their places, and never its own
// messages back.
func TestDrainBatchesKeepEveryMembersFramesInSeqOrder(t *testing.T) {
	cfg := fastConfig(t)
	cfg.HeartbeatInterval, cfg.HeartbeatTimeout = 10*time.Second, time.Minute
	cfg.Rate, cfg.Burst = 1e6, 1e6
	tr := startRelay(t, cfg)
	watcher, _ := tr.join("order", "Watcher", newKey())

	const senders, each = 3, 300
	clients := make([]*tclient, senders)
	ids := make([]string, senders)
	for i := range clients {
		var w *protocol.Welcome
		clients[i], w = tr.join("order", fmt.Sprintf("Sender %d", i), newKey())
		ids[i] = w.You.ID
	}
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() {
			for j := range each {
				data, err := protocol.Encode(&protocol.Send{ID: fmt.Sprintf("m%d", j), Text: fmt.Sprintf("line %d of sender %d", j, i)})
				if err == nil {
					err = c.ws.WriteMessage(websocket.TextMessage, data)
				}
				if err != nil {
					t.Errorf("sender %d: %v", i, err)
					return
				}
			}
		})
	}
	wg.Wait()

	// readRoom reads c's msg and ack frames until it has seen every seq of
	// the room, each exactly once and in order; it returns how many were acks.
	readRoom := func(c *tclient, self string) (acks int) {
		t.Helper()
		for want := uint64(1); want <= senders*each; want++ {
			var seq uint64
			for seq == 0 {
				f, err := c.next(10 * time.Second)
				if err != nil {
					t.Fatalf("%s: waiting for seq %d: %v", c.name, want, err)
				}
				switch f := f.(type) {
				case *protocol.Message:
					if f.From.ID == self {
						t.Fatalf("%s got its own message %s back (seq %d)", c.name, f.ID, f.Seq)
					}
					seq = f.Seq
				case *protocol.Ack:
					seq = f.Seq
					acks++
				}
			}
			if seq != want {
				t.Fatalf("%s: got seq %d where seq %d belongs", c.name, seq, want)
			}
		}
		return acks
	}
	if acks := readRoom(watcher, ""); acks != 0 {
		t.Errorf("the watcher, who sent nothing, got %d acks", acks)
	}
	for i, c := range clients {
		if acks := readRoom(c, ids[i]); acks != each {
			t.Errorf("%s got %d acks for its %d messages", c.name, acks, each)
		}
	}
}

// A busy room of many members is written at most every FlushInterval: a
// message that commits right after a batch of several waits for the
// interval to end. A quiet room's message goes out at once, and so does a
// small room's, whose writes cost less than the wait.
func TestBusyRoomWaitsForTheFlushInterval(t *testing.T) {
	cfg := fastConfig(t)
	cfg.HeartbeatInterval, cfg.HeartbeatTimeout = 10*time.Second, time.Minute
	cfg.Rate, cfg.Burst = 1e6, 1e6
	cfg.FlushInterval = 800 * time.Millisecond
	// The burst below must leave in one batch of several messages: its first
	// message commits at once (the store is idle), and the rest wait for
	// the next commit together. With the default 5 ms a busy machine split
	// them over commits, the last batch held fewer than flushMinBatch, and
	// the room rightly did not wait (seen in CI).
	cfg.CommitInterval = cfg.FlushInterval / 4
	tr := startRelay(t, cfg)
	for _, members := range []int{2, flushMinMembers} {
		room := fmt.Sprint("room-", members)
		watcher, _ := tr.join(room, "Watcher", newKey())
		for i := range members - 2 {
			tr.join(room, fmt.Sprint("Reader ", i), newKey())
		}
		sender, _ := tr.join(room, "Sender", newKey())
		for range members - 1 {
			watcher.expectNext(protocol.TypeJoined)
		}
		latency := func(id string) time.Duration {
			t.Helper()
			start := time.Now()
			sender.msg(id, "hello")
			m := watcher.expectNext(protocol.TypeMsg).(*protocol.Message)
			if m.ID != id {
				t.Fatalf("got %s, want %s", m.ID, id)
			}
			return time.Since(start)
		}
		if d := latency("quiet"); d >= cfg.FlushInterval/2 {
			t.Errorf("%d members: a message to a quiet room took %v: it waited for the flush interval", members, d)
		}
		time.Sleep(cfg.FlushInterval) // quiet again

		// A burst: all but its first message commit together and leave in
		// one busy batch.
		for i := range 10 {
			sender.msg(fmt.Sprint("burst-", i), "hello")
		}
		for range 10 {
			watcher.expectNext(protocol.TypeMsg)
		}
		d := latency("after")
		switch waits := members >= flushMinMembers; {
		case waits && d < cfg.FlushInterval/2:
			t.Errorf("%d members: a message right after a busy batch arrived after %v: the room did not wait for its flush interval (%v)", members, d, cfg.FlushInterval)
		case !waits && d >= cfg.FlushInterval/2:
			t.Errorf("%d members: a message right after a busy batch took %v: a small room waited for the flush interval", members, d)
		}
	}
}
