package history

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
)

// Item is one entry of a page: a message, or a gap between two messages
// (exactly one of Msg and Gap is set).
type Item struct {
	Msg *Message
	Gap *GapItem
}

// GapItem is a place where the room's history on the device may miss
// messages; the UI shows a marker there.
type GapItem struct {
	After  Ref // the message before the gap
	Before Ref // the message after it (zero: not on the device yet)
	// Missing is how many messages are missing when that is known (a seq
	// hole in one epoch), else 0.
	Missing uint64
	// EpochChanged: the relay's history was reset between the two; what
	// the old epoch had after After is gone from the relay too.
	EpochChanged bool
	// Marked: a resume reported it (MarkGap); otherwise the store found it
	// from the seqs it holds.
	Marked bool
}

// Text is the sentence to show where the gap is.
func (g GapItem) Text() string {
	switch {
	case g.EpochChanged:
		return "The relay's history was reset here: earlier messages may be missing."
	case g.Missing == 1:
		return "1 message is missing here."
	case g.Missing > 1:
		return fmt.Sprintf("%d messages are missing here.", g.Missing)
	}
	return "Some messages may be missing here."
}

// Page is a run of a room's timeline, oldest first.
type Page struct {
	Items      []Item
	MoreBefore bool // the device holds older messages (Before the first)
	MoreAfter  bool // the device holds newer messages (After the last)
}

// Messages returns the page's messages without the gaps.
func (p Page) Messages() []Message {
	var out []Message
	for _, it := range p.Items {
		if it.Msg != nil {
			out = append(out, *it.Msg)
		}
	}
	return out
}

const msgCols = `epoch, seq, ts, msg_id, member_id, name, avatar, text, own, mentions`

func scanMessage(sc interface{ Scan(...any) error }) (Message, error) {
	var m Message
	var seq int64
	err := sc.Scan(&m.Epoch, &seq, &m.TS, &m.ID, &m.MemberID, &m.Name, &m.Avatar, &m.Text, &m.Own, &m.Mentions)
	m.Seq = uint64(seq)
	return m, err
}

