package redisengine

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// subscriber is the relay's one pub/sub connection: every room with local
// members is one channel on it. When the connection is lost it reconnects,
// subscribes every channel again and calls OnResubscribed, since whatever
// was published meanwhile is gone from pub/sub (the rooms catch up from
// the streams and rosters).
type subscriber struct {
	e *Engine

	mu       sync.Mutex
	channels map[string]struct{}
	dc       rueidis.DedicatedClient // nil while down
	isUp     atomic.Bool

	stop chan struct{}
	done chan struct{}
}

func newSubscriber(e *Engine) *subscriber {
	s := &subscriber{e: e, channels: map[string]struct{}{}, stop: make(chan struct{}), done: make(chan struct{})}
	ready := make(chan struct{})
	go s.run(ready)
	<-ready
	return s
}

func (s *subscriber) up() bool { return s.isUp.Load() }

func (s *subscriber) run(ready chan struct{}) {
	defer close(s.done)
	first := true
	backoff := 50 * time.Millisecond
	for {
		dc, release := s.e.client.Dedicate()
		lost := dc.SetPubSubHooks(rueidis.PubSubHooks{OnMessage: s.onMessage})
		err := s.resubscribe(dc)
		if err == nil {
			backoff = 50 * time.Millisecond
			s.isUp.Store(true)
			if !first {
				s.e.log.Info("redis pub/sub link back; rooms catch up")
				if s.e.cfg.OnResubscribed != nil {
					s.e.cfg.OnResubscribed()
				}
			}
		}
		if first {
			close(ready)
			first = false
		}
		if err == nil {
			select {
			case err = <-lost:
			case <-s.stop:
			}
		}
		s.mu.Lock()
		s.dc = nil
		s.mu.Unlock()
		s.isUp.Store(false)
		release()
		select {
		case <-s.stop:
			return
		default:
		}
		s.e.log.Warn("redis pub/sub link lost; reconnecting", "err", err, "retry_in", backoff)
		select {
		case <-s.stop:
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

// resubscribe subscribes dc to every channel and makes it the current link.
func (s *subscriber) resubscribe(dc rueidis.DedicatedClient) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	chans := make([]string, 0, len(s.channels))
	for ch := range s.channels {
		chans = append(chans, ch)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for len(chans) > 0 {
		n := min(len(chans), 500)
		if err := dc.Do(ctx, dc.B().Subscribe().Channel(chans[:n]...).Build()).Error(); err != nil {
			return err
		}
		chans = chans[n:]
	}
	if err := dc.Do(ctx, dc.B().Ping().Build()).Error(); err != nil && !isPubSubPingReply(err) {
		return err
	}
	s.dc = dc
	return nil
}

// isPubSubPingReply: a PING on a subscribed RESP2 connection answers
// ["pong", ""], which some client versions report as an error.
func isPubSubPingReply(err error) bool { return strings.Contains(strings.ToLower(err.Error()), "pong") }

var errPubSubDown = errors.New("the relay's Redis pub/sub link is down")

// subscribe adds room's channel; it returns once Redis confirmed it, so
// whatever is published afterwards reaches this relay.
func (s *subscriber) subscribe(ctx context.Context, room string) error {
	ch := channelOf(room)
	s.mu.Lock()
	if _, ok := s.channels[ch]; ok && s.dc != nil {
		s.mu.Unlock()
		return nil
	}
	s.channels[ch] = struct{}{}
	dc := s.dc
	s.mu.Unlock()
	if dc == nil {
		return errPubSubDown // the loop subscribes it when the link is back
	}
	start := time.Now()
	err := dc.Do(ctx, dc.B().Subscribe().Channel(ch).Build()).Error()
	s.e.observe("subscribe", start, err)
	return err
}

func (s *subscriber) unsubscribe(ctx context.Context, room string) {
	ch := channelOf(room)
	s.mu.Lock()
	delete(s.channels, ch)
	dc := s.dc
	s.mu.Unlock()
	if dc != nil {
		start := time.Now()
		err := dc.Do(ctx, dc.B().Unsubscribe().Channel(ch).Build()).Error()
		s.e.observe("unsubscribe", start, err)
	}
}

func (s *subscriber) onMessage(m rueidis.PubSubMessage) {
	room, ok := strings.CutPrefix(m.Channel, channelPrefix)
	if !ok || s.e.cfg.OnEvent == nil {
		return
	}
	ev := new(Event)
	if err := json.Unmarshal([]byte(m.Message), ev); err != nil {
		s.e.log.Error("undecodable event on a room channel", "room", room, "err", err)
		return
	}
	s.e.cfg.OnEvent(room, ev)
}

func (s *subscriber) close() {
	close(s.stop)
	<-s.done
}

// Subscribe makes this relay receive room's events (OnEvent) from now on.
// It fails while the pub/sub link is down; the room is subscribed again
// when it is back.
func (e *Engine) Subscribe(ctx context.Context, room string) error { return e.sub.subscribe(ctx, room) }

// Unsubscribe stops room's events.
func (e *Engine) Unsubscribe(ctx context.Context, room string) { e.sub.unsubscribe(ctx, room) }
