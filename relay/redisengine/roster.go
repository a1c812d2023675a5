package redisengine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"
)

// Event is one change of a room, as every relay receives it.
type Event struct {
	Kind string `json:"k"` // KindMessage, KindJoined, KindPresence, KindLeft

	// A message.
	Epoch  string `json:"e,omitempty"`
	Seq    uint64 `json:"s,omitempty"`
	TS     int64  `json:"t,omitempty"`
	Client string `json:"c,omitempty"`
	Text   string `json:"x,omitempty"`

	// The member (the sender of a message).
	ID     string `json:"id"`
	Name   string `json:"n"`
	Avatar string `json:"a"`
	Since  int64  `json:"since,omitempty"`
	State  string `json:"st,omitempty"` // online or away

	// A roster change.
	PV        uint64 `json:"pv,omitempty"`        // the roster's version after this change
	Relay     string `json:"relay,omitempty"`     // where the member is now online
	Link      string `json:"link,omitempty"`      // its connection there
	Prev      string `json:"prev,omitempty"`      // the link this change ended (replaced, away)
	PrevRelay string `json:"prevRelay,omitempty"` // where Prev was
	WasAway   bool   `json:"away,omitempty"`      // a return from away
	Changed   bool   `json:"ch,omitempty"`        // the name or avatar changed
	Reason    string `json:"why,omitempty"`       // a leave's reason
}

// The kinds of Event.
const (
	KindMessage  = "m"
	KindJoined   = "j"
	KindPresence = "p"
	KindLeft     = "l"
)

// Member is one member of a room's roster.
type Member struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Avatar  string `json:"avatar"`
	KeyHash string `json:"kh"`
	Since   int64  `json:"since"`
	Addr    string `json:"addr"`

	State    string `json:"-"` // online or away
	Relay    string `json:"-"` // online: where
	Link     string `json:"-"` // online: which connection
	Deadline int64  `json:"-"` // away: when its grace ends (ms)
	Reason   string `json:"-"` // away: the leave reason if it does not come back
}

type presence struct {
	State    string `json:"st"`
	Relay    string `json:"relay"`
	Link     string `json:"link"`
	Deadline int64  `json:"dl"`
	Reason   string `json:"why"`
}

// Roster is a room at one instant.
type Roster struct {
	Epoch   string // "" if Redis does not know the room
	Seq, PV uint64
	Members []Member
}

// Roster reads room's roster, position and roster version at once.
func (e *Engine) Roster(ctx context.Context, room string) (Roster, error) {
	k := keysOf(room)
	arr, err := e.exec(ctx, "roster", rosterScript, []string{k.meta, k.members, k.pres}, nil).ToArray()
	if err != nil {
		return Roster{}, err
	}
	if len(arr) != 5 {
		return Roster{}, errShortReply
	}
	var r Roster
	r.Epoch, _ = arr[0].ToString()
	s, _ := arr[1].AsInt64()
	pv, _ := arr[2].AsInt64()
	r.Seq, r.PV = uint64(s), uint64(pv)
	members, err := arr[3].AsStrMap()
	if err != nil {
		return Roster{}, err
	}
	pres, err := arr[4].AsStrMap()
	if err != nil {
		return Roster{}, err
	}
	for id, raw := range members {
		var m Member
		if err := json.Unmarshal([]byte(raw), &m); err != nil {
			return Roster{}, fmt.Errorf("room %q: member %s: %w", room, id, err)
		}
		p := presence{State: "away", Reason: "timeout"}
		if raw, ok := pres[id]; ok {
			if err := json.Unmarshal([]byte(raw), &p); err != nil {
				return Roster{}, fmt.Errorf("room %q: presence of %s: %w", room, id, err)
			}
		}
		m.State, m.Relay, m.Link, m.Deadline, m.Reason = p.State, p.Relay, p.Link, p.Deadline, p.Reason
		r.Members = append(r.Members, m)
	}
	return r, nil
}

// JoinRequest is a hello, as the join script needs it.
type JoinRequest struct {
	NewEpoch             string // the room's epoch if the join creates it
	KeyHash              string
	Name, Fold, Shape    string // the name and its names.Key, names.ShapeKey
	Avatar, Addr         string
	Link                 string // this connection, unique on this relay
	NewID                string // the member id if the key is new to the room
	MaxMembers, MaxPerIP int
}

// JoinResult is the join script's answer.
type JoinResult struct {
	Status  string // JoinOK, JoinTaken, JoinFull, JoinFullIP
	Holder  string // JoinTaken: whose name it is (or looks like)
	Count   int    // JoinFull*: how many members there are (from that address)
	Event   *Event // JoinOK: the joined or presence event every relay receives
	Epoch   string
	Seq     uint64
	Created bool // the join created the room
}

// The statuses of JoinResult.
const (
	JoinOK     = "ok"
	JoinTaken  = "taken"
	JoinFull   = "full"
	JoinFullIP = "full_ip"
)

