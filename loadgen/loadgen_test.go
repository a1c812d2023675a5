package main

import (
	"math/rand/v2"
	"sort"
	"strings"
	"testing"

	"github.com/heartline/heartline/shared/protocol"
)

func TestScanHeadReadsTopLevelFieldsOnly(t *testing.T) {
	m := &protocol.Message{Seq: 4242, ID: "17.123456789",
		From: protocol.Member{ID: "member-id", Name: `a "quoted" {name}`, State: "online"},
		Text: `text with "id":"fake" and {braces} [and] \ backslash`, TS: 1763700004000}
	frame, err := protocol.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	var h frameHead
	if !scanHead(frame, &h) {
		t.Fatalf("scanHead refused %s", frame)
	}
	if string(h.typ) != "msg" || h.seq != 4242 || !h.hasSeq || string(h.id) != "17.123456789" {
		t.Fatalf("got type %q seq %d id %q from %s", h.typ, h.seq, h.id, frame)
	}
	// Field order must not matter: "from" (with its own "id") first.
	reordered := []byte(`{"from":{"id":"x","name":"n"},"ts":1,"text":"t","type":"msg","id":"5.99","seq":7}`)
	if !scanHead(reordered, &h) || string(h.id) != "5.99" || h.seq != 7 {
		t.Fatalf("reordered: got id %q seq %d", h.id, h.seq)
	}
	errFrame, _ := protocol.Encode(&protocol.Error{Code: "rate_limited", Message: "slow down", ID: "3.1", RetryAfterMS: 200})
	if !scanHead(errFrame, &h) || string(h.code) != "rate_limited" || string(h.id) != "3.1" || h.hasSeq {
		t.Fatalf("error frame: got code %q id %q hasSeq %v", h.code, h.id, h.hasSeq)
	}
	for _, bad := range []string{``, `[]`, `{"type":`, `{"type":"msg","seq":}`, `{"type":"msg" "x":1}`, `{"a":{"b":"}`} {
		if scanHead([]byte(bad), &h) {
			t.Errorf("scanHead accepted malformed %q", bad)
		}
	}
}

func TestSentAtAndMsgFrameRoundTrip(t *testing.T) {
	frame := msgFrame(nil, 12, 987654321, "hello")
	f, err := protocol.DecodeClient(frame)
	if err != nil {
		t.Fatalf("the relay's decoder refuses our frame %s: %v", frame, err)
	}
	send := f.(*protocol.Send)
	if send.Text != "hello" {
		t.Fatalf("text %q", send.Text)
	}
	if ns, ok := sentAt([]byte(send.ID)); !ok || ns != 987654321 {
		t.Fatalf("sentAt(%q) = %d, %v", send.ID, ns, ok)
	}
	if n, ok := msgNumber([]byte(send.ID)); !ok || n != 12 {
		t.Fatalf("msgNumber(%q) = %d, %v", send.ID, n, ok)
	}
	if _, ok := sentAt([]byte("someone-else")); ok {
		t.Fatal("sentAt accepted an id without a stamp")
	}
}

func TestHistQuantilesWithinOnePointSixPercent(t *testing.T) {
	var h hist
	vals := make([]uint64, 100000)
	for i := range vals {
		vals[i] = uint64(rand.ExpFloat64() * 5000) // microseconds, long tail
		h.add(vals[i])
	}
	sort.Slice(vals, func(i, j int) bool { return vals[i] < vals[j] })
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := vals[int(q*float64(len(vals)))-1]
		got := h.quantile(q)
		if got < exact || float64(got) > float64(exact)*1.016+1 {
			t.Errorf("q%.3f: got %d us, exact %d us", q, got, exact)
		}
	}
	if h.quantile(1) != vals[len(vals)-1] {
		t.Errorf("max: got %d, want %d", h.quantile(1), vals[len(vals)-1])
	}
}

func TestSeqSetSplitsHolesAndBacklog(t *testing.T) {
	s := newSeqSet(101) // welcome seq 100
	for _, seq := range []uint64{50, 101, 102, 104, 105, 103, 105, 108} {
		s.add(seq)
	}
	holes, backlog := s.missing(110)
	// Seen 101-105 and 108: holes 106, 107; backlog 109, 110.
	if holes != 2 || backlog != 2 {
		t.Fatalf("holes %d backlog %d, want 2 and 2", holes, backlog)
	}
	if s.dups != 1 || s.late != 1 || s.contig != 105 {
		t.Fatalf("dups %d late %d contig %d, want 1, 1, 105", s.dups, s.late, s.contig)
	}
	// An own ack behind a later msg counts apart, and is no hole.
	acks := newSeqSet(1)
	acks.add(2)
	acks.addAck(1)
	if acks.late != 0 || acks.lateAck != 1 || acks.contig != 2 {
		t.Fatalf("ack after a later msg: late %d lateAck %d contig %d, want 0, 1, 2", acks.late, acks.lateAck, acks.contig)
	}
	empty := newSeqSet(11)
	if h, b := empty.missing(20); h != 0 || b != 10 {
		t.Fatalf("empty set: holes %d backlog %d, want 0 and 10", h, b)
	}
	// Many words, to cross the bit-word boundaries.
	big := newSeqSet(1)
	for seq := uint64(1); seq <= 1000; seq++ {
		if seq%100 != 0 {
			big.add(seq)
		}
	}
	if h, b := big.missing(1000); h != 9 || b != 1 {
		t.Fatalf("big: holes %d backlog %d, want 9 and 1", h, b)
	}
}

func TestParseSourcesOnlyLoopback(t *testing.T) {
	ips, err := parseSources("127.0.0.2-127.0.0.5,127.1.0.9")
	if err != nil || len(ips) != 5 || ips[4].String() != "127.1.0.9" {
		t.Fatalf("got %v, %v", ips, err)
	}
	for _, bad := range []string{"10.0.0.1", "127.0.0.5-127.0.0.2", "127.0.0.2-127.0.1.3", "", "localhost"} {
		if _, err := parseSources(bad); err == nil {
			t.Errorf("parseSources(%q) accepted it", bad)
		}
	}
	c := &common{url: "ws://192.168.1.1:8080/ws", srcs: "127.0.0.2", conc: 1}
	if _, err := c.env(); err == nil || !strings.Contains(err.Error(), "127.x") {
		t.Fatalf("a non-loopback relay URL was accepted: %v", err)
	}
}
