package client

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heartline/heartline/shared/protocol"
)

// scriptedRelay plays the relay's side of the protocol frame by frame, so a
// test can produce exact sequences (an ack overtaking a broadcast, a replay
// that repeats a held message, a reset epoch) that a real relay produces
// only by chance. Each accepted connection is handed to the test in order.
type scriptedRelay struct {
	t     *testing.T
	addr  string
	conns chan *peer
}

type peer struct {
	t     *testing.T
	conn  *websocket.Conn
	hello protocol.Hello
}

func newScriptedRelay(t *testing.T) *scriptedRelay {
	r := &scriptedRelay{t: t, conns: make(chan *peer, 4)}
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		conn, err := up.Upgrade(w, req, nil)
		if err != nil {
			return
		}
		_, data, err := conn.ReadMessage()
		if err != nil {
			conn.Close()
			return
		}
		f, err := protocol.DecodeClient(data)
		h, ok := f.(*protocol.Hello)
		if err != nil || !ok {
			t.Errorf("first frame is not a hello: %s", data)
			conn.Close()
			return
		}
		r.conns <- &peer{t: t, conn: conn, hello: *h}
	}))
	t.Cleanup(srv.Close)
	r.addr = srv.Listener.Addr().String()
	return r
}

func (r *scriptedRelay) accept() *peer {
	r.t.Helper()
	select {
	case p := <-r.conns:
		r.t.Cleanup(func() { p.conn.Close() })
		return p
	case <-time.After(10 * time.Second):
		r.t.Fatal("the client did not connect within 10 s")
		return nil
	}
}

func (p *peer) send(f protocol.Frame) {
	p.t.Helper()
	b, err := protocol.Encode(f)
	if err != nil {
		p.t.Fatal(err)
	}
	if err := p.conn.WriteMessage(websocket.TextMessage, b); err != nil {
		p.t.Fatalf("relay write: %v", err)
	}
}

// expectMsg reads frames (skipping pings) until a msg and returns it.
func (p *peer) expectMsg() protocol.Send { return *expectFrame[*protocol.Send](p) }

// expectFrame reads frames from the client until one of type F.
func expectFrame[F protocol.Frame](p *peer) F {
	p.t.Helper()
	p.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, data, err := p.conn.ReadMessage()
		if err != nil {
			p.t.Fatalf("relay read: %v", err)
		}
		f, err := protocol.DecodeClient(data)
		if err != nil {
			p.t.Fatalf("bad frame from the client: %v", err)
		}
		if want, ok := f.(F); ok {
			return want
		}
	}
}

// drop ends the TCP connection without a close frame.
func (p *peer) drop() { p.conn.NetConn().Close() }

var (
	bob = protocol.Member{ID: "m-bob", Name: "bob", State: protocol.StateOnline}
	me  = protocol.Member{ID: "m-ann", Name: "ann", State: protocol.StateOnline}
)

func welcome(epoch string, seq uint64, recovered bool, history ...protocol.Message) *protocol.Welcome {
	return &protocol.Welcome{
		V: 1, Epoch: epoch, Room: "lobby", You: me, Members: []protocol.Member{me, bob},
		History: history, Recovered: recovered, Seq: seq, ServerTime: time.Now().UnixMilli(),
		Heartbeat:    protocol.Heartbeat{IntervalMS: 10_000, TimeoutMS: 25_000},
		ObservedAddr: "127.0.0.1:5555", STUN: []int{3478, 3479},
	}
}

func msg(seq uint64, from protocol.Member, text string) protocol.Message {
	return protocol.Message{Seq: seq, ID: "id-" + text, From: from, Text: text, TS: int64(seq) * 1000}
}

// collector reads a client's events in the background.
type collector struct {
	t  *testing.T
	ch chan Event
}

func collect(t *testing.T, c *Client) *collector {
	col := &collector{t: t, ch: make(chan Event, 10000)}
	go func() {
		for ev := range c.Events() {
			col.ch <- ev
		}
		close(col.ch)
	}()
	return col
}

// until returns the events up to and including the first one for which
// match is true.
func (col *collector) until(what string, match func(Event) bool) []Event {
	col.t.Helper()
	var seen []Event
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-col.ch:
			if !ok {
				col.t.Fatalf("events closed while waiting for %s", what)
			}
			seen = append(seen, ev)
			if match(ev) {
				return seen
			}
		case <-deadline:
			col.t.Fatalf("no %s within 10 s; saw %d events", what, len(seen))
		}
	}
}

