package server

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heartline/heartline/relay/internal/wsconn"
	"github.com/heartline/heartline/relay/store"
	"github.com/heartline/heartline/shared/protocol"
)

// captureConn is a socket that records every write.
type captureConn struct {
	net.Conn
	mu  sync.Mutex
	buf []byte
}

func (c *captureConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.buf = append(c.buf, p...)
	c.mu.Unlock()
	return len(p), nil
}
func (*captureConn) SetWriteDeadline(time.Time) error { return nil }
func (*captureConn) Close() error                     { return nil }

// frames splits the unmasked server frames written so far into payloads.
func (c *captureConn) frames() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	b := c.buf
	for len(b) >= 2 {
		n, h := int(b[1]&0x7f), 2
		switch n {
		case 126:
			n, h = int(b[2])<<8|int(b[3]), 4
		case 127:
			n, h = 0, 10
			for _, x := range b[2:10] {
				n = n<<8 | int(x)
			}
		}
		if len(b) < h+n {
			break
		}
		out = append(out, string(b[h:h+n]))
		b = b[h+n:]
	}
	return out
}

// runDrain applies q as one drain, synchronously, on the test's goroutine.
func runDrain(r *room, q []commitResult) {
	r.doneMu.Lock()
	r.doneQ = append(r.doneQ, q...)
	r.draining = true
	r.doneMu.Unlock()
	r.drain()
}

// A drain's senders get pieces of the shared batch, not copies of it: with
// S senders in a batch of B messages, copies would be S*B message bytes made
// under the room's lock (every reader of the room waits for it) and kept in
// the queues of senders that do not read.
//
// The members' writers are marked busy so that kick does nothing: what is
// measured is the drain's own work, under the lock.
func TestDrainSendersShareTheBatch(t *testing.T) {
	srv, err := New(Config{DataDir: t.TempDir(), SendQueue: 1 << 20, FlushInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(t.Context())
	r := srv.newRoom("big")
	const senders = 200
	text := strings.Repeat("x", 1000)
	var q []commitResult
	for i := range senders {
		m := &member{id: fmt.Sprintf("m%d", i), name: fmt.Sprintf("member%d", i), state: protocol.StateOnline}
		m.conn = benchConn(srv)
		m.conn.HoldWriter() // kick leaves it alone
		r.members[m.id] = m
		key := m.id + "\x00c"
		r.inflight[key] = &pendingMsg{from: m.wire(), acks: 1}
		r.pending++
		q = append(q, commitResult{key: key, start: time.Now(),
			rec: store.Record{Seq: uint64(i + 1), TS: 1, MemberID: m.id, ClientID: "c", Text: text}})
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	runDrain(r, q)
	runtime.ReadMemStats(&after)

	batch := senders * (len(text) + 150) // about one batch buffer
	allocated := int(after.TotalAlloc - before.TotalAlloc)
	t.Logf("one drain of %d messages from %d senders allocated %d MB under the room lock (one batch is about %d KB)",
		senders, senders, allocated>>20, batch>>10)
	if allocated > 50*batch { // per-member queue entries: 23 times; a copy per sender: 207 times
		t.Errorf("one drain allocated %d bytes, %d times its batch: every sender got its own copy of the batch",
			allocated, allocated/batch)
	}
}

// A message the store fails is answered with an error in its place: after
// the ack of the same sender's earlier message in the same drain.
func TestDrainStoreErrorKeepsItsPlace(t *testing.T) {
	srv, err := New(Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(t.Context())
	r := srv.newRoom("order")
	cc := &captureConn{}
	sender := &member{id: "ms", name: "sender", state: protocol.StateOnline}
	sender.conn = srv.newConn(nil, &wsconn.BatchConn{Conn: cc}, "", "")
	r.members[sender.id] = sender
	var q []commitResult
	for i, id := range []string{"a", "b"} {
		key := sender.id + "\x00" + id
		r.inflight[key] = &pendingMsg{from: sender.wire(), acks: 1}
		r.pending++
		r.seq++
		res := commitResult{key: key, start: time.Now(),
			rec: store.Record{Seq: uint64(i + 1), TS: 1, MemberID: sender.id, ClientID: id, Text: "hi"}}
		if id == "b" {
			res.err = errors.New("disk on fire")
		}
		q = append(q, res)
	}
	runDrain(r, q)

	deadline := time.Now().Add(5 * time.Second)
	var got []string
	for len(got) < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		got = cc.frames()
	}
	if len(got) < 2 {
		t.Fatalf("got %d frames, want 2: %q", len(got), got)
	}
	if !strings.Contains(got[0], `"type":"ack"`) {
		t.Errorf("the sender read %s first and %s second: the error for b overtook the ack for a", got[0], got[1])
	}
}
