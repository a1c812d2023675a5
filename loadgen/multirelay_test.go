package main

import (
	"flag"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/heartline/heartline/relay/server"
)

func TestParseURLsListsLoopbackRelays(t *testing.T) {
	urls, err := parseURLs("ws://127.0.0.1:8081/ws, ws://127.0.0.1:8082/ws,ws://localhost:8083/ws")
	if err != nil || len(urls) != 3 || urls[1] != "ws://127.0.0.1:8082/ws" {
		t.Fatalf("got %v, %v", urls, err)
	}
	for _, bad := range []string{
		"", ",", "http://127.0.0.1:8080/ws", "ws://127.0.0.1:8081/ws,ws://10.0.0.1:8080/ws",
		"ws://127.0.0.1:8081/ws,ws://127.0.0.1:8081/ws", // once each, or the spread is uneven
	} {
		if _, err := parseURLs(bad); err == nil {
			t.Errorf("parseURLs(%q) accepted it", bad)
		}
	}
	if p := urlPort("ws://127.0.0.1:8082/ws,ws://127.0.0.1:8083/ws"); p != 8082 {
		t.Errorf("urlPort of a list = %d, want the first URL's 8082", p)
	}
}

func TestMembersSpreadEvenlyOverRelays(t *testing.T) {
	c := &common{url: "ws://127.0.0.1:8081/ws,ws://127.0.0.1:8082/ws,ws://127.0.0.1:8083/ws", srcs: "127.0.0.2", conc: 1}
	e, err := c.env()
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, m := range newMembers(e, 1000, []string{"r"}, "m", 0) {
		count[m.url]++
	}
	if len(count) != 3 || count[c.urls[0]] != 334 || count[c.urls[1]] != 333 || count[c.urls[2]] != 333 {
		t.Fatalf("1,000 members over 3 relays: %v; want 334/333/333", count)
	}
	// One URL: every member on it, as before.
	c1 := &common{url: "ws://127.0.0.1:8080/ws", srcs: "127.0.0.2", conc: 1}
	e1, _ := c1.env()
	for _, m := range newMembers(e1, 5, []string{"r"}, "m", 0) {
		if m.url != "ws://127.0.0.1:8080/ws" {
			t.Fatalf("member url %q with a single -url", m.url)
		}
	}
}

func TestReadProcSumsSeveralProcesses(t *testing.T) {
	one, err := readProc("self")
	if err != nil {
		t.Fatal(err)
	}
	two, err := readProc("self,self")
	if err != nil {
		t.Fatal(err)
	}
	// The same process read twice: twice its figures (RSS moves a little in between).
	if two.rssKiB < one.rssKiB*3/2 || two.threads < one.threads*2-4 || two.fds < one.fds*2-4 {
		t.Errorf("self,self = rss %d threads %d fds %d; self = rss %d threads %d fds %d",
			two.rssKiB, two.threads, two.fds, one.rssKiB, one.threads, one.fds)
	}
	if _, err := readProc("self,999999999"); err == nil {
		t.Error("a pid list with a process that does not exist was read")
	}
}

func TestSingleRelayModesRefuseSeveralURLs(t *testing.T) {
	for _, mode := range []string{"guess", "fill", "storm"} {
		fs := flag.NewFlagSet(mode, flag.ContinueOnError)
		c := commonFlags(fs)
		exec := modes[mode](fs)
		args := []string{"-url", "ws://127.0.0.1:1/ws,ws://127.0.0.1:2/ws", "-q", "-src", "127.0.0.2"}
		if mode == "fill" {
			args = append(args, "-db", "/nonexistent/heartline.db")
		}
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		e, err := c.env()
		if err != nil {
			t.Fatal(err)
		}
		_, err = exec(t.Context(), e, c)
		if err == nil || !strings.Contains(err.Error(), "give one -url") {
			t.Errorf("%s with two relays: err = %v, want a refusal naming one -url", mode, err)
		}
	}
}

// frontDoor forwards TCP connections to a relay and counts them: two front
// doors on one relay stand in for two relays sharing one Redis (one room,
// one seq order), so the spread can be checked at the receiving end.
type frontDoor struct {
	url   string
	conns atomic.Int64
}

func newFrontDoor(t *testing.T, relayURL string) *frontDoor {
	t.Helper()
	target := strings.TrimSuffix(strings.TrimPrefix(relayURL, "ws://"), "/ws")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &frontDoor{url: "ws://" + ln.Addr().String() + "/ws"}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			f.conns.Add(1)
			mu.Lock()
			open = append(open, in, out)
			mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); io.Copy(out, in); out.Close() }()
			go func() { defer wg.Done(); io.Copy(in, out); in.Close() }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return f
}

