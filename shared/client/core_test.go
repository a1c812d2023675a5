package client

import (
	"slices"
	"testing"
	"time"

	"github.com/heartline/heartline/shared/protocol"
)

// These tests drive the engine's core without sockets, goroutines or a
// clock: events in, effects out.

var (
	coreT0  = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	coreAnn = protocol.Member{ID: "m-ann", Name: "ann"}
	coreBob = protocol.Member{ID: "m-bob", Name: "bob"}
)

func msgIDs(frames []protocol.Frame) []string {
	var ids []string
	for _, f := range frames {
		if s, ok := f.(*protocol.Send); ok {
			ids = append(ids, s.ID)
		}
	}
	return ids
}

func queueTexts(k *core, texts ...string) []string {
	var ids []string
	for _, text := range texts {
		item := OutboxItem{ID: "id-" + text, Text: text, Status: Pending}
		eff := k.queue(item)
		if len(eff.store) != 1 || eff.store[0].kind != opPut || len(eff.events) != 1 || len(eff.frames) != 0 {
			panic("queue: unexpected effects")
		}
		ids = append(ids, item.ID)
	}
	return ids
}

func TestCoreSendsTheOutboxInOrderOnceWelcomed(t *testing.T) {
	var k core
	ids := queueTexts(&k, "a", "b", "c")
	if r := k.linkUp(); r != nil {
		t.Fatalf("a first join asks to resume %+v", r)
	}
	if eff := k.flush(coreT0); len(eff.frames) != 0 {
		t.Fatalf("sent %v before the welcome", msgIDs(eff.frames))
	}
	if _, first := k.welcome(&protocol.Welcome{Epoch: "e1", You: coreAnn}); !first {
		t.Fatal("the first welcome was not taken")
	}
	if got := msgIDs(k.flush(coreT0).frames); !slices.Equal(got, ids) {
		t.Fatalf("sent %v, want %v", got, ids)
	}
	if eff := k.flush(coreT0); len(eff.frames) != 0 {
		t.Fatalf("sent %v again on the same link", msgIDs(eff.frames))
	}
	// Ack of b: b leaves the outbox (and the store), delivered as our own.
	eff := k.ack(&protocol.Ack{ID: ids[1], Seq: 1, TS: 5}, coreT0)
	if len(eff.store) != 1 || eff.store[0] != (storeOp{kind: opDelete, id: ids[1]}) {
		t.Fatalf("ack store ops = %+v", eff.store)
	}
	if len(eff.events) != 2 {
		t.Fatalf("ack events = %+v", eff.events)
	}
	if mr, ok := eff.events[1].(MessageReceived); !ok || !mr.Own || mr.Msg.Text != "b" || mr.Msg.From != coreAnn {
		t.Fatalf("ack delivered %+v", eff.events[1])
	}
	if eff := k.ack(&protocol.Ack{ID: ids[1], Seq: 1, TS: 5}, coreT0); len(eff.events)+len(eff.store) != 0 {
		t.Fatalf("a second ack did something: %+v", eff)
	}
	// A new link resends what was not acked, and resumes where it was.
	if r := k.linkUp(); r == nil || *r != (protocol.Resume{Epoch: "e1", LastSeq: 1}) {
		t.Fatalf("resume = %+v, want e1 from 1", r)
	}
	k.welcome(&protocol.Welcome{Epoch: "e1", You: coreAnn, Recovered: true, Seq: 1})
	if got := msgIDs(k.flush(coreT0).frames); !slices.Equal(got, []string{ids[0], ids[2]}) {
		t.Fatalf("resent %v, want a and c", got)
	}
	// c comes back in the history of the next link (its ack was lost):
	// it counts as sent and is not sent again.
	k.linkUp()
	eff, _ = k.welcome(&protocol.Welcome{Epoch: "e1", You: coreAnn, Recovered: true, Seq: 2,
		History: []protocol.Message{{Seq: 2, ID: ids[2], From: coreAnn, Text: "c"}}})
	if !slices.ContainsFunc(eff.store, func(op storeOp) bool { return op == storeOp{kind: opDelete, id: ids[2]} }) {
		t.Fatalf("c in the history did not leave the store: %+v", eff.store)
	}
	if got := msgIDs(k.flush(coreT0).frames); !slices.Equal(got, []string{ids[0]}) {
		t.Fatalf("sent %v, want only a", got)
	}
}

