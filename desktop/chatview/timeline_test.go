package chatview

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/heartline/heartline/shared/protocol"
)

var (
	utc   = time.UTC
	t0    = time.Date(2026, 11, 21, 14, 0, 0, 0, utc)
	alice = protocol.Member{ID: "m-alice", Name: "Alice", State: protocol.StateOnline}
	bob   = protocol.Member{ID: "m-bob", Name: "Bob", State: protocol.StateOnline}
	me    = protocol.Member{ID: "m-me", Name: "Me", State: protocol.StateOnline}
)

func msg(seq uint64, from protocol.Member, at time.Time, text string) protocol.Message {
	return protocol.Message{Seq: seq, ID: fmt.Sprintf("c%d", seq), From: from, Text: text, TS: at.UnixMilli()}
}

// rows renders the timeline compactly: "D" day, "G" gap, "*Name:text" for a
// group start, " :text" for a continuation, with [status] for own messages.
func rows(t *Timeline) string {
	var b strings.Builder
	for i := 0; i < t.Len(); i++ {
		it := t.Item(i)
		switch it.Kind {
		case KindDay:
			b.WriteString("D" + it.Day.Format("01-02") + "|")
		case KindGap:
			if it.Text == "" {
				b.WriteString("G(no text)")
			}
			b.WriteString("G|")
		case KindMessage:
			if it.GroupStart {
				b.WriteString("*" + it.Msg.From.Name + ":")
			} else {
				b.WriteString(" :")
			}
			b.WriteString(it.Msg.Text)
			if it.Msg.Own {
				b.WriteString([]string{"", "[pending]", "[sent]", "[failed]"}[it.Msg.Status])
			}
			b.WriteString("|")
		}
	}
	return b.String()
}

func newTL() *Timeline {
	tl := NewTimeline(utc)
	tl.SetSelf(me.ID)
	tl.SetEpoch("e1")
	return tl
}

func TestGroupingBySenderAndFiveMinutes(t *testing.T) {
	tl := newTL()
	tl.Add(msg(1, alice, t0, "a1"))
	tl.Add(msg(2, alice, t0.Add(4*time.Minute), "a2"))               // same group
	tl.Add(msg(3, alice, t0.Add(4*time.Minute+5*time.Minute), "a3")) // 5 min later: still grouped (not more than 5)
	tl.Add(msg(4, alice, t0.Add(15*time.Minute), "a4"))              // 6 min later: new group
	tl.Add(msg(5, bob, t0.Add(15*time.Minute), "b1"))                // other sender
	tl.Add(msg(6, alice, t0.Add(15*time.Minute), "a5"))              // back to alice: new group
	want := "D11-21|*Alice:a1| :a2| :a3|*Alice:a4|*Bob:b1|*Alice:a5|"
	if got := rows(tl); got != want {
		t.Fatalf("rows:\n got %s\nwant %s", got, want)
	}
}

func TestDaySeparatorsBreakGroups(t *testing.T) {
	tl := newTL()
	late := time.Date(2026, 11, 20, 23, 58, 0, 0, utc)
	tl.Add(msg(1, alice, late, "night"))
	tl.Add(msg(2, alice, late.Add(3*time.Minute), "morning")) // next day, within 5 min
	want := "D11-20|*Alice:night|D11-21|*Alice:morning|"
	if got := rows(tl); got != want {
		t.Fatalf("rows:\n got %s\nwant %s", got, want)
	}
}

func TestOutOfOrderArrivalIsSortedBySeqAndDuplicatesIgnored(t *testing.T) {
	tl := newTL()
	tl.Add(msg(1, alice, t0, "one"))
	tl.Add(msg(3, bob, t0.Add(2*time.Minute), "three"))
	if rows(tl) != "D11-21|*Alice:one|*Bob:three|" {
		t.Fatalf("before: %s", rows(tl))
	}
	if !tl.Add(msg(2, alice, t0.Add(time.Minute), "two")) {
		t.Fatal("seq 2 not reported as new")
	}
	if tl.Add(msg(2, alice, t0.Add(time.Minute), "two")) {
		t.Fatal("duplicate seq 2 reported as new")
	}
	want := "D11-21|*Alice:one| :two|*Bob:three|"
	if got := rows(tl); got != want {
		t.Fatalf("rows:\n got %s\nwant %s", got, want)
	}
}

