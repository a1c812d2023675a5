package settings

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/heartline/heartline/shared/client"
)

// NotifyLevel is when a room raises a desktop notification.
type NotifyLevel string

const (
	NotifyAll      NotifyLevel = "all"      // every message from someone else (the default)
	NotifyMentions NotifyLevel = "mentions" // only messages that mention me
	NotifyNone     NotifyLevel = "none"     // never (a mention still notifies: see Notifies)
)

// NotifyLevels lists the choices in the order a menu offers them.
var NotifyLevels = []NotifyLevel{NotifyAll, NotifyMentions, NotifyNone}

// Notifies reports whether a message notifies at this level. A mention
// always does: "none" silences the room's chatter, not someone calling me.
func (n NotifyLevel) Notifies(mention bool) bool {
	return mention || n == NotifyAll || n == ""
}

// RoomEntry is one room in the sidebar, remembered across restarts.
type RoomEntry struct {
	Relay  string      `json:"relay,omitempty"` // as typed; "" for the room this computer hosts
	Room   string      `json:"room"`
	Token  string      `json:"token,omitempty"`
	Host   bool        `json:"host,omitempty"` // this computer runs the relay (embedded)
	Notify NotifyLevel `json:"notify,omitempty"`
}

// Key names the entry: one room on one relay (the hosted room is one per
// computer, whatever port it listens on).
func (e RoomEntry) Key() string {
	if e.Host {
		return "host|" + e.Room
	}
	return client.RoomKey(e.Relay, e.Room)
}

// Retention is how long the device keeps a room's messages.
type Retention string

const (
	KeepForever Retention = "forever"
	KeepYear    Retention = "1y"
	KeepMonth   Retention = "30d"
)

// Retentions lists the choices in the order the settings screen offers them.
var Retentions = []Retention{KeepForever, KeepYear, KeepMonth}

// Age is how old a message may get before it is pruned (0: never).
func (r Retention) Age() time.Duration {
	switch r {
	case KeepYear:
		return 365 * 24 * time.Hour
	case KeepMonth:
		return 30 * 24 * time.Hour
	}
	return 0
}

const (
	kRooms     = "rooms"
	kSelected  = "selected_room"
	kRetention = "history_retention"
)

// Rooms returns the sidebar's rooms in the person's order. An unreadable
// value (hand-edited, or from a future version) reads as none rather than
// stopping the app; entries without a valid room name are dropped.
func (s *Store) Rooms() []RoomEntry {
	v := s.p.String(kRooms)
	if v == "" {
		return nil
	}
	var rs []RoomEntry
	if err := json.Unmarshal([]byte(v), &rs); err != nil {
		return nil
	}
	out := rs[:0]
	seen := map[string]bool{}
	for _, r := range rs {
		r.Room = strings.TrimSpace(r.Room)
		if r.Room == "" || seen[r.Key()] {
			continue
		}
		switch r.Notify {
		case NotifyAll, NotifyMentions, NotifyNone:
		default:
			r.Notify = NotifyAll
		}
		seen[r.Key()] = true
		out = append(out, r)
	}
	return out
}

// SaveRooms stores the sidebar's rooms in order.
func (s *Store) SaveRooms(rs []RoomEntry) {
	b, _ := json.Marshal(rs) // plain strings: cannot fail
	s.p.SetString(kRooms, string(b))
}

// SelectedRoom is the key of the room open when the app last closed.
func (s *Store) SelectedRoom() string { return s.p.String(kSelected) }

// SaveSelectedRoom remembers the room on screen.
func (s *Store) SaveSelectedRoom(key string) { s.p.SetString(kSelected, key) }

// Retention is how long local history is kept (default: forever).
func (s *Store) Retention() Retention {
	r := Retention(s.p.StringWithFallback(kRetention, string(KeepForever)))
	for _, ok := range Retentions {
		if r == ok {
			return r
		}
	}
	return KeepForever
}

// SaveRetention stores how long local history is kept.
func (s *Store) SaveRetention(r Retention) { s.p.SetString(kRetention, string(r)) }
