package server

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heartline/heartline/relay/metrics"
	"github.com/heartline/heartline/relay/store"
	"github.com/heartline/heartline/shared/names"
	"github.com/heartline/heartline/shared/protocol"
)

// member is one member of a room, online (conn set) or away.
type member struct {
	id, name, fold, avatar string // fold: names.Key(name)
	shape                  string // names.ShapeKey(name)
	keyHash                string
	since                  int64 // unix ms of the first join
	state                  string
	conn                   *conn  // nil while away
	lastSerial             uint64 // serial of the newest connection that held this member
	leaveAt                time.Time
	leaveReason            string
	remote                 string
	addr                   string    // client address of its last connection (clientAddr); "" until one after a restart
	lastSeen               time.Time // when the last link dropped (for idle_seconds while away)
	fan                    []fanPart // how this member's share of the drain's fanBatch differs
}

func (m *member) wire() protocol.Member {
	return protocol.Member{ID: m.id, Name: m.name, Avatar: m.avatar, Since: m.since, State: m.state}
}

func (m *member) record() store.MemberRecord {
	return store.MemberRecord{ID: m.id, Name: m.name, Avatar: m.avatar, KeyHash: m.keyHash, Since: m.since}
}

// pendingMsg is a message handed to the store and not yet durable.
type pendingMsg struct {
	from protocol.Member // the sender as it was when it sent
	acks int             // acks owed: the original plus duplicates that arrived meanwhile
}

type commitResult struct {
	key   string
	rec   store.Record
	start time.Time
	err   error
}

// room is one room's state. mu is its only lock; it is never held while
// waiting for a socket (enqueue does not block) and the store's callbacks
// never take it (they go through doneQ), so Append under mu cannot deadlock.
type room struct {
	s     *Server
	name  string
	ready chan struct{} // closed once epoch/seq are loaded (or initErr set)

	initErr error

	size atomic.Int32 // len(members), for /metrics without taking mu

	mu        sync.Mutex
	dead      bool // removed from the server's map; joiners retry
	epoch     string
	seq       uint64 // last seq handed out
	committed uint64 // last seq known durable (what clients have seen)
	lastTS    int64
	pending   int
	members   map[string]*member // by id
	byKey     map[string]*member // by key hash
	byName    map[string]*member // by names.Key: case-insensitive look-alike key
	byShape   map[string]*member // by names.ShapeKey: case-kept look-alike key
	nextLeave time.Time          // no away member's grace ends before this; zero: nobody is away
	inflight  map[string]*pendingMsg
	// batch collects the messages and acks of the commits drain applies;
	// drain queues each member its share at the end, so a member gets them
	// in one write instead of one per message.
	batch   fanBatch
	kickBuf []*conn // drain's, reused

	doneMu   sync.Mutex
	doneQ    []commitResult
	draining bool
}

func (s *Server) newRoom(name string) *room {
	return &room{
		s: s, name: name, ready: make(chan struct{}),
		members: map[string]*member{}, byKey: map[string]*member{}, byName: map[string]*member{}, byShape: map[string]*member{},
		inflight: map[string]*pendingMsg{},
	}
}

// load restores a stored room: every member is away and leaves after grace.
func (r *room) load(st store.RoomState, now time.Time) {
	r.epoch, r.seq, r.committed = st.Epoch, st.Seq, st.Seq
	for _, mr := range st.Members {
		m := &member{
			id: mr.ID, name: mr.Name, fold: names.Key(mr.Name), shape: names.ShapeKey(mr.Name), avatar: mr.Avatar,
			keyHash: mr.KeyHash, since: mr.Since, state: protocol.StateAway,
			leaveAt: now.Add(r.s.cfg.Grace), leaveReason: protocol.ReasonTimeout, lastSeen: now,
		}
		r.members[m.id], r.byKey[m.keyHash], r.byName[m.fold], r.byShape[m.shape] = m, m, m, m
		r.leaveDue(m.leaveAt)
	}
	r.size.Store(int32(len(r.members)))
}