func TestFanoutSpreadsMembersOverSeveralRelayURLs(t *testing.T) {
	relay := startTestRelay(t, server.Config{Rate: 1000, Burst: 1000})
	a, b := newFrontDoor(t, relay), newFrontDoor(t, relay)
	res := runMode(t, "fanout", "-url", a.url+","+b.url, "-receivers", "20", "-senders", "3", "-rate", "50",
		"-duration", "1s", "-warmup", "0s", "-drain", "5s").(*fanoutResult)

	// Receivers 10/10, senders 1/2: round robin within each group, the
	// senders from the second relay on.
	if a.conns.Load() != 11 || b.conns.Load() != 12 {
		t.Errorf("connections through the two URLs: %d and %d, want 11 and 12", a.conns.Load(), b.conns.Load())
	}
	if len(res.PerRelay) != 2 {
		t.Fatalf("per_relay has %d entries, want 2", len(res.PerRelay))
	}
	ra, rb := res.PerRelay[0], res.PerRelay[1]
	if ra.URL != a.url || ra.Receivers != 10 || ra.Senders != 1 || rb.URL != b.url || rb.Receivers != 10 || rb.Senders != 2 {
		t.Errorf("per_relay members: %+v / %+v", ra, rb)
	}
	// Every message reaches every member but its sender, whichever relay it is on.
	if res.Sent == 0 || res.Acked != res.Sent || res.Deliveries != res.Sent*22 {
		t.Fatalf("sent %d, acked %d, deliveries %d (want sent x 22)", res.Sent, res.Acked, res.Deliveries)
	}
	if ra.Deliveries+rb.Deliveries != res.Deliveries || ra.Deliveries == 0 || rb.Deliveries == 0 {
		t.Errorf("per-relay deliveries %d + %d, total %d", ra.Deliveries, rb.Deliveries, res.Deliveries)
	}
	for _, r := range res.PerRelay {
		l := r.Loss
		if l.Gaps+l.Backlog+l.Evicted+l.LostOnClose != 0 || l.Received != l.Expected || r.Latency.Count != uint64(r.Deliveries) {
			t.Errorf("%s: loss %s, latency samples %d for %d deliveries", r.URL, l, r.Latency.Count, r.Deliveries)
		}
	}
	if res.Relay.PID != strconv.Itoa(os.Getpid()) {
		t.Errorf("sampled pid %q, want -pid's", res.Relay.PID)
	}
}

func TestRoomsAndRelaysSpreadIndependently(t *testing.T) {
	c := &common{url: "ws://127.0.0.1:8081/ws,ws://127.0.0.1:8082/ws,ws://127.0.0.1:8083/ws", srcs: "127.0.0.2", conc: 1}
	e, err := c.env()
	if err != nil {
		t.Fatal(err)
	}
	// As many rooms as relays: every room must still have members on every relay.
	type key struct{ room, url string }
	count := map[key]int{}
	for _, m := range newMembers(e, 90, []string{"a", "b", "c"}, "m", 0) {
		count[key{m.room, m.url}]++
	}
	for _, room := range []string{"a", "b", "c"} {
		for _, u := range c.urls {
			if count[key{room, u}] != 10 {
				t.Fatalf("room %s on %s: %d members; want 10 in every room on every relay (%v)", room, u, count[key{room, u}], count)
			}
		}
	}
}

func TestFanoutOverSeveralRoomsAndRelays(t *testing.T) {
	relay := startTestRelay(t, server.Config{Rate: 100000, Burst: 100000})
	a, b := newFrontDoor(t, relay), newFrontDoor(t, relay)
	res := runMode(t, "fanout", "-url", a.url+","+b.url, "-rooms", "4", "-receivers", "8", "-senders", "4",
		"-rate", "0", "-window", "8", "-echo", "ack", "-duration", "1s", "-warmup", "0s", "-drain", "5s").(*fanoutResult)
	if res.Rooms != 4 || res.Sent < 20 || res.Acked != res.Sent || res.Stalled {
		t.Fatalf("rooms %d, sent %d, acked %d, stalled %v", res.Rooms, res.Sent, res.Acked, res.Stalled)
	}
	// Each room: 1 sender and 2 receivers, so every message reaches 2 members.
	if res.Deliveries != res.Sent*2 {
		t.Errorf("deliveries %d, want %d (sent x 2 members of the sender's room)", res.Deliveries, res.Sent*2)
	}
	l := res.Loss
	if l.Gaps+l.Backlog+l.Evicted+l.LostOnClose != 0 || l.Received != l.Expected || l.Duplicates != 0 {
		t.Errorf("loss over 4 rooms: %s", l)
	}
	if a.conns.Load()+b.conns.Load() != 12 || a.conns.Load() == 0 || b.conns.Load() == 0 {
		t.Errorf("connections through the two URLs: %d and %d", a.conns.Load(), b.conns.Load())
	}
}

func TestFanoutRefusesRoomsWithTheReceiverEcho(t *testing.T) {
	fs := flag.NewFlagSet("fanout", flag.ContinueOnError)
	c := commonFlags(fs)
	exec := modes["fanout"](fs)
	if err := fs.Parse([]string{"-rooms", "3", "-rate", "0", "-q", "-src", "127.0.0.2"}); err != nil {
		t.Fatal(err)
	}
	e, err := c.env()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec(t.Context(), e, c); err == nil || !strings.Contains(err.Error(), "-echo ack") {
		t.Fatalf("err = %v, want a refusal pointing at -echo ack", err)
	}
}

func TestOneMemberPerRoomStillSpreadsOverRelays(t *testing.T) {
	c := &common{url: "ws://127.0.0.1:8081/ws,ws://127.0.0.1:8082/ws,ws://127.0.0.1:8083/ws", srcs: "127.0.0.2", conc: 1}
	e, err := c.env()
	if err != nil {
		t.Fatal(err)
	}
	rooms := make([]string, 99)
	for i := range rooms {
		rooms[i] = strconv.Itoa(i)
	}
	// 100 rooms of one receiver and one sender (accepted messages per
	// second across rooms): every relay must get a third of each group,
	// and a room's sender must not share its receiver's relay.
	recv, send := newMembers(e, 99, rooms, "r", 0), newMembers(e, 99, rooms, "s", 1)
	perRelay := map[string]int{}
	for i := range recv {
		perRelay[recv[i].url]++
		perRelay[send[i].url]++
		if recv[i].url == send[i].url {
			t.Fatalf("room %s: receiver and sender both on %s", recv[i].room, recv[i].url)
		}
	}
	for _, u := range c.urls {
		if perRelay[u] != 66 {
			t.Fatalf("members per relay %v; want 66 on each", perRelay)
		}
	}
}