func (s *Store) queryMessages(ctx context.Context, q string, args ...any) ([]Message, error) {
	rows, err := s.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Message
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// older returns up to n messages strictly before c (all the newest when
// c is nil), newest first.
func (s *Store) older(ctx context.Context, room int64, c *Cursor, n int) ([]Message, error) {
	if c == nil {
		return s.queryMessages(ctx, `SELECT `+msgCols+` FROM messages WHERE room_id = ?
			ORDER BY ts DESC, seq DESC, epoch DESC LIMIT ?`, room, n)
	}
	return s.queryMessages(ctx, `SELECT `+msgCols+` FROM messages WHERE room_id = ?
		AND (ts, seq, epoch) < (?, ?, ?) ORDER BY ts DESC, seq DESC, epoch DESC LIMIT ?`,
		room, c.TS, int64(c.Seq), c.Epoch, n)
}

// newer returns up to n messages strictly after c, oldest first.
func (s *Store) newer(ctx context.Context, room int64, c Cursor, n int) ([]Message, error) {
	return s.queryMessages(ctx, `SELECT `+msgCols+` FROM messages WHERE room_id = ?
		AND (ts, seq, epoch) > (?, ?, ?) ORDER BY ts, seq, epoch LIMIT ?`,
		room, c.TS, int64(c.Seq), c.Epoch, n)
}

// Latest returns the room's newest n messages, with gaps.
func (s *Store) Latest(ctx context.Context, key RoomKey, n int) (Page, error) {
	room, ok, err := s.lookupRoom(ctx, key)
	if err != nil || !ok || n <= 0 {
		return Page{}, err
	}
	msgs, err := s.older(ctx, room, nil, n+1)
	if err != nil {
		return Page{}, err
	}
	more := len(msgs) > n
	msgs = reversed(msgs[:min(n, len(msgs))])
	return s.assemble(ctx, room, msgs, nil, more, false, true)
}

// Before returns up to n messages older than c (the first message of the
// page the UI shows), with the gaps between them and up to c.
func (s *Store) Before(ctx context.Context, key RoomKey, c Cursor, n int) (Page, error) {
	room, ok, err := s.lookupRoom(ctx, key)
	if err != nil || !ok || n <= 0 {
		return Page{}, err
	}
	msgs, err := s.older(ctx, room, &c, n+1)
	if err != nil {
		return Page{}, err
	}
	more := len(msgs) > n
	msgs = reversed(msgs[:min(n, len(msgs))])
	return s.assemble(ctx, room, msgs, &c, more, true, false)
}

// After returns up to n messages newer than c (the last message of the
// page the UI shows), with the gaps after them.
func (s *Store) After(ctx context.Context, key RoomKey, c Cursor, n int) (Page, error) {
	room, ok, err := s.lookupRoom(ctx, key)
	if err != nil || !ok || n <= 0 {
		return Page{}, err
	}
	msgs, err := s.newer(ctx, room, c, n+1)
	if err != nil {
		return Page{}, err
	}
	var next *Cursor
	if len(msgs) > n {
		nc := msgs[n].Cursor()
		next = &nc
		msgs = msgs[:n]
	}
	return s.assemble(ctx, room, msgs, next, true, next != nil, next == nil)
}

// Around returns the message ref with about n/2 messages on each side, so
// that a search result opens the room scrolled to it. ErrNotFound when
// the device no longer holds it.
func (s *Store) Around(ctx context.Context, key RoomKey, ref Ref, n int) (Page, error) {
	room, ok, err := s.lookupRoom(ctx, key)
	if err != nil {
		return Page{}, err
	}
	if !ok {
		return Page{}, ErrNotFound
	}
	mid, err := s.queryMessages(ctx, `SELECT `+msgCols+` FROM messages WHERE room_id = ? AND epoch = ? AND seq = ?`,
		room, ref.Epoch, int64(ref.Seq))
	if err != nil {
		return Page{}, err
	}
	if len(mid) == 0 {
		return Page{}, ErrNotFound
	}
	n = max(n, 1)
	c := mid[0].Cursor()
	half := (n - 1) / 2
	before, err := s.older(ctx, room, &c, half+1)
	if err != nil {
		return Page{}, err
	}
	moreBefore := len(before) > half
	before = reversed(before[:min(half, len(before))])
	after, err := s.newer(ctx, room, c, n-1-half+1)
	if err != nil {
		return Page{}, err
	}
	var next *Cursor
	if len(after) > n-1-half {
		nc := after[n-1-half].Cursor()
		next = &nc
		after = after[:n-1-half]
	}
	msgs := append(append(before, mid[0]), after...)
	return s.assemble(ctx, room, msgs, next, moreBefore, next != nil, next == nil)
}

func reversed(m []Message) []Message {
	slices.Reverse(m)
	return m
}

// marker is a recorded gap.
type marker struct{ after, before Ref }

func (s *Store) markers(ctx context.Context, room int64) ([]marker, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT after_epoch, after_seq, before_epoch, before_seq FROM gaps WHERE room_id = ?`, room)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []marker
	for rows.Next() {
		var g marker
		var a, b int64
		if err := rows.Scan(&g.after.Epoch, &a, &g.before.Epoch, &b); err != nil {
			return nil, err
		}
		g.after.Seq, g.before.Seq = uint64(a), uint64(b)
		out = append(out, g)
	}
	return out, rows.Err()
}

// gapBetween decides whether history may be missing between two
// neighbouring messages a (older) and b (newer).
func gapBetween(a Ref, b Ref, marks []marker) *GapItem {
	if a.Epoch == b.Epoch {
		if b.Seq <= a.Seq+1 {
			return nil // contiguous (or out of seq order by the relay's clock)
		}
		g := &GapItem{After: a, Before: b, Missing: b.Seq - a.Seq - 1}
		for _, m := range marks {
			if m.before.Epoch == b.Epoch && m.before.Seq > a.Seq && m.before.Seq <= b.Seq {
				g.Marked = true
			}
		}
		return g
	}
	// How much is missing is unknown: the old epoch's tail, and the new
	// one's seqs before b.
	g := &GapItem{After: a, Before: b, EpochChanged: true}
	for _, m := range marks {
		if m.before.Epoch == b.Epoch && m.before.Seq <= b.Seq {
			g.Marked = true
		}
	}
	if !g.Marked && b.Seq <= 1 {
		// A new epoch seen from its first message with no resume
		// reporting a loss: the device missed nothing it could know of.
		return nil
	}
	return g
}

// assemble interleaves msgs (oldest first) with gaps: between neighbours,
// between the last one and next (the message after the page, when known),
// and, at the newest end of the room, a recorded gap whose later side the
// device does not hold yet.
func (s *Store) assemble(ctx context.Context, room int64, msgs []Message, next *Cursor, moreBefore, moreAfter, newestEnd bool) (Page, error) {
	p := Page{MoreBefore: moreBefore, MoreAfter: moreAfter}
	if len(msgs) == 0 {
		return p, nil
	}
	marks, err := s.markers(ctx, room)
	if err != nil {
		return Page{}, err
	}
	p.Items = make([]Item, 0, len(msgs)+1)
	for i := range msgs {
		p.Items = append(p.Items, Item{Msg: &msgs[i]})
		var b *Ref
		if i+1 < len(msgs) {
			r := msgs[i+1].Ref()
			b = &r
		} else if next != nil {
			b = &Ref{Epoch: next.Epoch, Seq: next.Seq}
		}
		if b != nil {
			if g := gapBetween(msgs[i].Ref(), *b, marks); g != nil {
				p.Items = append(p.Items, Item{Gap: g})
			}
		}
	}
	if newestEnd {
		last := msgs[len(msgs)-1].Ref()
		for _, m := range marks {
			held, err := s.holds(ctx, room, m.before)
			if err != nil {
				return Page{}, err
			}
			if !held {
				p.Items = append(p.Items, Item{Gap: &GapItem{After: last, Marked: true, EpochChanged: m.before.Epoch != last.Epoch}})
				break
			}
		}
	}
	return p, nil
}

// holds reports whether the device has a message of r's epoch at r's seq
// or later.
func (s *Store) holds(ctx context.Context, room int64, r Ref) (bool, error) {
	var one int
	err := s.read.QueryRowContext(ctx, `SELECT 1 FROM messages WHERE room_id = ? AND epoch = ? AND seq >= ? LIMIT 1`,
		room, r.Epoch, int64(r.Seq)).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}
