package ui

import (
	"log/slog"
	"time"

	"github.com/heartline/heartline/desktop/settings"
	"github.com/heartline/heartline/shared/client"
)

// roomStore is what the session controller keeps per relay and room:
// settings.Store in the app, a map in tests.
type roomStore interface {
	ResumePoint(relay, room string) (settings.ResumePoint, bool)
	SaveResumePoint(relay, room string, rp settings.ResumePoint)
	MemberKey(relay, room string, newKey func() string) string
}

// sessions is the desktop's session controller, without Fyne: how a
// session starts (the member key, where to resume), how it ends (with or
// without a bye) and the resume point kept across app starts. The UI owns
// the current session and the views, and calls it on its goroutine; its
// tests need no window.
type sessions struct {
	store      roomStore
	dataDir    string // the outbox folder; "" keeps it in memory
	clientName string
	log        *slog.Logger
	do         func(func()) // runs a batch of events on the UI goroutine
}

// joinRequest is one join: the profile (Relay already the address to dial,
// the embedded relay's in host mode) and its token.
type joinRequest struct {
	Profile settings.Profile
	Token   string
	// Same: cur is on this relay and room and its view stays: no bye (the
	// others see a rename, not someone leaving and joining) and the engine
	// picks up exactly where cur is.
	Same bool
}

// join ends cur (nil: none) and starts the session for req. Unless
// req.Same, newView is called, between the two, with where the person had
// read (nil: nothing saved) so the UI can build the room's view. apply gets
// the new session's events on the UI goroutine.
func (m *sessions) join(cur *session, req joinRequest, newView func(readUpTo *settings.ResumePoint), apply func([]client.Event)) (*session, error) {
	p := req.Profile
	var resume *client.ResumePoint
	if req.Same && cur != nil {
		// The view holds the messages: pick up exactly where the engine is.
		if rp := cur.c.ResumePoint(); rp.Epoch != "" {
			resume = &rp
		}
	}
	if cur != nil {
		m.stop(cur, !req.Same) // saves the resume point
	}
	saved, haveSaved := m.store.ResumePoint(p.Relay, p.Room)
	if !req.Same {
		var readUpTo *settings.ResumePoint
		if haveSaved {
			// Nothing on screen yet: ask for what the person missed since
			// they last had the room open, with some context before it.
			resume = resumeFrom(saved)
			readUpTo = &saved
		}
		newView(readUpTo)
	}
	key := m.store.MemberKey(p.Relay, p.Room, client.NewKey)
	return startSession(sessionConfig{
		Relay: p.Relay, Room: p.Room, Name: p.Name, Avatar: p.Avatar, Token: req.Token, Key: key,
		OutboxDir: m.dataDir, ClientName: m.clientName, Logger: m.log,
		Resume: resume, Saved: saved,
	}, m.do, apply)
}

// stop ends s: with a bye (leaving the room, waiting at most 2 s for it)
// or without (coming straight back), then saves its resume point.
func (m *sessions) stop(s *session, bye bool) {
	if bye {
		s.stop(2 * time.Second)
	} else {
		s.drop()
	}
	s.saveResume(m.store, time.Now(), true)
}

// tick saves the resume point of s (nil: none) while it runs, throttled.
func (m *sessions) tick(s *session, now time.Time) {
	if s != nil {
		s.saveResume(m.store, now, false)
	}
}
