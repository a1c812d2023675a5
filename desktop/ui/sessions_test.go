package ui

import (
	"sync"
	"testing"
	"time"

	"github.com/heartline/heartline/desktop/settings"
	"github.com/heartline/heartline/shared/client"
)

// mapStore is a roomStore in memory: the controller needs no Fyne
// preferences, no app and no window.
type mapStore struct {
	mu      sync.Mutex
	resumes map[string]settings.ResumePoint
	keys    map[string]string
}

func newMapStore() *mapStore {
	return &mapStore{resumes: map[string]settings.ResumePoint{}, keys: map[string]string{}}
}

func (m *mapStore) ResumePoint(relay, room string) (settings.ResumePoint, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rp, ok := m.resumes[relay+"|"+room]
	return rp, ok
}

func (m *mapStore) SaveResumePoint(relay, room string, rp settings.ResumePoint) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.resumes[relay+"|"+room] = rp
}

func (m *mapStore) MemberKey(relay, room string, newKey func() string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	k, ok := m.keys[relay+"|"+room]
	if !ok {
		k = newKey()
		m.keys[relay+"|"+room] = k
	}
	return k
}

// The session controller joins, stops and resumes without a window: a
// first join builds a view with nothing read; leaving saves where the room
// was; joining again asks for the missed messages with context and hands
// the view where the person had read; a rejoin of the same room keeps the
// view and the member.
func TestSessionControllerJoinStopResumeWithoutAWindow(t *testing.T) {
	addr := resumeRelay(t, 0)
	bob := newPoster(t, addr, "team")
	store := newMapStore()
	ctl := &sessions{store: store, clientName: "heartline-desktop/test", do: func(f func()) { f() }}
	p := settings.Profile{Relay: addr, Room: "team", Name: "Alice"}

	views := 0
	var readUpTo *settings.ResumePoint
	newView := func(r *settings.ResumePoint) { views++; readUpTo = r }
	ignore := func([]client.Event) {}

	s, err := ctl.join(nil, joinRequest{Profile: p}, newView, ignore)
	if err != nil {
		t.Fatal(err)
	}
	if views != 1 || readUpTo != nil {
		t.Fatalf("first join: %d views, read up to %+v; want one view, nothing read", views, readUpTo)
	}
	waitConnected(t, s.c)
	bob.post("before", 3)
	waitFor(t, "the three messages", func() bool { return s.c.ResumePoint().LastSeq >= 3 })
	ctl.stop(s, true)
	saved, ok := store.ResumePoint(addr, "team")
	if !ok || saved != (settings.ResumePoint{Epoch: s.c.ResumePoint().Epoch, LastSeq: 3}) {
		t.Fatalf("saved after leaving: %+v %v, want the room's epoch and 3", saved, ok)
	}

	bob.post("while away", 2)
	s2, err := ctl.join(nil, joinRequest{Profile: p}, newView, ignore)
	if err != nil {
		t.Fatal(err)
	}
	if views != 2 || readUpTo == nil || *readUpTo != saved {
		t.Fatalf("second join: %d views, read up to %+v; want a new view reading up to %+v", views, readUpTo, saved)
	}
	waitConnected(t, s2.c)
	waitFor(t, "the missed messages", func() bool { return s2.c.ResumePoint().LastSeq >= 5 })

	// A new name in the same room: the view stays, the member too.
	p.Name = "Alicia"
	s3, err := ctl.join(s2, joinRequest{Profile: p, Same: true}, newView, ignore)
	if err != nil {
		t.Fatal(err)
	}
	if views != 2 {
		t.Fatal("a rejoin of the same room built a new view")
	}
	if got := s3.c.ResumePoint(); got.LastSeq != 5 {
		t.Fatalf("the rejoin starts from %+v, want where the engine was (5)", got)
	}
	waitConnected(t, s3.c)
	ctl.stop(s3, true)
	if rp, _ := store.ResumePoint(addr, "team"); rp.LastSeq != 5 {
		t.Fatalf("saved %+v after the rejoin, want 5", rp)
	}
}

// waitFor polls cond for up to 15 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 15 s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
