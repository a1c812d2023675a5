package server

// What a joiner is told: the welcome and the history it carries (spec rule 6).

import (
	"cmp"
	"fmt"
	"time"

	"golang.org/x/time/rate"

	"github.com/heartline/heartline/relay/store"
	"github.com/heartline/heartline/shared/protocol"
)

func (r *room) welcome(c *conn, m *member, resume *protocol.Resume, now time.Time) *protocol.Welcome {
	hist, recovered := r.history(resume)
	return r.welcomeWith(c, m, hist, recovered, now)
}

// welcomeWith is the welcome with its history picked. r.mu held.
func (r *room) welcomeWith(c *conn, m *member, hist []protocol.Message, recovered bool, now time.Time) *protocol.Welcome {
	members := make([]protocol.Member, 0, len(r.members))
	for _, o := range r.members {
		members = append(members, o.wire())
	}
	return &protocol.Welcome{
		V: protocol.Version, Epoch: r.epoch, Room: r.name, You: m.wire(), Members: members,
		History: hist, Recovered: recovered, Seq: r.committed, ServerTime: now.UnixMilli(),
		Heartbeat: protocol.Heartbeat{
			IntervalMS: r.s.cfg.HeartbeatInterval.Milliseconds(),
			TimeoutMS:  r.s.cfg.HeartbeatTimeout.Milliseconds(),
		},
		ObservedAddr: c.Remote(), STUN: r.s.STUNPorts(),
		Features: []string{protocol.FeatureHistory},
	}
}

// history picks the welcome's history (spec rule 6): on a resume with this
// epoch, every message after last_seq if the store still has them all;
// otherwise the latest page and recovered=false. Only committed messages
// count: those still in flight reach the new member as broadcasts.
func (r *room) history(resume *protocol.Resume) ([]protocol.Message, bool) {
	st := r.s.store
	if resume != nil && resume.Epoch == r.epoch && resume.LastSeq <= r.committed {
		if resume.LastSeq == r.committed {
			return []protocol.Message{}, true
		}
		recs, complete, err := st.After(r.name, resume.LastSeq, 0)
		if err != nil {
			r.s.log.Error("cannot read history", "room", r.name, "err", err)
		}
		recs = upTo(recs, r.committed)
		if err == nil && complete && len(recs) > 0 &&
			recs[0].Seq == resume.LastSeq+1 && recs[len(recs)-1].Seq == r.committed {
			return r.messages(recs), true
		}
	}
	recs, err := st.Latest(r.name, r.s.cfg.HistoryPage+r.pending)
	if err != nil {
		r.s.log.Error("cannot read history", "room", r.name, "err", err)
	}
	recs = upTo(recs, r.committed)
	if len(recs) > r.s.cfg.HistoryPage {
		recs = recs[len(recs)-r.s.cfg.HistoryPage:]
	}
	return r.messages(recs), false
}

func upTo(recs []store.Record, seq uint64) []store.Record {
	for i, rec := range recs {
		if rec.Seq > seq {
			return recs[:i]
		}
	}
	return recs
}

// messages turns records into wire messages. from is the sender as the
// record saw it; since and state come from the member if it is still here
// (a sender who left shows as away).
func (r *room) messages(recs []store.Record) []protocol.Message {
	out := make([]protocol.Message, 0, len(recs))
	for _, rec := range recs {
		from := protocol.Member{ID: rec.MemberID, Name: rec.Name, Avatar: rec.Avatar, State: protocol.StateAway}
		if m := r.members[rec.MemberID]; m != nil {
			from.Since, from.State = m.since, m.state
			if from.Name == "" {
				from.Name, from.Avatar = m.name, m.avatar
			}
		}
		out = append(out, protocol.Message{Seq: rec.Seq, ID: rec.ClientID, From: from, Text: rec.Text, TS: rec.TS})
	}
	return out
}

// History requests: a reader scrolling back asks for a page at a time, so
// a budget of a few a second is plenty, and keeps a hostile client from
// turning the relay's history into a disk or Redis load.
const (
	historyRate  = 5
	historyBurst = 10
)

// handleHistory answers a history request (protocol.HistoryRequest) with
// the page the room's store holds below its Before.
func (c *conn) handleHistory(f *protocol.HistoryRequest) {
	r, _ := c.roomMember()
	if r == nil {
		c.SendError(protocol.ErrNotJoined, "send a hello and wait for the welcome before asking for history", f.ID)
		return
	}
	if err := protocol.ValidateMsgID(f.ID); err != nil {
		c.SendError(protocol.ErrBadFrame, "a history request needs an id of 1 to 64 characters, without control characters", "")
		return
	}
	if f.Limit < 0 || f.Limit > protocol.HistoryMaxLimit {
		c.SendError(protocol.ErrBadFrame, fmt.Sprintf("a history request's limit is 1 to %d (0: %d)", protocol.HistoryMaxLimit, r.s.cfg.HistoryPage), f.ID)
		return
	}
	if c.histLimiter == nil {
		c.histLimiter = rate.NewLimiter(historyRate, historyBurst)
	}
	if _, d := reserve(c.histLimiter, c.s.cfg.now()); d > 0 {
		ms := retryMS(d)
		c.Send(&protocol.Error{Code: protocol.ErrRateLimited, ID: f.ID, RetryAfterMS: ms,
			Message: fmt.Sprintf("too many history requests: wait %d ms, then ask again", ms)})
		return
	}
	page, err := r.olderPage(f.Before, cmp.Or(f.Limit, r.s.cfg.HistoryPage))
	if err != nil {
		r.s.log.Error("cannot read history for a request", "room", r.name, "err", err)
		c.SendError(protocol.ErrInternal, "the relay could not read the room's history right now; ask again later", f.ID)
		return
	}
	page.ID = f.ID
	c.Send(page)
}

// olderPage is up to limit of the room's messages below before (0: the
// newest), oldest first. Only delivered messages count, as in a welcome.
func (r *room) olderPage(before uint64, limit int) (*protocol.History, error) {
	r.mu.Lock()
	epoch, top := r.epoch, r.committed
	r.mu.Unlock()
	if before == 0 || before > top+1 {
		before = top + 1
	}
	var msgs []protocol.Message
	if r.s.inRedis() {
		ctx, cancel := redisCtx()
		recs, err := r.s.redis.Before(ctx, r.name, before, limit)
		cancel()
		if err != nil {
			return nil, err
		}
		msgs = r.sharedMessages(recs)
	} else {
		recs, err := r.s.store.Before(r.name, before, limit)
		if err != nil {
			return nil, err
		}
		r.mu.Lock()
		msgs = r.messages(recs)
		r.mu.Unlock()
	}
	// The store keeps a contiguous run of the newest messages, so a full
	// page may have older ones before it; a short one does not.
	more := len(msgs) == limit && msgs[0].Seq > 1
	return &protocol.History{Epoch: epoch, Messages: msgs, More: more}, nil
}
