package ui

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/heartline/heartline/desktop/chatview"
	"github.com/heartline/heartline/desktop/settings"
	"github.com/heartline/heartline/shared/client"
	"github.com/heartline/heartline/shared/protocol"
)

// listStore is the sidebar's store in memory.
type listStore struct {
	mu       sync.Mutex
	rooms    []settings.RoomEntry
	selected string
}

func (s *listStore) SaveRooms(rs []settings.RoomEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rooms = append([]settings.RoomEntry(nil), rs...)
}

func (s *listStore) SaveSelectedRoom(k string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.selected = k
}

func (s *listStore) names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, r := range s.rooms {
		out = append(out, r.Room)
	}
	return out
}

type notified struct {
	room, text string
	mention    bool
}

// newRoomsCtl is the multi-room controller with no window: events run on
// a loop standing in for the UI goroutine.
func newRoomsCtl(t *testing.T, loop *uiLoop, name string) (*rooms, *listStore, *[]notified) {
	list := &listStore{}
	var notes []notified
	rs := &rooms{
		sessions: &sessions{store: newMapStore(), clientName: "heartline-desktop/test", do: loop.do},
		store:    list, myName: name,
		onNotify: func(r *roomState, m protocol.Message, mention bool) {
			notes = append(notes, notified{r.Entry.Room, m.Text, mention})
		},
	}
	t.Cleanup(func() { loop.wait(func() {}); rs.stopAll() })
	return rs, list, &notes
}