// Join admits a member to room: a returning one (its key is known, on any
// relay) or a new one. On JoinOK the member is online on this relay.
func (e *Engine) Join(ctx context.Context, room string, j JoinRequest) (JoinResult, error) {
	k := keysOf(room)
	arr, err := e.exec(ctx, "join", joinScript, []string{k.meta, k.members, k.keys, k.names, k.shapes, k.pres},
		[]string{j.NewEpoch, j.KeyHash, j.Name, j.Fold, j.Shape, j.Avatar, j.Addr, e.relayID, j.Link, j.NewID,
			strconv.Itoa(j.MaxMembers), strconv.Itoa(j.MaxPerIP), k.channel}).ToArray()
	if err != nil {
		return JoinResult{}, err
	}
	if len(arr) != 6 {
		return JoinResult{}, errShortReply
	}
	var res JoinResult
	res.Status, _ = arr[0].ToString()
	detail, _ := arr[1].ToString()
	raw, _ := arr[2].ToString()
	res.Epoch, _ = arr[3].ToString()
	seq, _ := arr[4].AsInt64()
	created, _ := arr[5].AsInt64()
	res.Seq, res.Created = uint64(seq), created == 1
	switch res.Status {
	case JoinTaken:
		res.Holder = detail
	case JoinFull, JoinFullIP:
		res.Count, _ = strconv.Atoi(detail)
	case JoinOK:
		res.Event = new(Event)
		if err := json.Unmarshal([]byte(raw), res.Event); err != nil {
			return JoinResult{}, fmt.Errorf("redis: bad join event: %w", err)
		}
	default:
		return JoinResult{}, fmt.Errorf("redis: unexpected join status %q", res.Status)
	}
	e.noteRoom(ctx, room)
	return res, nil
}

// noteRoom records that this relay has members in room (so they turn away
// if it dies) and when the room was last joined. Both are idempotent; a
// failure only delays the room's listing.
func (e *Engine) noteRoom(ctx context.Context, room string) {
	now := time.Now().UnixMilli()
	start := time.Now()
	res := e.client.DoMulti(ctx,
		e.client.B().Sadd().Key(relayRoomsKey(e.relayID)).Member(room).Build(),
		e.client.B().Zadd().Key(roomsKey).ScoreMember().ScoreMember(float64(now), room).Build(),
	)
	var err error
	for _, r := range res {
		err = errors.Join(err, r.Error())
	}
	e.observe("note_room", start, err)
}

// Away turns a member away if link is still its connection, starting its
// grace period. It reports whether it did.
func (e *Engine) Away(ctx context.Context, room, id, link, reason string, grace time.Duration) (bool, error) {
	k := keysOf(room)
	dl, err := e.exec(ctx, "away", awayScript, []string{k.meta, k.members, k.pres},
		[]string{id, link, strconv.FormatInt(grace.Milliseconds(), 10), reason, k.channel}).AsInt64()
	if err != nil || dl == 0 {
		return false, err
	}
	return true, e.scheduleGrace(ctx, room, id, dl)
}

func (e *Engine) scheduleGrace(ctx context.Context, room, id string, deadline int64) error {
	return e.do(ctx, "grace", e.client.B().Zadd().Key(gracesKey).ScoreMember().ScoreMember(float64(deadline), graceMember(room, id)).Build()).Error()
}

// Bye removes a member that said bye on link. It reports whether it left.
func (e *Engine) Bye(ctx context.Context, room, id, link string) (bool, error) {
	return e.leave(ctx, room, id, link, "bye", "bye")
}

func (e *Engine) leave(ctx context.Context, room, id, link, mode, reason string) (bool, error) {
	k := keysOf(room)
	n, err := e.exec(ctx, "leave", leaveScript, []string{k.meta, k.members, k.keys, k.names, k.shapes, k.pres},
		[]string{id, link, mode, reason, k.channel}).AsInt64()
	return n == 1, err
}

// relayDown turns away every member of room online through relay.
func (e *Engine) relayDown(ctx context.Context, room, relay string, grace time.Duration) (int, error) {
	k := keysOf(room)
	arr, err := e.exec(ctx, "relay_down", relayDownScript, []string{k.meta, k.members, k.pres},
		[]string{relay, strconv.FormatInt(grace.Milliseconds(), 10), "timeout", k.channel}).ToArray()
	if err != nil {
		return 0, err
	}
	if len(arr) == 0 {
		return 0, nil
	}
	cmds := make(rueidis.Commands, 0, len(arr)/2)
	for i := 0; i+1 < len(arr); i += 2 {
		id, _ := arr[i].ToString()
		dl, _ := arr[i+1].AsInt64()
		cmds = append(cmds, e.client.B().Zadd().Key(gracesKey).ScoreMember().ScoreMember(float64(dl), graceMember(room, id)).Build())
	}
	for _, r := range e.client.DoMulti(ctx, cmds...) {
		err = errors.Join(err, r.Error())
	}
	return len(arr) / 2, err
}
