package history

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The benchmark history: 20 rooms, 200,000 messages (10,000 a room) of
// 3 to 30 words drawn from a 20,000-word vocabulary with a Zipf
// distribution, as chat text roughly is. Built once per test process.
const (
	benchRooms       = 20
	benchPerRoom     = 10_000
	benchVocabulary  = 20_000
	benchStartMillis = 1_764_547_200_000 // 2025-12-01
)

var (
	benchOnce sync.Once
	benchDir  string
	benchPath string
	benchErr  error
	benchSize int64
	benchTook time.Duration
)

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

func benchRoom(i int) RoomKey {
	relay := "wss://relay-one.example:8443"
	if i%2 == 1 {
		relay = "ws://192.168.1.20:8080"
	}
	return RoomKey{Relay: relay, Room: fmt.Sprintf("room-%02d", i)}
}

// vocabulary makes n pronounceable words; word 0 is the most frequent.
func vocabulary(n int) []string {
	syl := []string{"ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "pa", "qu", "dre", "fin", "gal", "hor", "jes", "bri", "cen", "mor", "tus"}
	r := rand.New(rand.NewPCG(1, 2))
	seen := map[string]bool{}
	words := make([]string, 0, n)
	for len(words) < n {
		k := 1 + r.IntN(4)
		var b strings.Builder
		for range k {
			b.WriteString(syl[r.IntN(len(syl))])
		}
		if w := b.String(); !seen[w] {
			seen[w] = true
			words = append(words, w)
		}
	}
	return words
}

// benchStore opens the shared benchmark database, building it the first
// time.
func benchStore(b *testing.B) *Store {
	b.Helper()
	benchOnce.Do(func() {
		// HEARTLINE_HISTORY_BENCH_DB keeps the built database between runs
		// (built there when missing; delete it after changing the schema).
		if benchPath = os.Getenv("HEARTLINE_HISTORY_BENCH_DB"); benchPath != "" {
			if fi, err := os.Stat(benchPath); err == nil {
				benchSize = fi.Size()
				return
			}
		} else {
			benchDir, benchErr = os.MkdirTemp("", "heartline-history-bench-")
			if benchErr != nil {
				return
			}
			benchPath = filepath.Join(benchDir, "history.db")
		}
		start := time.Now()
		benchErr = buildBenchHistory(benchPath)
		benchTook = time.Since(start)
		if fi, err := os.Stat(benchPath); err == nil {
			benchSize = fi.Size()
		}
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	s, err := Open(benchPath, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

func buildBenchHistory(path string) error {
	s, err := Open(path, Options{})
	if err != nil {
		return err
	}
	defer s.Close()
	words := vocabulary(benchVocabulary)
	r := rand.New(rand.NewPCG(3, 4))
	zipf := rand.NewZipf(rand.New(rand.NewPCG(5, 6)), 1.1, 1, benchVocabulary-1)
	names := []string{"Ana", "Bruno", "Chen Wei", "Dagny", "Émile", "Farah", "Gus", "Hiro"}
	w := s.NewWriter(WriterOptions{})
	for i := range benchPerRoom {
		for room := range benchRooms {
			n := 3 + r.IntN(28)
			var text strings.Builder
			for k := range n {
				if k > 0 {
					text.WriteByte(' ')
				}
				text.WriteString(words[zipf.Uint64()])
			}
			if i%1000 == 500 {
				text.WriteString(" lighthouse") // a rare word: 10 a room
			}
			sender := names[r.IntN(len(names))]
			w.Put(benchRoom(room), Message{
				Epoch: "e1", Seq: uint64(i + 1), ID: fmt.Sprintf("c%d", i), MemberID: sender, Name: sender,
				Avatar: "builtin:fox", Text: text.String(), TS: benchStartMillis + int64(i)*60_000 + int64(room),
				Own: sender == "Ana", Mentions: r.IntN(50) == 0,
			})
		}
		if i%500 == 499 {
			if err := w.Flush(ctx); err != nil {
				return err
			}
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	for room := range benchRooms {
		if err := s.MarkRead(ctx, benchRoom(room), Cursor{TS: benchStartMillis + int64(benchPerRoom-30)*60_000, Seq: uint64(benchPerRoom - 30), Epoch: "e1"}); err != nil {
			return err
		}
	}
	_, err = s.write.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
	return err
}

// BenchmarkOpenAndLatest: the app starts: open the database and read the
// last room's newest 50 messages.
func BenchmarkOpenAndLatest(b *testing.B) {
	s0 := benchStore(b)
	var text int64
	if err := s0.read.QueryRow(`SELECT sum(length(CAST(text AS BLOB)) + length(CAST(name AS BLOB))) FROM messages`).Scan(&text); err != nil {
		b.Fatal(err)
	}
	s0.Close() // a cold open: no other connection holds the file
	for b.Loop() {
		s, err := Open(benchPath, Options{})
		if err != nil {
			b.Fatal(err)
		}
		p, err := s.Latest(ctx, benchRoom(7), 50)
		if err != nil || len(p.Messages()) != 50 {
			b.Fatal(len(p.Items), err)
		}
		s.Close()
	}
	b.ReportMetric(float64(benchSize)/(1<<20), "db-MiB")
	b.ReportMetric(float64(text)/(1<<20), "text-MiB")
	b.ReportMetric(benchTook.Seconds(), "build-s")
}

// BenchmarkSwitchRoom: the newest 50 messages of another room.
func BenchmarkSwitchRoom(b *testing.B) {
	s := benchStore(b)
	i := 0
	for b.Loop() {
		i++
		p, err := s.Latest(ctx, benchRoom(i%benchRooms), 50)
		if err != nil || len(p.Messages()) != 50 {
			b.Fatal(len(p.Items), err)
		}
	}
}

// BenchmarkScrollBack: the next 50 older messages from the middle of a room.
func BenchmarkScrollBack(b *testing.B) {
	s := benchStore(b)
	c := Cursor{TS: benchStartMillis + 5000*60_000 + 3, Seq: 5001, Epoch: "e1"}
	for b.Loop() {
		p, err := s.Before(ctx, benchRoom(3), c, 50)
		if err != nil || len(p.Messages()) != 50 {
			b.Fatal(len(p.Items), err)
		}
	}
}

// BenchmarkSidebar: every room's last message, unread and mention counts.
func BenchmarkSidebar(b *testing.B) {
	s := benchStore(b)
	for b.Loop() {
		rooms, err := s.Rooms(ctx)
		if err != nil || len(rooms) != benchRooms {
			b.Fatal(len(rooms), err)
		}
	}
}

// BenchmarkSidebarNeverRead: the same with no read marker (every room
// 10,000 unread: counted up to CountCap).
func BenchmarkSidebarNeverRead(b *testing.B) {
	s := benchStore(b)
	dir := b.TempDir()
	fresh, err := Open(filepath.Join(dir, "history.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer fresh.Close()
	// Copy the rooms' messages without their read markers.
	if _, err := fresh.write.Exec(`ATTACH DATABASE ? AS bench`, s.Path()); err != nil {
		b.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO rooms (id, relay, room) SELECT id, relay, room FROM bench.rooms`,
		`INSERT INTO messages SELECT * FROM bench.messages WHERE seq > 8000`,
		`DETACH DATABASE bench`,
	} {
		if _, err := fresh.write.Exec(q); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		rooms, err := fresh.Rooms(ctx)
		if err != nil || len(rooms) != benchRooms || rooms[0].Unread != CountCap {
			b.Fatal(len(rooms), err)
		}
	}
}

// BenchmarkSearch: the first 50 hits, newest first, over all rooms or one.
func BenchmarkSearch(b *testing.B) {
	s := benchStore(b)
	words := vocabulary(benchVocabulary)
	room := benchRoom(4)
	for _, c := range []struct {
		name, query string
		scope       *RoomKey
	}{
		{"rare-word/all-rooms", "lighthouse", nil},
		{"common-word/all-rooms", words[0] + " ", nil},
		{"two-words/all-rooms", words[1] + " " + words[2] + " ", nil},
		{"two-letters-whole-word/all-rooms", words[3][:2], nil},
		{"prefix-3-letters/all-rooms", words[3][:3], nil},
		{"prefix-4-letters/all-rooms", words[3][:4], nil},
		{"one-letter/all-rooms", words[3][:1], nil},
		{"mid-word/all-rooms", words[200] + " ", nil},
		{"sender-and-word/all-rooms", "farah " + words[5], nil},
		{"common-word/one-room", words[0] + " ", &room},
		{"no-match/all-rooms", "zzzzqqq", nil},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := s.Search(ctx, c.query, c.scope, 50); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkWriter: messages handed to a Writer, one at a time, until all
// are on disk (throughput, batching as the Writer does).
func BenchmarkWriter(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "history.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	w := s.NewWriter(WriterOptions{})
	text := "a typical chat message of about sixty bytes, give or take"
	seq := uint64(0)
	for b.Loop() {
		seq++
		w.Put(benchRoom(int(seq)%benchRooms), Message{Epoch: "e1", Seq: seq, ID: "c", MemberID: "u", Name: "Ana", Text: text, TS: benchStartMillis + int64(seq)})
	}
	w.Close()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkPutOne: Store.Put of one message per transaction (the slowest
// way: what a caller without the Writer pays per message).
func BenchmarkPutOne(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "history.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	seq := uint64(0)
	for b.Loop() {
		seq++
		if err := s.Put(ctx, lobby, []Message{{Epoch: "e1", Seq: seq, ID: "c", MemberID: "u", Name: "Ana", Text: "one at a time", TS: benchStartMillis + int64(seq)}}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWriterPutCall: what handing one message over costs the caller
// (the UI goroutine): no disk in it.
func BenchmarkWriterPutCall(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "history.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	w := s.NewWriter(WriterOptions{MaxQueued: 1 << 30})
	m := Message{Epoch: "e1", Seq: 1, ID: "c", MemberID: "u", Name: "Ana", Text: "x", TS: benchStartMillis}
	for b.Loop() {
		m.Seq++
		w.Put(lobby, m)
	}
	b.StopTimer()
	w.Close()
}

// benchCopy copies the benchmark database into a fresh folder.
func benchCopy(b *testing.B) *Store {
	b.Helper()
	s := benchStore(b)
	if _, err := s.write.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		b.Fatal(err)
	}
	data, err := os.ReadFile(s.Path())
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), "history.db")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		b.Fatal(err)
	}
	c, err := Open(path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

// BenchmarkPrune: the retention setting deletes the oldest 5% (10,000
// messages) of the 200,000 and compacts. Run with -benchtime=1x.
func BenchmarkPrune(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		s := benchCopy(b)
		b.StartTimer()
		n, err := s.Prune(ctx, time.UnixMilli(benchStartMillis+int64(benchPerRoom/20)*60_000))
		if err != nil || n != benchRooms*benchPerRoom/20 {
			b.Fatal(n, err)
		}
	}
}

// BenchmarkClearRoom: "clear this room's history" on a room of 10,000
// messages out of 200,000. Run with -benchtime=1x.
func BenchmarkClearRoom(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		s := benchCopy(b)
		b.StartTimer()
		if err := s.ClearRoom(ctx, benchRoom(5)); err != nil {
			b.Fatal(err)
		}
	}
}
