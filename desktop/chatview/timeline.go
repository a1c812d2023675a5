package chatview

import (
	"sort"
	"time"

	"github.com/heartline/heartline/shared/protocol"
)

// GroupWindow is how close in time two messages from one sender must be to share
// a group (one avatar and name for both).
const GroupWindow = 5 * time.Minute

// Status is the delivery state of one of the person's own messages.
type Status int

const (
	StatusNone    Status = iota // someone else's message
	StatusPending               // in the outbox, not yet acknowledged by the relay
	StatusSent                  // acknowledged: the relay gave it a seq
	StatusFailed                // refused or given up on; can be retried
)

// Message is one chat message as the view shows it.
type Message struct {
	Seq    uint64 // relay sequence number; 0 while pending
	ID     string // the sender's client message id
	From   protocol.Member
	Text   string
	Time   time.Time // relay time, or the local time of writing while pending
	Own    bool
	Status Status
	Reason string // why it failed, in words

	epoch int // index of the room epoch the seq belongs to
}

// Kind says what a timeline row is.
type Kind int

const (
	KindMessage Kind = iota
	KindDay          // a day separator
	KindGap          // "some messages could not be recovered"
)

// Item is one row of the message list.
type Item struct {
	Kind       Kind
	Msg        *Message  // KindMessage
	Day        time.Time // KindDay: local midnight of that day
	GroupStart bool      // KindMessage: first of its group, so it shows avatar and name
	Text       string    // KindGap: what the marker says
}

// Outgoing is the state of one outbox entry, as the client engine reports it.
type Outgoing struct {
	ID      string
	Text    string
	Status  Status
	Reason  string
	Seq     uint64
	TS      int64 // relay time (unix ms) once sent
	Created time.Time
}

type seqKey struct {
	epoch int
	seq   uint64
}

func (k seqKey) less(o seqKey) bool {
	if k.epoch != o.epoch {
		return k.epoch < o.epoch
	}
	return k.seq < o.seq
}

// Timeline keeps a room's messages in display order and derives the rows of the
// message list from them. Confirmed messages (with a relay seq) are ordered by
// (epoch, seq); own messages still in the outbox follow in the order they were
// written. It is not safe for concurrent use: the UI owns it.
//
// Rows are rebuilt lazily and only from the first changed message on, so
// appending to a timeline of 10,000 messages costs a handful of rows.
type Timeline struct {
	loc    *time.Location
	self   string
	epochs map[string]int
	epoch  int

	confirmed []*Message
	pending   []*Message
	bySeq     map[seqKey]*Message
	own       map[string]*Message // own messages by client id, pending or sent
	gaps      []seqKey            // a gap follows the message with this key
	gapText   map[seqKey]string

	items     []Item
	itemStart []int // itemStart[i]: first row that belongs to confirmed[i]
	valid     int   // rows are correct for confirmed[:valid]
	confEnd   int   // row after the last confirmed message, as last built
	pendStart int   // first row after the confirmed messages; -1 when the tail needs a rebuild
	changed   int   // first row rebuilt since TakeChanged; -1 for none
}

// NewTimeline returns an empty timeline that places day separators in loc
// (nil means time.Local).
func NewTimeline(loc *time.Location) *Timeline {
	if loc == nil {
		loc = time.Local
	}
	return &Timeline{
		loc:     loc,
		epochs:  map[string]int{},
		bySeq:   map[seqKey]*Message{},
		own:     map[string]*Message{},
		gapText: map[seqKey]string{},
		changed: -1,
	}
}

// TakeChanged returns the first row that changed (added, removed, moved or
// restyled) since the last call, or -1 if none did. A list widget refreshes
// from there on.
func (t *Timeline) TakeChanged() int {
	t.build()
	c := t.changed
	t.changed = -1
	return c
}

// SetSelf tells the timeline which member id is the person's own, so that their
// messages from history are marked as theirs.
func (t *Timeline) SetSelf(memberID string) { t.self = memberID }