func isPhase(p Phase) func(Event) bool {
	return func(ev Event) bool {
		sc, ok := ev.(StateChanged)
		return ok && sc.State.Phase == p
	}
}

func receivedSeqs(evs []Event) []uint64 {
	var out []uint64
	for _, ev := range evs {
		if m, ok := ev.(MessageReceived); ok {
			out = append(out, m.Msg.Seq)
		}
	}
	return out
}

func countGaps(evs []Event) (n int, last HistoryGap) {
	for _, ev := range evs {
		if g, ok := ev.(HistoryGap); ok {
			n++
			last = g
		}
	}
	return n, last
}

// runScripted starts a client (ann, on the real clock, reconnecting at
// once: no jitter) against a new scripted relay, and reads its events.
func runScripted(t *testing.T) (*scriptedRelay, *Client, *collector) {
	t.Helper()
	relay := newScriptedRelay(t)
	c, err := New(Config{URL: relay.addr, Room: "lobby", Name: "ann", Key: testKey, Rand: randSeq(0)})
	if err != nil {
		t.Fatal(err)
	}
	col := collect(t, c)
	runClient(t, c)
	return relay, c, col
}

func TestResumeMergesReplayWithoutDuplicates(t *testing.T) {
	relay, c, col := runScripted(t)

	// First join: no resume, the latest page, no gap event.
	p := relay.accept()
	if p.hello.Resume != nil {
		t.Fatalf("first hello carries resume %+v", p.hello.Resume)
	}
	p.send(welcome("E1", 3, false, msg(1, bob, "a"), msg(2, bob, "b"), msg(3, bob, "c")))
	p.send(&protocol.Message{Seq: 5, ID: "x5", From: bob, Text: "e"}) // 4 is still on its way
	evs := col.until("seq 5", func(ev Event) bool { m, ok := ev.(MessageReceived); return ok && m.Msg.Seq == 5 })
	if got := receivedSeqs(evs); !slices.Equal(got, []uint64{1, 2, 3, 5}) {
		t.Fatalf("first link delivered %v", got)
	}
	if n, _ := countGaps(evs); n != 0 {
		t.Fatal("a gap event on the first join")
	}
	if rp := c.ResumePoint(); rp != (ResumePoint{"E1", 3}) {
		t.Fatalf("ResumePoint = %+v, want E1/3: seq 5 is held but 4 is missing", rp)
	}
	p.drop()

	// Second link: resume from the gap-free 3; the relay replays 4 and 5
	// (out of order), and 5 must not be delivered twice.
	p = relay.accept()
	if p.hello.Resume == nil || *p.hello.Resume != (protocol.Resume{Epoch: "E1", LastSeq: 3}) {
		t.Fatalf("resume = %+v, want E1/3", p.hello.Resume)
	}
	p.send(welcome("E1", 5, true, msg(5, bob, "e"), msg(4, bob, "d")))
	evs = col.until("connected", isPhase(Connected))
	evs = append(evs, col.until("seq 4", func(ev Event) bool { m, ok := ev.(MessageReceived); return ok && m.Msg.Seq == 4 })...)
	if n, _ := countGaps(evs); n != 0 {
		t.Fatal("a gap event on a full recovery")
	}
	if rp := c.ResumePoint(); rp != (ResumePoint{"E1", 5}) {
		t.Fatalf("ResumePoint = %+v, want E1/5", rp)
	}
	p.send(&protocol.Message{Seq: 6, ID: "x6", From: bob, Text: "f"})
	evs = col.until("seq 6", func(ev Event) bool { m, ok := ev.(MessageReceived); return ok && m.Msg.Seq == 6 })
	if got := receivedSeqs(evs); !slices.Equal(got, []uint64{6}) {
		t.Fatalf("after the replay: %v, want only 6 (5 was a duplicate)", got)
	}
	p.drop()

	// Third link: the relay pruned what was missed: gap event, then the
	// latest page; last_seq jumps to the room's seq.
	p = relay.accept()
	if p.hello.Resume == nil || p.hello.Resume.LastSeq != 6 {
		t.Fatalf("resume = %+v, want last_seq 6", p.hello.Resume)
	}
	p.send(welcome("E1", 100, false, msg(99, bob, "y"), msg(100, bob, "z")))
	evs = col.until("seq 100", func(ev Event) bool { m, ok := ev.(MessageReceived); return ok && m.Msg.Seq == 100 })
	n, gap := countGaps(evs)
	if n != 1 || gap.EpochChanged || gap.HeldUpTo != 6 {
		t.Fatalf("gap events %d, %+v; want one, held up to 6", n, gap)
	}
	if got := receivedSeqs(evs); !slices.Equal(got, []uint64{99, 100}) {
		t.Fatalf("latest page delivered %v", got)
	}
	if rp := c.ResumePoint(); rp != (ResumePoint{"E1", 100}) {
		t.Fatalf("ResumePoint = %+v, want E1/100", rp)
	}
	p.drop()

	// Fourth link: the relay lost its history (new epoch): seqs start over,
	// and seq 1 of the new epoch is a new message.
	p = relay.accept()
	p.send(welcome("E2", 1, false, msg(1, bob, "new world")))
	evs = col.until("seq 1", func(ev Event) bool { m, ok := ev.(MessageReceived); return ok && m.Msg.Seq == 1 })
	if n, gap := countGaps(evs); n != 1 || !gap.EpochChanged {
		t.Fatalf("gap events %d, %+v; want one with EpochChanged", n, gap)
	}
	if rp := c.ResumePoint(); rp != (ResumePoint{"E2", 1}) {
		t.Fatalf("ResumePoint = %+v, want E2/1", rp)
	}
}