func TestOwnMessageLifecycle(t *testing.T) {
	tl := newTL()
	tl.Add(msg(1, alice, t0, "hi"))
	tl.UpdateOutgoing(Outgoing{ID: "o1", Text: "hello", Status: StatusPending, Created: t0.Add(time.Minute)}, me)
	tl.UpdateOutgoing(Outgoing{ID: "o2", Text: "again", Status: StatusPending, Created: t0.Add(time.Minute)}, me)
	if got, want := rows(tl), "D11-21|*Alice:hi|*Me:hello[pending]| :again[pending]|"; got != want {
		t.Fatalf("pending:\n got %s\nwant %s", got, want)
	}
	// Someone else's message gets seq 2 while ours wait: ours stay at the end.
	tl.Add(msg(2, bob, t0.Add(2*time.Minute), "yo"))
	if got, want := rows(tl), "D11-21|*Alice:hi|*Bob:yo|*Me:hello[pending]| :again[pending]|"; got != want {
		t.Fatalf("after bob:\n got %s\nwant %s", got, want)
	}
	// o2 fails, o1 is acknowledged with seq 3.
	tl.UpdateOutgoing(Outgoing{ID: "o2", Status: StatusFailed, Reason: "too long"}, me)
	tl.UpdateOutgoing(Outgoing{ID: "o1", Status: StatusSent, Seq: 3, TS: t0.Add(3 * time.Minute).UnixMilli()}, me)
	if got, want := rows(tl), "D11-21|*Alice:hi|*Bob:yo|*Me:hello[sent]| :again[failed]|"; got != want {
		t.Fatalf("after ack:\n got %s\nwant %s", got, want)
	}
	// The relay's echo of o1 is not a new message.
	echo := protocol.Message{Seq: 3, ID: "o1", From: me, Text: "hello", TS: t0.Add(3 * time.Minute).UnixMilli()}
	if tl.Add(echo) {
		t.Fatal("echo of an own message counted as new")
	}
	m, ok := tl.Own("o2")
	if !ok || m.Status != StatusFailed || StatusText(m, true) != "Not sent: too long" {
		t.Fatalf("o2 = %+v", m)
	}
	// Retry: pending again, then sent as seq 4.
	tl.UpdateOutgoing(Outgoing{ID: "o2", Status: StatusPending}, me)
	if StatusText(m, false) != "Not sent yet: will send when connected" {
		t.Fatalf("pending offline text = %q", StatusText(m, false))
	}
	tl.UpdateOutgoing(Outgoing{ID: "o2", Status: StatusSent, Seq: 4, TS: t0.Add(4 * time.Minute).UnixMilli()}, me)
	if got, want := rows(tl), "D11-21|*Alice:hi|*Bob:yo|*Me:hello[sent]| :again[sent]|"; got != want {
		t.Fatalf("after retry:\n got %s\nwant %s", got, want)
	}
	if tl.Messages() != 4 {
		t.Fatalf("messages = %d, want 4", tl.Messages())
	}
}

func TestOwnMessagesFromHistoryAreMarkedOwn(t *testing.T) {
	tl := newTL()
	if !tl.Add(protocol.Message{Seq: 1, ID: "x", From: me, Text: "from before", TS: t0.UnixMilli()}) {
		t.Fatal("history message not new")
	}
	if got := rows(tl); got != "D11-21|*Me:from before[sent]|" {
		t.Fatal(got)
	}
}

func TestEchoBeforeAckKeepsOneRow(t *testing.T) {
	tl := NewTimeline(utc) // self not known yet
	tl.SetEpoch("e1")
	tl.UpdateOutgoing(Outgoing{ID: "o1", Text: "hey", Status: StatusPending, Created: t0}, me)
	tl.Add(protocol.Message{Seq: 1, ID: "o1", From: me, Text: "hey", TS: t0.UnixMilli()})
	tl.UpdateOutgoing(Outgoing{ID: "o1", Status: StatusSent, Seq: 1, TS: t0.UnixMilli()}, me)
	if got := rows(tl); got != "D11-21|*Me:hey[sent]|" {
		t.Fatal(got)
	}
}

