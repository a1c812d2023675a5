package server

import (
	"fmt"
	"testing"
	"time"

	"github.com/heartline/heartline/shared/protocol"
)

// A parked connection's next frame goes through the reactor, which answers
// heartbeats itself; anything else, invalid UTF-8 included, must still be
// checked (and fail the connection with 1007), also when it arrives in one
// read with heartbeats.
func TestParkedConnectionInvalidUTF8Closes1007(t *testing.T) {
	tr := startRelay(t, quietConfig(t))

	for i, withPings := range []bool{false, true} {
		c, _ := tr.join("parked", fmt.Sprintf("member-%d", i), newKey())
		waitFor(t, 3*time.Second, "the reader to park", func() bool { return readerGoroutines() == 0 })
		var in []byte
		if withPings {
			p, _ := protocol.Encode(&protocol.Ping{T: 1})
			in = append(maskedFrame(p), maskedFrame(p)...)
		}
		in = append(in, maskedFrame([]byte(`{"type":"msg","id":"m1","text":"`+"\xff"+`"}`))...)
		if _, err := c.ws.NetConn().Write(in); err != nil {
			t.Fatal(err)
		}
		c.expectError(protocol.ErrBadFrame)
		c.expectClose(protocol.CloseInvalidPayload)
		waitFor(t, 3*time.Second, "its reader to end", func() bool { return readerGoroutines() == 0 })
	}
}
