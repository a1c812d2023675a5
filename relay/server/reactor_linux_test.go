package server

import (
	"bytes"
	"fmt"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/heartline/heartline/shared/protocol"
)

// readerGoroutines counts the relay's running connection readers.
func readerGoroutines() int {
	var b bytes.Buffer
	pprof.Lookup("goroutine").WriteTo(&b, 2)
	return bytes.Count(b.Bytes(), []byte("wsconn.(*Conn).readLoop("))
}

// An idle member costs no goroutine: between frames its connection is
// parked with the reactor, which answers heartbeats itself and wakes a
// reader for anything else. (A parked reader's stack was a quarter of an
// idle member's memory.)
func TestIdleMembersHoldNoReaderGoroutine(t *testing.T) {
	cfg := fastConfig(t)
	cfg.HeartbeatInterval, cfg.HeartbeatTimeout, cfg.SweepInterval = 2*time.Second, 5*time.Second, time.Second
	tr := startRelay(t, cfg)

	const n = 40
	members := make([]*tclient, n)
	for i := range members {
		members[i], _ = tr.join("idle", fmt.Sprintf("member-%d", i), newKey())
	}
	waitFor(t, 3*time.Second, "every reader to park", func() bool { return readerGoroutines() == 0 })

	for i, m := range members {
		m.send(&protocol.Ping{T: int64(1000 + i)})
	}
	for i, m := range members {
		if p := m.expect(protocol.TypePong).(*protocol.Pong); p.T != int64(1000+i) {
			t.Fatalf("%s: pong answers t=%d, want %d", m.name, p.T, 1000+i)
		}
	}
	if r := readerGoroutines(); r != 0 {
		t.Errorf("%d reader goroutines after %d heartbeats; the reactor should answer them itself", r, n)
	}

	// A message wakes a reader, which handles it and parks again.
	members[0].send(&protocol.Send{ID: "wake-1", Text: "anyone there?"})
	members[0].expect(protocol.TypeAck)
	for _, m := range members[1:] {
		if msg := m.expect(protocol.TypeMsg).(*protocol.Message); msg.Text != "anyone there?" {
			t.Fatalf("%s got %q", m.name, msg.Text)
		}
	}
	waitFor(t, 3*time.Second, "the sender's reader to park again", func() bool { return readerGoroutines() == 0 })

	// A parked member is still closed by the relay: bye gets its 1000.
	members[1].send(&protocol.Bye{})
	members[1].expectClose(protocol.CloseNormal)
}
