package client

import (
	"fmt"
	"testing"
	"time"

	"github.com/heartline/heartline/relay/server"
)

// An app scrolling back asks for older pages; the answers come as
// HistoryPage events, and a request without a link fails at once.
func TestRequestHistoryPagesBackThroughARealRelay(t *testing.T) {
	relay := startRelay(t, server.Config{Rate: 500, Burst: 500, HistoryPage: 5})
	ann := newMember(t, Config{URL: relay.addr, Name: "ann"})
	ann.run()
	ann.waitConnected()
	for i := 1; i <= 30; i++ {
		if _, err := ann.c.Send(fmt.Sprintf("note %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	ann.waitUntil("every note acked", 10*time.Second, func() bool { return len(ann.c.Outbox()) == 0 })

	bob, err := New(Config{URL: relay.addr, Name: "bob", Key: NewKey(), Room: "lobby"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.RequestHistory(0, 10); err != ErrHistoryUnavailable {
		t.Fatalf("before Run: %v", err)
	}
	col := collect(t, bob)
	runClient(t, bob)
	w := lastOf[Welcomed](t, col.until("welcomed", isEvent[Welcomed])).Welcome
	if len(w.History) != 5 || w.History[0].Seq != 26 {
		t.Fatalf("welcome history: %d from seq %d", len(w.History), w.History[0].Seq)
	}
	col.until("connected", isPhase(Connected))
	before := w.History[0].Seq
	for {
		id, err := bob.RequestHistory(before, 8)
		if err != nil {
			t.Fatal(err)
		}
		page := lastOf[HistoryPage](t, col.until("a page", isEvent[HistoryPage]))
		if page.ID != id || page.Err != "" || page.Epoch != w.Epoch {
			t.Fatalf("page for %s: %+v", id, page)
		}
		for i, m := range page.Messages {
			if want := before - uint64(len(page.Messages)-i); m.Seq != want || m.Text != fmt.Sprintf("note %d", m.Seq) {
				t.Fatalf("page below %d, message %d: seq %d %q", before, i, m.Seq, m.Text)
			}
		}
		before = page.Messages[0].Seq
		if !page.More {
			break
		}
	}
	if before != 1 {
		t.Fatalf("paging back ended at seq %d, not the room's first", before)
	}
	if _, err := bob.RequestHistory(0, 500); err == nil {
		t.Fatal("a request for 500 messages was taken")
	}
}
