package server

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heartline/heartline/relay/store"
	"github.com/heartline/heartline/shared/protocol"
)

// One client address creates rooms at RoomCreateRate with RoomCreateBurst
// at once; beyond, its hello for a new room gets rate_limited with a
// retry_after_ms and close 4003, while joining existing rooms is not
// counted.
func TestRoomCreateRatePerAddress(t *testing.T) {
	cfg := fastConfig(t)
	cfg.HeartbeatInterval, cfg.HeartbeatTimeout = time.Second, 5*time.Second
	cfg.RoomCreateRate, cfg.RoomCreateBurst = 1.0/60, 3
	tr := startRelay(t, cfg)
	for _, room := range []string{"a", "b", "c"} {
		tr.join(room, "Alice", newKey())
	}
	c := tr.dial(nil)
	c.hello("d", "Alice", newKey())
	e := c.expectError(protocol.ErrRateLimited)
	if e.RetryAfterMS < 1 || e.RetryAfterMS > 60_000 || !strings.Contains(e.Message, "new rooms") {
		t.Errorf("refusal: %+v", e)
	}
	c.expectClose(protocol.CloseProtocolError)
	// Existing rooms take newcomers and messages as before.
	bob, _ := tr.join("a", "Bob", newKey())
	bob.msg("m1", "still here")
	bob.expect(protocol.TypeAck)
}

// MaxRooms counts every room the store keeps, empty ones and those from
// before a restart included: a hello that would create one more gets
// room_full and close 4505; existing rooms keep working.
func TestMaxRoomsCountsStoredRooms(t *testing.T) {
	cfg := fastConfig(t)
	cfg.HeartbeatInterval, cfg.HeartbeatTimeout = time.Second, 5*time.Second
	cfg.MaxRooms = 3
	tr := startRelay(t, cfg)
	for _, room := range []string{"a", "b", "c"} {
		c, _ := tr.join(room, "Alice", newKey())
		c.send(&protocol.Bye{}) // the room empties; its history stays on disk
		c.expectClose(1000)
	}
	refused := func(tr *testRelay) {
		t.Helper()
		c := tr.dial(nil)
		c.hello("d", "Alice", newKey())
		if e := c.expectError(protocol.ErrRoomFull); !strings.Contains(e.Message, "maximum of 3 rooms") {
			t.Errorf("refusal: %+v", e)
		}
		c.expectClose(protocol.CloseRoomFull)
	}
	refused(tr)
	bob, _ := tr.join("b", "Bob", newKey())
	bob.msg("m1", "existing rooms work")
	bob.expect(protocol.TypeAck)
	tr.stop()

	tr = startRelay(t, cfg)
	refused(tr)
	carol, w := tr.join("b", "Carol", newKey())
	if w.Seq != 1 {
		t.Errorf("room b after restart: seq %d, want 1", w.Seq)
	}
	carol.msg("m2", "after the restart")
	carol.expect(protocol.TypeAck)
}

// HistoryBytes bounds what a room keeps: a newcomer's welcome holds at most
// that many bytes of the latest messages.
func TestHistoryBytesBoundsARoom(t *testing.T) {
	storeOnly(t, "Redis caps a room by count (--history), not bytes")
	cfg := fastConfig(t)
	cfg.HeartbeatInterval, cfg.HeartbeatTimeout = time.Second, 5*time.Second
	cfg.Rate, cfg.Burst = 1000, 1000
	cfg.HistoryBytes = 64 << 10
	tr := startRelay(t, cfg)
	c, _ := tr.join("big", "Alice", newKey())
	text := strings.Repeat("😀", 4000) // 16,000 bytes: the longest text
	for i := range 20 {
		c.msg(fmt.Sprint("m", i), text)
		c.expect(protocol.TypeAck)
	}
	_, w := tr.join("big", "Bob", newKey())
	if n := len(w.History); n < 2 || n > 4 || w.History[n-1].ID != "m19" {
		t.Fatalf("welcome holds %d messages of 16 KB with a 64 KiB bound, want 2-4 ending with m19", n)
	}
}

// MaxStoreBytes caps the database file: a message that would grow it
// further is refused with an error that says the storage is full, nothing
// else is lost, and the file stays within the cap.
func TestStoreFullRefusesMessages(t *testing.T) {
	storeOnly(t, "Redis has maxmemory (noeviction) instead of --max-store-bytes")
	cfg := fastConfig(t)
	cfg.HeartbeatInterval, cfg.HeartbeatTimeout = time.Second, 5*time.Second
	cfg.Rate, cfg.Burst = 1000, 1000
	cfg.HistoryBytes, cfg.History = -1, 100_000
	cfg.MaxStoreBytes = 1 << 20
	tr := startRelay(t, cfg)
	c, _ := tr.join("fill", "Alice", newKey())
	text := strings.Repeat("😀", 4000)
	var refused *protocol.Error
	acked := 0
	for i := 0; i < 200 && refused == nil; i++ {
		c.msg(fmt.Sprint("m", i), text)
		f, err := c.next(10 * time.Second)
		if err != nil {
			t.Fatalf("after %d acks: %v", acked, err)
		}
		switch f := f.(type) {
		case *protocol.Ack:
			acked++
		case *protocol.Error:
			refused = f
		}
	}
	if refused == nil || refused.Code != protocol.ErrInternal || !strings.Contains(refused.Message, "storage is full") {
		t.Fatalf("after %d acks: refusal %+v, want internal saying the storage is full", acked, refused)
	}
	t.Logf("%d messages of 16 KB acked before the 1 MiB cap; refusal: %s", acked, refused.Message)
	fi, err := os.Stat(filepath.Join(cfg.DataDir, store.FileName))
	if err != nil || fi.Size() > cfg.MaxStoreBytes {
		t.Fatalf("database file %d bytes, cap %d (%v)", fi.Size(), cfg.MaxStoreBytes, err)
	}
	// The connection and what was stored stay.
	c.send(&protocol.Ping{T: 1})
	c.expect(protocol.TypePong)
	_, w := tr.join("fill", "Bob", newKey())
	if w.Seq != uint64(acked) {
		t.Errorf("room seq %d after %d acks", w.Seq, acked)
	}
}
