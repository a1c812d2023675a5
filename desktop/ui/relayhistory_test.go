package ui

import (
	"context"
	"testing"
	"time"

	"fyne.io/fyne/v2/test"

	"github.com/heartline/heartline/desktop/chatview"
	"github.com/heartline/heartline/desktop/settings"
	"github.com/heartline/heartline/relay/server"
)

// A person who joins a room on a new device sees the relay's latest page;
// scrolling up past it asks the relay for older pages until the relay has
// nothing older, and what came back stays on the device.
func TestScrollingBackAsksTheRelayForWhatTheDeviceLacks(t *testing.T) {
	addr := runRelay(t, server.Config{Rate: 10000, Burst: 10000, HistoryPage: 5}).Addr().String()
	newPoster(t, addr, "gamma").post("x", 120)

	a := test.NewTempApp(t)
	loop := newUILoop(t)
	p := settings.Profile{Relay: addr, Name: "Alice", Room: "gamma", HostPort: 7070}
	u := startApp(t, a, loop, t.TempDir(), &p)
	defer loop.wait(u.Close)
	eventually(t, loop, "the welcome's page shown", func() bool {
		return stateOf(u, "gamma").Link.Phase == chatview.PhaseConnected && len(roomShown(viewOf(u, "gamma"))) == 5
	})
	requests := map[string]bool{}
	eventually(t, loop, "every message back from the relay", func() bool {
		v := viewOf(u, "gamma")
		v.loadOlder() // the person keeps scrolling to the top
		if v.older.pending != "" {
			requests[v.older.pending] = true
		}
		got := roomShown(v)
		return len(got) == 120 && got[0] == "x 1" && got[119] == "x 120"
	})
	loop.wait(func() {
		v := viewOf(u, "gamma")
		if v.older.floor != 1 {
			t.Errorf("the relay's floor: %d, want 1 (it said it has nothing older)", v.older.floor)
		}
		// 16..115, then 1..15: each range asked for once, even while the
		// device has not stored the first page yet.
		if len(requests) != 2 {
			t.Errorf("%d requests for 115 messages in pages of %d", len(requests), pageSize)
		}
	})
	// Kept on the device: nothing of the epoch is missing there any more.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var holes int
		loop.wait(func() {
			v := viewOf(u, "gamma")
			hs, err := u.local.store.Holes(context.Background(), keyOf(v.state), v.welcome.Epoch)
			if err != nil {
				t.Fatal(err)
			}
			holes = len(hs)
		})
		if holes == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the device still lacks %d ranges of the room", holes)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
