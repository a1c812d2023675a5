package client

import (
	"errors"
	"time"

	"github.com/heartline/heartline/shared/protocol"
)

// Older messages, on request: an app that scrolls back past what it holds
// asks the relay (protocol.HistoryRequest) and gets a HistoryPage event.
// Requests go on the current link only; one that link cannot answer (it
// drops first) is answered with an error, so nobody waits for a page that
// will not come.

// ErrHistoryUnavailable: RequestHistory needs a link to a relay that serves
// history (its welcome lists protocol.FeatureHistory).
var ErrHistoryUnavailable = errors.New("older messages can be asked for only while connected to a relay that keeps them")

// historyRequests is the Client's part of it; c.mu guards it.
type historyRequests struct {
	served  bool                       // the current link's relay answers history requests
	queued  []*protocol.HistoryRequest // for the link to send
	waiting map[string]bool            // ids sent or queued, until answered
}

// RequestHistory asks the relay for up to limit messages with seq below
// before (0: the newest; limit 0: the relay's page size, at most
// protocol.HistoryMaxLimit). The answer comes as a HistoryPage event with
// the returned id.
func (c *Client) RequestHistory(before uint64, limit int) (string, error) {
	if limit < 0 || limit > protocol.HistoryMaxLimit {
		return "", errors.New("a history request asks for 1 to 200 messages")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.finished {
		return "", ErrClosed
	}
	if c.state.Phase != Connected || !c.history.served {
		return "", ErrHistoryUnavailable
	}
	req := &protocol.HistoryRequest{ID: "h-" + newMessageID(), Before: before, Limit: limit}
	if c.history.waiting == nil {
		c.history.waiting = make(map[string]bool)
	}
	c.history.waiting[req.ID] = true
	c.history.queued = append(c.history.queued, req)
	c.poke()
	return req.ID, nil
}

// historyServed notes whether the relay just welcomed serves history. c.mu held.
func (c *Client) historyServed(w *protocol.Welcome) {
	c.history.served = false
	for _, f := range w.Features {
		if f == protocol.FeatureHistory {
			c.history.served = true
		}
	}
}

// flushHistory sends the queued requests on the link.
func (l *link) flushHistory() {
	c := l.c
	c.mu.Lock()
	q := c.history.queued
	c.history.queued = nil
	c.mu.Unlock()
	for _, req := range q {
		l.sendFrame(req)
	}
}

// onHistory emits the page a request asked for; an answer to nothing
// (a request from a link that ended) is dropped.
func (l *link) onHistory(h *protocol.History) {
	c := l.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.history.waiting[h.ID] {
		return
	}
	delete(c.history.waiting, h.ID)
	page := HistoryPage{ID: h.ID, Epoch: h.Epoch, Messages: h.Messages, More: h.More}
	if h.Epoch != c.core.epoch {
		page = HistoryPage{ID: h.ID, Err: "the room's history was reset since the request: ask again"}
	}
	c.emitLocked(page)
}

// historyRefused turns an error frame that names a waiting request into its
// answer; false means the error is not about one.
func (l *link) historyRefused(e *protocol.Error) bool {
	c := l.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.ID == "" || !c.history.waiting[e.ID] {
		return false
	}
	delete(c.history.waiting, e.ID)
	c.emitLocked(HistoryPage{ID: e.ID, Err: e.Message, RetryAfter: time.Duration(e.RetryAfterMS) * time.Millisecond})
	return true
}

// historyLinkEnded answers every request the ended link leaves unanswered.
func (c *Client) historyLinkEnded() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id := range c.history.waiting {
		c.emitLocked(HistoryPage{ID: id, Err: "the connection to the relay dropped before it answered: ask again once connected"})
	}
	c.history = historyRequests{}
}
