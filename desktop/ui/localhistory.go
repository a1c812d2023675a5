package ui

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand"
	"path/filepath"
	"strings"
	"time"

	"github.com/heartline/heartline/desktop/chatview"
	"github.com/heartline/heartline/desktop/history"
	"github.com/heartline/heartline/shared/protocol"
)

// pageSize is how many messages a room shows from the device at once, and
// how many more each scroll to the top loads.
const pageSize = 100

// localHistory connects the rooms to the device's message store
// (desktop/history): every message and gap goes to its writer, which never
// blocks the caller; reads (a room's latest page, older pages, search) run
// on the UI goroutine and take milliseconds.
type localHistory struct {
	store *history.Store
	w     *history.Writer
	log   *slog.Logger
	name  func() string // my name, for mentions
}

// historyFile is the database's name in the app's data directory.
const historyFile = "history.db"

func openLocalHistory(dataDir string, log *slog.Logger, name func() string) (*localHistory, error) {
	st, err := history.Open(filepath.Join(dataDir, historyFile), history.Options{Log: log})
	if err != nil {
		return nil, err
	}
	h := &localHistory{store: st, log: log, name: name}
	h.w = st.NewWriter(history.WriterOptions{OnError: func(err error) { log.Warn("local history", "err", err) }})
	return h, nil
}

// close writes what is queued and closes the database.
func (h *localHistory) close() {
	h.w.Close()
	h.store.Close()
}

// path is where the data lives (the settings screen shows it).
func (h *localHistory) path() string { return h.store.Path() }

// size is how much room the data takes on disk, in words ("" if unknown).
func (h *localHistory) size() string {
	n, err := h.store.Size()
	if err != nil {
		return ""
	}
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d kB", (n+1023)/1024)
}

// keyOf is a room's key in the store: the relay as the person typed it,
// "this computer" for the hosted room (its port may change).
func keyOf(r *roomState) history.RoomKey {
	if r.Entry.Host {
		return history.RoomKey{Relay: "this-computer", Room: r.Entry.Room}
	}
	return history.RoomKey{Relay: r.Entry.Relay, Room: r.Entry.Room}
}

func (h *localHistory) put(r *roomState, epoch string, m protocol.Message, own bool) {
	if epoch == "" || m.Seq == 0 {
		return // not from a welcomed link: no place in the room's history
	}
	h.w.Put(keyOf(r), history.FromProtocol(epoch, m, own, h.name()))
}

func (h *localHistory) gap(r *roomState, fromEpoch string, heldUpTo uint64, toEpoch string, toSeq uint64) {
	if fromEpoch == "" || toEpoch == "" {
		return
	}
	h.w.MarkGap(keyOf(r), history.Gap{After: history.Ref{Epoch: fromEpoch, Seq: heldUpTo}, Before: history.Ref{Epoch: toEpoch, Seq: toSeq}})
}

func (h *localHistory) markRead(r *roomState) {
	if r.last.Epoch != "" {
		h.w.MarkRead(keyOf(r), history.Cursor{TS: r.last.TS, Seq: r.last.Seq, Epoch: r.last.Epoch})
	}
}

// counts are the unread and mention counts the device kept for each room
// (after a restart, what was not read before it).
func (h *localHistory) counts() map[history.RoomKey]history.RoomInfo {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	infos, err := h.store.Rooms(ctx)
	if err != nil {
		h.log.Warn("local history: room counts", "err", err)
		return nil
	}
	out := make(map[history.RoomKey]history.RoomInfo, len(infos))
	for _, in := range infos {
		out[in.Key.Normalized()] = in
	}
	return out
}

// fill puts a page from the device into a room's timeline: its messages
// and gap markers. It returns how many messages were new to the view.
func fill(tl *chatview.Timeline, p history.Page) int {
	n := 0
	for _, it := range p.Items {
		switch {
		case it.Msg != nil:
			m := it.Msg
			if m.Own {
				tl.SetSelf(m.MemberID)
			}
			if tl.AddIn(m.Epoch, protocol.Message{Seq: m.Seq, ID: m.ID, Text: m.Text, TS: m.TS,
				From: protocol.Member{ID: m.MemberID, Name: m.Name, Avatar: m.Avatar}}) {
				n++
			}
		case it.Gap != nil:
			g := it.Gap
			text := g.Text()
			tl.MarkGapAfter(g.After.Epoch, g.After.Seq, text)
		}
	}
	return n
}

// loadLatest shows a room's newest messages from the device (at start,
// before any network).
func (h *localHistory) loadLatest(v *roomView) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p, err := h.store.Latest(ctx, keyOf(v.state), pageSize)
	if err != nil {
		h.log.Warn("local history: latest page", "room", v.room, "err", err)
		return
	}
	v.moreOnDevice = p.MoreBefore
	if fill(v.tl, p) > 0 {
		v.list.Sync()
		v.list.JumpToLatest()
	}
}

