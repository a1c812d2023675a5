package testutil

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// Network-namespace tests: the test creates namespaces and veth pairs with
// ip(8) (root only), and runs parts of itself inside them by executing its
// own binary again with `ip netns exec`; a role variable tells the child
// which part it plays. Parent and child talk in lines: "WORD payload".

// NeedNetNS skips t unless it runs as root with ip(8) and the other tools
// named in PATH.
func NeedNetNS(t *testing.T, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("skipped: network-namespace tests need root (they create namespaces and veth pairs); run `sudo go test -run %s`", t.Name())
	}
	for _, tool := range append([]string{"ip"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipped: network-namespace tests need %q in PATH", tool)
		}
	}
}

// Sh runs a command and returns an error that carries its output.
func Sh(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// NewNetNS creates network namespaces named prefix+suffix (one per
// suffix), unique to this process; t.Cleanup deletes them. It skips the
// test if the system refuses namespaces.
func NewNetNS(t *testing.T, prefix string, suffixes ...string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	id := fmt.Sprintf("%s%d%d", prefix, os.Getpid()%100000, time.Now().UnixNano()%1000)
	var names []string
	for _, s := range suffixes {
		ns := id + s
		if err := Sh(ctx, "ip", "netns", "add", ns); err != nil {
			t.Skipf("skipped: cannot create a network namespace here: %v", err)
		}
		t.Cleanup(func() { Sh(context.Background(), "ip", "netns", "del", ns) })
		names = append(names, ns)
	}
	return names
}

// RunAll runs commands in order (ip, iptables...) and fails t at the first
// that fails.
func RunAll(t *testing.T, cmds ...[]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, c := range cmds {
		if err := Sh(ctx, c...); err != nil {
			t.Fatal(err)
		}
	}
}

// Child is this test binary running a role inside a namespace.
type Child struct {
	t        *testing.T
	cmd      *exec.Cmd
	stdin    io.WriteCloser
	out      <-chan string
	done     chan struct{}
	stopOnce sync.Once
}

// StartInNetNS runs the test binary again inside ns with roleEnv=role and
// env, its stderr logged to t; t.Cleanup stops it.
func StartInNetNS(t *testing.T, ns, roleEnv, role string, env ...string) *Child {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns, exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), append(env, roleEnv+"="+role)...)
	cmd.Stderr = &logWriter{t: t, prefix: role + ": "}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	// Our own pipe, closed once Wait has copied everything: the lines
	// reader sees the child's last line, then the end.
	stdout, pw := io.Pipe()
	cmd.Stdout = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &Child{t: t, cmd: cmd, stdin: stdin, out: lines(stdout), done: make(chan struct{})}
	go func() {
		cmd.Wait()
		pw.Close()
		close(c.done)
	}()
	t.Cleanup(c.Stop)
	return c
}

// Stop asks the child to finish (stdin closed), kills it if it has not
// within 5 s (our own child, by its pid), and reads what it still wrote,
// so no goroutine is left behind.
func (c *Child) Stop() {
	c.stopOnce.Do(func() {
		c.stdin.Close()
		kill := time.AfterFunc(5*time.Second, func() { c.cmd.Process.Kill() })
		defer kill.Stop()
		for range c.out {
		}
		<-c.done
	})
}

// Say writes a line to the child's stdin.
func (c *Child) Say(line string) {
	c.t.Helper()
	if _, err := io.WriteString(c.stdin, line+"\n"); err != nil {
		c.t.Fatalf("writing to the child: %v", err)
	}
}

// Expect waits for a line starting with word and returns its payload.
func (c *Child) Expect(word string, within time.Duration) string {
	c.t.Helper()
	deadline := time.After(within)
	for {
		select {
		case l, ok := <-c.out:
			if !ok {
				c.t.Fatalf("the child ended before %q", word)
			}
			if rest, found := strings.CutPrefix(l, word); found {
				return strings.TrimSpace(rest)
			}
		case <-deadline:
			c.t.Fatalf("no %q from the child within %v", word, within)
		}
	}
}

// Lines is the child's stdout, line by line (Expect reads the same lines).
func (c *Child) Lines() <-chan string { return c.out }

type logWriter struct {
	t      *testing.T
	prefix string
}

func (w *logWriter) Write(p []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		w.t.Log(w.prefix + l)
	}
	return len(p), nil
}

// lines turns a child's stdout into a channel of lines.
func lines(r io.Reader) <-chan string {
	out := make(chan string, 64)
	go func() {
		defer close(out)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			out <- strings.TrimSpace(sc.Text())
		}
	}()
	return out
}