// SetEpoch records the room epoch of the current connection. Sequence numbers
// restart when the epoch changes (the relay lost its history); messages of the
// new epoch go after those of the old, with a gap marker between them.
func (t *Timeline) SetEpoch(epoch string) {
	idx, ok := t.epochs[epoch]
	if !ok {
		idx = len(t.epochs)
		t.epochs[epoch] = idx
		if idx > 0 && len(t.confirmed) > 0 {
			t.addGapAfter(t.lastKey(), "The relay's history was reset: earlier messages may be missing.")
		}
	}
	t.epoch = idx
}

// Len is the number of rows.
func (t *Timeline) Len() int {
	t.build()
	return len(t.items)
}

// Item returns row i (0 <= i < Len()).
func (t *Timeline) Item(i int) Item {
	t.build()
	return t.items[i]
}

// Messages is the number of messages held (confirmed and pending).
func (t *Timeline) Messages() int { return len(t.confirmed) + len(t.pending) }

// Own returns the person's own message with client id id, if held.
func (t *Timeline) Own(id string) (*Message, bool) {
	m, ok := t.own[id]
	return m, ok
}

// Add puts a relayed message into the timeline. It reports whether the message
// is new to the timeline (false for a duplicate, or for the echo of an own
// message already shown), which is what unread counts and notifications need.
func (t *Timeline) Add(pm protocol.Message) bool {
	key := seqKey{t.epoch, pm.Seq}
	if _, dup := t.bySeq[key]; dup {
		return false
	}
	own := t.self != "" && pm.From.ID == t.self
	if own {
		if m, ok := t.own[pm.ID]; ok {
			m.From = pm.From
			t.confirm(m, pm.Seq, pm.TS)
			return false
		}
	}
	m := &Message{
		Seq:   pm.Seq,
		ID:    pm.ID,
		From:  pm.From,
		Text:  pm.Text,
		Time:  time.UnixMilli(pm.TS).In(t.loc),
		Own:   own,
		epoch: t.epoch,
	}
	if own {
		m.Status = StatusSent
		if pm.ID != "" {
			t.own[pm.ID] = m
		}
	}
	t.insertConfirmed(m)
	return true
}

// UpdateOutgoing applies an outbox change: a new pending message, a failure, a
// retry, or the relay's acknowledgement (which moves the message to its seq).
// me is the member the person appears as (for name and avatar).
func (t *Timeline) UpdateOutgoing(o Outgoing, me protocol.Member) {
	m, ok := t.own[o.ID]
	if !ok {
		m = &Message{ID: o.ID, Text: o.Text, Own: true, From: me, Time: o.Created.In(t.loc)}
		if m.From.ID == "" {
			m.From.ID = t.self
		}
		t.own[o.ID] = m
		if o.Status == StatusSent && o.Seq > 0 {
			m.Status = StatusSent
			t.confirm(m, o.Seq, o.TS)
			return
		}
		m.Status = o.Status
		m.Reason = o.Reason
		t.pending = append(t.pending, m)
		t.invalidateTail()
		return
	}
	if m.Seq > 0 {
		return // already placed by its seq; nothing later changes a sent message
	}
	if o.Status == StatusSent && o.Seq > 0 {
		t.confirm(m, o.Seq, o.TS)
		return
	}
	m.Status = o.Status
	m.Reason = o.Reason
	t.invalidateTail()
}

// MarkGap records that messages after the latest one held may be missing (the
// relay could not resume); text is what the marker says ("" for GapText). The
// marker shows between the last message held now and the next one that
// arrives, unless those turn out to be consecutive.
//
// On an empty timeline (the app started again and resumed where the person
// had read up to, holding nothing itself) the marker goes above the first
// message that arrives.
func (t *Timeline) MarkGap(text string) {
	if text == "" {
		text = GapText
	}
	if len(t.confirmed) == 0 {
		t.addGapAfter(seqKey{t.epoch, 0}, text) // seq 0 is no message: a leading gap
		return
	}
	t.addGapAfter(t.lastKey(), text)
}

