package store

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// lockHelperEnv makes the test binary act as a second relay holding the
// store open (see TestMain): it opens the dir named by the variable, says
// "ready", and keeps the store open until stdin closes or it is killed.
const lockHelperEnv = "HEARTLINE_STORE_LOCK_HELPER_DIR"

func init() { subprocessModes[lockHelperEnv] = lockHelperMain }

func lockHelperMain() {
	s, err := Open(os.Getenv(lockHelperEnv), Options{})
	if err != nil {
		fmt.Println("open failed:", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // until EOF
	if err := s.Close(); err != nil {
		fmt.Println("close failed:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func startLockHolder(t *testing.T, dir string) (cmd *exec.Cmd, closeStdin func()) {
	t.Helper()
	cmd = exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), lockHelperEnv+"="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		t.Fatalf("lock holder said %q (%v)", line, err)
	}
	return cmd, func() { stdin.Close() }
}

func TestOpenLockedByAnotherProcess(t *testing.T) {
	dir := t.TempDir()
	holder, closeStdin := startLockHolder(t, dir)

	start := time.Now()
	_, err := Open(dir, Options{LockWait: 300 * time.Millisecond})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "in use by another heartline-relay") {
		t.Fatalf("Open while another process holds the store: %v", err)
	}
	if waited := time.Since(start); waited < 200*time.Millisecond {
		t.Errorf("gave up after %s, before the configured lock wait", waited)
	}

	closeStdin()
	if err := holder.Wait(); err != nil {
		t.Fatalf("lock holder: %v", err)
	}
	s := openT(t, dir, Options{})
	ensureT(t, s, "r")
}

func TestLockOfAKilledProcessIsReleased(t *testing.T) {
	// A relay killed with SIGKILL must not leave its data dir locked: the
	// restart after a crash opens it at once.
	dir := t.TempDir()
	holder, _ := startLockHolder(t, dir)
	if err := holder.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = holder.Wait()
	s := openT(t, dir, Options{LockWait: 300 * time.Millisecond})
	ensureT(t, s, "r")
}

// writeForeignBolt creates a valid bbolt file that is not a Heartline store.
func writeForeignBolt(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("settings"))
		if err != nil {
			return err
		}
		return b.Put([]byte("k"), []byte("v"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Clean(path)); err != nil {
		t.Fatal(err)
	}
}
