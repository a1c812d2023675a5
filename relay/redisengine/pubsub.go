package redisengine

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
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
	for {
		// The loop subscribes every channel when the link is back; wait
		// for it a little (Redis restarting) before giving up.
		s.mu.Lock()
		if s.dc != nil {
			break // still locked
		}
		s.channels[ch] = struct{}{}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return errPubSubDown
		case <-s.stop:
			return errPubSubDown
		case <-time.After(20 * time.Millisecond):
		}
	}
	// Under s.mu, so that a subscribe and an unsubscribe of one channel
	// reach Redis in the order they were decided.
	defer s.mu.Unlock()
	s.channels[ch] = struct{}{}
	start := time.Now()
	err := s.dc.Do(ctx, s.dc.B().Subscribe().Channel(ch).Build()).Error()
	s.e.observe("subscribe", start, err)
	return err
}

// unsubscribe drops room's channel unless stillWanted says, under the same
// lock subscribe takes, that a view of the room came back meanwhile.
func (s *subscriber) unsubscribe(ctx context.Context, room string, stillWanted func() bool) {
	ch := channelOf(room)
	s.mu.Lock()
	defer s.mu.Unlock()
	if stillWanted != nil && stillWanted() {
		return
	}
	delete(s.channels, ch)
	if s.dc != nil {
		start := time.Now()
		err := s.dc.Do(ctx, s.dc.B().Unsubscribe().Channel(ch).Build()).Error()
		s.e.observe("unsubscribe", start, err)
	}
}

func (s *subscriber) onMessage(m rueidis.PubSubMessage) {
	room, ok := strings.CutPrefix(m.Channel, channelPrefix)
	if !ok || s.e.cfg.OnEvents == nil {
		return
	}
	evs, err := decodeEvents(m.Message)
	if err != nil {
		s.e.log.Error("undecodable event on a room channel", "room", room, "err", err)
		return
	}
	s.e.cfg.OnEvents(room, evs)
}

// decodeEvents reads what one publish sent: a batch of messages, or a
// roster change (JSON).
func decodeEvents(msg string) ([]*Event, error) {
	if rest, ok := strings.CutPrefix(msg, "M"); ok {
		return decodeMessages(rest)
	}
	ev := new(Event)
	if err := json.Unmarshal([]byte(msg), ev); err != nil {
		return nil, err
	}
	return []*Event{ev}, nil
}

// decodeMessages reads a batch of messages as publishScript writes it, in
// netstrings ("5:hello"): the epoch, the batch's timestamp, the first
// message's seq, then each message's block (Outgoing.block); seqs are
// consecutive. Every relay decodes every message, so this is a hot path
// JSON was too slow for; the strings share the published message's
// memory.
func decodeMessages(batch string) ([]*Event, error) {
	d := netstrings{rest: batch}
	epoch := d.next()
	ts, errTS := strconv.ParseInt(d.next(), 10, 64)
	seq, errSeq := strconv.ParseUint(d.next(), 10, 64)
	if errTS != nil || errSeq != nil || seq == 0 {
		d.fail()
	}
	var evs []*Event
	for d.err == nil && d.rest != "" {
		ev := &Event{Kind: KindMessage, Epoch: epoch, Seq: seq, TS: ts}
		ev.ID, ev.Client, ev.Name, ev.Avatar, ev.Text = d.next(), d.next(), d.next(), d.next(), d.next()
		evs = append(evs, ev)
		seq++
	}
	if d.err != nil || len(evs) == 0 {
		return nil, errors.New("a malformed message batch")
	}
	return evs, nil
}

type netstrings struct {
	rest string
	err  error
}

func (d *netstrings) fail() { d.err = errors.New("malformed") }

func (d *netstrings) next() string {
	if d.err != nil {
		return ""
	}
	head, tail, ok := strings.Cut(d.rest, ":")
	n, err := strconv.Atoi(head)
	if !ok || err != nil || n < 0 || n > len(tail) {
		d.fail()
		return ""
	}
	d.rest = tail[n:]
	return tail[:n]
}

func (s *subscriber) close() {
	close(s.stop)
	<-s.done
}

// Subscribe makes this relay receive room's events (OnEvents) from now on.
// It fails while the pub/sub link is down; the room is subscribed again
// when it is back.
func (e *Engine) Subscribe(ctx context.Context, room string) error { return e.sub.subscribe(ctx, room) }

// Unsubscribe stops room's events, unless stillWanted (if set) reports,
// checked in order with Subscribe calls, that the room is wanted again.
func (e *Engine) Unsubscribe(ctx context.Context, room string, stillWanted func() bool) {
	e.sub.unsubscribe(ctx, room, stillWanted)
}