func TestCoreRateLimitPausesThenResendsOneAtATimeThenFails(t *testing.T) {
	var k core
	ids := queueTexts(&k, "a", "b")
	k.linkUp()
	k.welcome(&protocol.Welcome{Epoch: "e1", You: coreAnn})
	k.flush(coreT0)
	refuse := func(now time.Time) effects {
		return k.relayError(&protocol.Error{Code: protocol.ErrRateLimited, ID: ids[0], RetryAfterMS: 2000}, now)
	}
	now := coreT0
	eff := refuse(now)
	if eff.pause != 2*time.Second || len(eff.frames) != 0 {
		t.Fatalf("after a refusal: pause %v, frames %v; want 2 s and none", eff.pause, msgIDs(eff.frames))
	}
	// The refusal of b (part of the same streak) changes nothing.
	if eff := k.relayError(&protocol.Error{Code: protocol.ErrRateLimited, ID: ids[1], RetryAfterMS: 2000}, now); eff.pause != 0 || len(eff.frames) != 0 {
		t.Fatalf("the streak's second refusal: %+v", eff)
	}
	if got := k.flush(now.Add(time.Second)).frames; len(got) != 0 {
		t.Fatalf("sent %v during the pause", msgIDs(got))
	}
	for n := 2; n <= maxRateLimitRetries+1; n++ {
		now = now.Add(2 * time.Second)
		if got := msgIDs(k.flush(now).frames); !slices.Equal(got, ids[:1]) {
			t.Fatalf("after pause %d sent %v, want only a (one at a time)", n-1, got)
		}
		eff = refuse(now)
	}
	if len(eff.events) != 1 {
		t.Fatalf("refusal %d events = %+v", maxRateLimitRetries+1, eff.events)
	}
	if oc, ok := eff.events[0].(OutboxChanged); !ok || oc.Item.Status != Failed || oc.Item.ID != ids[0] {
		t.Fatalf("refusal %d: %+v, want a Failed", maxRateLimitRetries+1, eff.events[0])
	}
	if len(eff.store) != 1 || eff.store[0].kind != opPut || eff.store[0].item.Status != Failed {
		t.Fatalf("the failure is not stored: %+v", eff.store)
	}
	now = now.Add(2 * time.Second)
	if got := msgIDs(k.flush(now).frames); !slices.Equal(got, ids[1:]) {
		t.Fatalf("after a failed, sent %v, want b", got)
	}
	// Retry puts a back, last; Discard refuses a pending message.
	if _, err := k.discard(ids[1]); err == nil {
		t.Fatal("discarded a pending message")
	}
	eff, err := k.retry(ids[0])
	if err != nil || len(eff.store) != 1 || eff.store[0].kind != opMoveToEnd {
		t.Fatalf("retry: %v %+v", err, eff.store)
	}
	if k.outbox[1].ID != ids[0] || k.outbox[1].Status != Pending {
		t.Fatalf("after retry the outbox is %+v", k.outbox)
	}
}

func TestCoreWelcomeInANewEpochReportsTheGapAndStartsOver(t *testing.T) {
	var k core
	k.epoch = "old"
	k.seqs.reset(40)
	if r := k.linkUp(); r == nil || r.LastSeq != 40 {
		t.Fatalf("resume = %+v", r)
	}
	eff, _ := k.welcome(&protocol.Welcome{Epoch: "new", You: coreAnn, Seq: 9, History: []protocol.Message{
		{Seq: 9, ID: "x9", From: coreBob, Text: "nine"}, {Seq: 8, ID: "x8", From: coreBob, Text: "eight"},
	}})
	var kinds []string
	for _, ev := range eff.events {
		switch ev := ev.(type) {
		case Welcomed:
			kinds = append(kinds, "welcomed")
		case HistoryGap:
			if !ev.EpochChanged || ev.HeldUpTo != 40 {
				t.Errorf("gap = %+v", ev)
			}
			kinds = append(kinds, "gap")
		case MessageReceived:
			kinds = append(kinds, ev.Msg.Text)
		}
	}
	if want := []string{"welcomed", "gap", "eight", "nine"}; !slices.Equal(kinds, want) {
		t.Fatalf("events %v, want %v", kinds, want)
	}
	if k.epoch != "new" || k.seqs.last != 9 {
		t.Fatalf("epoch %q last %d, want new and 9", k.epoch, k.seqs.last)
	}
	if _, first := k.welcome(&protocol.Welcome{Epoch: "other"}); first || k.epoch != "new" {
		t.Fatal("a second welcome on one link was taken")
	}
}
