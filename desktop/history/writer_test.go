package history

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestWriterStoresEverythingHandedOverAndReportsIt(t *testing.T) {
	s := openTemp(t)
	var mu sync.Mutex
	reported := map[RoomKey]int{}
	w := s.NewWriter(WriterOptions{MaxBatch: 64, OnStored: func(k RoomKey, refs []Ref) {
		mu.Lock()
		reported[k] += len(refs)
		mu.Unlock()
	}})
	rooms := []RoomKey{lobby, {Relay: lobby.Relay, Room: "garden"}, {Relay: "ws://other:1", Room: "lobby"}}
	for seq := uint64(1); seq <= 200; seq++ {
		for _, k := range rooms {
			if !w.Put(k, msg("a", seq, fmt.Sprintf("%s %d", k.Room, seq))) {
				t.Fatal("Put refused")
			}
		}
	}
	// A replay of what is held: stored once, reported again.
	w.Put(lobby, seqRange("a", 191, 200)...)
	w.MarkRead(lobby, msg("a", 200, "").Cursor())
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for _, k := range rooms {
		p, err := s.Latest(ctx, k, 2000)
		if err != nil || len(p.Items) != 200 {
			t.Fatalf("%v: %d items, %v", k, len(p.Items), err)
		}
	}
	mu.Lock()
	if reported[lobby] != 210 || reported[rooms[1]] != 200 || reported[rooms[2]] != 200 {
		t.Fatalf("reported %v", reported)
	}
	mu.Unlock()
	infos, _ := s.Rooms(ctx)
	for _, r := range infos {
		if r.Key == lobby && r.Unread != 0 {
			t.Fatalf("MarkRead not written in order: %+v", r)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if w.Put(lobby, msg("a", 2000, "late")) {
		t.Fatal("Put accepted after Close")
	}
}

func TestWriterNeverBlocksOnAStalledDiskAndBoundsItsQueue(t *testing.T) {
	s := openTemp(t)
	var mu sync.Mutex
	var errs []error
	w := s.NewWriter(WriterOptions{MaxQueued: 100, OnError: func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}})
	defer w.Close()
	// Stall the disk: the writer's next transaction waits for this lock.
	s.writeMu.Lock()
	handed := make(chan int)
	go func() {
		n := 0
		for seq := uint64(1); seq <= 150; seq++ {
			if w.Put(lobby, msg("a", seq, "x")) {
				n++
			}
		}
		handed <- n
	}()
	var accepted int
	select {
	case accepted = <-handed:
	case <-time.After(30 * time.Second):
		s.writeMu.Unlock()
		t.Fatal("Put blocked while the disk was stalled")
	}
	// The writer may have taken a batch off the queue before it stalled.
	if accepted < 100 || accepted == 150 {
		t.Fatalf("accepted %d of 150 with a queue of 100", accepted)
	}
	mu.Lock()
	if len(errs) != 150-accepted || !strings.Contains(errs[0].Error(), "queue is full") {
		t.Fatalf("errors: %v", errs)
	}
	mu.Unlock()
	s.writeMu.Unlock()
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	p, _ := s.Latest(ctx, lobby, 500)
	if len(p.Messages()) != accepted {
		t.Fatalf("stored %d, accepted %d", len(p.Messages()), accepted)
	}
	// What the full queue refused is a visible gap once later messages come.
	w.Put(lobby, msg("a", 151, "later"))
	w.Flush(ctx)
	p, _ = s.Latest(ctx, lobby, 2)
	if got := render(p); got != fmt.Sprintf("a%d gap a151", accepted) {
		t.Fatalf("after the refused ones: %q", got)
	}
}

func TestWriterCloseWritesWhatIsQueued(t *testing.T) {
	s := openTemp(t)
	w := s.NewWriter(WriterOptions{})
	s.writeMu.Lock()
	for seq := uint64(1); seq <= 50; seq++ {
		w.Put(lobby, msg("a", seq, "x"))
	}
	w.MarkGap(lobby, Gap{After: Ref{"a", 50}, Before: Ref{"b", 1}})
	s.writeMu.Unlock()
	w.Close()
	p, _ := s.Latest(ctx, lobby, 100)
	if len(p.Messages()) != 50 || !strings.HasSuffix(render(p), "a50 marked-gap") {
		t.Fatalf("after Close: %q", render(p))
	}
	if err := w.Close(); err != nil { // twice is fine
		t.Fatal(err)
	}
}

func TestWriterKeepsGoodMessagesOfABadBatch(t *testing.T) {
	s := openTemp(t)
	var got []error
	w := s.NewWriter(WriterOptions{OnError: func(err error) { got = append(got, err) }})
	w.Put(lobby, msg("a", 1, "one"), Message{Epoch: "a", Seq: 0, ID: "bad"}, msg("a", 2, "two"))
	w.Close()
	p, _ := s.Latest(ctx, lobby, 10)
	if render(p) != "a1 a2" || len(got) != 1 || !strings.Contains(got[0].Error(), `"bad"`) {
		t.Fatalf("%q %v", render(p), got)
	}
}

func TestFlushHonoursItsContext(t *testing.T) {
	s := openTemp(t)
	w := s.NewWriter(WriterOptions{})
	s.writeMu.Lock()
	w.Put(lobby, msg("a", 1, "x"))
	c, cancel := context.WithCancel(ctx)
	cancel()
	if err := w.Flush(c); !errors.Is(err, context.Canceled) {
		t.Fatalf("Flush with a cancelled context: %v", err)
	}
	s.writeMu.Unlock()
	w.Close()
}

func TestWriterClearRoomDropsWhatIsQueuedForIt(t *testing.T) {
	s := openTemp(t)
	garden := RoomKey{Relay: lobby.Relay, Room: "garden"}
	w := s.NewWriter(WriterOptions{})
	defer w.Close()
	w.Put(lobby, seqRange("a", 1, 10)...)
	w.Flush(ctx)
	// The disk is slow: more of the room and of another wait in the queue.
	s.writeMu.Lock()
	w.Put(lobby, seqRange("a", 11, 20)...)
	w.Put(garden, seqRange("g", 1, 3)...)
	w.MarkRead(RoomKey{Relay: " " + strings.ToUpper(lobby.Relay), Room: "lobby"}, msg("a", 15, "").Cursor())
	done := make(chan error, 1)
	go func() { done <- w.ClearRoom(ctx, lobby) }()
	s.writeMu.Unlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Latest(ctx, lobby, 100); len(p.Items) != 0 {
		t.Fatalf("the cleared room came back: %q", render(p))
	}
	if p, _ := s.Latest(ctx, garden, 100); render(p) != "g1 g2 g3" {
		t.Fatalf("the other room: %q", render(p))
	}
	// Later messages are stored as usual.
	w.Put(lobby, msg("a", 21, "new"))
	w.Flush(ctx)
	if p, _ := s.Latest(ctx, lobby, 100); render(p) != "a21" {
		t.Fatalf("after clearing: %q", render(p))
	}
	if n, err := s.Size(); err != nil || n == 0 {
		t.Fatalf("Size() = %d, %v", n, err)
	}
}