func TestOutboxRateLimitKeepsOrderAndTooLongFails(t *testing.T) {
	clk := newFakeClock()
	relay := newScriptedRelay(t)
	c, err := New(Config{URL: relay.addr, Room: "lobby", Name: "ann", Key: testKey, Clock: clk, Rand: randSeq(0)})
	if err != nil {
		t.Fatal(err)
	}
	col := collect(t, c)
	var ids []string
	for _, text := range []string{"one", "two", "three", "four"} {
		id, err := c.Send(text)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	runClient(t, c)
	p := relay.accept()
	p.send(welcome("E", 0, false))

	// The outbox goes out in order once welcomed.
	for i, want := range ids {
		if got := p.expectMsg(); got.ID != want {
			t.Fatalf("msg %d has id %s, want %s", i, got.ID, want)
		}
	}
	// "one" accepted; "two" refused as too fast; "three" and "four" are
	// refused too because they came during the pause.
	p.send(&protocol.Ack{ID: ids[0], Seq: 1, TS: 1})
	p.send(&protocol.Error{Code: protocol.ErrRateLimited, Message: "slow down", ID: ids[1], RetryAfterMS: 400})
	p.send(&protocol.Error{Code: protocol.ErrRateLimited, Message: "slow down", ID: ids[2], RetryAfterMS: 390})
	p.send(&protocol.Error{Code: protocol.ErrRateLimited, Message: "slow down", ID: ids[3], RetryAfterMS: 380})
	evs := col.until("the ack of one", func(ev Event) bool {
		o, ok := ev.(OutboxChanged)
		return ok && o.Item.ID == ids[0] && o.Item.Status == Sent
	})
	// Wait until the engine has taken all three refusals (its pause timer
	// runs), then let the pause pass: two, three, four come again in order.
	waitFor(t, "the pause timer", func() bool { return hasTimerAt(clk, clk.Now().Add(400*time.Millisecond)) })
	clk.Advance(400 * time.Millisecond)
	// Now one at a time, in order: each waits for the previous answer.
	if got := p.expectMsg(); got.ID != ids[1] {
		t.Fatalf("resent %s first, want %s", got.ID, ids[1])
	}
	p.send(&protocol.Ack{ID: ids[1], Seq: 2, TS: 2})
	if got := p.expectMsg(); got.ID != ids[2] {
		t.Fatalf("resent %s second, want %s", got.ID, ids[2])
	}
	p.send(&protocol.Error{Code: protocol.ErrTooLong, Message: "the text has 5000 characters; this relay takes at most 4000", ID: ids[2]})
	if got := p.expectMsg(); got.ID != ids[3] {
		t.Fatalf("resent %s third, want %s", got.ID, ids[3])
	}
	p.send(&protocol.Ack{ID: ids[3], Seq: 3, TS: 3})
	evs = append(evs, col.until("four delivered", func(ev Event) bool {
		m, ok := ev.(MessageReceived)
		return ok && m.Msg.ID == ids[3]
	})...)
	var failed *OutboxItem
	for _, ev := range evs {
		if o, ok := ev.(OutboxChanged); ok && o.Item.Status == Failed {
			failed = &o.Item
		}
		if _, ok := ev.(RelayError); ok {
			t.Fatal("a refusal of an outbox message also came as RelayError")
		}
	}
	if failed == nil || failed.ID != ids[2] || failed.Reason == "" {
		t.Fatalf("failed item = %+v, want %s with the relay's reason", failed, ids[2])
	}
	if items := c.Outbox(); len(items) != 1 || items[0].Status != Failed {
		t.Fatalf("outbox = %+v, want only the failed message", items)
	}
	// Own messages come back as MessageReceived once acked, in seq order.
	var own []uint64
	for _, ev := range evs {
		if m, ok := ev.(MessageReceived); ok && m.Own {
			own = append(own, m.Msg.Seq)
		}
	}
	if !slices.Equal(own, []uint64{1, 2, 3}) {
		t.Fatalf("own messages delivered %v, want [1 2 3]", own)
	}

	// Retry sends the failed one again.
	if err := c.Retry(ids[0]); err == nil {
		t.Fatal("Retry of a sent message succeeded")
	}
	if err := c.Retry(ids[2]); err != nil {
		t.Fatal(err)
	}
	if got := p.expectMsg(); got.ID != ids[2] {
		t.Fatalf("retried msg id %s, want %s", got.ID, ids[2])
	}
	p.send(&protocol.Ack{ID: ids[2], Seq: 4, TS: 4})
	col.until("three sent", func(ev Event) bool {
		o, ok := ev.(OutboxChanged)
		return ok && o.Item.ID == ids[2] && o.Item.Status == Sent
	})
	if rp := c.ResumePoint(); rp.LastSeq != 4 {
		t.Fatalf("last seq %d, want 4", rp.LastSeq)
	}
}

func TestRateLimitedTooOftenFails(t *testing.T) {
	clk := newFakeClock()
	relay := newScriptedRelay(t)
	c, err := New(Config{URL: relay.addr, Room: "lobby", Name: "ann", Key: testKey, Clock: clk, Rand: randSeq(0)})
	if err != nil {
		t.Fatal(err)
	}
	col := collect(t, c)
	id, _ := c.Send("hello?")
	runClient(t, c)
	p := relay.accept()
	p.send(welcome("E", 0, false))
	for try := 1; ; try++ {
		if got := p.expectMsg(); got.ID != id {
			t.Fatalf("try %d: id %s", try, got.ID)
		}
		p.send(&protocol.Error{Code: protocol.ErrRateLimited, Message: "slow down", ID: id, RetryAfterMS: 100})
		if try > maxRateLimitRetries {
			break
		}
		waitFor(t, "the pause timer", func() bool { return hasTimerAt(clk, clk.Now().Add(100*time.Millisecond)) })
		clk.Advance(100 * time.Millisecond)
	}
	evs := col.until("failed", func(ev Event) bool {
		o, ok := ev.(OutboxChanged)
		return ok && o.Item.Status == Failed
	})
	o := evs[len(evs)-1].(OutboxChanged)
	if o.Item.ID != id || o.Item.Reason == "" {
		t.Fatalf("failed item %+v", o.Item)
	}
}

func TestLostAckIsRecoveredFromReplayOnce(t *testing.T) {
	relay, c, col := runScripted(t)
	p := relay.accept()
	p.send(welcome("E", 0, false))
	col.until("connected", isPhase(Connected))
	id, _ := c.Send("did it arrive?")
	sent := p.expectMsg()
	p.drop() // the relay accepted it as seq 1, but the ack was lost with the link

	p = relay.accept()
	own := protocol.Message{Seq: 1, ID: sent.ID, From: me, Text: sent.Text, TS: 1}
	p.send(welcome("E", 1, true, own))
	// The replay shows the message as ours and sent; the engine need not
	// resend it, and if it did, the relay's duplicate ack changes nothing.
	evs := col.until("sent", func(ev Event) bool {
		o, ok := ev.(OutboxChanged)
		return ok && o.Item.ID == id && o.Item.Status == Sent
	})
	p.send(&protocol.Ack{ID: id, Seq: 1, TS: 1})
	p.send(&protocol.Message{Seq: 2, ID: "b", From: bob, Text: "yes"})
	evs = append(evs, col.until("seq 2", func(ev Event) bool { m, ok := ev.(MessageReceived); return ok && m.Msg.Seq == 2 })...)
	var own1 int
	for _, ev := range evs {
		if m, ok := ev.(MessageReceived); ok && m.Msg.Seq == 1 {
			own1++
			if !m.Own {
				t.Error("own message not marked Own")
			}
		}
	}
	if own1 != 1 {
		t.Fatalf("own message delivered %d times, want once", own1)
	}
	if len(c.Outbox()) != 0 {
		t.Fatalf("outbox still holds %+v", c.Outbox())
	}
}

// expectPing reads frames until a ping and returns its t.
func (p *peer) expectPing() int64 { return expectFrame[*protocol.Ping](p).T }

func TestHeartbeatFollowsTheWelcome(t *testing.T) {
	clk := newFakeClock()
	relay := newScriptedRelay(t)
	c, err := New(Config{URL: relay.addr, Room: "lobby", Name: "ann", Key: testKey, Clock: clk, Rand: randSeq(0.5)})
	if err != nil {
		t.Fatal(err)
	}
	col := collect(t, c)
	runClient(t, c)
	p := relay.accept()
	w := welcome("E", 0, false)
	w.Heartbeat = protocol.Heartbeat{IntervalMS: 4000, TimeoutMS: 9000}
	p.send(w)
	col.until("connected", isPhase(Connected))

	// A ping right after the welcome; the relay's clock runs 5 s ahead and
	// its pong comes back 40 ms later.
	t0 := p.expectPing()
	if t0 != clk.Now().UnixMilli() {
		t.Fatalf("ping t = %d, want the client's clock %d", t0, clk.Now().UnixMilli())
	}
	clk.Advance(40 * time.Millisecond)
	p.send(&protocol.Pong{T: t0, ServerTime: t0 + 20 + 5000})
	evs := col.until("an RTT", func(ev Event) bool { s, ok := ev.(StateChanged); return ok && s.State.RTT > 0 })
	s := evs[len(evs)-1].(StateChanged).State
	if s.RTT != 40*time.Millisecond || s.ClockOffset != 5*time.Second {
		t.Fatalf("RTT %v offset %v, want 40ms and 5s", s.RTT, s.ClockOffset)
	}

	// The next ping comes after the welcome's interval (4 s), not the
	// default 10 s.
	waitFor(t, "the ping timer", func() bool { return hasTimerAt(clk, clk.Now().Add(4*time.Second-40*time.Millisecond)) })
	clk.Advance(4*time.Second - 40*time.Millisecond)
	if got := p.expectPing(); got != clk.Now().UnixMilli() {
		t.Fatalf("second ping t = %d, want %d", got, clk.Now().UnixMilli())
	}

	// Then the relay goes silent: 9 s after its last frame (the pong) the
	// link is dead, with the reason in words.
	lastFrame := clk.Now().Add(-(4*time.Second - 40*time.Millisecond))
	clk.Advance(9*time.Second - (4*time.Second - 40*time.Millisecond) - time.Millisecond)
	if !hasTimerAt(clk, lastFrame.Add(9*time.Second)) {
		t.Fatal("the dead-link timer is not set 9 s after the last frame")
	}
	clk.Advance(time.Millisecond)
	evs = col.until("a drop", func(ev Event) bool { _, ok := ev.(LinkDropped); return ok })
	d := evs[len(evs)-1].(LinkDropped).Drop
	if d.Cause != "no reply from the relay for 9 s" || d.Detected != DetectedHeartbeat || !d.LastFrameAt.Equal(lastFrame) ||
		d.ObservedAddr != "127.0.0.1:5555" || !slices.Equal(d.STUNPorts, []int{3478, 3479}) || d.RTT != 40*time.Millisecond {
		t.Fatalf("drop %+v", d)
	}
	// The engine closed that socket and comes back after its backoff.
	col.until("reconnecting", isPhase(Reconnecting))
	clk.Advance(250 * time.Millisecond) // 0.5 of the first 500 ms ceiling
	p2 := relay.accept()
	if p2.hello.Resume == nil || p2.hello.Resume.Epoch != "E" {
		t.Fatalf("reconnect hello without resume: %+v", p2.hello)
	}
}

func TestUnknownAndBrokenFramesAreIgnored(t *testing.T) {
	relay, c, col := runScripted(t)
	p := relay.accept()
	p.send(welcome("E", 0, false))
	// A newer relay's frame, a field of the wrong type, junk, a binary frame:
	// none of them may cost the link.
	for _, raw := range []string{
		`{"type":"typing","member":{"id":"m-bob"}}`,
		`{"type":"msg","seq":"one"}`,
		`not json at all`,
	} {
		if err := p.conn.WriteMessage(websocket.TextMessage, []byte(raw)); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.conn.WriteMessage(websocket.BinaryMessage, []byte{0, 1, 2}); err != nil {
		t.Fatal(err)
	}
	p.send(&protocol.Message{Seq: 1, ID: "b1", From: bob, Text: "still here"})
	evs := col.until("seq 1", func(ev Event) bool { m, ok := ev.(MessageReceived); return ok && m.Msg.Seq == 1 })
	for _, ev := range evs {
		if d, ok := ev.(LinkDropped); ok {
			t.Fatalf("link dropped: %+v", d.Drop)
		}
	}
	if s := c.State(); s.Phase != Connected {
		t.Fatalf("state %+v", s)
	}
}

func TestHugeFrameFromARelayDropsTheLinkWithAReason(t *testing.T) {
	relay, _, col := runScripted(t)
	p := relay.accept()
	p.send(welcome("E", 0, false))
	huge := append([]byte(`{"type":"msg","seq":1,"text":"`), make([]byte, maxInboundFrame)...)
	go p.conn.WriteMessage(websocket.TextMessage, huge) // the client stops reading half way
	evs := col.until("a drop", func(ev Event) bool { _, ok := ev.(LinkDropped); return ok })
	d := evs[len(evs)-1].(LinkDropped).Drop
	if !strings.Contains(d.Cause, "frame over") {
		t.Fatalf("drop cause %q", d.Cause)
	}
	// It reconnects (with resume) rather than giving up.
	p2 := relay.accept()
	if p2.hello.Resume == nil {
		t.Fatal("no resume after the drop")
	}
}

// The ack of a message was lost with the link, and by the time the client
// is back the relay holds more than a page after it: the welcome is not
// recovered and the client accepts the gap. The resent message gets the
// relay's duplicate ack with its old seq, inside that gap; it is still the
// person's message, accepted by the room, and must be delivered once.
func TestOwnMessageAckedInsideAnAcceptedGapIsDelivered(t *testing.T) {
	relay, c, col := runScripted(t)
	p := relay.accept()
	p.send(welcome("E", 0, false))
	col.until("connected", isPhase(Connected))
	id, _ := c.Send("lost ack")
	p.expectMsg()
	p.drop() // accepted as seq 1; the ack never came

	p = relay.accept()
	var page []protocol.Message
	for seq := uint64(11); seq <= 60; seq++ {
		page = append(page, msg(seq, bob, fmt.Sprintf("b%d", seq)))
	}
	p.send(welcome("E", 60, false, page...)) // seq 1 is no longer in the page
	if resent := p.expectMsg(); resent.ID != id {
		t.Fatalf("resent %q, want %q", resent.ID, id)
	}
	p.send(&protocol.Ack{ID: id, Seq: 1, TS: 1000}) // the duplicate's ack: the old seq
	p.send(&protocol.Message{Seq: 61, ID: "b61", From: bob, Text: "b61"})
	evs := col.until("seq 61", func(ev Event) bool { m, ok := ev.(MessageReceived); return ok && m.Msg.Seq == 61 })

	own := 0
	for _, ev := range evs {
		if m, ok := ev.(MessageReceived); ok && m.Msg.Seq == 1 {
			own++
			if !m.Own || m.Msg.ID != id || m.Msg.Text != "lost ack" {
				t.Errorf("seq 1 delivered as %+v (own %v)", m.Msg, m.Own)
			}
		}
	}
	if own != 1 {
		t.Fatalf("the acked message was delivered %d times, want once", own)
	}
	if rp := c.ResumePoint(); rp.LastSeq != 61 {
		t.Errorf("resume point %+v, want last_seq 61", rp)
	}
}