func TestGapMarker(t *testing.T) {
	tl := newTL()
	tl.Add(msg(1, alice, t0, "one"))
	tl.Add(msg(2, alice, t0.Add(time.Minute), "two"))
	tl.MarkGap("")
	if got := rows(tl); got != "D11-21|*Alice:one| :two|G|" {
		t.Fatalf("gap before page: %s", got)
	}
	// The latest page starts at 40: the marker sits between 2 and 40 and breaks the group.
	tl.Add(msg(40, alice, t0.Add(2*time.Minute), "forty"))
	tl.Add(msg(41, alice, t0.Add(2*time.Minute), "forty-one"))
	if got, want := rows(tl), "D11-21|*Alice:one| :two|G|*Alice:forty| :forty-one|"; got != want {
		t.Fatalf("rows:\n got %s\nwant %s", got, want)
	}
	// Rebuilding from an earlier point keeps the marker.
	tl.Add(msg(39, bob, t0.Add(2*time.Minute), "late"))
	if got, want := rows(tl), "D11-21|*Alice:one| :two|G|*Bob:late|*Alice:forty| :forty-one|"; got != want {
		t.Fatalf("rows:\n got %s\nwant %s", got, want)
	}
}

func TestGapDroppedWhenNothingWasMissing(t *testing.T) {
	tl := newTL()
	tl.Add(msg(1, alice, t0, "one"))
	tl.MarkGap("")
	tl.Add(msg(2, alice, t0, "two"))
	if got := rows(tl); got != "D11-21|*Alice:one| :two|" {
		t.Fatal(got)
	}
}

// After an app restart the timeline is empty; when the relay cannot replay
// what the person missed, the marker still shows, above the page it sent.
func TestGapOnEmptyTimelineShowsAboveFirstMessage(t *testing.T) {
	tl := newTL()
	tl.MarkGap("Some messages may be missing.")
	tl.Add(msg(71, alice, t0, "seventy-one"))
	tl.Add(msg(72, alice, t0, "seventy-two"))
	if got, want := rows(tl), "G|D11-21|*Alice:seventy-one| :seventy-two|"; got != want {
		t.Fatalf("rows:\n got %s\nwant %s", got, want)
	}
	if it := tl.Item(0); it.Text != "Some messages may be missing." {
		t.Fatalf("marker text %q", it.Text)
	}
	// A message inserted above the page later still goes below the marker.
	tl.Add(msg(70, bob, t0, "seventy"))
	if got, want := rows(tl), "G|D11-21|*Bob:seventy|*Alice:seventy-one| :seventy-two|"; got != want {
		t.Fatalf("rows:\n got %s\nwant %s", got, want)
	}
	// Epoch reset on a fresh start: the marker says so, above the new epoch.
	reset := newTL()
	reset.SetEpoch("e2")
	reset.MarkGap("reset")
	reset.Add(msg(1, bob, t0, "new one"))
	if got := rows(reset); got != "G|D11-21|*Bob:new one|" || reset.Item(0).Text != "reset" {
		t.Fatalf("reset: %s", got)
	}
}