// roomRefusal is a hello refused because it would create a room beyond a
// quota (MaxRooms, RoomCreateRate).
type roomRefusal struct {
	code, msg string
	close     int
	retry     time.Duration // rate_limited: when a new room may be created
}

func (e *roomRefusal) Error() string { return e.msg }

// admitNewRoom says whether ip may create one more room now; the caller
// holds roomsMu.
func (s *Server) admitNewRoom(ip string) error {
	if s.cfg.MaxRooms > 0 && len(s.stored) >= s.cfg.MaxRooms {
		return &roomRefusal{code: protocol.ErrRoomFull, close: protocol.CloseRoomFull,
			msg: fmt.Sprintf("this relay already keeps its maximum of %d rooms; join an existing room, or ask the relay's operator", s.cfg.MaxRooms)}
	}
	if d, ok := s.roomCreates.allow(ip, s.cfg.now()); !ok {
		return &roomRefusal{code: protocol.ErrRateLimited, close: protocol.CloseProtocolError, retry: d,
			msg: "too many new rooms from your address; join an existing room, or wait and try again"}
	}
	return nil
}

// getRoom returns the live room, creating it (and its stored history) on
// first join, if ip may create a room (admitNewRoom). Only joiners of a new
// room wait for the store.
func (s *Server) getRoom(name, ip string) (*room, error) {
	s.roomsMu.Lock()
	r := s.rooms[name]
	creator := r == nil
	isNew := false
	if creator {
		if _, ok := s.stored[name]; !ok {
			if err := s.admitNewRoom(ip); err != nil {
				s.roomsMu.Unlock()
				return nil, err
			}
			s.stored[name], isNew = struct{}{}, true
		}
		r = s.newRoom(name)
		s.rooms[name] = r
		s.metrics.Rooms.Set(float64(len(s.rooms)))
	}
	s.roomsMu.Unlock()
	if !creator {
		<-r.ready
		return r, r.initErr
	}
	st, err := s.store.EnsureRoom(name)
	if err != nil {
		r.initErr = err
		s.roomsMu.Lock()
		delete(s.rooms, name)
		if isNew {
			delete(s.stored, name)
		}
		s.metrics.Rooms.Set(float64(len(s.rooms)))
		s.roomsMu.Unlock()
		close(r.ready)
		return nil, err
	}
	r.mu.Lock()
	r.load(st, s.cfg.now())
	r.mu.Unlock()
	close(r.ready)
	return r, nil
}

func keyHash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// newMemberID is random (not a counter, not a file descriptor), so ids are
// never reused, not even across restarts.
func newMemberID() string {
	var b [10]byte
	rand.Read(b[:])
	return "m" + hex.EncodeToString(b[:])
}

type joinResult struct {
	retry   bool
	refused bool
	code    string // error frame code, "" for none
	msg     string
	close   int
}

