package server

import (
	"sync"
	"testing"
	"time"

	"github.com/heartline/heartline/shared/protocol"
)

// A burst that reaches a healthy member at once (here a whole room leaving
// together) is delivered, not mistaken for a slow consumer: the watcher gets
// every left frame and keeps its connection.
func TestBurstDoesNotEvictAHealthyMember(t *testing.T) {
	cfg := fastConfig(t)
	// Joining hundreds of members takes a minute or more on a loaded
	// machine: heartbeats long enough that nobody, the watcher above all,
	// times out before the burst.
	cfg.HeartbeatInterval, cfg.HeartbeatTimeout = time.Minute, 10*time.Minute
	cfg.SweepInterval = time.Second
	tr := startRelay(t, cfg)
	watcher, _ := tr.join("burst", "Watcher", newKey())

	const n = 400
	leavers := make([]*tclient, n)
	for i := range leavers {
		leavers[i], _ = tr.join("burst", "Leaver "+string(rune('A'+i%26))+string(rune('a'+i/26)), newKey())
	}
	for range n {
		watcher.expectNext(protocol.TypeJoined)
	}
	var wg sync.WaitGroup
	for _, c := range leavers {
		wg.Go(func() { c.send(&protocol.Bye{}) })
	}
	wg.Wait()
	left := 0
	deadline := time.Now().Add(time.Minute) // a bound for a stuck test, not a measure
	for left < n && time.Now().Before(deadline) {
		f, err := watcher.next(time.Until(deadline))
		if err != nil {
			t.Fatalf("after %d of %d left frames the watcher's link ended: %v", left, n, err)
		}
		if l, ok := f.(*protocol.Left); ok {
			if l.Reason != protocol.ReasonBye {
				t.Fatalf("left %+v", l)
			}
			left++
		}
	}
	if left != n {
		t.Fatalf("watcher saw %d of %d leaves", left, n)
	}
	watcher.send(&protocol.Ping{T: 1})
	watcher.expectNext(protocol.TypePong)
}
