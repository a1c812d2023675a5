//go:build linux

package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heartline/heartline/internal/testutil"
)

// diskFullEnv makes the test binary run diskFullMain: in its own mount
// namespace it mounts a small tmpfs on the dir the variable names, fills it,
// and checks how the store behaves when the disk is full.
const diskFullEnv = "HEARTLINE_STORE_DISKFULL_DIR"

// TestFullDiskFailsTheBatchAndTheStoreRecovers: a real ENOSPC, not a
// simulated one. Every record of the batch that hits the full disk gets the
// error, reads keep working, and once space is freed the same open store
// accepts writes again; after a reopen every acknowledged record is there.
func TestFullDiskFailsTheBatchAndTheStoreRecovers(t *testing.T) {
	out := testutil.InPrivateMountNamespace(t, diskFullEnv, "-test.run=^$")
	if !strings.Contains(out, "PASS disk full") {
		t.Fatal("the disk-full child did not finish its checks")
	}
}

func init() { subprocessModes[diskFullEnv] = diskFullMain }

func diskFullMain() {
	fail := func(format string, args ...any) {
		fmt.Printf("FAIL "+format+"\n", args...)
		os.Exit(1)
	}
	dir := os.Getenv(diskFullEnv)
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		fail("mount tmpfs: %v", err)
	}
	defer syscall.Unmount(dir, 0)

	// Most of the disk is taken by someone else's file.
	filler := filepath.Join(dir, "filler")
	if err := os.WriteFile(filler, make([]byte, 600<<10), 0o600); err != nil {
		fail("filler: %v", err)
	}
	// A write check smaller than the space a failed batch needed, so that it
	// fails while the disk is full and passes once the filler is gone.
	s, err := Open(filepath.Join(dir, "data"), Options{History: 100000, RecheckInterval: 10 * time.Millisecond, RecheckSize: 64 << 10})
	if err != nil {
		fail("open: %v", err)
	}
	if _, err := s.EnsureRoom("r"); err != nil {
		fail("ensure: %v", err)
	}

	type result struct {
		rec Record
		err error
	}
	// appendGroup queues n records behind a held commit so that they are
	// written in one transaction, and returns their results.
	appendGroup := func(group, n int) []result {
		gate, held := make(chan struct{}), make(chan struct{})
		hold := make(chan result, 1)
		s.AppendNext("r", Record{MemberID: "holder", ClientID: fmt.Sprint("hold-", group)}, func(r Record, err error) {
			close(held)
			<-gate
			hold <- result{r, err}
		})
		<-held
		res := make(chan result, n)
		for i := range n {
			s.AppendNext("r", Record{TS: time.Now().UnixMilli(), MemberID: "m", ClientID: fmt.Sprintf("g%d-%d", group, i),
				Text: strings.Repeat("x", 8<<10)}, func(r Record, err error) { res <- result{r, err} })
		}
		close(gate)
		<-hold
		out := make([]result, n)
		for i := range out {
			out[i] = <-res
		}
		return out
	}

	acked := map[string]uint64{} // client id -> seq, for every record reported durable
	var failed []result
	groups := 0
	for ; groups < 500 && failed == nil; groups++ {
		res := appendGroup(groups, 4)
		nFailed := 0
		for _, r := range res {
			if r.err != nil {
				nFailed++
			}
		}
		switch {
		case nFailed == 0:
			for _, r := range res {
				acked[r.rec.ClientID] = r.rec.Seq
			}
		case nFailed != len(res):
			fail("group %d: %d of %d records failed; a batch must fail as a whole", groups, nFailed, len(res))
		default:
			failed = res
		}
	}
	if failed == nil {
		fail("the disk never filled after %d groups", groups)
	}
	for _, r := range failed {
		if !errors.Is(r.err, syscall.ENOSPC) {
			fail("a full disk gave %v, want ENOSPC", r.err)
		}
	}
	fmt.Printf("after %d durable records the disk was full: %v\n", len(acked), failed[0].err)
	if err := s.WriteErr(); !errors.Is(err, syscall.ENOSPC) {
		fail("WriteErr after the failed batch: %v, want ENOSPC", err)
	}
	// The committer's write check runs every 10 ms: after ~20 of them the
	// disk is still full, so the store must still say it cannot write.
	time.Sleep(200 * time.Millisecond)
	if err := s.WriteErr(); !errors.Is(err, syscall.ENOSPC) {
		fail("WriteErr while the disk is still full: %v, want ENOSPC", err)
	}

	// Reads go on, and nothing of the failed batch is visible.
	latest, err := s.Seq("r")
	if err != nil {
		fail("Seq on a full disk: %v", err)
	}
	recs, complete, err := s.After("r", 0, 0)
	if err != nil || !complete || uint64(len(recs)) != latest {
		fail("After on a full disk: %d records of %d, complete=%v, %v", len(recs), latest, complete, err)
	}
	if _, ok, _ := s.LookupID("r", "m", fmt.Sprintf("g%d-0", groups-1)); ok {
		fail("a record of the failed batch is in the index")
	}

	// Space comes back: the idle store notices by itself, and the same
	// open store accepts writes again.
	if err := os.Remove(filler); err != nil {
		fail("remove filler: %v", err)
	}
	for deadline := time.Now().Add(10 * time.Second); s.WriteErr() != nil; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			fail("WriteErr still %v 10 s after space was freed, with no write", s.WriteErr())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "data", FileName+".write-check")); !os.IsNotExist(err) {
		fail("the write check left its scratch file: %v", err)
	}
	for _, r := range appendGroup(groups, 4) {
		if r.err != nil {
			fail("append after space was freed: %v", r.err)
		}
		if r.rec.Seq <= latest {
			fail("append after space was freed got seq %d, not after %d", r.rec.Seq, latest)
		}
		acked[r.rec.ClientID] = r.rec.Seq
	}
	if err := s.Close(); err != nil {
		fail("close: %v", err)
	}

	// Reopened (which verifies every page and record), every ack is there.
	s, err = Open(filepath.Join(dir, "data"), Options{History: 100000})
	if err != nil {
		fail("reopen after the full disk: %v", err)
	}
	defer s.Close()
	for id, seq := range acked {
		r, ok, err := s.LookupID("r", "m", id)
		if err != nil || !ok || r.Seq != seq {
			fail("acked %s (seq %d) after reopen: %+v %v %v", id, seq, r, ok, err)
		}
	}
	latest, _ = s.Seq("r")
	if recs, complete, err := s.After("r", 0, 0); err != nil || !complete || uint64(len(recs)) != latest {
		fail("after reopen: %d records of %d, complete=%v, %v", len(recs), latest, complete, err)
	}
	fmt.Printf("PASS disk full: %d acked records intact after ENOSPC, freeing space and reopening\n", len(acked))
}
