package server

// A room's membership: join (and return), attach to a connection, the link
// dropping (away), bye, removal and the grace period's end.

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/heartline/heartline/relay/metrics"
	"github.com/heartline/heartline/shared/names"
	"github.com/heartline/heartline/shared/protocol"
)

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
	if r.s.inRedis() {
		return r.joinShared(c, h)
	}
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
		if c.Serial() < m.lastSerial {
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
		m.state, m.conn, m.lastSerial, m.remote, m.addr = protocol.StateOnline, c, c.Serial(), c.Remote(), c.ip
		m.leaveAt, m.leaveReason = time.Time{}, ""
		if old != nil && old != c {
			old.Evict(protocol.CloseReplaced, "replaced by a newer connection of the same member", "", metrics.EvictReplaced)
		}
		r.attach(c, m)
		if wasAway || changed {
			r.broadcast(&protocol.Presence{Member: m.wire()}, m)
		}
		r.s.log.Info("member returned", "room", r.name, "member", m.id, "name", m.name, "remote", c.Remote(),
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
			since: now.UnixMilli(), state: protocol.StateOnline, conn: c, lastSerial: c.Serial(), remote: c.Remote(), addr: c.ip,
		}
		r.members[m.id], r.byKey[kh], r.byName[fold], r.byShape[shape] = m, m, m, m
		r.size.Store(int32(len(r.members)))
		r.s.store.PutMember(r.name, m.record(), nil)
		r.attach(c, m)
		r.broadcast(&protocol.Joined{Member: m.wire()}, m)
		r.s.log.Info("member joined", "room", r.name, "member", m.id, "name", m.name, "remote", c.Remote(), "client", h.Client)
	}
	c.Send(r.welcome(c, m, h.Resume, now))
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
	c.mu.Unlock()
	c.MarkJoined()
}

// linkDropped turns m away when c, its current connection, ended without bye.
func (r *room) linkDropped(m *member, c *conn, reason string) {
	if r.s.inRedis() {
		r.linkDroppedShared(m, c, reason)
		return
	}
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
	m.lastSeen = c.LastSeen()
	r.s.log.Info("member away", "room", r.name, "member", m.id, "remote", c.Remote(), "reason", reason, "grace", r.s.cfg.Grace)
	if r.s.draining.Load() {
		return // everyone is being closed; they will be away after the restart
	}
	r.broadcast(&protocol.Presence{Member: m.wire()}, m)
}

// bye removes m at once (reason bye) if c is its current connection.
func (r *room) bye(m *member, c *conn) {
	if r.s.inRedis() {
		r.byeShared(m, c)
		return
	}
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
	// Logged before the others are told, so a log read after they see the
	// left event has the line.
	r.s.log.Info("member left", "room", r.name, "member", m.id, "name", m.name, "remote", m.remote, "reason", reason)
	r.broadcast(&protocol.Left{Member: m.wire(), Reason: reason}, m)
}

// leaveDue notes that an away member leaves at t, so that sweep looks at
// the members only when a grace period may have ended.
func (r *room) leaveDue(t time.Time) {
	if r.nextLeave.IsZero() || t.Before(r.nextLeave) {
		r.nextLeave = t
	}
}

// sweep ends the grace period of away members and forgets an empty room. It
// skips a busy room (the next sweep gets it) so the sweeper never waits.
func (r *room) sweep(now time.Time) {
	if r.s.inRedis() {
		r.sweepShared()
		return
	}
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
