package history

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var ctx = context.Background()

func openTemp(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "data", "history.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var lobby = RoomKey{Relay: "wss://relay.example:8443", Room: "lobby"}

// msg makes a message of epoch e at seq, stamped at base + seq seconds.
func msg(e string, seq uint64, text string) Message {
	return Message{Epoch: e, Seq: seq, ID: fmt.Sprintf("m%d", seq), MemberID: "u1", Name: "Ana", Avatar: "builtin:fox",
		Text: text, TS: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC).UnixMilli() + int64(seq)*1000}
}

func seqRange(e string, from, to uint64) []Message {
	var out []Message
	for s := from; s <= to; s++ {
		out = append(out, msg(e, s, fmt.Sprintf("message %d", s)))
	}
	return out
}

// render writes a page as a person would see it: seqs, and "~gap~" where a
// marker shows.
func render(p Page) string {
	var parts []string
	for _, it := range p.Items {
		if it.Msg != nil {
			parts = append(parts, fmt.Sprintf("%s%d", it.Msg.Epoch, it.Msg.Seq))
		} else {
			g := "gap"
			if it.Gap.Marked {
				g = "marked-gap"
			}
			parts = append(parts, g)
		}
	}
	return strings.Join(parts, " ")
}

func TestPutIsIdempotentByEpochAndSeq(t *testing.T) {
	s := openTemp(t)
	if err := s.Put(ctx, lobby, seqRange("a", 1, 10)); err != nil {
		t.Fatal(err)
	}
	// A resume replays 6..12: nothing doubles, 11 and 12 are added.
	if err := s.Put(ctx, lobby, seqRange("a", 6, 12)); err != nil {
		t.Fatal(err)
	}
	// The relay address differs only in case and spaces: the same room.
	p, err := s.Latest(ctx, RoomKey{Relay: "  WSS://Relay.Example:8443 ", Room: "lobby"}, 100)
	if err != nil {
		t.Fatal(err)
	}
	if got := render(p); got != "a1 a2 a3 a4 a5 a6 a7 a8 a9 a10 a11 a12" {
		t.Fatalf("latest = %q", got)
	}
	if p.MoreBefore || p.MoreAfter {
		t.Fatalf("more flags on the whole room: %+v", p)
	}
	if !lobby.Same(RoomKey{Relay: " WSS://RELAY.example:8443", Room: "lobby"}) || lobby.Same(RoomKey{Relay: lobby.Relay, Room: "Lobby"}) {
		t.Fatal("Same")
	}
	// A new epoch reuses seq numbers: separate messages.
	reset := msg("b", 1, "after the reset")
	reset.TS += 3_600_000
	if err := s.Put(ctx, lobby, []Message{reset}); err != nil {
		t.Fatal(err)
	}
	p, _ = s.Latest(ctx, lobby, 2)
	if got := render(p); got != "a12 b1" {
		t.Fatalf("latest 2 = %q", got)
	}
	// Another room on the same relay is separate.
	other := RoomKey{Relay: lobby.Relay, Room: "garden"}
	p, _ = s.Latest(ctx, other, 10)
	if len(p.Items) != 0 {
		t.Fatalf("unknown room has items: %q", render(p))
	}
}

func TestPutRefusesSeqZero(t *testing.T) {
	s := openTemp(t)
	err := s.Put(ctx, lobby, []Message{msg("a", 1, "ok"), {Epoch: "a", Seq: 0, Text: "bad"}})
	if err == nil || !strings.Contains(err.Error(), "seq 0") {
		t.Fatalf("err = %v", err)
	}
	p, _ := s.Latest(ctx, lobby, 10)
	if len(p.Items) != 0 {
		t.Fatalf("a refused batch left %q", render(p))
	}
}

