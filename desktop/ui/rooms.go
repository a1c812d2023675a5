package ui

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/heartline/heartline/desktop/chatview"
	"github.com/heartline/heartline/desktop/settings"
	"github.com/heartline/heartline/shared/client"
	"github.com/heartline/heartline/shared/protocol"
)

// roomListStore keeps the sidebar across restarts: settings.Store in the
// app, a map in tests.
type roomListStore interface {
	SaveRooms([]settings.RoomEntry)
	SaveSelectedRoom(key string)
}

// roomState is one room in the sidebar, without Fyne: what it is, how to
// reach it, its link and what the person has not read yet.
type roomState struct {
	Entry    settings.RoomEntry
	Addr     string // the relay address dialled (the hosted room: the embedded relay's)
	Unread   int    // messages from others not yet seen
	Mentions int    // of those, how many mention me
	Link     chatview.Link
	sess     *session

	me    protocol.Member // as the relay welcomed me
	epoch string          // the epoch of the current connection
	// prevEpoch: the epoch before the latest welcome (a gap after a
	// resume into a new epoch starts there).
	prevEpoch string
	// welcomeFirst is the first seq the latest welcome brought (its
	// history's first, else the seq after the room's latest).
	welcomeFirst uint64
	// last is the newest message seen (read markers point at it).
	last struct {
		Epoch string
		Seq   uint64
		TS    int64
	}
	// countedUpTo: messages of epoch with a seq up to this were seen or
	// counted already (a resume replays them; they never count twice).
	countedUpTo uint64
}

// Key names the room (its entry's key).
func (r *roomState) Key() string { return r.Entry.Key() }

// Title is the room's name as the sidebar shows it.
func (r *roomState) Title() string { return "#" + r.Entry.Room }

// Where is the relay as a person reads it: its host, or "this computer".
func (r *roomState) Where() string {
	if r.Entry.Host {
		return "this computer"
	}
	s := r.Entry.Relay
	for _, p := range []string{"wss://", "ws://", "https://", "http://"} {
		s = strings.TrimPrefix(s, p)
	}
	if i := strings.IndexByte(s, '/'); i >= 0 {
		s = s[:i]
	}
	return s
}

// rooms is the desktop's multi-room controller, without Fyne: every room
// the person joined runs its own engine at the same time (started through
// the session controller); rooms routes each engine's events to the room's
// counters, the local history and the UI. Every method runs on the UI
// goroutine (events arrive there through sessions.do).
type rooms struct {
	sessions *sessions
	store    roomListStore
	hist     historySink // nil: no local history
	items    []*roomState
	selected string
	blurred  bool   // the window is in the background
	myName   string // for mentions

	// onEvents hands a room's batch to its view (nil: no views, in tests).
	onEvents func(r *roomState, evs []client.Event)
	// onNotify: a message someone else wrote should notify (the room's
	// level allows it, or it mentions me), and it is not in plain sight.
	onNotify func(r *roomState, m protocol.Message, mention bool)
	// onChanged: a room's row in the sidebar changed (counts, link) or
	// rooms were added, removed or moved (r is nil then).
	onChanged func(r *roomState)
	// startOrder is each saved room's place while they are being opened
	// after the window was shown (nil: not starting); see beginStart.
	startOrder map[string]int
}

// historySink takes every message and gap a room sees and where the
// person has read up to (the local store's writer: it must not block).
type historySink interface {
	put(r *roomState, epoch string, m protocol.Message, own bool)
	// gap: between the message heldUpTo of fromEpoch and the message
	// toSeq of toEpoch, messages may be missing.
	gap(r *roomState, fromEpoch string, heldUpTo uint64, toEpoch string, toSeq uint64)
	markRead(r *roomState)
}

var errRoomOpen = errors.New("that room is already in the list")

// openRequest is one room to open: its entry, the address to dial and
// token to use, and who the person is.
type openRequest struct {
	Entry        settings.RoomEntry
	Addr, Token  string
	Name, Avatar string
}

