package server

import (
	"testing"
	"time"

	"github.com/heartline/heartline/relay/metrics"
	"github.com/heartline/heartline/shared/protocol"
)

// fragment builds one masked client frame (mask key 0) with the given
// opcode, final or not, for tests that split a message into continuation
// frames by hand.
func fragment(op byte, final bool, payload []byte) []byte {
	f := maskedFrame(payload)
	f[0] = op
	if final {
		f[0] |= 0x80
	}
	return f
}

// quietConfig is fastConfig with a heartbeat slow enough that clients which
// do not ping stay connected on a busy machine.
func quietConfig(t *testing.T) Config {
	cfg := fastConfig(t)
	cfg.HeartbeatInterval, cfg.HeartbeatTimeout, cfg.SweepInterval = 2*time.Second, 5*time.Second, time.Second
	return cfg
}

// A text frame that is not UTF-8 fails the connection with 1007 (RFC 6455
// section 8.1), whatever it holds and whenever it comes: decoding it would
// turn the bad bytes into U+FFFD and the relay would keep text nobody wrote.
func TestInvalidUTF8TextFrameCloses1007(t *testing.T) {
	tr := startRelay(t, quietConfig(t))
	evicted := func() float64 {
		return testutilCounter(tr.srv.Metrics().Evictions.WithLabelValues(metrics.EvictInvalidUTF8))
	}

	for name, frame := range map[string]string{
		"hello":            `{"type":"hello","v":1,"room":"lobby","name":"` + "\xc3\x28" + `","key":"` + newKey() + `"}`,
		"msg before hello": `{"type":"msg","id":"m1","text":"` + "\xff" + `"}`,
		"unknown type":     `{"type":"` + "\xfe" + `"}`,
		"not even JSON":    "\xff\xfe",
	} {
		c := tr.dial(nil)
		c.name = name
		c.raw([]byte(frame))
		c.expectError(protocol.ErrBadFrame)
		c.expectClose(protocol.CloseInvalidPayload)
	}

	alice, _ := tr.join("lobby", "alice", newKey())
	bob, _ := tr.join("lobby", "bob", newKey())
	alice.expect(protocol.TypeJoined)
	alice.raw([]byte(`{"type":"msg","id":"m1","text":"caf` + "\xe9" + `"}`)) // Latin-1, not UTF-8
	alice.expectError(protocol.ErrBadFrame)
	alice.expectClose(protocol.CloseInvalidPayload)
	awaitAwayNoMsg(t, bob)
	bob.msg("b1", "still here")
	bob.expect(protocol.TypeAck)
	if _, w := tr.join("lobby", "carol", newKey()); len(w.History) != 1 || w.History[0].Text != "still here" {
		t.Fatalf("history after the refused message: %+v", w.History)
	}
	if got := evicted(); got != 5 {
		t.Errorf("evictions{reason=%q} = %v, want 5", metrics.EvictInvalidUTF8, got)
	}
}

// awaitAwayNoMsg reads c's frames until another member turns away (its link
// was cut), failing on any message relayed before that.
func awaitAwayNoMsg(t *testing.T, c *tclient) {
	t.Helper()
	for {
		f, err := c.next(3 * time.Second)
		if err != nil {
			t.Fatalf("%s: waiting for a member to turn away: %v", c.name, err)
		}
		if m, ok := f.(*protocol.Message); ok {
			t.Fatalf("%s got the refused message %q", c.name, m.Text)
		}
		if p, ok := f.(*protocol.Presence); ok && p.Member.State == protocol.StateAway {
			return
		}
	}
}

// A message split into continuation frames is checked whole: a character
// split across two fragments is fine, a bad byte in any fragment is not.
func TestFragmentedMessageUTF8(t *testing.T) {
	tr := startRelay(t, quietConfig(t))
	alice, _ := tr.join("lobby", "alice", newKey())
	bob, _ := tr.join("lobby", "bob", newKey())
	alice.expect(protocol.TypeJoined)
	nc := alice.ws.NetConn()

	// "é" is c3 a9: the first fragment ends inside it.
	whole := append(fragment(0x1, false, []byte(`{"type":"msg","id":"f1","text":"caf`+"\xc3")),
		fragment(0x0, true, []byte("\xa9 ok\"}"))...)
	if _, err := nc.Write(whole); err != nil {
		t.Fatal(err)
	}
	alice.expect(protocol.TypeAck)
	if m := bob.expect(protocol.TypeMsg).(*protocol.Message); m.Text != "café ok" {
		t.Fatalf("bob got %q, want %q", m.Text, "café ok")
	}

	bad := append(fragment(0x1, false, []byte(`{"type":"msg","id":"f2","text":"caf`+"\xc3")),
		fragment(0x0, false, []byte(`(`))...)
	bad = append(bad, fragment(0x0, true, []byte(`"}`))...)
	if _, err := nc.Write(bad); err != nil {
		t.Fatal(err)
	}
	alice.expectError(protocol.ErrBadFrame)
	alice.expectClose(protocol.CloseInvalidPayload)
	awaitAwayNoMsg(t, bob)
}

// A hello field of the wrong JSON type gets the field's error code and the
// hello's close code, like a wrong value there, not a generic bad_frame that
// leaves the client waiting for a welcome.
func TestHelloFieldOfWrongTypeIsRefused(t *testing.T) {
	tr := startRelay(t, quietConfig(t))
	key := `"key":"` + newKey() + `"`
	cases := []struct {
		name, hello, code string
		close             int
	}{
		{"name", `{"type":"hello","v":1,"room":"lobby","name":5,` + key + `}`, protocol.ErrBadName, protocol.CloseHelloRefused},
		{"room", `{"type":"hello","v":1,"room":[],"name":"ana",` + key + `}`, protocol.ErrBadRoom, protocol.CloseHelloRefused},
		{"key", `{"type":"hello","v":1,"room":"lobby","name":"ana","key":{}}`, protocol.ErrBadKey, protocol.CloseHelloRefused},
		{"avatar", `{"type":"hello","v":1,"room":"lobby","name":"ana",` + key + `,"avatar":true}`, protocol.ErrBadAvatar, protocol.CloseHelloRefused},
		{"v", `{"type":"hello","v":"1","room":"lobby","name":"ana",` + key + `}`, protocol.ErrBadFrame, protocol.CloseUnsupportedVersion},
		{"resume", `{"type":"hello","v":1,"room":"lobby","name":"ana",` + key + `,"resume":"yes"}`, protocol.ErrBadFrame, protocol.CloseHelloRefused},
	}
	for _, tc := range cases {
		c := tr.dial(nil)
		c.name = "hello with a wrong " + tc.name
		c.raw([]byte(tc.hello))
		c.expectError(tc.code)
		c.expectClose(tc.close)
	}

	// On a connection that has joined, such a hello is just a second hello.
	alice, _ := tr.join("lobby", "alice", newKey())
	alice.raw([]byte(`{"type":"hello","v":1,"room":"lobby","name":5,` + key + `}`))
	if e := alice.expectError(protocol.ErrBadFrame); e.Message != alreadyJoined {
		t.Fatalf("second hello: %q", e.Message)
	}
	alice.send(&protocol.Ping{T: 9})
	alice.expect(protocol.TypePong)
}
