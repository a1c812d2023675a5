package server

// Rooms shared with other relays through Redis (Config.RedisURL): the
// room's truth (seq, history, roster, presence) lives in Redis
// (relay/redisengine); the room here is this relay's view of it. Every
// change reaches every relay as an event on the room's channel, and each
// relay applies events in order (seq for messages, pv for the roster):
// one that skips ahead makes the room catch up from Redis first, so no
// relay delivers a gap or shows a ghost. Connections, heartbeats and the
// fan-out (one encoded frame per message per relay) stay local.
//
// Nothing here holds room.mu across a Redis round trip: a change is asked
// of Redis first, then applied under the lock, as every relay applies it.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/heartline/heartline/relay/metrics"
	"github.com/heartline/heartline/relay/redisengine"
	"github.com/heartline/heartline/shared/names"
	"github.com/heartline/heartline/shared/protocol"
)

// redisTimeout bounds one Redis call made for a client.
const redisTimeout = 5 * time.Second

// redisRetry is how long a sender waits when Redis does not answer.
const redisRetry = time.Second

func (s *Server) inRedis() bool { return s.redis != nil }

func redisCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), redisTimeout)
}

// link names a connection among all relays' connections.
func (s *Server) link(c *conn) string {
	return s.redis.RelayID() + ":" + strconv.FormatUint(c.Serial(), 10)
}

// openShared makes r this relay's view of a room in Redis: subscribed
// first, so that nothing published after the roster is read is missed.
func (s *Server) openShared(r *room) error {
	ctx, cancel := redisCtx()
	defer cancel()
	if err := s.redis.Subscribe(ctx, r.name); err != nil {
		return err
	}
	roster, err := s.redis.Roster(ctx, r.name)
	if err != nil {
		s.redis.Unsubscribe(ctx, r.name, nil)
		return err
	}
	r.mu.Lock()
	r.epoch, r.committed, r.seq, r.pv = roster.Epoch, roster.Seq, roster.Seq, roster.PV
	for _, rm := range roster.Members {
		m := &member{}
		setShared(m, rm)
		r.index(m)
	}
	r.size.Store(int32(len(r.members)))
	r.mu.Unlock()
	return nil
}

// setShared copies a roster entry into m (not its connection).
func setShared(m *member, rm redisengine.Member) {
	if m.id == "" {
		// A member's id never changes, and a connection's log lines read it
		// without the room's lock: set it once.
		m.id = rm.ID
	}
	m.name, m.avatar, m.keyHash, m.since, m.addr = rm.Name, rm.Avatar, rm.KeyHash, rm.Since, rm.Addr
	m.fold, m.shape = names.Key(rm.Name), names.ShapeKey(rm.Name)
	m.state, m.relay, m.link = rm.State, rm.Relay, rm.Link
	if m.state != protocol.StateOnline {
		m.state = protocol.StateAway
	}
}

func (r *room) index(m *member) {
	r.members[m.id], r.byName[m.fold], r.byShape[m.shape] = m, m, m
	if m.keyHash != "" {
		r.byKey[m.keyHash] = m
	}
}