// Five rooms on two real relays at once, each with its own engine: every
// link comes up, messages count as unread only outside the room on
// screen, a mention counts as one and notifies even where the room's
// notifications are off, the order and the levels are saved, and leaving
// one says bye to that room alone.
func TestRoomsOnTwoRelays(t *testing.T) {
	relayA, relayB := resumeRelay(t, 0), resumeRelay(t, 0)
	loop := newUILoop(t)
	rs, list, notes := newRoomsCtl(t, loop, "Alice")
	open := []settings.RoomEntry{
		{Relay: relayA, Room: "alpha", Notify: settings.NotifyAll},
		{Relay: relayA, Room: "beta", Notify: settings.NotifyMentions},
		{Relay: relayB, Room: "gamma", Notify: settings.NotifyNone},
		{Relay: relayB, Room: "delta", Notify: settings.NotifyAll},
		{Relay: relayB, Room: "alpha", Notify: settings.NotifyAll}, // same name, other relay: another room
	}
	loop.wait(func() {
		for _, e := range open {
			if _, err := rs.open(openRequest{Entry: e, Addr: e.Relay, Name: "Alice"}, nil); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := rs.open(openRequest{Entry: open[0], Addr: relayA, Name: "Alice"}, nil); err != errRoomOpen {
			t.Errorf("opening a listed room again: %v, want errRoomOpen", err)
		}
		rs.selectRoom(open[0].Key())
	})
	eventually(t, loop, "five links connected", func() bool {
		for _, r := range rs.items {
			if r.Link.Phase != chatview.PhaseConnected {
				return false
			}
		}
		return len(rs.items) == 5
	})

	onScreen := newPoster(t, relayA, "alpha")
	beta := newPoster(t, relayA, "beta")
	gamma := newPoster(t, relayB, "gamma")
	left := make(chan string, 8)
	watcher, err := client.New(client.Config{URL: relayB, Room: "gamma", Name: "Watcher", Key: client.NewKey()})
	if err != nil {
		t.Fatal(err)
	}
	wctx, wstop := context.WithCancel(context.Background())
	wdone := make(chan struct{})
	go func() { defer close(wdone); watcher.Run(wctx) }()
	go func() {
		for ev := range watcher.Events() {
			if e, ok := ev.(client.MemberLeft); ok {
				left <- e.Member.Name
			}
		}
	}()
	defer func() { wstop(); <-wdone }()
	waitConnected(t, watcher)
	onScreen.post("seen at once", 2)
	beta.post("chatter", 3)
	gamma.post("@alice can you look", 1)
	gamma.post("and more", 1)

	eventually(t, loop, "unread counts", func() bool {
		return rs.items[1].Unread == 3 && rs.items[2].Unread == 2 && rs.items[2].Mentions == 1
	})
	loop.wait(func() {
		if r := rs.items[0]; r.Unread != 0 || r.Mentions != 0 {
			t.Errorf("the room on screen counts %d unread, %d mentions", r.Unread, r.Mentions)
		}
		if rs.items[1].Mentions != 0 {
			t.Errorf("beta counts %d mentions, want 0", rs.items[1].Mentions)
		}
		if rs.totalUnread() != 5 {
			t.Errorf("total unread %d, want 5", rs.totalUnread())
		}
		// beta notifies on mentions only, gamma on none: only the mention.
		if len(*notes) != 1 || (*notes)[0] != (notified{"gamma", "@alice can you look 1", true}) {
			t.Errorf("notifications %+v, want the mention in gamma alone", *notes)
		}
		// Alt+Shift+Down from alpha: the next room with unread messages.
		if got := rs.neighbour(1, true); got != open[1].Key() {
			t.Errorf("next unread %q, want beta", got)
		}
		if got := rs.neighbour(-1, true); got != open[2].Key() {
			t.Errorf("previous unread %q, want gamma", got)
		}
		if got := rs.neighbour(-1, false); got != open[4].Key() {
			t.Errorf("previous room from the first %q, want the last", got)
		}
		rs.selectRoom(open[2].Key())
		if rs.items[2].Unread != 0 || rs.items[2].Mentions != 0 {
			t.Error("opening gamma did not mark it read")
		}
		// While the window is in the background the room on screen counts too.
		rs.focus(false)
	})
	gamma.post("while away", 1)
	eventually(t, loop, "unread in the room on screen while unfocused", func() bool { return rs.items[2].Unread == 1 })
	loop.wait(func() {
		rs.focus(true)
		if rs.items[2].Unread != 0 {
			t.Error("focusing the window did not mark the room on screen read")
		}
		if !rs.move(open[2].Key(), -2) || rs.items[0].Entry.Room != "gamma" {
			t.Errorf("gamma did not move to the top: %v", list.names())
		}
		if got := list.names(); len(got) != 5 || got[0] != "gamma" || got[1] != "alpha" || got[2] != "beta" {
			t.Errorf("saved order %v", got)
		}
		if rs.move(open[2].Key(), -1) {
			t.Error("moved the first room further up")
		}
		if m := rs.match("ta"); len(m) != 2 || m[0].Entry.Room != "beta" || m[1].Entry.Room != "delta" {
			t.Errorf("match(ta) = %d rooms, want beta (unread) then delta", len(m))
		}
		if m := rs.match("al"); len(m) != 2 || m[0].Entry.Room != "alpha" || m[0].Entry.Relay != relayA {
			t.Errorf("match(al): %d rooms, want both alphas in list order", len(m))
		}
		if m := rs.match("#gam"); len(m) != 1 || m[0].Entry.Room != "gamma" {
			t.Errorf("match(#gam) = %v", m)
		}
	})

	// Leaving gamma says bye there (its member count drops), the others stay.
	loop.wait(func() { rs.leave(open[2].Key()) })
	select {
	case name := <-left:
		if name != "Alice" {
			t.Errorf("%s left gamma, want Alice", name)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no bye from Alice in gamma within 15 s")
	}
	loop.wait(func() {
		if len(rs.items) != 4 || rs.find(open[2].Key()) != nil {
			t.Errorf("%d rooms after leaving gamma", len(rs.items))
		}
		if rs.current() == nil {
			t.Error("no room selected after leaving the selected one")
		}
		if got := list.names(); len(got) != 4 {
			t.Errorf("saved %v after the leave", got)
		}
		for _, r := range rs.items {
			if r.Link.Phase != chatview.PhaseConnected {
				t.Errorf("%s: %v after another room's leave", r.Title(), r.Link.Phase)
			}
		}
	})
}
