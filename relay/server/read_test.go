package server

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/heartline/heartline/shared/protocol"
)

// maskedFrame builds a client text frame by hand (mask key 0), so a test can
// put several frames in one TCP write or split one across writes.
func maskedFrame(payload []byte) []byte {
	var b bytes.Buffer
	b.WriteByte(0x81) // FIN, text
	switch n := len(payload); {
	case n < 126:
		b.WriteByte(0x80 | byte(n))
	case n < 1<<16:
		b.WriteByte(0x80 | 126)
		binary.Write(&b, binary.BigEndian, uint16(n))
	default:
		b.WriteByte(0x80 | 127)
		binary.Write(&b, binary.BigEndian, uint64(n))
	}
	b.Write([]byte{0, 0, 0, 0})
	b.Write(payload)
	return b.Bytes()
}

// The reader waits for the socket between frames; frames that arrived
// together with the one it handled (already read from the socket) must
// still be answered, and a frame split across writes, or larger than every
// read buffer, must arrive whole.
func TestFramesArrivingTogetherSplitOrLargeAreAllHandled(t *testing.T) {
	cfg := fastConfig(t)
	// Framing, not expiry: a busy machine must not end the link between steps.
	cfg.HeartbeatInterval, cfg.HeartbeatTimeout = time.Second, 5*time.Second
	tr := startRelay(t, cfg)
	c, _ := tr.join("lobby", "alice", newKey())
	nc := c.ws.NetConn()

	// 5 pings fit in one read buffer; 40 need several socket reads.
	for _, n := range []int{5, 40} {
		var burst []byte
		for i := range n {
			p, _ := protocol.Encode(&protocol.Ping{T: int64(1000 + i)})
			burst = append(burst, maskedFrame(p)...)
		}
		if _, err := nc.Write(burst); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if p := c.expectNext(protocol.TypePong).(*protocol.Pong); p.T != int64(1000+i) {
				t.Fatalf("burst of %d: pong %d answers t=%d, want %d", n, i, p.T, 1000+i)
			}
		}
	}

	p, _ := protocol.Encode(&protocol.Ping{T: 7})
	f := maskedFrame(p)
	for _, part := range [][]byte{f[:1], f[1:5], f[5:9], f[9:]} {
		if _, err := nc.Write(part); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond) // separate segments, so the reader waits mid-frame
	}
	if p := c.expectNext(protocol.TypePong).(*protocol.Pong); p.T != 7 {
		t.Fatalf("split ping answered with t=%d, want 7", p.T)
	}

	text := strings.Repeat("long line ", 390) // 3,900 characters, ~4 KiB: more than one socket read
	m, _ := protocol.Encode(&protocol.Send{ID: "big-1", Text: text})
	p2, _ := protocol.Encode(&protocol.Ping{T: 8})
	if _, err := nc.Write(append(maskedFrame(m), maskedFrame(p2)...)); err != nil {
		t.Fatal(err)
	}
	var gotAck, gotPong bool
	deadline := time.Now().Add(3 * time.Second)
	for !gotAck || !gotPong {
		f, err := c.next(time.Until(deadline))
		if err != nil {
			t.Fatalf("after a ~4 KiB message and a ping: ack %v, pong %v: %v", gotAck, gotPong, err)
		}
		switch f := f.(type) {
		case *protocol.Ack:
			gotAck = gotAck || f.ID == "big-1"
		case *protocol.Pong:
			gotPong = gotPong || f.T == 8
		case *protocol.Error:
			t.Fatalf("error frame %s: %s", f.Code, f.Message)
		}
	}
}

// A ping spelled as protocol.Encode spells it takes the fast path (the unit
// test is wsconn's TestPingFastPathMatchesTheProtocolEncoder); any other
// spelling goes through the decoder: both get a pong.
func TestPingSpellingsBothGetAPong(t *testing.T) {
	tr := startRelay(t, fastConfig(t))
	c, _ := tr.join("lobby", "alice", newKey())
	c.raw([]byte(`{"type":"ping","t":42}`))
	if p := c.expectNext(protocol.TypePong).(*protocol.Pong); p.T != 42 || p.ServerTime == 0 {
		t.Fatalf("pong %+v", p)
	}
	c.raw([]byte(`{ "t": 43, "type": "ping" }`))
	if p := c.expectNext(protocol.TypePong).(*protocol.Pong); p.T != 43 {
		t.Fatalf("pong %+v", p)
	}
}