// joinShared admits c as the member the hello's key names, through Redis.
func (r *room) joinShared(c *conn, h *protocol.Hello) joinResult {
	s := r.s
	r.mu.Lock()
	if r.dead {
		r.mu.Unlock()
		return joinResult{retry: true}
	}
	r.joining++ // the sweeper keeps the room while a join is under way
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.joining--
		r.mu.Unlock()
	}()
	kh := keyHash(h.Key)
	r.mu.Lock()
	newer := r.serials[kh] > c.Serial()
	r.mu.Unlock()
	if newer {
		return joinResult{refused: true, close: protocol.CloseReplaced,
			msg: "a newer connection of this member is already in the room"}
	}
	link := s.link(c)
	ctx, cancel := redisCtx()
	defer cancel()
	res, err := s.redis.Join(ctx, r.name, redisengine.JoinRequest{
		NewEpoch: redisengine.NewEpoch(), KeyHash: kh,
		Name: h.Name, Fold: names.Key(h.Name), Shape: names.ShapeKey(h.Name), Avatar: h.Avatar, Addr: c.ip,
		Link: link, NewID: newMemberID(), MaxMembers: s.cfg.MaxRoomMembers, MaxPerIP: s.cfg.MaxRoomMembersPerIP,
	})
	if err != nil {
		s.log.Error("cannot join through Redis", "room", r.name, "err", err)
		return joinResult{refused: true, code: protocol.ErrInternal, close: protocol.CloseGoingAway,
			msg: "the relay cannot reach its shared state right now; reconnecting"}
	}
	switch res.Status {
	case redisengine.JoinTaken:
		return joinResult{refused: true, close: protocol.CloseNameTaken, msg: nameTakenMessage(h.Name, res.Holder)}
	case redisengine.JoinFull:
		return joinResult{refused: true, code: protocol.ErrRoomFull, close: protocol.CloseRoomFull,
			msg: fmt.Sprintf("the room is full (%d members); try again when someone leaves", s.cfg.MaxRoomMembers)}
	case redisengine.JoinFullIP:
		return joinResult{refused: true, code: protocol.ErrRoomFull, close: protocol.CloseRoomFull,
			msg: fmt.Sprintf("this room already has %d members from your address, the most this relay allows one address; "+
				"one of them must leave first (or ask the host to raise --max-room-members-per-ip)", s.cfg.MaxRoomMembersPerIP)}
	}
	ev := res.Event
	r.mu.Lock()
	if r.epoch == "" {
		r.epoch = res.Epoch // the join created the room
	}
	r.mu.Unlock()
	// Bring this view up to the join (its pv) and to every message before
	// it, then fetch the history the welcome carries; a message committed
	// while fetching makes it fetch again (the welcome must reach r.committed).
	if err := r.catchUp(ctx, res.Seq, ev.PV); err != nil {
		s.log.Error("cannot catch up with Redis", "room", r.name, "err", err)
		return joinResult{refused: true, code: protocol.ErrInternal, close: protocol.CloseGoingAway,
			msg: "the relay cannot reach its shared state right now; reconnecting"}
	}
	for range 5 {
		r.mu.Lock()
		target, epoch := r.committed, r.epoch
		r.mu.Unlock()
		hist, recovered, err := r.fetchHistory(ctx, h.Resume, epoch, target)
		if err != nil {
			// Never a welcome without the history Redis still has (the
			// client would take it for recovered=false): it reconnects.
			s.log.Error("cannot read history from Redis", "room", r.name, "err", err)
			id := ev.ID
			s.async(func(ctx context.Context) error {
				_, err := s.redis.Away(ctx, r.name, id, link, protocol.ReasonClosed, s.cfg.Grace)
				return err
			}, "cannot turn a member away in Redis (the room check will)", "room", r.name, "member", id)
			return joinResult{refused: true, code: protocol.ErrInternal, close: protocol.CloseGoingAway,
				msg: "the relay cannot reach its shared state right now; reconnecting"}
		}
		r.mu.Lock()
		if r.committed != target || r.epoch != epoch {
			r.mu.Unlock()
			continue
		}
		m := r.members[ev.ID]
		if m == nil {
			r.mu.Unlock()
			return joinResult{retry: true} // removed between the join and now (its grace ended): join again
		}
		if m.link != link {
			if m.state == protocol.StateOnline && m.link != "" {
				r.mu.Unlock()
				// A newer connection of this member, here or on another
				// relay, joined after this one.
				return joinResult{refused: true, close: protocol.CloseReplaced,
					msg: "a newer connection of this member is already in the room"}
			}
			// Turned away after the join (a sweep took this relay for dead
			// under load): this connection is alive, so it is online.
			m.state, m.relay, m.link = protocol.StateOnline, s.redis.RelayID(), link
			s.reassert(r.name, m.id, link)
		}
		if r.serials[kh] > c.Serial() {
			r.mu.Unlock()
			return joinResult{refused: true, close: protocol.CloseReplaced,
				msg: "a newer connection of this member is already in the room"}
		}
		r.serials[kh] = c.Serial()
		m.conn, m.lastSerial, m.remote, m.addr = c, c.Serial(), c.Remote(), c.ip
		r.attach(c, m)
		// Queued under the room's lock, as the relay's own store does: the
		// next message the room delivers to this connection comes after
		// its welcome, never before (a client drops what precedes its
		// welcome, and would hold a hole until its next resume).
		c.Send(r.welcomeWith(c, m, hist, recovered, s.cfg.now()))
		name := m.name
		r.mu.Unlock()
		if ev.Kind == redisengine.KindJoined {
			s.log.Info("member joined", "room", r.name, "member", m.id, "name", name, "remote", c.Remote(), "client", h.Client)
		} else {
			s.log.Info("member returned", "room", r.name, "member", m.id, "name", name, "remote", c.Remote(),
				"was_away", ev.WasAway, "replaced", ev.Prev != "")
		}
		return joinResult{}
	}
	return joinResult{retry: true}
}

// fetchHistory reads the welcome's history up to seq target (spec rule 6),
// as history does from the local store.
func (r *room) fetchHistory(ctx context.Context, resume *protocol.Resume, epoch string, target uint64) ([]protocol.Message, bool, error) {
	page := r.s.cfg.HistoryPage
	// The stream is trimmed approximately (MAXLEN ~, far cheaper than
	// exact); what is older than History messages counts as gone, as it is
	// in the relay's own store, so both engines answer a resume alike.
	kept := uint64(r.s.redisHistory())
	if resume != nil && resume.Epoch == epoch && resume.LastSeq <= target && target-resume.LastSeq <= kept {
		if resume.LastSeq == target {
			return []protocol.Message{}, true, nil
		}
		recs, err := r.s.redis.After(ctx, r.name, resume.LastSeq, int(target-resume.LastSeq))
		if err != nil {
			return nil, false, err
		}
		recs = sharedUpTo(recs, target)
		if len(recs) > 0 && recs[0].Seq == resume.LastSeq+1 && recs[len(recs)-1].Seq == target {
			return r.sharedMessages(recs), true, nil
		}
	}
	recs, err := r.s.redis.Latest(ctx, r.name, page+64)
	if err != nil {
		return []protocol.Message{}, false, err
	}
	recs = sharedUpTo(recs, target)
	if len(recs) > page {
		recs = recs[len(recs)-page:]
	}
	return r.sharedMessages(recs), false, nil
}

