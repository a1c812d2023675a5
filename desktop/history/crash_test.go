package history

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	crashDBEnv    = "HEARTLINE_HISTORY_CRASH_DB"
	crashEpochEnv = "HEARTLINE_HISTORY_CRASH_EPOCH"
)

// TestCrashChild is the process that TestKillDuringWritesLosesNothingReported
// kills: it writes messages without end through a Writer and prints each
// message the Writer reports stored, one "room epoch seq" line each. Run on
// its own it skips.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashDBEnv)
	if path == "" {
		t.Skip("runs only as the child of TestKillDuringWritesLosesNothingReported")
	}
	epoch := os.Getenv(crashEpochEnv)
	s, err := Open(path, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(2)
	}
	out := os.Stdout
	w := s.NewWriter(WriterOptions{
		OnStored: func(k RoomKey, refs []Ref) {
			var b strings.Builder
			for _, r := range refs {
				fmt.Fprintf(&b, "%s %s %d\n", k.Room, r.Epoch, r.Seq)
			}
			out.WriteString(b.String()) // one write per batch: whole lines
		},
		OnError: func(err error) { fmt.Fprintln(os.Stderr, "write:", err) },
	})
	rooms := []RoomKey{{"ws://a", "r0"}, {"ws://a", "r1"}, {"ws://b", "r2"}}
	seq := uint64(0)
	for chunk := 0; ; chunk++ {
		n := 1 + chunk%40
		for _, k := range rooms {
			var msgs []Message
			for i := range n {
				m := Message{Epoch: epoch, Seq: seq + uint64(i) + 1, ID: fmt.Sprintf("c%d", seq+uint64(i)+1), MemberID: "u", Name: "Crash Tester",
					TS: time.Now().UnixMilli(), Text: fmt.Sprintf("durable %s %d %s", epoch, seq+uint64(i)+1, strings.Repeat("lorem ipsum ", (chunk*7+i)%60))}
				msgs = append(msgs, m)
			}
			w.Put(k, msgs...)
		}
		seq += uint64(n)
		if chunk%8 == 7 {
			w.Flush(ctx) // keep the queue short: the parent waits for reports
		}
	}
}

// TestKillDuringWritesLosesNothingReported kills a process with SIGKILL
// while it writes, three times over the same database, and checks after
// each kill that the database is intact and holds every message the
// Writer had reported stored (what the app may show).
func TestKillDuringWritesLosesNothingReported(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills child processes")
	}
	path := filepath.Join(t.TempDir(), "history.db")
	for round := range 3 {
		epoch := fmt.Sprintf("e%d", round)
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashDBEnv+"="+path, crashEpochEnv+"="+epoch)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		reported := map[string]bool{}
		sc := bufio.NewScanner(stdout)
		killed := false
		for sc.Scan() {
			reported[sc.Text()] = true
			// Kill once a good amount is reported, while writes go on.
			if !killed && len(reported) >= 300+round*170 {
				cmd.Process.Signal(syscall.SIGKILL)
				killed = true
			}
		}
		err = cmd.Wait()
		if !killed {
			t.Fatalf("round %d: the child ended before the kill: %v\n%s", round, err, stderr.String())
		}
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: the child did not die by SIGKILL: %v\n%s", round, err, stderr.String())
		}
		walSize := int64(0)
		if fi, err := os.Stat(path + "-wal"); err == nil {
			walSize = fi.Size()
		}

		s, err := Open(path, Options{})
		if err != nil {
			t.Fatalf("round %d: reopening after the kill: %v", round, err)
		}
		var check string
		if err := s.read.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
			t.Fatalf("round %d: integrity_check = %q, %v", round, check, err)
		}
		if _, err := s.write.Exec(`INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')`); err != nil {
			t.Fatalf("round %d: the search index does not match the messages: %v", round, err)
		}
		held := map[string]bool{}
		rows, err := s.read.Query(`SELECT r.room, m.epoch, m.seq FROM messages m JOIN rooms r ON r.id = m.room_id WHERE m.epoch = ?`, epoch)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var room, e string
			var seq int64
			rows.Scan(&room, &e, &seq)
			held[room+" "+e+" "+strconv.FormatInt(seq, 10)] = true
		}
		rows.Close()
		missing := 0
		for line := range reported {
			if !held[line] {
				missing++
				if missing < 5 {
					t.Errorf("round %d: reported stored but missing after the kill: %s", round, line)
				}
			}
		}
		if missing > 0 {
			t.Fatalf("round %d: %d of %d reported messages missing", round, missing, len(reported))
		}
		// Search works on what survived.
		hits, err := s.Search(ctx, "durable "+epoch, nil, 5)
		if err != nil || len(hits) == 0 {
			t.Fatalf("round %d: search after the kill: %v %v", round, len(hits), err)
		}
		t.Logf("round %d: %d reported, %d held after the kill (WAL %d bytes at the kill)", round, len(reported), len(held), walSize)
		s.Close()
	}
}

