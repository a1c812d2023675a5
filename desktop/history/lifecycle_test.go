package history

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestUpgradeFromSchemaV1KeepsHistory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.db")
	v1, err := openAt(path, Options{}, 1)
	if err != nil {
		t.Fatal(err)
	}
	// What a v1 build wrote: no mentions, no read markers.
	for _, q := range []string{
		`INSERT INTO rooms (id, relay, room) VALUES (1, 'wss://relay.example:8443', 'lobby')`,
		`INSERT INTO messages (room_id, epoch, seq, ts, msg_id, member_id, name, avatar, text, own)
			VALUES (1, 'a', 1, 1000, 'm1', 'u1', 'Ana', '', 'kept across the upgrade', 0),
			       (1, 'a', 2, 2000, 'm2', 'u2', 'Bruno', '', 'hello @Ana', 0)`,
		`INSERT INTO gaps (room_id, after_epoch, after_seq, before_epoch, before_seq, marked_at) VALUES (1, 'a', 2, 'b', 1, 3000)`,
	} {
		if _, err := v1.write.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	v1.Close()

	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var version int
	s.read.QueryRow(`PRAGMA user_version`).Scan(&version)
	if version != schemaVersion || schemaVersion != 2 {
		t.Fatalf("user_version %d, want %d", version, schemaVersion)
	}
	p, err := s.Latest(ctx, lobby, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := render(p); got != "a1 a2 marked-gap" {
		t.Fatalf("after the upgrade: %q", got)
	}
	if hits, err := s.Search(ctx, "upgrade", nil, 5); err != nil || len(hits) != 1 {
		t.Fatalf("search after the upgrade: %v %v", hits, err)
	}
	// What v1 held counts as read; what comes after is counted.
	rooms, _ := s.Rooms(ctx)
	if len(rooms) != 1 || rooms[0].Unread != 0 || rooms[0].Mentions != 0 {
		t.Fatalf("rooms after the upgrade: %+v", rooms)
	}
	next := Message{Epoch: "b", Seq: 1, TS: 4000, Name: "Bruno", Text: "@ana new", Mentions: true}
	if err := s.Put(ctx, lobby, []Message{next}); err != nil {
		t.Fatal(err)
	}
	rooms, _ = s.Rooms(ctx)
	if rooms[0].Unread != 1 || rooms[0].Mentions != 1 {
		t.Fatalf("a new message after the upgrade: %+v", rooms[0])
	}
	// Opening again changes nothing.
	s.Close()
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Latest(ctx, lobby, 10); render(p) != "a1 a2 marked-gap b1" {
		t.Fatalf("reopened: %q", render(p))
	}
}

func TestOpenRefusesANewerSchemaAndLeavesItAlone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Put(ctx, lobby, seqRange("a", 1, 3))
	s.write.Exec(`PRAGMA user_version = 99`)
	s.Close()
	_, err = Open(path, Options{})
	if !errors.Is(err, ErrNewerSchema) || !strings.Contains(err.Error(), "update Heartline") {
		t.Fatalf("err = %v", err)
	}
	// Left as it was: the header's user_version (offset 60) still says 99.
	b, err := os.ReadFile(path)
	if err != nil || len(b) < 64 || binary.BigEndian.Uint32(b[60:64]) != 99 {
		t.Fatalf("the header changed: %v", err)
	}
}

func TestOpenExplainsAFileThatIsNotAHistory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.db")
	if err := os.WriteFile(path, bytes.Repeat([]byte("not sqlite at all "), 512), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path, Options{})
	if err == nil || !strings.Contains(err.Error(), "move it away") || !strings.Contains(err.Error(), path) {
		t.Fatalf("err = %v", err)
	}
	// The file is left as it was, for the person to look at.
	if b, _ := os.ReadFile(path); !bytes.HasPrefix(b, []byte("not sqlite at all")) {
		t.Fatal("the file was changed")
	}
}

func TestOpenCreatesAPrivateFileInANewFolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "history.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Path() != path {
		t.Fatalf("Path() = %q", s.Path())
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode %v, %v", fi.Mode(), err)
	}
	di, _ := os.Stat(filepath.Dir(path))
	if di.Mode().Perm() != 0o700 {
		t.Fatalf("folder mode %v", di.Mode())
	}
	var mode string
	s.read.QueryRow(`PRAGMA journal_mode`).Scan(&mode)
	if mode != "wal" {
		t.Fatalf("journal_mode %q", mode)
	}
}