// open starts a room's engine and adds it at the end of the list.
// newView runs before the engine starts, with where the person had read
// up to (nil: nothing saved), so the UI can build the room's view.
func (rs *rooms) open(req openRequest, newView func(r *roomState, readUpTo *settings.ResumePoint)) (*roomState, error) {
	if rs.find(req.Entry.Key()) != nil {
		return nil, errRoomOpen
	}
	r := &roomState{Entry: req.Entry, Addr: req.Addr}
	s, err := rs.start(r, req, false, newView)
	if err != nil {
		return nil, err
	}
	r.sess = s
	rs.items = append(rs.items, r)
	if rs.startOrder != nil {
		// Opened after the window was shown: its saved place, not the end.
		rank := func(r *roomState) int {
			if i, ok := rs.startOrder[r.Key()]; ok {
				return i
			}
			return len(rs.startOrder) // joined meanwhile: after the saved ones
		}
		slices.SortStableFunc(rs.items, func(a, b *roomState) int { return rank(a) - rank(b) })
	}
	rs.save()
	rs.changed(nil)
	return r, nil
}

// beginStart: the saved rooms es are being opened, some after the window
// is shown; each takes its saved place and the list is not saved (a crash
// meanwhile must not forget the rooms not opened yet) until endStart.
func (rs *rooms) beginStart(es []settings.RoomEntry) {
	rs.startOrder = make(map[string]int, len(es))
	for i, e := range es {
		rs.startOrder[e.Key()] = i
	}
}

// endStart: every saved room was opened (or failed to); the list is saved
// as it is now.
func (rs *rooms) endStart() {
	if rs.startOrder == nil {
		return
	}
	rs.startOrder = nil
	rs.save()
}

func (rs *rooms) start(r *roomState, req openRequest, same bool, newView func(r *roomState, readUpTo *settings.ResumePoint)) (*session, error) {
	p := settings.Profile{Relay: req.Addr, Room: req.Entry.Room, Name: req.Name, Avatar: req.Avatar}
	return rs.sessions.join(r.sess, joinRequest{Profile: p, Token: req.Token, Same: same}, func(readUpTo *settings.ResumePoint) {
		if readUpTo != nil {
			// What the person saw before: a resume replays it, it is not new.
			r.epoch, r.countedUpTo = readUpTo.Epoch, readUpTo.LastSeq
		}
		if newView != nil {
			newView(r, readUpTo)
		}
	}, func(evs []client.Event) {
		if rs.find(r.Key()) == r || r.sess == nil {
			rs.apply(r, evs)
		}
	})
}

// rejoin reconnects r as someone else (a new name or picture): same member
// key, no bye, the view stays.
func (rs *rooms) rejoin(r *roomState, name, avatar, token string) error {
	s, err := rs.start(r, openRequest{Entry: r.Entry, Addr: r.Addr, Token: token, Name: name, Avatar: avatar}, true, nil)
	if err != nil {
		return err
	}
	r.sess = s
	return nil
}

// leave ends a room with a bye and takes it off the list; the neighbour
// below (else above) becomes the selected room if it was.
func (rs *rooms) leave(key string) {
	i := rs.index(key)
	if i < 0 {
		return
	}
	r := rs.items[i]
	rs.items = append(rs.items[:i], rs.items[i+1:]...)
	if r.sess != nil {
		rs.sessions.stop(r.sess, true)
	}
	if rs.selected == key {
		rs.selected = ""
		if len(rs.items) > 0 {
			rs.selectRoom(rs.items[min(i, len(rs.items)-1)].Key())
		}
	}
	rs.save()
	rs.changed(nil)
}

// stopAll ends every room's engine (the app quits): with a bye, so the
// others see it at once; the list stays saved.
func (rs *rooms) stopAll() {
	var wg sync.WaitGroup
	var stopped []*session
	for _, r := range rs.items {
		if r.sess == nil {
			continue
		}
		s := r.sess
		r.sess = nil
		stopped = append(stopped, s)
		wg.Add(1)
		go func() { defer wg.Done(); s.stop(2 * time.Second) }() // in parallel: 20 rooms, not 20 waits
	}
	wg.Wait()
	for _, s := range stopped {
		s.saveResume(rs.sessions.store, time.Now(), true)
	}
}

