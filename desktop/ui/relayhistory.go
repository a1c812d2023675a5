package ui

import (
	"context"
	"time"

	"github.com/heartline/heartline/shared/client"
)

// Scrolling back past what the device holds asks the relay, which keeps
// the room's recent history (protocol.HistoryRequest, through the room's
// engine): first for the newest hole the device has in the room's current
// epoch (what a resume that came back recovered=false, or a new device,
// lacks), a page at a time. What comes back is kept on the device like any
// message, so each page is asked for once.

// relayOlder is a room view's state of asking the relay for older pages.
type relayOlder struct {
	pending string // the request waiting for its page ("": none)
	// floor: the relay holds nothing of the current epoch below this seq
	// (it said so with More=false); 0 while unknown.
	floor uint64
	// low: the lowest seq a page brought; every seq from it up to the hole
	// it filled came too (pages are contiguous and go down), even while
	// the device's writer has not stored them yet.
	low   uint64
	epoch string // the epoch floor and low are about
}

// askRelayForOlder requests the page that best fills what the device lacks
// of the current epoch; it does nothing while a request is out, while not
// connected, or when the relay has nothing more to give.
func (r *roomView) askRelayForOlder() {
	if r.older.pending != "" || r.welcome == nil || r.state == nil || r.state.sess == nil {
		return
	}
	epoch := r.welcome.Epoch
	if r.older.epoch != epoch {
		r.older = relayOlder{epoch: epoch}
	}
	before, limit, ok := r.nextRelayPage(epoch)
	if !ok {
		return
	}
	id, err := r.state.sess.c.RequestHistory(before, limit)
	if err != nil {
		r.ui.log.Debug("older messages not asked for", "room", r.room, "err", err)
		return
	}
	r.older.pending = id
}

// nextRelayPage picks what to ask for: the newest hole the device has in
// epoch (seqs missing between 1 and the newest it holds) that the relay may
// still hold, or, without local history, below the oldest message shown.
func (r *roomView) nextRelayPage(epoch string) (before uint64, limit int, ok bool) {
	if r.ui.local == nil {
		e, seq, _, found := r.tl.Oldest()
		if !found || e != epoch || seq <= 1 || (r.older.floor != 0 && seq <= r.older.floor) {
			return 0, 0, false
		}
		return seq, pageSize, true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	holes, err := r.ui.local.store.Holes(ctx, keyOf(r.state), epoch)
	if err != nil {
		r.ui.log.Warn("local history: holes", "room", r.room, "err", err)
		return 0, 0, false
	}
	for _, h := range holes { // newest first
		if low := r.older.low; low != 0 {
			if h.From >= low {
				continue // brought already; not yet on the device
			}
			h.To = min(h.To, low-1)
		}
		if r.older.floor != 0 && h.To < r.older.floor {
			return 0, 0, false // older holes are older still: gone from the relay too
		}
		return h.To + 1, int(min(h.To-h.From+1, uint64(pageSize))), true
	}
	return 0, 0, false
}

// gotRelayPage keeps a page the relay sent (rooms.apply has put it on the
// device) and shows it.
func (r *roomView) gotRelayPage(p client.HistoryPage) (added int) {
	if p.ID != r.older.pending {
		return 0
	}
	r.older.pending = ""
	if p.Err != "" {
		r.ui.log.Info("the relay did not send older messages", "room", r.room, "why", p.Err)
		return 0
	}
	if !p.More {
		r.older.floor = 1
		if len(p.Messages) > 0 {
			r.older.floor = p.Messages[0].Seq
		}
	}
	if len(p.Messages) > 0 && (r.older.low == 0 || p.Messages[0].Seq < r.older.low) {
		r.older.low = p.Messages[0].Seq
	}
	for _, m := range p.Messages {
		if r.tl.AddIn(p.Epoch, m) {
			added++
		}
	}
	return added
}

// keepRelayPage puts a page from the relay in the device's history, as
// messages received (they are not new: no unread count, no notification).
func (rs *rooms) keepRelayPage(r *roomState, p client.HistoryPage) {
	if rs.hist == nil || p.Err != "" || p.Epoch != r.epoch {
		return
	}
	for _, m := range p.Messages {
		rs.hist.put(r, p.Epoch, m, r.me.ID != "" && m.From.ID == r.me.ID)
	}
}
