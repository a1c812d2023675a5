package redisengine

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heartline/heartline/internal/redistest"
)

func open(t *testing.T, rs *redistest.Server, onEvent func(string, *Event)) *Engine {
	t.Helper()
	var onEvents func(string, []*Event)
	if onEvent != nil {
		onEvents = func(room string, evs []*Event) {
			for _, ev := range evs {
				onEvent(room, ev)
			}
		}
	}
	return openBatches(t, rs, onEvents)
}

func openBatches(t *testing.T, rs *redistest.Server, onEvents func(string, []*Event)) *Engine {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, err := Open(ctx, Config{URL: rs.URL(), History: 5, OnEvents: onEvents})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

func join(t *testing.T, e *Engine, room, key, name, link string) JoinResult {
	t.Helper()
	res, err := e.Join(context.Background(), room, JoinRequest{NewEpoch: NewEpoch(), KeyHash: key, Name: name,
		Fold: strings.ToLower(name), Shape: strings.ToLower(name), Link: link, NewID: "m-" + key, MaxMembers: 3, MaxPerIP: -1})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestPublishDedupsAndKeepsOneOrder(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{AppendOnly: true})
	var mu sync.Mutex
	var seen []uint64
	e := open(t, rs, func(room string, ev *Event) {
		if ev.Kind == KindMessage {
			mu.Lock()
			seen = append(seen, ev.Seq)
			mu.Unlock()
		}
	})
	ctx := context.Background()
	if err := e.Subscribe(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	out := e.Publish(ctx, "r", NewEpoch(), []Outgoing{{MemberID: "a", ClientID: "1", Text: "one"}, {MemberID: "a", ClientID: "2", Text: "two"}})
	if out[0].Err != nil || out[0].Seq != 1 || out[1].Seq != 2 || out[0].Epoch != out[1].Epoch || out[1].TS < out[0].TS {
		t.Fatalf("published %+v", out)
	}
	again := e.Publish(ctx, "r", NewEpoch(), []Outgoing{{MemberID: "a", ClientID: "1", Text: "one"}})[0]
	if !again.Duplicate || again.Seq != 1 || again.TS != out[0].TS || again.Epoch != out[0].Epoch {
		t.Fatalf("resend: %+v, first %+v", again, out[0])
	}
	// Another member may use the same client id.
	if other := e.Publish(ctx, "r", NewEpoch(), []Outgoing{{MemberID: "b", ClientID: "1", Text: "b"}})[0]; other.Duplicate || other.Seq != 3 {
		t.Fatalf("another member's id 1: %+v", other)
	}
	for i := range 10 {
		e.Publish(ctx, "r", NewEpoch(), []Outgoing{{MemberID: "c", ClientID: string(rune('a' + i)), Text: "x"}})
	}
	recs, err := e.After(ctx, "r", 0, 100)
	if err != nil || len(recs) < 5 || recs[len(recs)-1].Seq != 13 {
		t.Fatalf("history after trimming to ~5: %d records, err %v", len(recs), err)
	}
	latest, _ := e.Latest(ctx, "r", 2)
	if len(latest) != 2 || latest[0].Seq != 12 || latest[1].Seq != 13 {
		t.Fatalf("latest %+v", latest)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n == 13 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, s := range seen {
		if s != uint64(i+1) {
			t.Fatalf("pub/sub order %v", seen)
		}
	}
}

func TestJoinAwayLeave(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{AppendOnly: true})
	e := open(t, rs, nil)
	ctx := context.Background()
	a := join(t, e, "r", "ka", "Alice", "l1")
	if a.Status != JoinOK || a.Event.Kind != KindJoined || !a.Created || a.Event.PV != 1 {
		t.Fatalf("first join %+v %+v", a, a.Event)
	}
	if r := join(t, e, "r", "kb", "ALICE", "l2"); r.Status != JoinTaken || r.Holder != "Alice" {
		t.Fatalf("taken name: %+v", r)
	}
	back := join(t, e, "r", "ka", "Alice", "l3")
	if back.Status != JoinOK || back.Event.Kind != KindPresence || back.Event.Prev != "l1" || back.Event.WasAway {
		t.Fatalf("second link of Alice: %+v %+v", back, back.Event)
	}
	if ok, _ := e.Away(ctx, "r", a.Event.ID, "l1", "closed", time.Minute); ok {
		t.Fatal("a replaced link turned the member away")
	}
	if ok, err := e.Away(ctx, "r", a.Event.ID, "l3", "closed", 0); !ok || err != nil {
		t.Fatalf("away: %v %v", ok, err)
	}
	join(t, e, "r", "kb", "Bob", "l4")
	join(t, e, "r", "kc", "Carol", "l5")
	if r := join(t, e, "r", "kd", "Dan", "l6"); r.Status != JoinFull {
		t.Fatalf("fourth member of a room of 3: %+v", r)
	}
	// The grace of 0 has ended: the sweep removes Alice, reason as she went.
	time.Sleep(5 * time.Millisecond)
	if _, left, err := e.Sweep(ctx, SweepConfig{Grace: time.Minute, DeadAfter: time.Minute}); err != nil || left != 1 {
		t.Fatalf("sweep: left %d, %v", left, err)
	}
	roster, _ := e.Roster(ctx, "r")
	if len(roster.Members) != 2 {
		t.Fatalf("roster after the sweep: %+v", roster.Members)
	}
	if r := join(t, e, "r", "kd", "Alice", "l7"); r.Status != JoinOK {
		t.Fatalf("Alice's name after she left: %+v", r)
	}
}

func TestPersistenceSeen(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	e := open(t, rs, nil)
	p, err := e.Persistence(context.Background())
	if err != nil || !p.Volatile() || p.Durable() {
		t.Fatalf("no AOF, no RDB: %+v %v", p, err)
	}
	rs2 := redistest.Start(t, redistest.Options{AppendOnly: true})
	p, err = open(t, rs2, nil).Persistence(context.Background())
	if err != nil || !p.Durable() || p.String() != "AOF, appendfsync always" {
		t.Fatalf("AOF always: %+v %v", p, err)
	}
}

// A batch is one publish: every relay gets its new messages in one call,
// in order, without the duplicates, which are answered with the original.
func TestPublishBatchIsOneEvent(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{AppendOnly: true})
	events := make(chan []*Event, 10)
	e := openBatches(t, rs, func(room string, evs []*Event) { events <- evs })
	next := func() []*Event {
		t.Helper()
		select {
		case evs := <-events:
			return evs
		case <-time.After(10 * time.Second):
			t.Fatal("no event within 10 s")
			return nil
		}
	}
	ctx := context.Background()
	if err := e.Subscribe(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	first := e.Publish(ctx, "b", NewEpoch(), []Outgoing{{MemberID: "a", ClientID: "1", Text: "one"}})[0]
	if got := next(); len(got) != 1 || got[0].Seq != 1 {
		t.Fatalf("first publish: %+v", got)
	}
	out := e.Publish(ctx, "b", NewEpoch(), []Outgoing{
		{MemberID: "a", ClientID: "2", Name: "Ann", Text: "two <b> 3:ab\u202e é\n"},
		{MemberID: "a", ClientID: "1", Text: "one again"},
		{MemberID: "b", ClientID: "1", Text: "three"},
		{MemberID: "a", ClientID: "2", Text: "two again"},
	})
	want := []Published{{Seq: 2}, {Seq: 1, Duplicate: true}, {Seq: 3}, {Seq: 2, Duplicate: true}}
	for i, p := range out {
		if p.Err != nil || p.Seq != want[i].Seq || p.Duplicate != want[i].Duplicate || p.Epoch != first.Epoch {
			t.Fatalf("message %d: %+v, want seq %d duplicate %v", i, p, want[i].Seq, want[i].Duplicate)
		}
	}
	if out[1].TS != first.TS || out[0].TS < first.TS || out[2].TS != out[0].TS || out[3].TS != out[0].TS {
		t.Fatalf("timestamps: first %d, batch %+v", first.TS, out)
	}
	if got := next(); len(got) != 2 || got[0].Seq != 2 || got[0].Text != "two <b> 3:ab\u202e é\n" || got[0].Name != "Ann" || got[1].Seq != 3 || got[1].ID != "b" {
		t.Fatalf("the batch's event: %d events %+v", len(got), got)
	}
	if recs, err := e.After(ctx, "b", 1, 10); err != nil || len(recs) != 2 || recs[0].Text != "two <b> 3:ab\u202e é\n" ||
		recs[0].Name != "Ann" || recs[0].TS != out[0].TS || recs[1].MemberID != "b" || recs[1].ClientID != "1" {
		t.Fatalf("the log after the batch: %+v, %v", recs, err)
	}
	// A batch of duplicates only publishes nothing.
	e.Publish(ctx, "b", NewEpoch(), []Outgoing{{MemberID: "b", ClientID: "1"}})
	e.Publish(ctx, "b", NewEpoch(), []Outgoing{{MemberID: "c", ClientID: "9", Text: "four"}})
	if got := next(); len(got) != 1 || got[0].Seq != 4 {
		t.Fatalf("after a duplicate-only batch: %+v", got)
	}
	// More than one script call's worth, in one round trip.
	long := make([]Outgoing, publishChunk+3)
	for i := range long {
		long[i] = Outgoing{MemberID: "d", ClientID: strconv.Itoa(i), Text: "x"}
	}
	res := e.Publish(ctx, "b", NewEpoch(), long)
	if len(res) != len(long) || res[0].Seq != 5 || res[len(res)-1].Seq != uint64(4+len(long)) || res[len(res)-1].Err != nil {
		t.Fatalf("a long batch: %d results, first %+v, last %+v", len(res), res[0], res[len(res)-1])
	}
}

func TestDecodeMessagesRefusesATruncatedBatch(t *testing.T) {
	one := (&Outgoing{MemberID: "a", ClientID: "c", Name: "Ann", Text: "hi:)\n"}).block()
	two := (&Outgoing{MemberID: "b", ClientID: "d", Text: "3:x"}).block()
	good := "3:e-1" + "2:10" + "1:7" + one + two
	evs, err := decodeMessages(good)
	if err != nil || len(evs) != 2 || evs[0].Seq != 7 || evs[0].TS != 10 || evs[0].Name != "Ann" || evs[0].Text != "hi:)\n" ||
		evs[0].Epoch != "e-1" || evs[1].Seq != 8 || evs[1].ID != "b" || evs[1].Text != "3:x" || evs[1].TS != 10 {
		t.Fatalf("decoded %+v, %v", evs, err)
	}
	for _, bad := range []string{"", "3:e-1", "3:e-12:101:7", good[:len(good)-1], good + "1:8", "3:e-1x:7", "3:e-1" + "2:10" + "1:0" + one} {
		if evs, err := decodeMessages(bad); err == nil {
			t.Errorf("%q decoded as %+v", bad, evs)
		}
	}
}

// A Redis that outlived an upgrade holds log entries written one field per
// value: history reads still return them, and new messages follow on.
func TestHistoryReadsEntriesOfTheOlderLayout(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{AppendOnly: true})
	e := open(t, rs, nil)
	ctx := context.Background()
	k := keysOf("old")
	if _, err := rs.Do("HSET", k.meta, "e", "e-old", "s", "1", "pv", "0", "lt", "5"); err != nil {
		t.Fatal(err)
	}
	if _, err := rs.Do("XADD", k.log, "1-0", "m", "ann", "c", "c1", "t", "5", "n", "Ann", "a", "", "x", "from before"); err != nil {
		t.Fatal(err)
	}
	if _, err := rs.Do("ZADD", k.ids, "1", "ann\x1fc1"); err != nil {
		t.Fatal(err)
	}
	out := e.Publish(ctx, "old", NewEpoch(), []Outgoing{{MemberID: "bob", ClientID: "c1", Name: "Bob", Text: "after"}, {MemberID: "ann", ClientID: "c1", Text: "resend"}})
	if out[0].Seq != 2 || out[0].Epoch != "e-old" || !out[1].Duplicate || out[1].Seq != 1 || out[1].TS != 5 {
		t.Fatalf("publish after the upgrade: %+v", out)
	}
	recs, err := e.After(ctx, "old", 0, 10)
	if err != nil || len(recs) != 2 || recs[0].Text != "from before" || recs[0].Name != "Ann" || recs[0].MemberID != "ann" || recs[1].Text != "after" {
		t.Fatalf("history: %+v, %v", recs, err)
	}
}