// RemoveOutgoing takes an own message that never reached the relay (pending
// or failed, so without a seq) out of the timeline: the person discarded it.
// It reports whether there was such a message.
func (t *Timeline) RemoveOutgoing(id string) bool {
	m, ok := t.own[id]
	if !ok || m.Seq > 0 {
		return false
	}
	for i, p := range t.pending {
		if p == m {
			t.pending = append(t.pending[:i], t.pending[i+1:]...)
			break
		}
	}
	delete(t.own, id)
	t.invalidateTail()
	return true
}

func (t *Timeline) lastKey() seqKey {
	m := t.confirmed[len(t.confirmed)-1]
	return seqKey{m.epoch, m.Seq}
}

func (t *Timeline) addGapAfter(k seqKey, text string) {
	i := sort.Search(len(t.gaps), func(i int) bool { return !t.gaps[i].less(k) })
	if _, ok := t.gapText[k]; !ok || text != GapText {
		t.gapText[k] = text
	}
	if i < len(t.gaps) && t.gaps[i] == k {
		return
	}
	t.gaps = append(t.gaps, seqKey{})
	copy(t.gaps[i+1:], t.gaps[i:])
	t.gaps[i] = k
	// The gap shows before the first message after k.
	j := sort.Search(len(t.confirmed), func(j int) bool {
		c := t.confirmed[j]
		return k.less(seqKey{c.epoch, c.Seq})
	})
	t.invalidateFrom(j)
}

// confirm moves an own message from the pending tail to its seq position.
func (t *Timeline) confirm(m *Message, seq uint64, ts int64) {
	for i, p := range t.pending {
		if p == m {
			t.pending = append(t.pending[:i], t.pending[i+1:]...)
			break
		}
	}
	m.Seq = seq
	m.epoch = t.epoch
	m.Status = StatusSent
	m.Reason = ""
	if ts != 0 {
		m.Time = time.UnixMilli(ts).In(t.loc)
	}
	if shown, dup := t.bySeq[seqKey{m.epoch, seq}]; dup {
		// The relay's copy arrived first (before we knew our member id): keep
		// that row and let it stand for this outbox entry.
		shown.Own, shown.Status, shown.Reason = true, StatusSent, ""
		t.own[m.ID] = shown
		t.invalidateTail()
		return
	}
	t.insertConfirmed(m)
}

func (t *Timeline) insertConfirmed(m *Message) {
	key := seqKey{m.epoch, m.Seq}
	t.bySeq[key] = m
	n := len(t.confirmed)
	if n == 0 || (seqKey{t.confirmed[n-1].epoch, t.confirmed[n-1].Seq}).less(key) {
		t.confirmed = append(t.confirmed, m)
		t.invalidateFrom(n)
		return
	}
	i := sort.Search(n, func(i int) bool {
		c := t.confirmed[i]
		return key.less(seqKey{c.epoch, c.Seq})
	})
	t.confirmed = append(t.confirmed, nil)
	copy(t.confirmed[i+1:], t.confirmed[i:])
	t.confirmed[i] = m
	t.invalidateFrom(i)
}

func (t *Timeline) invalidateFrom(i int) {
	if i < t.valid {
		t.valid = i
	}
	t.pendStart = -1
}

func (t *Timeline) invalidateTail() { t.pendStart = -1 }

// build brings the rows up to date, starting from the first changed message.
func (t *Timeline) build() {
	if t.valid == len(t.confirmed) && t.pendStart >= 0 {
		return
	}
	start := t.valid
	cut := t.confEnd
	if start < len(t.itemStart) {
		cut = t.itemStart[start]
	}
	t.items = t.items[:cut]
	t.itemStart = t.itemStart[:start]
	if t.changed < 0 || cut < t.changed {
		t.changed = cut
	}

	var prev *Message
	gi := 0
	if start > 0 {
		prev = t.confirmed[start-1]
		pk := seqKey{prev.epoch, prev.Seq}
		gi = sort.Search(len(t.gaps), func(i int) bool { return !t.gaps[i].less(pk) })
	}
	for i := start; i < len(t.confirmed); i++ {
		m := t.confirmed[i]
		key := seqKey{m.epoch, m.Seq}
		t.itemStart = append(t.itemStart, len(t.items))
		gap, text := false, ""
		for gi < len(t.gaps) && t.gaps[gi].less(key) {
			gap = prev != nil || t.gaps[gi].seq == 0
			text = t.gapText[t.gaps[gi]]
			gi++
		}
		if gap && prev != nil && prev.epoch == m.epoch && prev.Seq+1 == m.Seq {
			gap = false // nothing is missing between these two after all
		}
		if gap {
			t.items = append(t.items, Item{Kind: KindGap, Text: text})
		}
		prev = t.appendMessage(prev, m, gap)
	}
	t.valid = len(t.confirmed)
	t.confEnd = len(t.items)
	t.pendStart = t.confEnd

	// A gap after the newest message shows until the next page arrives.
	afterBreak := false
	if prev != nil && gi < len(t.gaps) {
		t.items = append(t.items, Item{Kind: KindGap, Text: t.gapText[t.gaps[len(t.gaps)-1]]})
		afterBreak = true
	}
	for _, m := range t.pending {
		prev = t.appendMessage(prev, m, afterBreak)
		afterBreak = false
	}
}

