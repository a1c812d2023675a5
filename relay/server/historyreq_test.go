package server

import (
	"fmt"
	"testing"

	"github.com/heartline/heartline/internal/redistest"
	"github.com/heartline/heartline/shared/protocol"
)

// A member who scrolls back past what it holds asks the relay for older
// pages (protocol.HistoryRequest): each page is contiguous, ends below
// what was asked, and says whether the relay holds anything older.
func TestHistoryRequestsPageBack(t *testing.T) {
	tune := func(cfg Config) Config {
		cfg.Rate, cfg.Burst, cfg.HistoryPage, cfg.History = 1000, 1000, 5, 25
		return cfg
	}
	t.Run("bolt", func(t *testing.T) { historyPaging(t, startRelay(t, tune(fastConfig(t)))) })
	t.Run("redis", func(t *testing.T) {
		rs := redistest.Start(t, redistest.Options{AppendOnly: true})
		historyPaging(t, startRelay(t, tune(redisConfig(t, rs))))
	})
}

func historyPaging(t *testing.T, tr *testRelay) {
	alice, _ := tr.join("lobby", "alice", newKey())
	for i := 1; i <= 40; i++ {
		alice.msg(fmt.Sprint(i), fmt.Sprintf("message %d", i))
		alice.expect(protocol.TypeAck)
	}
	bob, w := tr.join("lobby", "bob", newKey())
	if len(w.Features) != 1 || w.Features[0] != protocol.FeatureHistory {
		t.Fatalf("the welcome lists features %v", w.Features)
	}
	if len(w.History) != 5 || w.History[0].Seq != 36 {
		t.Fatalf("welcome history: %d messages from seq %d", len(w.History), w.History[0].Seq)
	}
	before, pages, lowest := w.History[0].Seq, 0, w.History[0].Seq
	for {
		bob.send(&protocol.HistoryRequest{ID: fmt.Sprintf("h%d", pages), Before: before, Limit: 7})
		h := bob.expect(protocol.TypeHistory).(*protocol.History)
		pages++
		if h.ID != fmt.Sprintf("h%d", pages-1) || h.Epoch != w.Epoch {
			t.Fatalf("page %d: id %q epoch %q", pages, h.ID, h.Epoch)
		}
		for i, m := range h.Messages {
			if want := before - uint64(len(h.Messages)-i); m.Seq != want || m.Text != fmt.Sprintf("message %d", m.Seq) || m.From.Name != "alice" {
				t.Fatalf("page %d, message %d: %+v, want seq %d", pages, i, m, want)
			}
		}
		if len(h.Messages) > 0 {
			lowest = h.Messages[0].Seq
		}
		if !h.More {
			break
		}
		if len(h.Messages) != 7 || pages > 10 {
			t.Fatalf("page %d has %d messages and more", pages, len(h.Messages))
		}
		before = h.Messages[0].Seq
	}
	// The relay keeps at least History (25) messages (Redis trims its
	// streams roughly, so it may keep them all): paging ends at what it has.
	if lowest < 1 || lowest > 16 {
		t.Fatalf("paging stopped at seq %d after %d pages", lowest, pages)
	}
	// Before 0 is the newest page.
	bob.send(&protocol.HistoryRequest{ID: "newest", Limit: 3})
	if h := bob.expect(protocol.TypeHistory).(*protocol.History); len(h.Messages) != 3 || h.Messages[2].Seq != 40 || !h.More {
		t.Fatalf("the newest page: %+v", h)
	}
	bob.send(&protocol.HistoryRequest{ID: "big", Limit: protocol.HistoryMaxLimit + 1})
	if e := bob.expectError(protocol.ErrBadFrame); e.ID != "big" {
		t.Fatalf("a too-big limit: error for %q", e.ID)
	}
	// A flood is refused with a wait, and the connection stays usable.
	limited := 0
	for i := range historyBurst + 5 {
		bob.send(&protocol.HistoryRequest{ID: fmt.Sprintf("flood%d", i), Limit: 1})
	}
	for range historyBurst + 5 {
		f, err := bob.next(frameWait)
		if err != nil {
			t.Fatal(err)
		}
		if e, ok := f.(*protocol.Error); ok && e.Code == protocol.ErrRateLimited && e.RetryAfterMS > 0 {
			limited++
		}
	}
	if limited == 0 {
		t.Fatal("a flood of history requests was not refused")
	}
	bob.msg("still", "still here")
	bob.expect(protocol.TypeAck)
}