func TestPagingBeforeAfterAround(t *testing.T) {
	s := openTemp(t)
	if err := s.Put(ctx, lobby, seqRange("a", 1, 25)); err != nil {
		t.Fatal(err)
	}
	p, err := s.Latest(ctx, lobby, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := render(p); got != "a16 a17 a18 a19 a20 a21 a22 a23 a24 a25" || !p.MoreBefore || p.MoreAfter {
		t.Fatalf("latest = %q %+v", got, p)
	}
	p, _ = s.Before(ctx, lobby, p.Messages()[0].Cursor(), 10)
	if got := render(p); got != "a6 a7 a8 a9 a10 a11 a12 a13 a14 a15" || !p.MoreBefore || !p.MoreAfter {
		t.Fatalf("before = %q %+v", got, p)
	}
	p, _ = s.Before(ctx, lobby, p.Messages()[0].Cursor(), 10)
	if got := render(p); got != "a1 a2 a3 a4 a5" || p.MoreBefore {
		t.Fatalf("oldest = %q %+v", got, p)
	}
	p, err = s.Around(ctx, lobby, Ref{Epoch: "a", Seq: 3}, 5)
	if err != nil {
		t.Fatal(err)
	}
	if got := render(p); got != "a1 a2 a3 a4 a5" || p.MoreBefore || !p.MoreAfter {
		t.Fatalf("around 3 = %q %+v", got, p)
	}
	p, _ = s.After(ctx, lobby, p.Messages()[4].Cursor(), 4)
	if got := render(p); got != "a6 a7 a8 a9" || !p.MoreAfter {
		t.Fatalf("after = %q %+v", got, p)
	}
	p, _ = s.Around(ctx, lobby, Ref{Epoch: "a", Seq: 24}, 5)
	if got := render(p); got != "a22 a23 a24 a25" || p.MoreAfter || !p.MoreBefore {
		t.Fatalf("around 24 = %q %+v", got, p)
	}
	if _, err := s.Around(ctx, lobby, Ref{Epoch: "a", Seq: 99}, 5); err != ErrNotFound {
		t.Fatalf("around a missing message: %v", err)
	}
}

func TestOrderFollowsRelayTimeAcrossEpochs(t *testing.T) {
	s := openTemp(t)
	// Epoch "z" sorts after "a" as a string but came first in time.
	old := seqRange("z", 1, 3)
	newer := seqRange("a", 1, 2)
	for i := range newer {
		newer[i].TS += 3_600_000
	}
	s.Put(ctx, lobby, newer)
	s.Put(ctx, lobby, old)
	s.MarkGap(ctx, lobby, Gap{After: Ref{"z", 3}, Before: Ref{"a", 1}})
	p, _ := s.Latest(ctx, lobby, 10)
	if got := render(p); got != "z1 z2 z3 marked-gap a1 a2" {
		t.Fatalf("timeline = %q", got)
	}
}

func TestGapsShowWhereHistoryMayBeMissing(t *testing.T) {
	s := openTemp(t)
	s.Put(ctx, lobby, seqRange("a", 1, 5))
	// A resume came back recovered:false: the relay sent its latest page
	// 40..42; MarkGap comes before the page is stored (the event order).
	if err := s.MarkGap(ctx, lobby, Gap{After: Ref{"a", 5}, Before: Ref{"a", 40}}); err != nil {
		t.Fatal(err)
	}
	p, _ := s.Latest(ctx, lobby, 10)
	if got := render(p); got != "a1 a2 a3 a4 a5 marked-gap" {
		t.Fatalf("before the page is stored: %q", got)
	}
	s.Put(ctx, lobby, seqRange("a", 40, 42))
	p, _ = s.Latest(ctx, lobby, 10)
	if got := render(p); got != "a1 a2 a3 a4 a5 marked-gap a40 a41 a42" {
		t.Fatalf("after: %q", got)
	}
	g := p.Items[5].Gap
	if g.After != (Ref{"a", 5}) || g.Before != (Ref{"a", 40}) || g.Missing != 34 || g.EpochChanged || g.Text() != "34 messages are missing here." {
		t.Fatalf("gap = %+v %q", g, g.Text())
	}
	// Paging: the gap shows once, at the page boundary, in the older page.
	p, _ = s.Latest(ctx, lobby, 3)
	if got := render(p); got != "a40 a41 a42" {
		t.Fatalf("newest page: %q", got)
	}
	p, _ = s.Before(ctx, lobby, p.Messages()[0].Cursor(), 2)
	if got := render(p); got != "a4 a5 marked-gap" {
		t.Fatalf("older page: %q", got)
	}
	// A hole nobody reported (a dropped write, a join without resume) shows
	// too.
	s.Put(ctx, lobby, []Message{msg("a", 44, "after a silent hole")})
	p, _ = s.Latest(ctx, lobby, 3)
	if got := render(p); got != "a41 a42 gap a44" {
		t.Fatalf("silent hole: %q", got)
	}
	// Fetching the missing messages from the relay closes both gaps.
	s.Put(ctx, lobby, seqRange("a", 6, 39))
	s.Put(ctx, lobby, []Message{msg("a", 43, "filled")})
	p, _ = s.Latest(ctx, lobby, 100)
	if strings.Contains(render(p), "gap") || len(p.Items) != 44 {
		t.Fatalf("after filling: %q", render(p))
	}
	// The epoch changes: the relay lost its history.
	later := seqRange("b", 7, 8)
	for i := range later {
		later[i].TS += 3_600_000
	}
	s.Put(ctx, lobby, later)
	p, _ = s.Latest(ctx, lobby, 3)
	if got := render(p); got != "a44 gap b7 b8" || !p.Items[1].Gap.EpochChanged {
		t.Fatalf("new epoch from seq 7: %q", got)
	}
}

func TestNewEpochFromItsFirstMessageIsNoGapUnlessMarked(t *testing.T) {
	s := openTemp(t)
	s.Put(ctx, lobby, seqRange("a", 1, 2))
	later := seqRange("b", 1, 2)
	for i := range later {
		later[i].TS += 3_600_000
	}
	s.Put(ctx, lobby, later)
	p, _ := s.Latest(ctx, lobby, 10)
	if got := render(p); got != "a1 a2 b1 b2" {
		t.Fatalf("unmarked: %q", got)
	}
	s.MarkGap(ctx, lobby, Gap{After: Ref{"a", 2}, Before: Ref{"b", 1}})
	p, _ = s.Latest(ctx, lobby, 10)
	if got := render(p); got != "a1 a2 marked-gap b1 b2" {
		t.Fatalf("marked: %q", got)
	}
}

func TestHolesAndResumePoint(t *testing.T) {
	s := openTemp(t)
	if _, _, ok, err := s.ResumePoint(ctx, lobby); ok || err != nil {
		t.Fatalf("empty room: ok=%v err=%v", ok, err)
	}
	s.Put(ctx, lobby, seqRange("a", 3, 5))
	s.Put(ctx, lobby, seqRange("a", 9, 10))
	s.Put(ctx, lobby, seqRange("a", 20, 21))
	holes, err := s.Holes(ctx, lobby, "a")
	if err != nil {
		t.Fatal(err)
	}
	want := []SeqRange{{"a", 11, 19}, {"a", 6, 8}, {"a", 1, 2}}
	if !slices.Equal(holes, want) {
		t.Fatalf("holes = %v, want %v", holes, want)
	}
	// A resume from 5 asks the relay for 6 onwards: what the device lacks.
	e, last, ok, err := s.ResumePoint(ctx, lobby)
	if err != nil || !ok || e != "a" || last != 5 {
		t.Fatalf("resume = %q %d %v %v", e, last, ok, err)
	}
	// Once the relay said it no longer has 6..8 (recovered:false, page
	// from 9), that hole is accepted: resume from 10.
	s.MarkGap(ctx, lobby, Gap{After: Ref{"a", 5}, Before: Ref{"a", 9}})
	if _, last, _, _ = s.ResumePoint(ctx, lobby); last != 10 {
		t.Fatalf("resume after the marked gap = %d", last)
	}
}

func TestRoomsCountUnreadAndMentions(t *testing.T) {
	s := openTemp(t)
	garden := RoomKey{Relay: "ws://10.0.0.2:8080", Room: "garden"}
	msgs := seqRange("a", 1, 6)
	msgs[1].Mentions = true
	msgs[4].Mentions = true
	msgs[5].Own = true
	s.Put(ctx, lobby, msgs)
	s.Put(ctx, garden, seqRange("g", 1, 2))
	rooms, err := s.Rooms(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rooms) != 2 {
		t.Fatalf("rooms = %+v", rooms)
	}
	byRoom := map[string]RoomInfo{}
	for _, r := range rooms {
		byRoom[r.Key.Room] = r
	}
	l := byRoom["lobby"]
	if l.Unread != 5 || l.Mentions != 2 || l.Last == nil || l.Last.Seq != 6 || l.Key.Relay != lobby.Relay {
		t.Fatalf("lobby = %+v", l)
	}
	// Read up to 3: one mention (5) and 4, 5 unread; 6 is our own.
	if err := s.MarkRead(ctx, lobby, msgs[2].Cursor()); err != nil {
		t.Fatal(err)
	}
	// The marker never moves back.
	s.MarkRead(ctx, lobby, msgs[0].Cursor())
	rooms, _ = s.Rooms(ctx)
	for _, r := range rooms {
		if r.Key.Room == "lobby" && (r.Unread != 2 || r.Mentions != 1) {
			t.Fatalf("after MarkRead: %+v", r)
		}
		if r.Key.Room == "garden" && (r.Unread != 2 || r.Mentions != 0) {
			t.Fatalf("garden: %+v", r)
		}
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Put(ctx, lobby, seqRange("a", 1, 30))
	s.MarkRead(ctx, lobby, msg("a", 20, "").Cursor())
	s.Close()
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p, _ := s.Latest(ctx, lobby, 50)
	if len(p.Messages()) != 30 {
		t.Fatalf("after reopen: %q", render(p))
	}
	rooms, _ := s.Rooms(ctx)
	if len(rooms) != 1 || rooms[0].Unread != 10 {
		t.Fatalf("rooms after reopen: %+v", rooms)
	}
}

func TestUnreadCountsStopAtTheCap(t *testing.T) {
	s := openTemp(t)
	msgs := seqRange("a", 1, CountCap+5)
	for i := range msgs {
		msgs[i].Mentions = i%2 == 0
	}
	s.Put(ctx, lobby, msgs)
	rooms, err := s.Rooms(ctx)
	if err != nil || len(rooms) != 1 || rooms[0].Unread != CountCap || rooms[0].Mentions != 503 {
		t.Fatalf("%+v %v", rooms, err)
	}
}

func TestResumePointFollowsTheNewestEpoch(t *testing.T) {
	s := openTemp(t)
	s.Put(ctx, lobby, seqRange("a", 1, 50))
	later := seqRange("b", 1, 7)
	for i := range later {
		later[i].TS += 3_600_000
	}
	s.Put(ctx, lobby, later)
	if e, last, ok, err := s.ResumePoint(ctx, lobby); err != nil || !ok || e != "b" || last != 7 {
		t.Fatalf("resume = %q %d %v %v", e, last, ok, err)
	}
}

// Reads run beside the writer (WAL): under -race this also checks the
// Store's own state.
func TestReadsRunWhileTheWriterWrites(t *testing.T) {
	s := openTemp(t)
	w := s.NewWriter(WriterOptions{MaxBatch: 16})
	rooms := []RoomKey{lobby, {Relay: lobby.Relay, Room: "garden"}}
	done := make(chan struct{})
	errs := make(chan error, 3)
	for r := range 3 {
		go func() {
			for {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				var err error
				switch r {
				case 0:
					_, err = s.Latest(ctx, rooms[0], 20)
				case 1:
					_, err = s.Search(ctx, "message 1", nil, 10)
				case 2:
					_, err = s.Rooms(ctx)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for seq := uint64(1); seq <= 300; seq++ {
		w.Put(rooms[seq%2], msg("a", seq, fmt.Sprintf("message %d", seq)))
		if seq%50 == 0 {
			w.Flush(ctx)
		}
	}
	w.Close()
	close(done)
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range rooms {
		if p, _ := s.Latest(ctx, k, 500); len(p.Messages()) != 150 {
			t.Fatalf("%v: %d messages", k, len(p.Messages()))
		}
	}
}
