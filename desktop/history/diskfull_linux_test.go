//go:build linux

package history

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/heartline/heartline/internal/testutil"
)

// diskFullEnv names the directory TestDiskFullChild mounts a small tmpfs on.
const diskFullEnv = "HEARTLINE_HISTORY_DISKFULL_DIR"

// TestAFullDiskLosesNothingStored: on a real full disk (a 6 MiB tmpfs in a
// private mount namespace) the Writer reports that the disk is full and
// what to do, everything stored before stays readable and searchable, the
// database stays intact, and writing resumes once space is freed.
func TestAFullDiskLosesNothingStored(t *testing.T) {
	out := testutil.InPrivateMountNamespace(t, diskFullEnv, "-test.run=^TestDiskFullChild$", "-test.v", "-test.count=1")
	if !strings.Contains(out, "--- PASS: TestDiskFullChild") {
		t.Fatal("the disk-full child did not pass")
	}
}

func TestDiskFullChild(t *testing.T) {
	dir := os.Getenv(diskFullEnv)
	if dir == "" {
		t.Skip("runs only in the child of TestAFullDiskLosesNothingStored")
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=6m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	defer syscall.Unmount(dir, 0)

	s, err := Open(filepath.Join(dir, "history.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Put(ctx, lobby, seqRange("a", 1, 100)); err != nil {
		t.Fatal(err)
	}
	// Someone else's file takes all but 256 KiB of the disk.
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(dir, "filler")
	if err := os.WriteFile(filler, make([]byte, int64(st.Bavail)*st.Bsize-256<<10), 0o600); err != nil {
		t.Fatalf("filler: %v", err)
	}

	var mu sync.Mutex
	var errs []error
	w := s.NewWriter(WriterOptions{OnError: func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}})
	defer w.Close()
	big := strings.Repeat("a long message that fills the disk ", 100)
	seq := uint64(100)
	for range 400 {
		var batch []Message
		for range 5 {
			seq++
			batch = append(batch, msg("a", seq, fmt.Sprintf("%s %d", big, seq)))
		}
		w.Put(lobby, batch...)
		w.Flush(ctx)
		mu.Lock()
		full := len(errs) > 0
		mu.Unlock()
		if full {
			break
		}
	}
	mu.Lock()
	if len(errs) == 0 {
		t.Fatal("2 MB of messages fit in 256 KiB")
	}
	msg0 := errs[0].Error()
	mu.Unlock()
	t.Logf("the Writer said: %s", msg0)
	if !strings.Contains(msg0, "disk holding the message history is full") || !strings.Contains(msg0, "free some space") {
		t.Fatalf("error: %s", msg0)
	}

	// What was stored is still there, findable, intact.
	p, err := s.Latest(ctx, lobby, 1000)
	if err != nil {
		t.Fatal(err)
	}
	stored := len(p.Messages())
	if stored < 100 || p.Messages()[0].Seq != 1 {
		t.Fatalf("after the full disk: %d messages", stored)
	}
	if hits, err := s.Search(ctx, "message 42 ", &lobby, 5); err != nil || len(hits) == 0 {
		t.Fatalf("search on a full disk: %v %v", hits, err)
	}
	var check string
	if err := s.read.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check %q %v", check, err)
	}

	// Space comes back: so does writing.
	os.Remove(filler)
	seq++
	w.Put(lobby, msg("a", seq, "after the disk was freed"))
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if hits, _ := s.Search(ctx, "freed", nil, 5); len(hits) != 1 {
		t.Fatalf("writing did not resume: %d hits", len(hits))
	}
	// The messages the full disk refused show as a gap, for the relay's
	// history to fill.
	if p, _ := s.Latest(ctx, lobby, 2); !strings.Contains(render(p), " gap ") {
		t.Fatalf("no gap where the refused messages were: %q", render(p))
	}
}