const crashClearEnv = "HEARTLINE_HISTORY_CRASH_CLEAR"

// TestCrashClearChild clears a room and is killed while it does (the
// child of TestKillDuringClearRoomLeavesOneStateOrTheOther).
func TestCrashClearChild(t *testing.T) {
	path := os.Getenv(crashClearEnv)
	if path == "" {
		t.Skip("runs only as the child of TestKillDuringClearRoomLeavesOneStateOrTheOther")
	}
	s, err := Open(path, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(2)
	}
	// A small page cache spills the transaction's pages to the WAL early,
	// which tells the parent that the transaction is under way.
	if _, err := s.write.Exec(`PRAGMA cache_size = 16`); err != nil {
		fmt.Fprintln(os.Stderr, "cache_size:", err)
		os.Exit(2)
	}
	fmt.Println("clearing")
	if err := s.ClearRoom(ctx, lobby); err != nil {
		fmt.Fprintln(os.Stderr, "clear:", err)
		os.Exit(2)
	}
	fmt.Println("cleared")
	select {} // wait for the kill
}

// TestKillDuringClearRoomLeavesOneStateOrTheOther: ClearRoom drops the FTS
// delete trigger, deletes and rebuilds the index in one transaction. Killed
// in the middle, the reopened database has the trigger, a search index that
// matches its messages, and the room either whole or gone.
func TestKillDuringClearRoomLeavesOneStateOrTheOther(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills a child process")
	}
	path := filepath.Join(t.TempDir(), "history.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	garden := RoomKey{Relay: lobby.Relay, Room: "garden"}
	if err := s.Put(ctx, lobby, seqRange("a", 1, 1000)); err != nil {
		t.Fatal(err)
	}
	// Enough other history that the index rebuild takes a while.
	var others []Message
	for seq := uint64(1); seq <= 1500; seq++ {
		others = append(others, msg("g", seq, fmt.Sprintf("garden note %d about %s", seq, strings.Repeat("leaves ", int(seq%20)))))
	}
	if err := s.Put(ctx, garden, others); err != nil {
		t.Fatal(err)
	}
	s.Close()

	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashClearChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashClearEnv+"="+path)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	// Kill once the transaction has spilled pages to the WAL (or has
	// committed, on a machine fast enough).
	state := ""
	walSize := func() int64 {
		fi, err := os.Stat(path + "-wal")
		if err != nil {
			return 0
		}
		return fi.Size()
	}
	deadline := time.Now().Add(60 * time.Second)
	for state != "cleared" && !(state == "clearing" && walSize() > 64<<10) && time.Now().Before(deadline) {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the child ended: %s", stderr.String())
			}
			state = l
		case <-time.After(time.Millisecond):
		}
	}
	wal := walSize()
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if state == "" {
		t.Fatalf("the child said nothing: %s", stderr.String())
	}
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatalf("reopening after the kill: %v", err)
	}
	defer s.Close()
	var check string
	if err := s.read.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check = %q, %v", check, err)
	}
	var triggers int
	s.read.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE type = 'trigger' AND name = 'messages_fts_delete'`).Scan(&triggers)
	if triggers != 1 {
		t.Fatal("the FTS delete trigger is gone after the kill")
	}
	if _, err := s.write.Exec(`INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')`); err != nil {
		t.Fatalf("the search index does not match the messages: %v", err)
	}
	p, _ := s.Latest(ctx, lobby, 5000)
	n := len(p.Messages())
	if n != 0 && n != 1000 {
		t.Fatalf("the room is half cleared: %d of 1000 messages", n)
	}
	if p, _ := s.Latest(ctx, garden, 10_000); len(p.Messages()) != 1500 {
		t.Fatalf("the other room lost messages: %d", len(p.Messages()))
	}
	hits, _ := s.Search(ctx, "message", &lobby, 5)
	if (n == 0) != (len(hits) == 0) {
		t.Fatalf("%d messages but %d search hits", n, len(hits))
	}
	// A delete still reaches the index (the trigger works).
	if _, err := s.write.Exec(`DELETE FROM messages WHERE seq = 7`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.write.Exec(`INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')`); err != nil {
		t.Fatalf("after a delete: %v", err)
	}
	t.Logf("killed after %q with %d bytes in the WAL: the room had %d messages on reopening", state, wal, n)
}
