package server

// The room and member types, and how a room is found, created or restored.

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

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
	relay, link            string    // shared rooms: where the member is online (relay id, connection)
}

func (m *member) wire() protocol.Member {
	return protocol.Member{ID: m.id, Name: m.name, Avatar: m.avatar, Since: m.since, State: m.state}
}

func (m *member) record() store.MemberRecord {
	return store.MemberRecord{ID: m.id, Name: m.name, Avatar: m.avatar, KeyHash: m.keyHash, Since: m.since}
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

	// Shared rooms (shared.go) only.
	pv         uint64 // the roster version this view has applied
	wantSeq    uint64 // what the running catch-up must reach
	wantPV     uint64 // idem
	catchingUp bool   // a catch-up goroutine runs
	joining    int    // joins under way (the room has no connection of theirs yet)
	// recentKey remembers who sent the latest seqs (seq % len), as member
	// and client id joined by \x00: the same seq again from someone else
	// means Redis handed it out twice.
	recentKey  [256]string
	recentSeq  [256]uint64             // the seq recentKey[i] was delivered as (0: none yet: a view loaded from Redis knows no senders)
	delivered  map[string]protocol.Ack // recentKey -> its ack, for the messages in recentKey
	serials    map[string]uint64       // key hash -> serial of the newest connection here that joined with it
	pubQ       []pubItem               // messages waiting for the publisher
	publishing bool                    // the publisher goroutine runs
}

func (s *Server) newRoom(name string) *room {
	return &room{
		s: s, name: name, ready: make(chan struct{}),
		members: map[string]*member{}, byKey: map[string]*member{}, byName: map[string]*member{}, byShape: map[string]*member{},
		inflight:  map[string]*pendingMsg{},
		delivered: map[string]protocol.Ack{}, serials: map[string]uint64{},
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
	if creator && s.inRedis() {
		r = s.newRoom(name)
		s.rooms[name] = r
		s.metrics.Rooms.Set(float64(len(s.rooms)))
	} else if creator {
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
	if s.inRedis() {
		err := s.openShared(r)
		if err == nil && r.epoch == "" {
			// Redis does not know the room: this hello creates it.
			err = s.admitNewSharedRoom(ip)
			if err != nil {
				ctx, cancel := redisCtx()
				s.redis.Unsubscribe(ctx, name, nil)
				cancel()
			}
		}
		if err != nil {
			r.initErr = err
			s.roomsMu.Lock()
			delete(s.rooms, name)
			s.metrics.Rooms.Set(float64(len(s.rooms)))
			s.roomsMu.Unlock()
			close(r.ready)
			return nil, err
		}
		close(r.ready)
		return r, nil
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