// appendMessage adds the rows for m (a day separator if the day changed, then
// the message) and returns m as the new previous message.
func (t *Timeline) appendMessage(prev, m *Message, afterBreak bool) *Message {
	day := midnight(m.Time, t.loc)
	newDay := prev == nil || !midnight(prev.Time, t.loc).Equal(day)
	if newDay {
		t.items = append(t.items, Item{Kind: KindDay, Day: day})
	}
	start := newDay || afterBreak || prev.From.ID != m.From.ID || absDuration(m.Time.Sub(prev.Time)) > GroupWindow
	t.items = append(t.items, Item{Kind: KindMessage, Msg: m, GroupStart: start})
	return m
}

func midnight(t time.Time, loc *time.Location) time.Time {
	t = t.In(loc)
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, loc)
}

// absDuration: a pending message's local time may precede the relay's time of
// the message before it, and still belong to the same group.
func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// Find returns the row of the message with seq in epoch, or -1 when the
// timeline does not hold it.
func (t *Timeline) Find(epoch string, seq uint64) int {
	idx, ok := t.epochs[epoch]
	if !ok {
		return -1
	}
	m, ok := t.bySeq[seqKey{idx, seq}]
	if !ok {
		return -1
	}
	t.build()
	i := sort.Search(len(t.confirmed), func(i int) bool {
		c := t.confirmed[i]
		return !(seqKey{c.epoch, c.Seq}).less(seqKey{m.epoch, m.Seq})
	})
	if i >= len(t.itemStart) {
		return -1
	}
	for r := t.itemStart[i]; r < len(t.items); r++ {
		if t.items[r].Msg == m {
			return r
		}
	}
	return -1
}

// Oldest is the epoch, seq and relay time (unix ms) of the oldest message
// held (ok false: none), where loading older history continues.
func (t *Timeline) Oldest() (epoch string, seq uint64, ts int64, ok bool) {
	if len(t.confirmed) == 0 {
		return "", 0, 0, false
	}
	m := t.confirmed[0]
	for name, idx := range t.epochs {
		if idx == m.epoch {
			return name, m.Seq, m.Time.UnixMilli(), true
		}
	}
	return "", m.Seq, m.Time.UnixMilli(), true
}

// AddIn puts a message of a given epoch into the timeline (local history,
// which may hold earlier epochs than the connection's) and reports whether
// it is new. The current epoch stays as it is.
func (t *Timeline) AddIn(epoch string, pm protocol.Message) bool {
	cur := t.epoch
	idx, ok := t.epochs[epoch]
	if !ok {
		idx = len(t.epochs)
		t.epochs[epoch] = idx
	}
	t.epoch = idx
	added := t.Add(pm)
	t.epoch = cur
	return added
}

// MarkGapAfter records a gap marker after the message with seq in epoch
// (a gap the local history remembers).
func (t *Timeline) MarkGapAfter(epoch string, seq uint64, text string) {
	idx, ok := t.epochs[epoch]
	if !ok {
		idx = len(t.epochs)
		t.epochs[epoch] = idx
	}
	if text == "" {
		text = GapText
	}
	t.addGapAfter(seqKey{idx, seq}, text)
}