// onDisk reads the database and its WAL as bytes.
func onDisk(t *testing.T, s *Store) []byte {
	t.Helper()
	var all []byte
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(s.Path() + suffix)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

func TestClearRoomLeavesNoTraceOnDisk(t *testing.T) {
	s := openTemp(t)
	garden := RoomKey{Relay: lobby.Relay, Room: "garden"}
	var secret []Message
	for seq := uint64(1); seq <= 300; seq++ {
		secret = append(secret, msg("a", seq, "the quixotic zeppelin password is hunter2 "+strings.Repeat("x", int(seq%50))))
	}
	s.Put(ctx, lobby, secret)
	s.Put(ctx, garden, []Message{msg("g", 1, "the garden stays")})
	s.MarkRead(ctx, lobby, secret[10].Cursor())
	s.MarkGap(ctx, lobby, Gap{After: Ref{"a", 300}, Before: Ref{"b", 1}})
	if !bytes.Contains(onDisk(t, s), []byte("zeppelin")) {
		t.Fatal("the secret is not on disk to begin with")
	}
	if err := s.ClearRoom(ctx, lobby); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Latest(ctx, lobby, 10); len(p.Items) != 0 {
		t.Fatalf("lobby after clearing: %q", render(p))
	}
	if hits, _ := s.Search(ctx, "zeppelin", nil, 10); len(hits) != 0 {
		t.Fatalf("search finds cleared messages: %+v", hits)
	}
	for _, word := range []string{"zeppelin", "quixotic", "hunter2"} {
		if bytes.Contains(onDisk(t, s), []byte(word)) {
			t.Fatalf("%q is still in the database file or its WAL", word)
		}
	}
	rooms, _ := s.Rooms(ctx)
	if len(rooms) != 1 || rooms[0].Key.Room != "garden" {
		t.Fatalf("rooms: %+v", rooms)
	}
	// The room starts again from nothing: no stale read marker or gap.
	s.Put(ctx, lobby, []Message{msg("a", 301, "again")})
	rooms, _ = s.Rooms(ctx)
	for _, r := range rooms {
		if r.Key.Room == "lobby" && r.Unread != 1 {
			t.Fatalf("lobby again: %+v", r)
		}
	}
	if p, _ := s.Latest(ctx, lobby, 10); render(p) != "a301" {
		t.Fatalf("lobby again: %q", render(p))
	}
}

func TestPruneDeletesOnlyOlderMessagesAndShrinksTheFile(t *testing.T) {
	s := openTemp(t)
	day := 24 * time.Hour
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	var msgs []Message
	for seq := uint64(1); seq <= 600; seq++ {
		m := msg("a", seq, "an old message about the obsidian lighthouse "+strings.Repeat("padding ", 20))
		m.TS = now.Add(-60*day).UnixMilli() + int64(seq)
		if seq > 500 {
			m.Text = "recent news"
			m.TS = now.Add(-time.Duration(601-seq) * time.Minute).UnixMilli()
		}
		msgs = append(msgs, m)
	}
	s.Put(ctx, lobby, msgs)
	before := len(onDisk(t, s))
	n, err := s.Prune(ctx, now.Add(-30*day))
	if err != nil || n != 500 {
		t.Fatalf("pruned %d, %v", n, err)
	}
	p, _ := s.Latest(ctx, lobby, 500)
	if len(p.Messages()) != 100 || p.Messages()[0].Seq != 501 || strings.Contains(render(p), "gap") {
		t.Fatalf("after pruning: %d messages, %q", len(p.Messages()), render(p)[:40])
	}
	if hits, _ := s.Search(ctx, "lighthouse", nil, 10); len(hits) != 0 {
		t.Fatalf("search finds pruned messages")
	}
	after := len(onDisk(t, s))
	if after >= before/2 {
		t.Fatalf("the file did not shrink: %d -> %d bytes", before, after)
	}
	if bytes.Contains(onDisk(t, s), []byte("obsidian")) {
		t.Fatal("pruned text is still on disk")
	}
	// Nothing older: nothing to do.
	if n, err := s.Prune(ctx, now.Add(-30*day)); n != 0 || err != nil {
		t.Fatalf("second prune: %d %v", n, err)
	}
}