func TestRemoveOutgoingDropsOnlyUnsentOwnMessages(t *testing.T) {
	tl := newTL()
	tl.Add(msg(1, alice, t0, "one"))
	tl.UpdateOutgoing(Outgoing{ID: "sent", Text: "delivered", Status: StatusPending, Created: t0}, me)
	tl.UpdateOutgoing(Outgoing{ID: "sent", Status: StatusSent, Seq: 2, TS: t0.UnixMilli()}, me)
	tl.UpdateOutgoing(Outgoing{ID: "bad", Text: "refused", Status: StatusPending, Created: t0}, me)
	tl.UpdateOutgoing(Outgoing{ID: "bad", Status: StatusFailed, Reason: "too long"}, me)
	tl.UpdateOutgoing(Outgoing{ID: "later", Text: "queued", Status: StatusPending, Created: t0}, me)
	if got, want := rows(tl), "D11-21|*Alice:one|*Me:delivered[sent]| :refused[failed]| :queued[pending]|"; got != want {
		t.Fatalf("before:\n got %s\nwant %s", got, want)
	}
	tl.TakeChanged()
	if !tl.RemoveOutgoing("bad") {
		t.Fatal("failed message not removed")
	}
	if got, want := rows(tl), "D11-21|*Alice:one|*Me:delivered[sent]| :queued[pending]|"; got != want {
		t.Fatalf("after:\n got %s\nwant %s", got, want)
	}
	if c := tl.TakeChanged(); c != 3 {
		t.Fatalf("changed from row %d, want 3", c)
	}
	if _, ok := tl.Own("bad"); ok || tl.Messages() != 3 {
		t.Fatalf("still known: messages=%d", tl.Messages())
	}
	if tl.RemoveOutgoing("bad") || tl.RemoveOutgoing("sent") || tl.RemoveOutgoing("nope") {
		t.Fatal("removed a message twice, a sent one, or an unknown one")
	}
}

func TestNewEpochGoesAfterOldWithGap(t *testing.T) {
	tl := newTL()
	tl.Add(msg(5, alice, t0, "old five"))
	tl.SetEpoch("e2") // relay lost its history: seqs restart
	tl.Add(msg(1, bob, t0.Add(time.Minute), "new one"))
	if got, want := rows(tl), "D11-21|*Alice:old five|G|*Bob:new one|"; got != want {
		t.Fatalf("rows:\n got %s\nwant %s", got, want)
	}
}

func TestTakeChangedReportsFirstChangedRow(t *testing.T) {
	tl := newTL()
	tl.Add(msg(1, alice, t0, "one"))
	tl.Add(msg(2, alice, t0, "two"))
	if c := tl.TakeChanged(); c != 0 {
		t.Fatalf("first build changed from %d, want 0", c)
	}
	if c := tl.TakeChanged(); c != -1 {
		t.Fatalf("no change reported as %d", c)
	}
	tl.Add(msg(3, bob, t0, "three")) // rows: D, one, two, three
	if c := tl.TakeChanged(); c != 3 {
		t.Fatalf("append changed from %d, want 3", c)
	}
	tl.UpdateOutgoing(Outgoing{ID: "o", Text: "mine", Status: StatusPending, Created: t0}, me)
	if c := tl.TakeChanged(); c != 4 {
		t.Fatalf("pending changed from %d, want 4", c)
	}
	tl.UpdateOutgoing(Outgoing{ID: "o", Status: StatusFailed, Reason: "x"}, me)
	if c := tl.TakeChanged(); c != 4 {
		t.Fatalf("failed changed from %d, want 4", c)
	}
}

func TestTenThousandMessagesAppendIncrementally(t *testing.T) {
	tl := newTL()
	for i := 1; i <= 10000; i++ {
		from := alice
		if i%3 == 0 {
			from = bob
		}
		tl.Add(msg(uint64(i), from, t0.Add(time.Duration(i)*time.Second), "m"))
		if i%1000 == 0 {
			_ = tl.Len() // the UI reads rows after every few messages
		}
	}
	if tl.Messages() != 10000 {
		t.Fatalf("messages = %d", tl.Messages())
	}
	// Every message shows exactly once, in seq order.
	var seq uint64
	for i := 0; i < tl.Len(); i++ {
		if it := tl.Item(i); it.Kind == KindMessage {
			if it.Msg.Seq != seq+1 {
				t.Fatalf("row %d has seq %d after %d", i, it.Msg.Seq, seq)
			}
			seq = it.Msg.Seq
		}
	}
	if seq != 10000 {
		t.Fatalf("last seq %d", seq)
	}
}

func BenchmarkTimelineAppend(b *testing.B) {
	tl := newTL()
	for i := 0; i < b.N; i++ {
		tl.Add(msg(uint64(i+1), alice, t0.Add(time.Duration(i)*time.Second), "m"))
		_ = tl.Len()
	}
}