// join admits c as the member whose key the hello carries.
func (r *room) join(c *conn, h *protocol.Hello) joinResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dead {
		return joinResult{retry: true} // removed while we waited; the caller gets a fresh room
	}
	now := r.s.cfg.now()
	kh := keyHash(h.Key)
	fold, shape := names.Key(h.Name), names.ShapeKey(h.Name)
	m := r.byKey[kh]
	other := r.byName[fold]
	if other == nil || other == m {
		other = r.byShape[shape]
	}
	if other != nil && other != m {
		return joinResult{refused: true, close: protocol.CloseNameTaken, msg: nameTakenMessage(h.Name, other.name)}
	}
	if m != nil {
		if c.serial < m.lastSerial {
			return joinResult{refused: true, close: protocol.CloseReplaced,
				msg: "a newer connection of this member is already in the room"}
		}
		old := m.conn
		changed := m.name != h.Name || m.avatar != h.Avatar
		if changed {
			r.unindexName(m)
			m.name, m.fold, m.shape, m.avatar = h.Name, fold, shape, h.Avatar
			r.byName[fold], r.byShape[shape] = m, m
			r.s.store.PutMember(r.name, m.record(), nil)
		}
		wasAway := m.state == protocol.StateAway
		m.state, m.conn, m.lastSerial, m.remote, m.addr = protocol.StateOnline, c, c.serial, c.remote, c.ip
		m.leaveAt, m.leaveReason = time.Time{}, ""
		if old != nil && old != c {
			old.evict(protocol.CloseReplaced, "replaced by a newer connection of the same member", "", metrics.EvictReplaced)
		}
		r.attach(c, m)
		if wasAway || changed {
			r.broadcast(&protocol.Presence{Member: m.wire()}, m)
		}
		r.s.log.Info("member returned", "room", r.name, "member", m.id, "name", m.name, "remote", c.remote,
			"was_away", wasAway, "replaced", old != nil)
	} else {
		if len(r.members) >= r.s.cfg.MaxRoomMembers {
			return joinResult{refused: true, code: protocol.ErrRoomFull, close: protocol.CloseRoomFull,
				msg: fmt.Sprintf("the room is full (%d members); try again when someone leaves", r.s.cfg.MaxRoomMembers)}
		}
		if limit := r.s.cfg.MaxRoomMembersPerIP; limit > 0 && r.membersFrom(c.ip) >= limit {
			return joinResult{refused: true, code: protocol.ErrRoomFull, close: protocol.CloseRoomFull,
				msg: fmt.Sprintf("this room already has %d members from your address, the most this relay allows one address; "+
					"one of them must leave first (or ask the host to raise --max-room-members-per-ip)", limit)}
		}
		m = &member{
			id: newMemberID(), name: h.Name, fold: fold, shape: shape, avatar: h.Avatar, keyHash: kh,
			since: now.UnixMilli(), state: protocol.StateOnline, conn: c, lastSerial: c.serial, remote: c.remote, addr: c.ip,
		}
		r.members[m.id], r.byKey[kh], r.byName[fold], r.byShape[shape] = m, m, m, m
		r.size.Store(int32(len(r.members)))
		r.s.store.PutMember(r.name, m.record(), nil)
		r.attach(c, m)
		r.broadcast(&protocol.Joined{Member: m.wire()}, m)
		r.s.log.Info("member joined", "room", r.name, "member", m.id, "name", m.name, "remote", c.remote, "client", h.Client)
	}
	c.send(r.welcome(c, m, h.Resume, now))
	return joinResult{}
}

func (r *room) unindexName(m *member) {
	if r.byName[m.fold] == m {
		delete(r.byName, m.fold)
	}
	if r.byShape[m.shape] == m {
		delete(r.byShape, m.shape)
	}
}

// nameTakenMessage tells a refused joiner whether their name is taken or
// only looks like a member's. It is the close reason, so it falls back to a
// shorter text past the 123 bytes a close frame holds.
func nameTakenMessage(name, holder string) string {
	msg := fmt.Sprintf("the name %q is taken in this room: choose another name", name)
	if !strings.EqualFold(name, holder) {
		msg = fmt.Sprintf("the name %q looks like %q, a member of this room: choose another name", name, holder)
		if len(msg) > 120 {
			msg = "the name looks like the name of a member of this room: choose another name"
		}
	}
	if len(msg) > 120 {
		msg = "the name is taken in this room: choose another name"
	}
	return msg
}

// membersFrom counts the members (online and away) whose last connection
// came from addr. A join already costs a pass over the members (the
// welcome lists them), so no index is kept.
func (r *room) membersFrom(addr string) int {
	n := 0
	for _, m := range r.members {
		if m.addr == addr {
			n++
		}
	}
	return n
}

func (r *room) attach(c *conn, m *member) {
	c.mu.Lock()
	c.room, c.member = r, m
	if !c.readerDone {
		c.live.flags.Or(liveJoined)
	}
	c.mu.Unlock()
}