func sharedUpTo(recs []redisengine.Record, seq uint64) []redisengine.Record {
	for i, rec := range recs {
		if rec.Seq > seq {
			return recs[:i]
		}
	}
	return recs
}

// sharedMessages is messages for records from Redis; it reads r.members,
// racily for the sender's state, which is only decoration.
func (r *room) sharedMessages(recs []redisengine.Record) []protocol.Message {
	out := make([]protocol.Message, 0, len(recs))
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range recs {
		out = append(out, protocol.Message{Seq: rec.Seq, ID: rec.ClientID, From: r.sender(rec.MemberID, rec.Name, rec.Avatar), Text: rec.Text, TS: rec.TS})
	}
	return out
}

// sender is how a message's sender shows: as it was when it sent, with its
// state now (a sender who left shows as away). r.mu held.
func (r *room) sender(id, name, avatar string) protocol.Member {
	from := protocol.Member{ID: id, Name: name, Avatar: avatar, State: protocol.StateAway}
	if m := r.members[id]; m != nil {
		from.Since, from.State = m.since, m.state
	}
	return from
}

// catchUp applies every message up to seq and every roster change up to
// pv, from Redis if the events have not arrived (or were lost).
func (r *room) catchUp(ctx context.Context, seq, pv uint64) error {
	for range 100 {
		r.mu.Lock()
		from, havePV := r.committed, r.pv
		r.mu.Unlock()
		if from >= seq && havePV >= pv {
			return nil
		}
		var recs []redisengine.Record
		if from < seq {
			var err error
			if recs, err = r.s.redis.After(ctx, r.name, from, 1000); err != nil {
				return err
			}
		}
		var roster *redisengine.Roster
		if havePV < pv {
			rs, err := r.s.redis.Roster(ctx, r.name)
			if err != nil {
				return err
			}
			roster = &rs
		}
		r.mu.Lock()
		if len(recs) > 0 && recs[0].Seq != r.committed+1 && recs[0].Seq > r.committed {
			// Trimmed before this relay saw them: its members missed them
			// and must resume (they get recovered=false).
			r.resetShared(r.epoch, recs[0].Seq-1, "the room's history moved on while this relay was cut off; reconnecting")
		}
		for _, rec := range recs {
			r.deliver(&r.batch, rec.Seq, rec.TS, rec.MemberID, rec.ClientID, rec.Name, rec.Avatar, rec.Text)
		}
		if roster != nil && roster.PV > r.pv {
			r.applyRoster(*roster)
		}
		kick := r.flush(&r.batch, nil)
		r.mu.Unlock()
		kickAll(kick)
		if len(recs) > 0 || roster != nil {
			r.s.metrics.RedisGapFills.Inc()
		}
	}
	return fmt.Errorf("room %q: cannot catch up to seq %d, pv %d", r.name, seq, pv)
}

// deliver applies message seq to the view and batches it for the local
// members but its sender. r.mu held; seq must be the next one.
func (r *room) deliver(b *fanBatch, seq uint64, ts int64, from, client, name, avatar, text string) {
	if seq != r.committed+1 {
		return
	}
	r.committed, r.seq = seq, seq
	r.lastTS = ts
	slot := seq % uint64(len(r.recentKey))
	delete(r.delivered, r.recentKey[slot])
	key := from + "\x00" + client
	r.recentKey[slot], r.recentSeq[slot] = key, seq
	r.delivered[key] = protocol.Ack{ID: client, Seq: seq, TS: ts}
	m := r.members[from]
	if data, ok := r.s.encode(&protocol.Message{Seq: seq, ID: client, From: r.sender(from, name, avatar), Text: text, TS: ts}); ok {
		b.addMsg(data, m)
	}
	// The sender here gets its ack at the message's place in the room's
	// order, whether or not its publish has returned yet.
	if m != nil && m.conn != nil {
		acks := 1
		if p := r.inflight[key]; p != nil {
			acks = p.acks
			delete(r.inflight, key)
		}
		r.ack(b, m, acks, &protocol.Ack{ID: client, Seq: seq, TS: ts})
	}
}

