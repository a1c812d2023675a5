//go:build linux

package server

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heartline/heartline/internal/testutil"
	"github.com/heartline/heartline/shared/protocol"
)

// readyzDiskFullEnv names the directory TestReadyzDiskFullChild mounts its
// small tmpfs on; the test runs only in the child that
// TestReadyzSaysWhenTheStoreCannotWrite starts.
const readyzDiskFullEnv = "HEARTLINE_SERVER_DISKFULL_DIR"

// TestReadyzSaysWhenTheStoreCannotWrite: on a real full disk (ENOSPC from
// a small tmpfs) /readyz turns 503 and says why, heartline_store_writable
// turns 0, and once space is freed both come back by themselves, with no
// client writing anything. It needs root for the mount, which happens in a
// private mount namespace of a child process (the host never sees it).
func TestReadyzSaysWhenTheStoreCannotWrite(t *testing.T) {
	storeOnly(t, "Redis mode reports Redis unreachable in /readyz (TestClusterRedisPausedLongerThanHeartbeatTimeout)")
	out := testutil.InPrivateMountNamespace(t, readyzDiskFullEnv, "-test.run=^TestReadyzDiskFullChild$", "-test.v", "-test.count=1")
	if !strings.Contains(out, "--- PASS: TestReadyzDiskFullChild") {
		t.Fatal("the disk-full child did not pass")
	}
}

func TestReadyzDiskFullChild(t *testing.T) {
	dir := os.Getenv(readyzDiskFullEnv)
	if dir == "" {
		t.Skip("runs only in the child of TestReadyzSaysWhenTheStoreCannotWrite")
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=4m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	defer syscall.Unmount(dir, 0)

	cfg := fastConfig(t)
	cfg.DataDir = filepath.Join(dir, "data")
	// Nobody pings during the test: only the store's own write check may
	// bring readiness back.
	cfg.HeartbeatInterval, cfg.HeartbeatTimeout, cfg.Grace = 20*time.Second, time.Minute, time.Minute
	cfg.Rate, cfg.Burst = 10000, 10000
	cfg.MetricsListen = "127.0.0.1:0"
	tr := startRelay(t, cfg)
	ops := &testRelay{t: t, web: "http://" + tr.srv.MetricsAddr().String()}
	a, _ := tr.join("r", "Alice", newKey())

	ready := func(rel *testRelay) (int, string) {
		resp, body := rel.get("/readyz", nil)
		return resp.StatusCode, string(body)
	}
	metricLine := func(name string) string {
		_, body := ops.get("/metrics", nil)
		for _, l := range strings.Split(string(body), "\n") {
			if strings.HasPrefix(l, name+" ") {
				return l
			}
		}
		return ""
	}
	if code, body := ready(tr); code != 200 || metricLine("heartline_store_writable") != "heartline_store_writable 1" {
		t.Fatalf("before: readyz %d %q, %q", code, body, metricLine("heartline_store_writable"))
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

	// Messages until one cannot be stored.
	text := strings.Repeat("x", 4000)
	acked := 0
	for failed := false; !failed; {
		if acked == 2000 {
			t.Fatalf("the disk never filled: %d messages acked", acked)
		}
		a.msg(fmt.Sprint("m", acked), text)
		f, err := a.next(10 * time.Second)
		switch e, _ := f.(*protocol.Error); {
		case err != nil:
			t.Fatalf("after %d acks: %v", acked, err)
		case f.FrameType() == protocol.TypeAck:
			acked++
		case e != nil && e.Code == protocol.ErrInternal:
			failed = true
		default:
			t.Fatalf("after %d acks: got %+v, want an ack or error internal", acked, f)
		}
	}
	t.Logf("the disk was full after %d acknowledged messages", acked)
	for _, rel := range []*testRelay{tr, ops} {
		if code, body := ready(rel); code != 503 || body != "store cannot write: no space left on device\n" {
			t.Errorf("%s/readyz on a full disk: %d %q, want 503 store cannot write: no space left on device", rel.web, code, body)
		}
		if resp, _ := rel.get("/healthz", nil); resp.StatusCode != 200 {
			t.Errorf("%s/healthz on a full disk: %d, want 200 (the process is alive; restarting it frees no space)", rel.web, resp.StatusCode)
		}
	}
	if got := metricLine("heartline_store_writable"); got != "heartline_store_writable 0" {
		t.Errorf("on a full disk: %q, want heartline_store_writable 0", got)
	}
	if got := metricLine("heartline_store_errors_total"); got == "heartline_store_errors_total 0" || got == "" {
		t.Errorf("on a full disk: %q", got)
	}
	// The store's write check (every 2 s) still fails while the disk is
	// full: readiness must not come back on its own.
	time.Sleep(3 * time.Second)
	if code, body := ready(tr); code != 503 {
		t.Errorf("readyz while the disk is still full: %d %q, want 503", code, body)
	}

	// Space comes back; nobody writes, the relay notices by itself.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "readyz 200 after space was freed", func() bool {
		code, _ := ready(tr)
		return code == 200
	})
	if got := metricLine("heartline_store_writable"); got != "heartline_store_writable 1" {
		t.Errorf("after space was freed: %q, want heartline_store_writable 1", got)
	}
	a.msg("after", "stored again")
	if ack := a.expect(protocol.TypeAck).(*protocol.Ack); ack.Seq != uint64(acked)+1 {
		t.Errorf("the first message after the full disk got seq %d, want %d", ack.Seq, acked+1)
	}
}
