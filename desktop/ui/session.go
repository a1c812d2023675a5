package ui

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heartline/heartline/desktop/chatview"
	"github.com/heartline/heartline/desktop/settings"
	"github.com/heartline/heartline/shared/client"
)

// session is one connection to one room: the client engine and the
// goroutine that runs it; the engine hands its events straight to the UI
// goroutine (Config.Deliver). The UI owns it: start once, stop once.
type session struct {
	c           *client.Client
	relay, room string
	cancel      context.CancelFunc
	wg          sync.WaitGroup

	// welcomed is set once the relay has welcomed this session: from then
	// on the engine's resume point is at least what was saved before.
	welcomed atomic.Bool
	// saved is the resume point last saved for this relay and room, and
	// savedAt when this session saved it (UI goroutine only).
	saved   settings.ResumePoint
	savedAt time.Time

	mu     sync.Mutex
	runErr error
}

// sessionConfig is what a session needs from the profile.
type sessionConfig struct {
	Relay, Room, Name, Avatar, Token, Key string
	OutboxDir                             string // "" keeps the outbox in memory
	ClientName                            string
	Logger                                *slog.Logger
	// Resume is where to pick up (Config.Resume); nil joins fresh.
	Resume *client.ResumePoint
	// Saved is the resume point saved for this relay and room (zero: none).
	Saved settings.ResumePoint
}

// startSession validates cfg, starts the engine, and delivers its events in
// batches to apply on the UI goroutine (through do, which is fyne.Do in the
// app). It returns at once; stop ends it.
func startSession(cfg sessionConfig, do func(func()), apply func([]client.Event)) (*session, error) {
	var store client.OutboxStore
	if cfg.OutboxDir != "" {
		fo, err := client.NewFileOutbox(client.RoomFile(cfg.OutboxDir, "outbox.json", cfg.Relay, cfg.Room, ""))
		if err != nil {
			return nil, err
		}
		store = fo
	}
	s := &session{relay: cfg.Relay, room: cfg.Room, saved: cfg.Saved}
	c, err := client.New(client.Config{
		URL: cfg.Relay, Room: cfg.Room, Name: cfg.Name, Avatar: cfg.Avatar, Token: cfg.Token,
		Key: cfg.Key, Client: cfg.ClientName, Outbox: store, Logger: cfg.Logger, Resume: cfg.Resume,
		// Whatever queued up while the UI was busy goes in one update.
		Deliver: func(batch []client.Event) {
			for _, ev := range batch {
				if _, ok := ev.(client.Welcomed); ok {
					s.welcomed.Store(true)
				}
			}
			do(func() { apply(batch) })
		},
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.c, s.cancel = c, cancel
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		err := c.Run(ctx)
		s.mu.Lock()
		s.runErr = err
		s.mu.Unlock()
		for range c.Events() { // closed once the last batch went to do
		}
	}()
	return s, nil
}

// stop leaves the room (bye, so the others see it at once), waiting at most
// wait for that, then cuts the link and waits for the engine and its last events.
func (s *session) stop(wait time.Duration) {
	s.c.Leave()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(wait):
		s.cancel()
		<-done
	}
	s.cancel()
}

// drop cuts the link without a bye (the relay keeps the member, away, for
// its grace period) and waits for the engine and its last events.
func (s *session) drop() {
	s.cancel()
	s.wg.Wait()
}

func (s *session) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runErr
}

// linkOf maps the engine's state to the view's.
func linkOf(st client.State) chatview.Link {
	l := chatview.Link{
		RTT: st.RTT, Attempt: st.Attempt, NextTry: st.NextTry,
		LastError: st.LastError, StopReason: st.StopReason, CloseCode: st.CloseCode,
	}
	switch st.Phase {
	case client.Connecting:
		l.Phase = chatview.PhaseConnecting
	case client.Connected:
		l.Phase = chatview.PhaseConnected
	case client.Reconnecting:
		l.Phase = chatview.PhaseReconnecting
	case client.Stopped:
		l.Phase = chatview.PhaseStopped
	default:
		l.Phase = chatview.PhaseOffline
	}
	return l
}

// outgoingOf maps an outbox item to the view's.
func outgoingOf(it client.OutboxItem) chatview.Outgoing {
	o := chatview.Outgoing{ID: it.ID, Text: it.Text, Reason: it.Reason, Seq: it.Seq, TS: it.TS, Created: it.Created}
	switch it.Status {
	case client.Sent:
		o.Status = chatview.StatusSent
	case client.Failed:
		o.Status = chatview.StatusFailed
	default:
		o.Status = chatview.StatusPending
	}
	return o
}

var errNoSession = errors.New("not connected to a room")

// resumeContext is how many messages before the last one read the app asks
// the relay for when it starts again: it keeps no history of its own, so
// these give what was missed its context. It is the relay's default page.
const resumeContext = 50

// resumeSaveEvery throttles saving the resume point while the app runs; it
// is saved at once when a session ends.
const resumeSaveEvery = 5 * time.Second

// resumeFrom is what to ask the relay for after an app start, given where
// the person had read up to: the context before it too.
func resumeFrom(saved settings.ResumePoint) *client.ResumePoint {
	return &client.ResumePoint{Epoch: saved.Epoch, LastSeq: saved.LastSeq - min(saved.LastSeq, resumeContext)}
}

// saveResume keeps the engine's resume point for the next start, at most
// every resumeSaveEvery unless force. It runs on the UI goroutine.
func (s *session) saveResume(store roomStore, now time.Time, force bool) {
	// Before a welcome the engine holds only the point it started from
	// (context included): saving that would move the person back.
	if !s.welcomed.Load() || (!force && now.Sub(s.savedAt) < resumeSaveEvery) {
		return
	}
	rp := s.c.ResumePoint()
	p := settings.ResumePoint{Epoch: rp.Epoch, LastSeq: rp.LastSeq}
	if p.Epoch == "" || p == s.saved || (p.Epoch == s.saved.Epoch && p.LastSeq < s.saved.LastSeq) {
		return // nothing new; within one epoch the point only moves forward
	}
	store.SaveResumePoint(s.relay, s.room, p)
	s.saved, s.savedAt = p, now
}
