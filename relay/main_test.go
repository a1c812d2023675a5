package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heartline/heartline/shared/protocol"
)

func noEnv(string) string { return "" }

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func runArgs(t *testing.T, env func(string) string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // anything that would serve stops at once
	code := run(ctx, args, env, &out, &errb)
	return code, out.String(), errb.String()
}

// Every flag of issue 2 exists, is listed by --help with its env var and
// default, and --help exits 0.
func TestHelpListsEveryFlag(t *testing.T) {
	code, out, _ := runArgs(t, noEnv, "--help")
	if code != 0 {
		t.Fatalf("--help exit %d", code)
	}
	for _, f := range []struct{ name, def string }{
		{"listen", ":8080"}, {"data-dir", "./heartline-data"}, {"heartbeat-interval", "10s"},
		{"heartbeat-timeout", "25s"}, {"grace", "30s"}, {"max-frame", "64KiB"}, {"max-text", "4000"},
		{"rate", "5"}, {"burst", "10"}, {"max-conns", "0"}, {"max-conns-per-ip", "128"},
		{"max-room-members", "1000"}, {"max-room-members-per-ip", "10"}, {"auth-free-failures", "5"}, {"auth-max-backoff", "1m0s"}, {"origins", `""`}, {"token", `""`}, {"admin-token", `""`},
		{"tls-cert", `""`}, {"tls-key", `""`}, {"tcp-keepalive-idle", "1m0s"},
		{"tcp-keepalive-interval", "30s"}, {"tcp-keepalive-count", "3"}, {"log-format", "text"},
		{"log-level", "info"}, {"history", "1000"}, {"history-page", "50"}, {"version", "false"},
	} {
		want := "--" + f.name + " (env " + envName(f.name) + ", default " + f.def + ")"
		if !strings.Contains(out, want) {
			t.Errorf("--help lacks %q", want)
		}
	}
	// And nothing declared is missing from the help.
	o := &options{}
	fs := newFlagSet(o, nil)
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if got := strings.Count(out, "\n  --"); got != n {
		t.Errorf("--help lists %d flags, %d declared", got, n)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := runArgs(t, noEnv, "--version")
	if code != 0 || !strings.HasPrefix(out, "heartline-relay ") {
		t.Fatalf("--version: %d %q", code, out)
	}
}

// Invalid values are refused with exit code 2 and a message naming them.
func TestInvalidValuesExit2(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--heartbeat-timeout", "20s"}, nil, "more than twice"},
		{[]string{"--heartbeat-interval", "10s", "--heartbeat-timeout", "20s"}, nil, "more than twice"},
		{[]string{"--grace", "soon"}, nil, "--grace"},
		{[]string{"--heartbeat-interval", "-1s"}, nil, "positive"},
		{[]string{"--max-frame", "lots"}, nil, "not a size"},
		{[]string{"--max-frame", "100"}, nil, "too small"},
		{[]string{"--rate", "0"}, nil, "positive"},
		{[]string{"--tls-cert", "c.pem"}, nil, "both"},
		{[]string{"--tls-key", "k.pem"}, nil, "both"},
		{[]string{"--log-format", "xml"}, nil, "text or json"},
		{[]string{"--log-level", "loud"}, nil, "debug, info"},
		{[]string{"--listen", "8080"}, nil, "host:port"},
		{[]string{"--stun-port", "65535"}, nil, "STUN port"},
		{[]string{"--stun-port", "-1"}, nil, "STUN port"},
		{[]string{"--stun-alt-ip", "127.0.0.2"}, nil, "specific IP"},
		{[]string{"--auth-max-backoff", "100ms"}, nil, "auth max backoff"},
		{[]string{"--no-such-flag"}, nil, "not defined"},
		{[]string{"stray"}, nil, "unexpected argument"},
		{nil, map[string]string{"HEARTLINE_GRACE": "later"}, "HEARTLINE_GRACE"},
		{nil, map[string]string{"HEARTLINE_MAX_CONNS": "many"}, "HEARTLINE_MAX_CONNS"},
	} {
		args := append([]string{"--data-dir", dir}, tc.args...)
		code, _, stderr := runArgs(t, envOf(tc.env), args...)
		if code != 2 {
			t.Errorf("%v %v: exit %d, want 2 (%s)", tc.args, tc.env, code, stderr)
			continue
		}
		if !strings.Contains(stderr, tc.want) {
			t.Errorf("%v %v: message %q lacks %q", tc.args, tc.env, stderr, tc.want)
		}
	}
}