// applyEvent applies one event from the room's channel, in order (drain).
// r.mu held. An event that skips ahead starts a catch-up instead.
func (r *room) applyEvent(ev *redisengine.Event) {
	if ev.Kind == redisengine.KindMessage {
		if r.epoch != "" && ev.Epoch != r.epoch {
			r.resetShared(ev.Epoch, ev.Seq-1, "the room's history was reset; reconnecting")
		}
		r.epoch = ev.Epoch
		switch {
		case ev.Seq <= r.committed:
			slot := ev.Seq % uint64(len(r.recentKey))
			if r.recentSeq[slot] == ev.Seq && r.recentKey[slot] != ev.ID+"\x00"+ev.Client {
				// Not the message this view has under that seq: Redis lost
				// writes and numbers again from an older seq.
				r.s.async(func(ctx context.Context) error {
					return r.s.checkSharedRoom(ctx, r, true)
				}, "")
			}
		case ev.Seq == r.committed+1:
			r.deliver(&r.batch, ev.Seq, ev.TS, ev.ID, ev.Client, ev.Name, ev.Avatar, ev.Text)
		default:
			r.requestCatchUp(ev.Seq, 0)
		}
		return
	}
	switch {
	case ev.PV <= r.pv:
		return
	case ev.PV > r.pv+1:
		r.requestCatchUp(0, ev.PV)
		return
	}
	r.pv = ev.PV
	m := r.members[ev.ID]
	switch ev.Kind {
	case redisengine.KindJoined:
		if m != nil {
			return
		}
		m = &member{id: ev.ID, name: ev.Name, avatar: ev.Avatar, fold: names.Key(ev.Name), shape: names.ShapeKey(ev.Name),
			since: ev.Since, state: protocol.StateOnline, relay: ev.Relay, link: ev.Link}
		r.index(m)
		r.size.Store(int32(len(r.members)))
		r.broadcast(&protocol.Joined{Member: m.wire()}, m)
	case redisengine.KindPresence:
		if m == nil {
			r.requestCatchUp(0, ev.PV) // a member this view never saw: read the roster
			return
		}
		changed := m.name != ev.Name || m.avatar != ev.Avatar
		if changed {
			r.unindexName(m)
			m.name, m.avatar, m.fold, m.shape = ev.Name, ev.Avatar, names.Key(ev.Name), names.ShapeKey(ev.Name)
			r.byName[m.fold], r.byShape[m.shape] = m, m
		}
		wasState := m.state
		if ev.State == protocol.StateOnline {
			m.state, m.relay, m.link = protocol.StateOnline, ev.Relay, ev.Link
			if c := m.conn; c != nil && r.s.link(c) != ev.Link {
				// A newer connection of this member, here or on another relay.
				m.conn = nil
				c.Evict(protocol.CloseReplaced, "replaced by a newer connection of the same member", "", metrics.EvictReplaced)
			}
		} else {
			if c := m.conn; c != nil && r.s.link(c) == ev.Prev && !r.s.draining.Load() {
				// Turned away while its link here is alive (this relay's
				// heartbeat came late): say it is online again.
				r.s.reassert(r.name, m.id, ev.Prev)
			}
			m.state, m.relay, m.link = protocol.StateAway, "", ""
		}
		if wasState != m.state || changed {
			r.broadcast(&protocol.Presence{Member: m.wire()}, m)
		}
	case redisengine.KindLeft:
		if m == nil {
			return
		}
		r.dropShared(m, ev.Reason)
	}
}

// dropShared removes m from the view and tells the local members. r.mu held.
func (r *room) dropShared(m *member, reason string) {
	r.s.log.Info("member left", "room", r.name, "member", m.id, "name", m.name, "remote", m.remote, "reason", reason)
	delete(r.members, m.id)
	if r.byKey[m.keyHash] == m {
		delete(r.byKey, m.keyHash)
	}
	r.unindexName(m)
	r.size.Store(int32(len(r.members)))
	if c := m.conn; c != nil {
		m.conn = nil
		c.Evict(protocol.CloseProtocolError, "you are no longer a member of this room; reconnecting", "", metrics.EvictReplaced)
	}
	r.broadcast(&protocol.Left{Member: m.wire(), Reason: reason}, m)
}

// applyRoster makes the view equal to a roster read from Redis, telling the
// local members every difference. r.mu held.
func (r *room) applyRoster(rs redisengine.Roster) {
	if rs.Epoch != "" && r.epoch != "" && rs.Epoch != r.epoch {
		r.resetShared(rs.Epoch, rs.Seq, "the room's history was reset; reconnecting")
	}
	seen := make(map[string]bool, len(rs.Members))
	for _, rm := range rs.Members {
		seen[rm.ID] = true
		m := r.members[rm.ID]
		if m == nil {
			m = &member{}
			setShared(m, rm)
			r.index(m)
			r.broadcast(&protocol.Joined{Member: m.wire()}, m)
			continue
		}
		before := m.wire()
		r.unindexName(m)
		c := m.conn
		setShared(m, rm)
		r.index(m)
		if c != nil && (m.state != protocol.StateOnline || r.s.link(c) != m.link) {
			if m.state != protocol.StateOnline && !r.s.draining.Load() {
				r.s.reassert(r.name, m.id, r.s.link(c))
				m.conn = c
			} else {
				c.Evict(protocol.CloseReplaced, "replaced by a newer connection of the same member", "", metrics.EvictReplaced)
			}
		} else {
			m.conn = c
		}
		if before != m.wire() {
			r.broadcast(&protocol.Presence{Member: m.wire()}, m)
		}
	}
	for id, m := range r.members {
		if !seen[id] {
			r.dropShared(m, protocol.ReasonTimeout)
		}
	}
	r.size.Store(int32(len(r.members)))
	r.pv = rs.PV
}

// resetShared handles a room whose epoch changed (Redis lost writes, or
// this relay missed more than the stream keeps): its local members
// reconnect, and their resume gets recovered=false. r.mu held.
func (r *room) resetShared(epoch string, seq uint64, why string) {
	r.s.log.Warn("room history reset; local members reconnect", "room", r.name, "old_epoch", r.epoch, "epoch", epoch, "seq", seq)
	r.epoch, r.committed, r.seq = epoch, seq, seq
	for _, m := range r.members {
		if c := m.conn; c != nil {
			c.Close(protocol.CloseGoingAway, why, false, metrics.EvictShutdown)
		}
	}
}