// apply routes one batch of a room's events: link state, counters, the
// local history, notifications, then the room's view.
func (rs *rooms) apply(r *roomState, evs []client.Event) {
	rowChanged := false
	seen := rs.blurred || rs.selected != r.Key()
	for _, ev := range evs {
		switch e := ev.(type) {
		case client.StateChanged:
			l := linkOf(e.State)
			// A new round-trip time alone (every heartbeat of every room)
			// changes nothing in the sidebar: no redraw for it.
			rowChanged = rowChanged || !sameLinkState(r.Link, l)
			r.Link = l
		case client.Welcomed:
			r.me = e.Welcome.You
			r.prevEpoch = r.epoch
			r.welcomeFirst = e.Welcome.Seq + 1
			if h := e.Welcome.History; len(h) > 0 {
				r.welcomeFirst = h[0].Seq
			}
			if e.Welcome.Epoch != r.epoch {
				r.epoch, r.countedUpTo = e.Welcome.Epoch, 0
			}
		case client.MessageReceived:
			m := e.Msg
			own := e.Own || (r.me.ID != "" && m.From.ID == r.me.ID)
			mention := !own && chatview.Mentions(m.Text, rs.myName)
			if rs.hist != nil {
				rs.hist.put(r, r.epoch, m, own)
			}
			if m.TS > r.last.TS || (m.TS == r.last.TS && m.Seq > r.last.Seq) {
				r.last.Epoch, r.last.Seq, r.last.TS = r.epoch, m.Seq, m.TS
			}
			if own || m.Seq <= r.countedUpTo {
				continue
			}
			r.countedUpTo = m.Seq
			if !seen {
				continue
			}
			r.Unread++
			if mention {
				r.Mentions++
			}
			rowChanged = true
			if rs.onNotify != nil && r.Entry.Notify.Notifies(mention) {
				rs.onNotify(r, m, mention)
			}
		case client.HistoryPage:
			rs.keepRelayPage(r, e)
		case client.HistoryGap:
			if rs.hist != nil {
				from := r.epoch
				if e.EpochChanged {
					from = r.prevEpoch
				}
				rs.hist.gap(r, from, e.HeldUpTo, r.epoch, r.welcomeFirst)
			}
		}
	}
	if rs.onEvents != nil {
		rs.onEvents(r, evs)
	}
	if rowChanged {
		rs.changed(r)
	}
}

// selectRoom puts a room on screen: what it held is now read.
func (rs *rooms) selectRoom(key string) *roomState {
	r := rs.find(key)
	if r == nil {
		return nil
	}
	rs.selected = key
	rs.store.SaveSelectedRoom(key)
	if !rs.blurred {
		rs.markRead(r)
	}
	return r
}

func (rs *rooms) markRead(r *roomState) {
	if rs.hist != nil {
		rs.hist.markRead(r)
	}
	if r.Unread != 0 || r.Mentions != 0 {
		r.Unread, r.Mentions = 0, 0
		rs.changed(r)
	}
}

// focus records that the window came to the front (the room on screen is
// read) or went to the background.
func (rs *rooms) focus(focused bool) {
	rs.blurred = !focused
	if r := rs.current(); focused && r != nil {
		rs.markRead(r)
	}
}

// current is the selected room (nil: none).
func (rs *rooms) current() *roomState { return rs.find(rs.selected) }

func (rs *rooms) find(key string) *roomState {
	if i := rs.index(key); i >= 0 {
		return rs.items[i]
	}
	return nil
}

func (rs *rooms) index(key string) int {
	for i, r := range rs.items {
		if r.Key() == key {
			return i
		}
	}
	return -1
}

// move shifts a room up (delta < 0) or down in the list.
func (rs *rooms) move(key string, delta int) bool {
	i := rs.index(key)
	j := i + delta
	if i < 0 || j < 0 || j >= len(rs.items) {
		return false
	}
	r := rs.items[i]
	rs.items = append(rs.items[:i], rs.items[i+1:]...)
	rs.items = append(rs.items[:j], append([]*roomState{r}, rs.items[j:]...)...)
	rs.save()
	rs.changed(nil)
	return true
}