// Environment variables set every flag; the command line wins.
func TestEnvAndFlagPrecedence(t *testing.T) {
	env := envOf(map[string]string{
		"HEARTLINE_GRACE": "45s", "HEARTLINE_MAX_FRAME": "1MiB", "HEARTLINE_ORIGINS": "https://a.example, https://b.example",
		"HEARTLINE_TOKEN": "from-env", "HEARTLINE_MAX_CONNS_PER_IP": "7", "HEARTLINE_RATE": "2.5",
		"HEARTLINE_TCP_KEEPALIVE_COUNT": "5", "HEARTLINE_LOG_FORMAT": "json",
	})
	o, code, err := parse([]string{"--grace", "50s", "--token", "from-flag"}, env, nil)
	if err != nil || code != 0 {
		t.Fatalf("parse: %v", err)
	}
	c := o.cfg
	if c.Grace != 50*time.Second || c.Token != "from-flag" {
		t.Errorf("flag did not win: grace %v token %q", c.Grace, c.Token)
	}
	if c.MaxFrame != 1<<20 || c.MaxConnsPerIP != 7 || c.Rate != 2.5 || c.KeepAliveCount != 5 || o.logFormat != "json" {
		t.Errorf("env not applied: %+v format %s", c, o.logFormat)
	}
	if len(c.Origins) != 2 || c.Origins[1] != "https://b.example" {
		t.Errorf("origins %q", c.Origins)
	}
	o, _, _ = parse(nil, noEnv, nil)
	if o.cfg.HeartbeatInterval != 10*time.Second || o.cfg.HeartbeatTimeout != 25*time.Second || o.cfg.Listen != ":8080" {
		t.Errorf("defaults %+v", o.cfg)
	}
}

// A data dir that cannot be used stops the relay at start with exit 2.
func TestUnusableDataDirExit2(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-dir")
	os.WriteFile(file, []byte("x"), 0o600)
	code, _, stderr := runArgs(t, noEnv, "--data-dir", file, "--listen", "127.0.0.1:0")
	if code != 2 || stderr == "" {
		t.Errorf("data dir is a file: exit %d %q", code, stderr)
	}
	corrupt := t.TempDir()
	os.WriteFile(filepath.Join(corrupt, "heartline.db"), bytes.Repeat([]byte("garbage!"), 1024), 0o600)
	code, _, stderr = runArgs(t, noEnv, "--data-dir", corrupt, "--listen", "127.0.0.1:0")
	if code != 2 || !strings.Contains(stderr, "heartline.db") {
		t.Errorf("corrupt database: exit %d %q", code, stderr)
	}
}

// buildRelay compiles the command once per test binary run.
func buildRelay(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "heartline-relay")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go build: %v", err)
	}
	return bin
}

var listenRe = regexp.MustCompile(`relay listening"? addr=(\S+)`)

// startProcess runs the relay binary and returns its address once it listens.
func startProcess(t *testing.T, bin string, args ...string) (*exec.Cmd, string, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "HEARTLINE_LOG_LEVEL=info")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			log.WriteString(line + "\n")
			if m := listenRe.FindStringSubmatch(line); m != nil {
				addr <- m[1]
			}
		}
		close(addr)
	}()
	select {
	case a, ok := <-addr:
		if !ok {
			cmd.Wait()
			t.Fatalf("relay exited before listening:\n%s", log.String())
		}
		return cmd, a, &log
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		t.Fatal("relay did not start listening")
	}
	return nil, "", nil
}

// SIGTERM: readyz turns 503 (not observable from outside once the listener
// closes, so covered in server tests), every client gets close 1001, the
// process exits 0 within the shutdown bound; a second relay on the same
// data dir is refused with exit 2 while the first runs.
func TestProcessSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the relay binary")
	}
	bin := buildRelay(t)
	dir := t.TempDir()
	cmd, addr, log := startProcess(t, bin, "--listen", "127.0.0.1:0", "--data-dir", dir, "--shutdown-timeout", "3s", "--stun-port", "0")

	second := exec.Command(bin, "--listen", "127.0.0.1:0", "--data-dir", dir, "--stun-port", "0")
	var secondErr bytes.Buffer
	second.Stderr = &secondErr
	err := second.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(secondErr.String(), "in use") {
		t.Errorf("second relay on the same data dir: %v %q", err, secondErr.String())
	}

	ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	h, _ := protocol.Encode(&protocol.Hello{V: 1, Room: "lobby", Name: "Alice", Key: "a-key-of-sixteen-chars"})
	ws.WriteMessage(websocket.TextMessage, h)
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := ws.ReadMessage(); err != nil {
		t.Fatalf("welcome: %v", err)
	}

	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	code := 0
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				code = ce.Code
			}
			break
		}
	}
	if code != websocket.CloseGoingAway {
		t.Errorf("client close code %d, want 1001", code)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("relay exit: %v\n%s", err, log.String())
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("relay did not exit after SIGTERM")
	}
	t.Logf("SIGTERM to exit: %v", time.Since(start))
}