// requestCatchUp starts one catch-up goroutine for the room. r.mu held.
func (r *room) requestCatchUp(seq, pv uint64) {
	r.wantSeq, r.wantPV = max(r.wantSeq, seq), max(r.wantPV, pv)
	if r.catchingUp {
		return
	}
	r.catchingUp = true
	started := r.s.goBackground(func() {
		for {
			r.mu.Lock()
			seq, pv := r.wantSeq, r.wantPV
			r.wantSeq, r.wantPV = 0, 0
			if seq <= r.committed && pv <= r.pv {
				r.catchingUp = false
				r.mu.Unlock()
				return
			}
			r.mu.Unlock()
			ctx, cancel := redisCtx()
			err := r.catchUp(ctx, seq, pv)
			cancel()
			if err != nil {
				r.s.log.Warn("room cannot catch up with Redis yet", "room", r.name, "err", err)
				r.mu.Lock()
				r.catchingUp = false
				r.mu.Unlock()
				return // the next event, or the periodic check, tries again
			}
		}
	})
	if !started {
		r.catchingUp = false // the relay has stopped
	}
}

// sendShared publishes a message through Redis: the relay acks it once
// Redis has it; every relay, this one included, delivers it from the
// room's channel. Messages are published in the order they arrive, a
// batch per round trip.
func (r *room) sendShared(m *member, c *conn, f *protocol.Send, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m.conn != c {
		return
	}
	key := m.id + "\x00" + f.ID
	if p := r.inflight[key]; p != nil {
		p.acks++
		return
	}
	if a, ok := r.delivered[key]; ok {
		c.Send(&a) // an outbox resend of what this relay delivered: free
		return
	}
	spent, wait := c.allow(now)
	if spent == nil {
		c.rateLimited(f.ID, wait)
		return
	}
	r.inflight[key] = &pendingMsg{from: m.wire(), acks: 1}
	r.pending++
	r.pubQ = append(r.pubQ, pubItem{key: key, member: m, out: redisengine.Outgoing{
		MemberID: m.id, ClientID: f.ID, Name: m.name, Avatar: m.avatar, Text: f.Text}})
	if !r.publishing {
		r.publishing = r.s.goBackground(r.publishLoop) // false: the relay has stopped
	}
}

type pubItem struct {
	key    string
	member *member
	out    redisengine.Outgoing
}