// neighbour is the key of the room delta places from the selected one,
// wrapping around; unreadOnly skips rooms with nothing unread ("" if none).
func (rs *rooms) neighbour(delta int, unreadOnly bool) string {
	n := len(rs.items)
	if n == 0 {
		return ""
	}
	i := rs.index(rs.selected)
	if i < 0 && delta > 0 {
		i = -1 // nothing selected: the first room comes next
	} else if i < 0 {
		i = n // ... or the last, going up
	}
	for step := 1; step <= n; step++ {
		j := i + delta*step
		r := rs.items[(j%n+n)%n]
		if !unreadOnly || (r.Unread > 0 && r.Key() != rs.selected) {
			return r.Key()
		}
	}
	return ""
}

// nth is the key of the room at position i (0-based; "" past the end).
func (rs *rooms) nth(i int) string {
	if i < 0 || i >= len(rs.items) {
		return ""
	}
	return rs.items[i].Key()
}

// match ranks the rooms for the quick switcher: names that start with the
// query first, then names containing it, then those whose relay contains
// it; within each, rooms with mentions, then unread, then list order.
func (rs *rooms) match(query string) []*roomState {
	q := strings.ToLower(strings.TrimPrefix(strings.TrimSpace(query), "#"))
	type ranked struct {
		r    *roomState
		rank int
		i    int
	}
	var out []ranked
	for i, r := range rs.items {
		name := strings.ToLower(r.Entry.Room)
		rank := -1
		switch {
		case strings.HasPrefix(name, q):
			rank = 0
		case strings.Contains(name, q):
			rank = 1
		case strings.Contains(strings.ToLower(r.Where()), q):
			rank = 2
		}
		if rank >= 0 {
			out = append(out, ranked{r, rank, i})
		}
	}
	sort.SliceStable(out, func(a, b int) bool {
		x, y := out[a], out[b]
		if x.rank != y.rank {
			return x.rank < y.rank
		}
		if (x.r.Mentions > 0) != (y.r.Mentions > 0) {
			return x.r.Mentions > 0
		}
		if (x.r.Unread > 0) != (y.r.Unread > 0) {
			return x.r.Unread > 0
		}
		return x.i < y.i
	})
	res := make([]*roomState, len(out))
	for i, o := range out {
		res[i] = o.r
	}
	return res
}

// totalUnread sums the unread messages of every room (the window title).
func (rs *rooms) totalUnread() int {
	n := 0
	for _, r := range rs.items {
		n += r.Unread
	}
	return n
}

// setNotify changes a room's notification level and saves it.
func (rs *rooms) setNotify(key string, l settings.NotifyLevel) {
	if r := rs.find(key); r != nil {
		r.Entry.Notify = l
		rs.save()
	}
}

func (rs *rooms) save() {
	if rs.startOrder != nil {
		return // endStart saves
	}
	es := make([]settings.RoomEntry, len(rs.items))
	for i, r := range rs.items {
		es[i] = r.Entry
	}
	rs.store.SaveRooms(es)
}

func (rs *rooms) changed(r *roomState) {
	if rs.onChanged != nil {
		rs.onChanged(r)
	}
}

// sameLinkState reports whether a and b show the same in the sidebar.
func sameLinkState(a, b chatview.Link) bool {
	a.RTT, b.RTT = 0, 0
	return a == b
}

// linkNote is the link state in words, for the sidebar's second line.
func linkNote(l chatview.Link, now time.Time) string {
	switch l.Phase {
	case chatview.PhaseConnected:
		return ""
	case chatview.PhaseStopped:
		if l.StopReason != "" {
			return "stopped: " + l.StopReason
		}
		return "stopped"
	case chatview.PhaseReconnecting:
		s := "reconnecting"
		if !l.NextTry.IsZero() && l.NextTry.After(now) {
			s = fmt.Sprintf("reconnecting in %d s", int(l.NextTry.Sub(now).Seconds()+0.999))
		}
		if l.LastError != "" {
			s += " · " + l.LastError
		}
		return s
	case chatview.PhaseConnecting:
		return "connecting…"
	}
	return "offline"
}
