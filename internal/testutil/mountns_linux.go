package testutil

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// InPrivateMountNamespace runs this test binary again with args, in a mount
// namespace of its own and with env set to a fresh temporary directory, so
// that the child can mount a small tmpfs there (a real full disk) that the
// host never sees. It skips when it cannot (not root, -short, no mount
// permission), fails the test when the child fails, and returns the child's
// output.
func InPrivateMountNamespace(t *testing.T, env string, args ...string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("mounts a tmpfs in a private mount namespace; skipped with -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs in a private mount namespace (run as root to test a real full disk)")
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), env+"="+t.TempDir())
	// Go makes / private in the child, so the tmpfs goes with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	out, err := cmd.CombinedOutput()
	if err != nil && strings.Contains(string(out), "mount tmpfs: operation not permitted") {
		t.Skipf("cannot mount a tmpfs here: %s", out)
	}
	t.Logf("child:\n%s", out)
	if err != nil {
		t.Fatalf("the child in its own mount namespace failed: %v", err)
	}
	return string(out)
}