func (r *room) publishLoop() {
	for {
		r.mu.Lock()
		q := r.pubQ
		r.pubQ = nil
		if len(q) == 0 {
			r.publishing = false
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
		// A room Redis no longer has is created anew with a new epoch,
		// never its old one: seqs start again, and clients must see that.
		epoch := redisengine.NewEpoch()
		outs := make([]redisengine.Outgoing, len(q))
		for i, it := range q {
			outs[i] = it.out
		}
		ctx, cancel := redisCtx()
		res := r.s.redis.Publish(ctx, r.name, epoch, outs)
		cancel()
		r.mu.Lock()
		for i, it := range q {
			r.pending--
			m := it.member
			pr := res[i]
			p := r.inflight[it.key]
			if p == nil {
				// Delivered from the room's channel already, and acked there.
				r.s.metrics.MessagesAccepted.Inc()
				continue
			}
			if pr.Err == nil && pr.Seq > r.committed {
				// Acked when the room's channel delivers it (deliver),
				// after every message before it. So is an outbox resend of
				// a message another relay published (its original seq):
				// acked now, it could overtake the messages before it that
				// this view has not delivered yet.
				if !pr.Duplicate {
					r.s.metrics.MessagesAccepted.Inc()
				}
				continue
			}
			delete(r.inflight, it.key)
			acks := p.acks
			if pr.Err != nil {
				r.s.metrics.StoreErrors.Inc()
				r.s.log.Error("message not published to Redis", "room", r.name, "member", m.id, "err", pr.Err)
				if c := m.conn; c != nil {
					ms := redisRetry.Milliseconds()
					r.sendTo(&r.batch, m, &protocol.Error{Code: protocol.ErrRateLimited, ID: it.out.ClientID, RetryAfterMS: ms,
						Message: fmt.Sprintf("the relay cannot store messages right now: wait %d ms, then send again", ms)})
				}
				continue
			}
			// A duplicate of a message published before, or (seq <=
			// committed) one whose delivery found the inflight entry gone:
			// ack with what Redis has.
			r.ack(&r.batch, m, acks, &protocol.Ack{ID: it.out.ClientID, Seq: pr.Seq, TS: pr.TS})
		}
		kick := r.flush(&r.batch, nil)
		r.mu.Unlock()
		kickAll(kick)
	}
}

// linkDroppedShared turns m away in Redis if c was its connection.
func (r *room) linkDroppedShared(m *member, c *conn, reason string) {
	r.mu.Lock()
	if m.conn != c {
		r.mu.Unlock()
		return
	}
	m.conn = nil
	r.mu.Unlock()
	r.s.log.Info("member away", "room", r.name, "member", m.id, "remote", c.Remote(), "reason", reason, "grace", r.s.cfg.Grace)
	if r.s.draining.Load() {
		return // Shutdown turns this relay's members away at once
	}
	link := r.s.link(c)
	r.s.async(func(ctx context.Context) error {
		_, err := r.s.redis.Away(ctx, r.name, m.id, link, reason, r.s.cfg.Grace)
		return err
	}, "cannot turn a member away in Redis (the sweep will)", "room", r.name, "member", m.id)
}

// byeShared removes m from the room in Redis if c is its connection.
func (r *room) byeShared(m *member, c *conn) {
	r.mu.Lock()
	if m.conn != c {
		r.mu.Unlock()
		return
	}
	m.conn = nil
	r.mu.Unlock()
	// On the connection's reader, before its close 1000: once the client
	// sees the close, its place in the room is free on every relay.
	ctx, cancel := redisCtx()
	defer cancel()
	if _, err := r.s.redis.Bye(ctx, r.name, m.id, r.s.link(c)); err != nil {
		r.s.log.Warn("cannot remove a member in Redis; it leaves after its grace instead", "room", r.name, "member", m.id, "err", err)
		if _, err := r.s.redis.Away(ctx, r.name, m.id, r.s.link(c), protocol.ReasonBye, r.s.cfg.Grace); err != nil {
			r.s.log.Warn("cannot turn a member away in Redis (the sweep will)", "room", r.name, "member", m.id, "err", err)
		}
	}
}

// sweepShared forgets a room no local connection is in any more.
func (r *room) sweepShared() {
	if !r.mu.TryLock() {
		return
	}
	defer r.mu.Unlock()
	if r.dead || r.joining > 0 || r.pending > 0 || r.publishing || r.catchingUp {
		return
	}
	for _, m := range r.members {
		if m.conn != nil {
			return
		}
	}
	r.dead = true
	r.s.roomsMu.Lock()
	if r.s.rooms[r.name] == r {
		delete(r.s.rooms, r.name)
	}
	r.s.metrics.Rooms.Set(float64(len(r.s.rooms)))
	r.s.roomsMu.Unlock()
	name := r.name
	r.s.async(func(ctx context.Context) error {
		// A join that made a new view meanwhile registered it before
		// subscribing, so it is seen here, or subscribes after this.
		r.s.redis.Unsubscribe(ctx, name, func() bool {
			r.s.roomsMu.Lock()
			defer r.s.roomsMu.Unlock()
			return r.s.rooms[name] != nil
		})
		return nil
	}, "cannot unsubscribe", "room", name)
}

// async runs a Redis call for a room in the background, owned by bgWG.
func (s *Server) async(f func(ctx context.Context) error, msg string, attrs ...any) {
	s.goBackground(func() {
		ctx, cancel := redisCtx()
		defer cancel()
		if err := f(ctx); err != nil {
			s.log.Warn(msg, append(attrs, "err", err)...)
		}
	})
}

// reassert says in Redis that a member whose connection here is alive is
// online (a sweeper took this relay for dead).
func (s *Server) reassert(room, id, link string) {
	s.async(func(ctx context.Context) error {
		_, err := s.redis.Online(ctx, room, id, link)
		return err
	}, "cannot set a member online again", "room", room, "member", id)
}

// onRedisEvents is the pub/sub link's callback: one publish's events go to
// the room's drainer together, which applies them in order and writes
// what they make for each local member at once.
func (s *Server) onRedisEvents(name string, evs []*redisengine.Event) {
	s.roomsMu.Lock()
	r := s.rooms[name]
	s.roomsMu.Unlock()
	if r == nil {
		return
	}
	r.completedEvents(evs)
}

// onResubscribed: the pub/sub link was lost, so every room may have missed
// events; each checks its position against Redis.
func (s *Server) onResubscribed() {
	s.goBackground(s.checkSharedRooms)
}

// checkSharedRooms compares every room's view with Redis: it catches up
// where events were lost, and rotates the epoch where Redis went back in
// time (lost acknowledged writes), so no client resumes into a different
// history. It also turns away members Redis still has online here but whose
// connection has ended (their away was lost with the link to Redis).
func (s *Server) checkSharedRooms() {
	rooms := s.liveRooms()
	// Right after Redis comes back its connections may still be opening
	// (or it is loading its AOF): retry a failed room for a while.
	for attempt := 0; len(rooms) > 0 && attempt < 20; attempt++ {
		if attempt > 0 {
			select {
			case <-s.stop:
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
		failed := rooms[:0]
		for _, r := range rooms {
			ctx, cancel := redisCtx()
			if err := s.checkSharedRoom(ctx, r, false); err != nil {
				failed = append(failed, r)
			}
			cancel()
		}
		rooms = failed
	}
}

func (s *Server) checkSharedRoom(ctx context.Context, r *room, reused bool) error {
	// The view's position first: it only moves to seqs Redis handed out
	// before, so a roster read afterwards is at least as far unless Redis
	// lost writes.
	r.mu.Lock()
	epoch, committed := r.epoch, r.committed
	r.mu.Unlock()
	rs, err := s.redis.Roster(ctx, r.name)
	if err != nil {
		return err
	}
	if (rs.Epoch == "" && epoch != "") || (rs.Epoch == epoch && (rs.Seq < committed || reused)) {
		// Redis lost this room (restarted without persistence) or its
		// latest messages (a failover, AOF everysec): same epoch, older seq.
		s.metrics.RedisEpochResets.Inc()
		ne, err := s.redis.Rotate(ctx, r.name, rs.Epoch)
		if err != nil {
			return err
		}
		if rs, err = s.redis.Roster(ctx, r.name); err != nil {
			return err
		}
		s.log.Warn("Redis lost this room's latest writes; new epoch, clients resume with recovered=false",
			"room", r.name, "seq_here", committed, "seq_redis", rs.Seq, "epoch", ne)
		r.mu.Lock()
		r.resetShared(ne, rs.Seq, "the room's history was reset; reconnecting")
		r.applyRoster(rs)
		kick := r.flush(&r.batch, nil)
		r.mu.Unlock()
		kickAll(kick)
		return nil
	}
	if err := r.catchUp(ctx, rs.Seq, rs.PV); err != nil {
		return err
	}
	// Members Redis has online here whose connection is gone.
	type staleLink struct{ id, link string }
	r.mu.Lock()
	var stale []staleLink
	for _, m := range r.members {
		if m.state == protocol.StateOnline && m.relay == s.redis.RelayID() && m.conn == nil {
			stale = append(stale, staleLink{m.id, m.link})
		}
	}
	r.mu.Unlock()
	for _, m := range stale {
		if _, err := s.redis.Away(ctx, r.name, m.id, m.link, protocol.ReasonTimeout, s.cfg.Grace); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) liveRooms() []*room {
	s.roomsMu.Lock()
	defer s.roomsMu.Unlock()
	out := make([]*room, 0, len(s.rooms))
	for _, r := range s.rooms {
		select {
		case <-r.ready:
			if r.initErr == nil {
				out = append(out, r)
			}
		default:
		}
	}
	return out
}

// clusterLoop keeps this relay known as alive, sweeps ends of grace and
// dead relays (one relay per second does), and checks every room against
// Redis now and then.
func (s *Server) clusterLoop() {
	defer s.bgWG.Done()
	beat := time.NewTicker(sharedHeartbeat)
	defer beat.Stop()
	sweep := time.NewTicker(time.Second)
	defer sweep.Stop()
	check := time.NewTicker(30 * time.Second)
	defer check.Stop()
	s.heartbeat()
	for {
		select {
		case <-s.stop:
			return
		case <-beat.C:
			s.heartbeat()
		case <-sweep.C:
			ctx, cancel := redisCtx()
			away, left, err := s.redis.Sweep(ctx, redisengine.SweepConfig{Grace: s.cfg.Grace, DeadAfter: s.cfg.RedisDeadAfter,
				SkipDeadRelays: time.Since(s.redisBack()) < s.cfg.RedisDeadAfter})
			cancel()
			if err != nil {
				s.log.Warn("Redis sweep failed", "err", err)
			} else if away+left > 0 {
				s.log.Info("Redis sweep", "turned_away", away, "left", left)
			}
		case <-check.C:
			s.checkSharedRooms()
		}
	}
}

// sharedHeartbeat is how often a relay tells Redis it is alive.
const sharedHeartbeat = 2 * time.Second

func (s *Server) heartbeat() {
	rooms := s.liveRooms()
	names := make([]string, len(rooms))
	for i, r := range rooms {
		names[i] = r.name
	}
	ctx, cancel := redisCtx()
	defer cancel()
	err := s.redis.Heartbeat(ctx, names)
	was := s.redisOK.Swap(err == nil)
	if err == nil && !was {
		s.redisBackAt.Store(time.Now().UnixNano())
	}
	switch {
	case err != nil && was:
		s.log.Error("Redis unreachable: refusing messages and reporting not ready until it is back", "err", err)
	case err == nil && !was:
		s.log.Info("Redis reachable again")
		s.goBackground(s.checkSharedRooms)
	}
}

// redisBack is when this relay last regained Redis after losing it (its
// start counts): until RedisDeadAfter later, other relays' old heartbeats
// may only mean Redis was unreachable for them too.
func (s *Server) redisBack() time.Time { return time.Unix(0, s.redisBackAt.Load()) }

// redisReady says why /readyz fails in Redis mode, or "".
func (s *Server) redisReady() string {
	if !s.inRedis() {
		return ""
	}
	if !s.redisOK.Load() || !s.redis.Healthy() {
		return "Redis unreachable"
	}
	return ""
}

// openRedis connects to Redis and refuses one that loses everything on a
// restart, unless the operator said that is fine.
func (s *Server) openRedis() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, err := redisengine.Open(ctx, redisengine.Config{
		URL: s.cfg.RedisURL, Password: s.cfg.RedisPassword, History: s.redisHistory(),
		Logger: s.log.With("component", "redis"), OnEvents: s.onRedisEvents, OnResubscribed: s.onResubscribed,
		Observe: func(op string, d time.Duration, err error) {
			s.metrics.RedisCalls.WithLabelValues(op).Observe(d.Seconds())
			if err != nil {
				s.metrics.RedisErrors.WithLabelValues(op).Inc()
			}
		},
	})
	if err != nil {
		return err
	}
	p, err := e.Persistence(ctx)
	switch {
	case err != nil:
		s.log.Warn("cannot tell whether Redis persists its data; make sure it runs with appendonly yes", "err", err)
	case p.Volatile() && !s.cfg.RedisAllowVolatile:
		e.Close()
		return errors.New("Redis keeps nothing across a restart (appendonly no, no save rules): every room's history would vanish with it. " +
			"Run it with `appendonly yes` and `appendfsync always` (see docs/OPERATIONS.md), or pass --redis-allow-volatile if that is acceptable")
	case !p.Durable():
		s.log.Warn("Redis may lose the last acknowledged messages if it crashes (rooms then get a new epoch and clients resume with recovered=false); appendfsync always avoids it",
			"persistence", p.String())
	}
	s.redis = e
	s.redisOK.Store(true)
	s.redisBackAt.Store(time.Now().UnixNano())
	s.log.Info("rooms are shared through Redis", "relay_id", e.RelayID(), "persistence", p.String())
	return nil
}

// redisHistory is how many messages a room keeps in Redis.
func (s *Server) redisHistory() int {
	if s.cfg.History > 0 {
		return s.cfg.History
	}
	return 1000
}

// hasAvatar reports whether an uploaded picture is here, fetching it from
// Redis (another relay took the upload) into the local directory.
func (s *Server) hasAvatar(hex string) bool {
	if s.avatars.Has(hex) {
		return true
	}
	if !s.inRedis() {
		return false
	}
	ctx, cancel := redisCtx()
	defer cancel()
	png, err := s.redis.Avatar(ctx, hex)
	if err != nil {
		s.log.Warn("cannot fetch a picture from Redis", "avatar", hex, "err", err)
		return false
	}
	if png == nil {
		return false
	}
	got, err := s.avatars.Save(png)
	if err != nil || got != hex {
		s.log.Error("picture from Redis not kept", "avatar", hex, "got", got, "err", err)
		return false
	}
	return true
}

// maxListedRooms bounds GET /v1/rooms in Redis mode (most recently joined first).
const maxListedRooms = 10000

// handleSharedRooms is GET /v1/rooms in Redis mode: every relay's rooms and
// members from Redis; remote and idle time only for members connected here.
func (s *Server) handleSharedRooms(w http.ResponseWriter) {
	ctx, cancel := redisCtx()
	defer cancel()
	names, err := s.redis.Rooms(ctx, maxListedRooms)
	if err != nil {
		writeJSONError(w, http.StatusServiceUnavailable, "busy", "cannot read the rooms from Redis: "+err.Error())
		return
	}
	s.roomsMu.Lock()
	local := make(map[string]*room, len(s.rooms))
	maps.Copy(local, s.rooms)
	s.roomsMu.Unlock()
	now := time.Now()
	out := make([]adminRoom, 0, len(names))
	for _, name := range names {
		rs, err := s.redis.Roster(ctx, name)
		if err != nil {
			writeJSONError(w, http.StatusServiceUnavailable, "busy", "cannot read a room from Redis: "+err.Error())
			return
		}
		ar := adminRoom{Room: name, Seq: rs.Seq, Epoch: rs.Epoch, Members: make([]adminMember, 0, len(rs.Members))}
		for _, m := range rs.Members {
			state := m.State
			if state != protocol.StateOnline {
				state = protocol.StateAway
			}
			am := adminMember{ID: m.ID, Name: m.Name, State: state}
			if r := local[name]; r != nil {
				r.mu.Lock()
				if lm := r.members[m.ID]; lm != nil && lm.conn != nil {
					am.Remote = lm.remote
					am.IdleSeconds = float64(int64(max(now.Sub(lm.conn.LastSeen()).Seconds(), 0)*10)) / 10
				}
				r.mu.Unlock()
			}
			ar.Members = append(ar.Members, am)
		}
		sort.Slice(ar.Members, func(i, j int) bool { return ar.Members[i].Name < ar.Members[j].Name })
		out = append(out, ar)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Room < out[j].Room })
	writeJSON(w, http.StatusOK, map[string]any{"rooms": out})
}

// admitNewSharedRoom applies the room quotas (MaxRooms across all relays,
// RoomCreateRate per address on this relay) to a hello that creates a room.
func (s *Server) admitNewSharedRoom(ip string) error {
	if s.cfg.MaxRooms > 0 {
		ctx, cancel := redisCtx()
		n, err := s.redis.RoomCount(ctx)
		cancel()
		if err != nil {
			return err
		}
		if n >= int64(s.cfg.MaxRooms) {
			return &roomRefusal{code: protocol.ErrRoomFull, close: protocol.CloseRoomFull,
				msg: fmt.Sprintf("this relay already keeps its maximum of %d rooms; join an existing room, or ask the relay's operator", s.cfg.MaxRooms)}
		}
	}
	if d, ok := s.roomCreates.allow(ip, s.cfg.now()); !ok {
		return &roomRefusal{code: protocol.ErrRateLimited, close: protocol.CloseProtocolError, retry: d,
			msg: "too many new rooms from your address; join an existing room, or wait and try again"}
	}
	return nil
}
