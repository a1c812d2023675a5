package packaging

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heartline/heartline/internal/testutil"
	"github.com/heartline/heartline/shared/client"
)

func TestRunClusterScriptShellcheck(t *testing.T) {
	tool := need(t, "shellcheck")
	run(t, repoRoot(t), nil, tool, "scripts/run-cluster.sh")
}

// freePortRun finds n consecutive free loopback ports (the script numbers
// its relays from one first port).
func freePortRun(t *testing.T, n int) int {
	t.Helper()
	for range 200 {
		base := 20000 + rand.IntN(30000)
		ok := true
		for p := base; p < base+n && ok; p++ {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				ok = false
				continue
			}
			l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no run of free ports found")
	return 0
}

// member joins room through relayURL and collects what it receives.
type member struct {
	c   *client.Client
	got chan string
}

func join(t *testing.T, ctx context.Context, relayURL, name string) *member {
	t.Helper()
	c, err := client.New(client.Config{URL: relayURL, Room: "lobby", Name: name, Key: client.NewKey(), Client: "cluster-test/1"})
	if err != nil {
		t.Fatal(err)
	}
	m := &member{c: c, got: make(chan string, 100)}
	go func() {
		for ev := range c.Events() {
			if msg, ok := ev.(client.MessageReceived); ok {
				m.got <- msg.Msg.From.Name + ": " + msg.Msg.Text
			}
		}
	}()
	go c.Run(ctx)
	return m
}

func (m *member) expect(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case got := <-m.got:
			if got == want {
				return
			}
		case <-deadline:
			t.Fatalf("never received %q", want)
		}
	}
}

// make run-cluster as a newcomer uses it: Redis, three relays and nginx
// start, two people chat through two different relays and a third through
// the balancer, and Ctrl-C stops every process.
func TestRunClusterChatsThroughTwoRelays(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the relay and starts Redis, three relays and nginx")
	}
	for _, tool := range []string{"redis-server", "redis-cli", "nginx", "curl"} {
		need(t, tool)
	}
	root := repoRoot(t)
	bin := filepath.Join(t.TempDir(), "heartline-relay")
	run(t, root, nil, "go", "build", "-o", bin, "./relay")
	if help, _ := exec.Command(bin, "--help").CombinedOutput(); !strings.Contains(string(help), "--redis-url") {
		t.Skip("this relay has no --redis-url yet (the Redis engine of issue 14): nothing to run a cluster on")
	}

	ports := freePortRun(t, 5) // Redis, nginx, three relays
	redisPort, lbPort, firstRelay := ports, ports+1, ports+2
	dir := t.TempDir()
	cmd := exec.Command("scripts/run-cluster.sh")
	cmd.Dir = root
	cmd.Env = append(os.Environ(),
		"HEARTLINE_CLUSTER_DIR="+dir,
		"HEARTLINE_CLUSTER_RELAY="+bin,
		"HEARTLINE_CLUSTER_REDIS_PORT="+strconv.Itoa(redisPort),
		"HEARTLINE_CLUSTER_LB_PORT="+strconv.Itoa(lbPort),
		"HEARTLINE_CLUSTER_FIRST_PORT="+strconv.Itoa(firstRelay),
		"HEARTLINE_CLUSTER_FIRST_STUN_PORT=0",
	)
	// Its own process group, as a terminal's job: Ctrl-C reaches every process.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out testutil.SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			t.Logf("run-cluster output:\n%s", out.String())
		}
	}()
	deadline := time.Now().Add(90 * time.Second)
	for !strings.Contains(out.String(), "Ctrl-C stops everything") {
		select {
		case err := <-exited:
			stopped = true
			t.Fatalf("run-cluster exited before it was ready: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("run-cluster did not print its instructions within 90 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, want := range []string{
		fmt.Sprintf("--relay ws://127.0.0.1:%d/ws", firstRelay),
		fmt.Sprintf("--relay ws://127.0.0.1:%d/ws", firstRelay+1),
		fmt.Sprintf("--relay ws://127.0.0.1:%d/ws", lbPort),
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the instructions lack %q", want)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	alice := join(t, ctx, fmt.Sprintf("ws://127.0.0.1:%d/ws", firstRelay), "alice")
	bob := join(t, ctx, fmt.Sprintf("ws://127.0.0.1:%d/ws", firstRelay+1), "bob")
	carol := join(t, ctx, fmt.Sprintf("ws://127.0.0.1:%d/ws", lbPort), "carol")
	if _, err := alice.c.Send("hello from the first relay"); err != nil {
		t.Fatal(err)
	}
	bob.expect(t, "alice: hello from the first relay")
	carol.expect(t, "alice: hello from the first relay")
	if _, err := bob.c.Send("hello from the second relay"); err != nil {
		t.Fatal(err)
	}
	alice.expect(t, "bob: hello from the second relay")
	carol.expect(t, "bob: hello from the second relay")
	cancel()

	// Ctrl-C: the terminal signals the whole foreground job.
	syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Errorf("run-cluster exited with %v after Ctrl-C", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("run-cluster still running 60 s after Ctrl-C")
	}
	for p := redisPort; p < firstRelay+3; p++ {
		if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(p)); err == nil {
			c.Close()
			t.Errorf("port %d still answers after Ctrl-C", p)
		}
	}
}
