package server

// What a joiner is told: the welcome and the history it carries (spec rule 6).

import (
	"time"

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