// loadOlder adds the page before the oldest message the view holds; it
// reports whether there was one.
func (h *localHistory) loadOlder(v *roomView) bool {
	epoch, seq, ts, ok := v.tl.Oldest()
	if !ok || !v.moreOnDevice {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p, err := h.store.Before(ctx, keyOf(v.state), history.Cursor{TS: ts, Seq: seq, Epoch: epoch}, pageSize)
	if err != nil {
		h.log.Warn("local history: older page", "room", v.room, "err", err)
		return false
	}
	v.moreOnDevice = p.MoreBefore
	return fill(v.tl, p) > 0
}

// loadAround adds the messages around one (a search result not in view).
func (h *localHistory) loadAround(v *roomView, epoch string, seq uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p, err := h.store.Around(ctx, keyOf(v.state), history.Ref{Epoch: epoch, Seq: seq}, pageSize)
	if err != nil {
		h.log.Warn("local history: around a message", "room", v.room, "err", err)
		return
	}
	fill(v.tl, p)
	v.moreOnDevice = true
}

// clearRoom forgets a room's messages on this device.
func (h *localHistory) clearRoom(r *roomState) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return h.w.ClearRoom(ctx, keyOf(r)) // what is queued for it goes too
}

// prune drops messages older than age (0: keep all).
func (h *localHistory) prune(age time.Duration) (int64, error) {
	if age <= 0 {
		return 0, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return h.store.Prune(ctx, time.Now().Add(-age))
}

// searcher searches the device's history for the rooms in the sidebar.
type searcher struct {
	h     *localHistory
	rooms *rooms
}

func (s searcher) search(query, roomKey string, limit int) ([]searchHit, error) {
	var scope *history.RoomKey
	byKey := map[history.RoomKey]*roomState{}
	for _, r := range s.rooms.items {
		byKey[keyOf(r).Normalized()] = r
		if r.Key() == roomKey {
			k := keyOf(r)
			scope = &k
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hits, err := s.h.store.Search(ctx, query, scope, limit)
	if err != nil {
		return nil, err
	}
	out := make([]searchHit, 0, len(hits))
	for _, hit := range hits {
		r := byKey[hit.Room.Normalized()]
		if r == nil {
			continue // a room no longer in the sidebar: nowhere to open it
		}
		sh := searchHit{RoomKey: r.Key(), Room: r.Entry.Room, Epoch: hit.Msg.Epoch, Seq: hit.Msg.Seq,
			From: hit.Msg.Name, TS: hit.Msg.TS, Text: hit.Msg.Text}
		for _, sp := range hit.TextSpans {
			sh.Spans = append(sh.Spans, [2]int{sp.Start, sp.End})
		}
		out = append(out, sh)
	}
	return out, nil
}

// SeedHistory fills the local history with n generated messages spread
// over the saved rooms, for measuring the app with a long history (the
// --seed-history flag; never used in normal runs). The messages are a
// year's worth, oldest first, in an epoch of their own.
func (u *UI) SeedHistory(n int) error {
	if u.local == nil {
		return fmt.Errorf("no local history: %v", u.localErr)
	}
	entries := u.store.Rooms()
	if len(entries) == 0 {
		return fmt.Errorf("no rooms saved: join some first")
	}
	names := []string{"Ada", "Grace", "Linus", "Margaret", "Ken"}
	words := seedVocabulary()
	zipf := rand.NewZipf(rand.New(rand.NewSource(1)), 1.1, 1, uint64(len(words)-1))
	start := time.Now().Add(-365 * 24 * time.Hour).UnixMilli()
	step := int64(365*24*time.Hour/time.Millisecond) / int64(n)
	ctx := context.Background()
	per := n / len(entries)
	for ri, e := range entries {
		key := keyOf(&roomState{Entry: e})
		batch := make([]history.Message, 0, 5000)
		for i := 0; i < per; i++ {
			var b strings.Builder
			for j := 0; j < 4+(i*7)%23; j++ {
				if j > 0 {
					b.WriteByte(' ')
				}
				b.WriteString(words[zipf.Uint64()])
			}
			name := names[(i/3+ri)%len(names)]
			batch = append(batch, history.Message{Epoch: "seeded", Seq: uint64(i + 1), ID: fmt.Sprint("s", ri, "-", i),
				MemberID: "seed-" + name, Name: name, Text: b.String(), TS: start + int64(i*len(entries)+ri)*step})
			if len(batch) == cap(batch) || i == per-1 {
				if err := u.local.store.Put(ctx, key, batch); err != nil {
					return err
				}
				batch = batch[:0]
			}
		}
	}
	return nil
}

// seedVocabulary is SeedHistory's words: a few thousand made-up ones,
// drawn with a Zipf distribution as words in real chats are (a handful
// in most messages, most of them rare), so a search for a common word
// matches many messages and one for a rare word few.
func seedVocabulary() []string {
	common := strings.Fields("the a to and of is in it you that for on this with be at relay link message deploy ticket")
	syll := strings.Fields("ka lo mi ne ru sa ti vo be da fe gu hi jo")
	out := common
	for _, a := range syll {
		for _, b := range syll {
			for _, c := range syll {
				out = append(out, a+b+c)
			}
		}
	}
	return out
}
