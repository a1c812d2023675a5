package history_test

import (
	"context"
	"log"
	"path/filepath"
	"time"

	"github.com/heartline/heartline/desktop/history"
	"github.com/heartline/heartline/shared/client"
	"github.com/heartline/heartline/shared/protocol"
)

// How the desktop app feeds one room's engine events to the history: the
// event loop hands everything over to a Writer (never waiting on the
// disk), and reads pages, counts and search results from the Store.
func Example() {
	ctx := context.Background()
	store, err := history.Open(filepath.Join("/path/to/app/data", "history.db"), history.Options{})
	if err != nil {
		log.Fatal(err) // the error says what to do (move a foreign file away, update the app)
	}
	defer store.Close()
	writer := store.NewWriter(history.WriterOptions{
		OnError: func(err error) { log.Print(err) },
	})
	defer writer.Close() // before store.Close: writes what is queued

	key := history.RoomKey{Relay: "wss://relay.example:8443", Room: "lobby"}
	myName := "Ana"

	// Resume from what the device holds, so that what a crash lost is
	// asked for again.
	cfg := client.Config{}
	if epoch, last, ok, err := store.ResumePoint(ctx, key); err == nil && ok {
		cfg.Resume = &client.ResumePoint{Epoch: epoch, LastSeq: last}
	}

	epoch := "" // the room's epoch as the engine knows it
	if cfg.Resume != nil {
		epoch = cfg.Resume.Epoch
	}
	var welcome protocol.Welcome
	var epochBefore string
	handle := func(ev client.Event) {
		switch e := ev.(type) {
		case client.Welcomed:
			welcome, epochBefore, epoch = e.Welcome, epoch, e.Welcome.Epoch
		case client.HistoryGap:
			// Comes after Welcomed and before the welcome's messages.
			writer.MarkGap(key, history.GapFromWelcome(epochBefore, e.HeldUpTo, welcome))
		case client.MessageReceived:
			writer.Put(key, history.FromProtocol(epoch, e.Msg, e.Own, myName))
		}
	}
	_ = handle

	// Opening the room: the newest page, with gap markers in it.
	page, _ := store.Latest(ctx, key, 50)
	for _, it := range page.Items {
		switch {
		case it.Msg != nil:
			_ = it.Msg.Time().Format(time.Kitchen)
		case it.Gap != nil:
			_ = "Some messages may be missing here."
		}
	}
	// Scrolling up.
	if msgs := page.Messages(); page.MoreBefore && len(msgs) > 0 {
		page, _ = store.Before(ctx, key, msgs[0].Cursor(), 50)
	}
	// Ctrl+Shift+F, then opening a result.
	hits, _ := store.Search(ctx, "deploy fri", nil, 50)
	if len(hits) > 0 {
		page, _ = store.Around(ctx, hits[0].Room, hits[0].Msg.Ref(), 50)
	}
	// The sidebar after a restart.
	rooms, _ := store.Rooms(ctx)
	_ = rooms
	// Settings: keep 30 days; clear this room.
	store.Prune(ctx, time.Now().AddDate(0, 0, -30))
	store.ClearRoom(ctx, key)
}