func (r *room) welcome(c *conn, m *member, resume *protocol.Resume, now time.Time) *protocol.Welcome {
	hist, recovered := r.history(resume)
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
		ObservedAddr: c.remote, STUN: r.s.STUNPorts(),
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

// send handles an accepted-looking msg from m on c: a duplicate id gets its
// original ack; a new one gets the next seq and goes to the store. The ack
// and the broadcast wait for the commit (applyCommit).
func (r *room) send(m *member, c *conn, f *protocol.Send, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m.conn != c {
		return // replaced or left: this connection no longer speaks for m
	}
	key := m.id + "\x00" + f.ID
	if p := r.inflight[key]; p != nil {
		p.acks++
		return
	}
	if rec, ok, err := r.s.store.LookupID(r.name, m.id, f.ID); err != nil {
		r.s.log.Error("cannot look up a message id", "room", r.name, "member", m.id, "err", err)
		c.sendError(protocol.ErrInternal, "the relay could not check this message; send it again", f.ID)
		return
	} else if ok {
		c.send(&protocol.Ack{ID: f.ID, Seq: rec.Seq, TS: rec.TS})
		return
	}
	spent, wait := c.allow(now)
	if spent == nil {
		c.rateLimited(f.ID, wait)
		return
	}
	ts := max(now.UnixMilli(), r.lastTS) // never earlier than the previous message
	r.lastTS = ts
	r.seq++
	r.pending++
	rec := store.Record{Seq: r.seq, TS: ts, MemberID: m.id, ClientID: f.ID, Text: f.Text, Name: m.name, Avatar: m.avatar}
	r.inflight[key] = &pendingMsg{from: m.wire(), acks: 1}
	start := time.Now()
	stored := r.s.store.TryAppend(r.name, rec, func(err error) {
		r.completed(commitResult{key: key, rec: rec, start: start, err: err})
	})
	if !stored {
		// The disk is behind. Refuse rather than make this reader (and the
		// room, whose lock is held) wait: the message takes no seq, and the
		// client resends it, in order, after retry_after_ms. Like any
		// refusal it costs no rate budget.
		spent.CancelAt(now)
		r.seq--
		r.pending--
		delete(r.inflight, key)
		r.s.metrics.StoreBusy.Inc()
		c.rateLimited(f.ID, storeBusyRetry)
	}
}

// storeBusyRetry is how long a sender waits when the store's queue is full:
// about one commit of a loaded disk.
const storeBusyRetry = 50 * time.Millisecond

// completed runs on the store's committer goroutine: it must not block, so
// it queues the result for the room's drainer.
func (r *room) completed(res commitResult) {
	r.doneMu.Lock()
	r.doneQ = append(r.doneQ, res)
	start := !r.draining
	r.draining = true
	r.doneMu.Unlock()
	if start {
		r.s.bgWG.Add(1)
		go r.drain()
	}
}

func (r *room) drain() {
	defer r.s.bgWG.Done()
	for {
		start := time.Now()
		r.doneMu.Lock()
		q := r.doneQ
		r.doneQ = nil
		if len(q) == 0 {
			r.draining = false
			r.doneMu.Unlock()
			return
		}
		r.doneMu.Unlock()
		r.mu.Lock()
		for _, res := range q {
			r.applyCommit(&r.batch, res)
		}
		kick := r.flush(&r.batch, r.kickBuf[:0])
		r.mu.Unlock()
		// The writes happen outside the room's lock: a sender waiting for
		// it must not wait for a thousand syscalls.
		kickAll(kick)
		clear(kick)
		r.kickBuf = kick
		if len(q) >= flushMinBatch && len(kick) >= flushMinMembers {
			// A busy room: commits arrive faster than they are written.
			// What commits meanwhile waits for the next batch.
			if wait := r.s.cfg.FlushInterval - time.Since(start); wait > 0 {
				time.Sleep(wait)
			}
		}
	}
}

// A room is busy, and waits for FlushInterval between batches, when its
// last batch held flushMinBatch messages or more and went to flushMinMembers
// online members or more. Two messages in a batch happen often in a room of
// a few messages a second (two senders a few milliseconds apart); three
// rarely. Below flushMinMembers the writes cost less than the wait would
// cost the room's senders, whose acks wait too.
const (
	flushMinBatch   = 3
	flushMinMembers = 64
)

// kickAll kicks every connection of a big room on every core at once, one
// goroutine per core rather than one per member.
func kickAll(conns []*conn) {
	const minPerCore = 64
	parts := min(runtime.GOMAXPROCS(0), len(conns)/minPerCore)
	if parts <= 1 {
		for _, c := range conns {
			c.kick()
		}
		return
	}
	var wg sync.WaitGroup
	size := (len(conns) + parts - 1) / parts
	for part := range slices.Chunk(conns[size:], size) {
		wg.Go(func() {
			for _, c := range part {
				c.kick()
			}
		})
	}
	for _, c := range conns[:size] {
		c.kick()
	}
	wg.Wait()
}

// applyCommit answers one finished commit into b: the message for the
// other members, the acks (or the error) for its sender.
func (r *room) applyCommit(b *fanBatch, res commitResult) {
	p := r.inflight[res.key]
	delete(r.inflight, res.key)
	r.pending--
	if p == nil {
		p = &pendingMsg{acks: 1}
	}
	r.s.metrics.StoreCommit.Observe(time.Since(res.start).Seconds())
	m := r.members[res.rec.MemberID]
	var dup *store.DuplicateError
	switch {
	case res.err == nil:
		r.committed = res.rec.Seq
		r.s.metrics.MessagesAccepted.Inc()
		if data, ok := r.s.encode(&protocol.Message{Seq: res.rec.Seq, ID: res.rec.ClientID, From: p.from, Text: res.rec.Text, TS: res.rec.TS}); ok {
			b.addMsg(data, m)
		}
		r.ack(b, m, p.acks, &protocol.Ack{ID: res.rec.ClientID, Seq: res.rec.Seq, TS: res.rec.TS})
		return
	case errors.As(res.err, &dup):
		r.ack(b, m, p.acks, &protocol.Ack{ID: res.rec.ClientID, Seq: dup.Existing.Seq, TS: dup.Existing.TS})
	case errors.Is(res.err, store.ErrFull):
		r.s.metrics.StoreErrors.Inc()
		if r.s.storeFull.logDue(time.Now()) {
			r.s.log.Error("history database at its size cap (--max-store-bytes): refusing messages that need more space; raise the cap or lower --history/--history-bytes/--max-rooms",
				"room", r.name, "err", res.err)
		}
		r.sendTo(b, m, &protocol.Error{Code: protocol.ErrInternal, Message: "the relay's storage is full, so this message was not stored or sent; try again later, and tell the relay's operator", ID: res.rec.ClientID})
	default:
		r.s.metrics.StoreErrors.Inc()
		r.s.log.Error("message not stored", "room", r.name, "member", res.rec.MemberID, "seq", res.rec.Seq, "err", res.err)
		r.sendTo(b, m, &protocol.Error{Code: protocol.ErrInternal, Message: "the relay could not store this message, so it was not sent; send it again", ID: res.rec.ClientID})
	}
	// A failed record takes no seq, and the store fails every record queued
	// after it with a higher seq. Restart numbering after the last durable
	// one, once: at the first failure of the chain (the record the store
	// expected next).
	if res.rec.Seq == r.committed+1 {
		r.seq = r.committed
	}
}

// ack sends m the acks it is owed (n: the original and its duplicates).
func (r *room) ack(b *fanBatch, m *member, n int, a *protocol.Ack) {
	for range n {
		r.sendTo(b, m, a)
	}
}

// sendTo sends f to m alone, in b, so that it keeps its place among the
// other members' messages.
func (r *room) sendTo(b *fanBatch, m *member, f protocol.Frame) {
	if m == nil || m.conn == nil {
		return
	}
	if data, ok := r.s.encode(f); ok {
		b.addFrame(m, f.FrameType(), data)
	}
}

// broadcast encodes f once and queues the same bytes to every online member
// but except. A member whose queue overflows is cut off (enqueue evicts it)
// without delaying the others.
func (r *room) broadcast(f protocol.Frame, except *member) {
	start := time.Now()
	data, ok := r.s.encode(f)
	if !ok {
		return
	}
	frame := outFrame{data: data, op: websocket.TextMessage}
	queued := 0
	for _, o := range r.members {
		if o == except || o.conn == nil {
			continue
		}
		if o.conn.push(frame, true) {
			queued++
		}
	}
	r.s.frameCounter(r.s.framesOut, r.s.metrics.FramesOut, f.FrameType()).Add(float64(queued))
	r.s.metrics.FanoutDuration.Observe(time.Since(start).Seconds())
}

// linkDropped turns m away when c, its current connection, ended without bye.
func (r *room) linkDropped(m *member, c *conn, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m.conn != c {
		return // replaced, or already gone
	}
	now := r.s.cfg.now()
	m.conn = nil
	m.state = protocol.StateAway
	m.leaveAt, m.leaveReason = now.Add(r.s.cfg.Grace), reason
	r.leaveDue(m.leaveAt)
	m.lastSeen = time.Unix(0, c.live.lastSeen.Load())
	r.s.log.Info("member away", "room", r.name, "member", m.id, "remote", c.remote, "reason", reason, "grace", r.s.cfg.Grace)
	if r.s.draining.Load() {
		return // everyone is being closed; they will be away after the restart
	}
	r.broadcast(&protocol.Presence{Member: m.wire()}, m)
}

// bye removes m at once (reason bye) if c is its current connection.
func (r *room) bye(m *member, c *conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m.conn != c {
		return
	}
	m.conn = nil
	r.remove(m, protocol.ReasonBye)
}

func (r *room) remove(m *member, reason string) {
	delete(r.members, m.id)
	delete(r.byKey, m.keyHash)
	r.unindexName(m)
	r.s.store.DeleteMember(r.name, m.id, nil)
	r.size.Store(int32(len(r.members)))
	r.broadcast(&protocol.Left{Member: m.wire(), Reason: reason}, m)
	r.s.log.Info("member left", "room", r.name, "member", m.id, "name", m.name, "remote", m.remote, "reason", reason)
}

// sweep ends the grace period of away members and forgets an empty room. It
// skips a busy room (the next sweep gets it) so the sweeper never waits.
// leaveDue notes that an away member leaves at t, so that sweep looks at
// the members only when a grace period may have ended.
func (r *room) leaveDue(t time.Time) {
	if r.nextLeave.IsZero() || t.Before(r.nextLeave) {
		r.nextLeave = t
	}
}

func (r *room) sweep(now time.Time) {
	if !r.mu.TryLock() {
		return
	}
	defer r.mu.Unlock()
	if !r.nextLeave.IsZero() && !now.Before(r.nextLeave) {
		r.nextLeave = time.Time{}
		for _, m := range r.members {
			switch {
			case m.conn != nil || m.leaveAt.IsZero():
			case !now.Before(m.leaveAt):
				r.remove(m, m.leaveReason)
			default:
				r.leaveDue(m.leaveAt)
			}
		}
	}
	if len(r.members) == 0 && r.pending == 0 && !r.dead {
		r.dead = true
		r.s.roomsMu.Lock()
		if r.s.rooms[r.name] == r {
			delete(r.s.rooms, r.name)
		}
		r.s.metrics.Rooms.Set(float64(len(r.s.rooms)))
		r.s.roomsMu.Unlock()
	}
}
