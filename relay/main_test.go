package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	bolt "go.etcd.io/bbolt"

	"github.com/heartline/heartline/relay/store"
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
		{"max-room-members", "1000"}, {"max-room-members-per-ip", "10"}, {"auth-free-failures", "5"}, {"auth-max-backoff", "1m0s"},
		{"origins", `""`}, {"public-host", `""`}, {"token", `""`}, {"admin-token", `""`},
		{"tls-cert", `""`}, {"tls-key", `""`}, {"tcp-keepalive-idle", "1m0s"},
		{"tcp-keepalive-interval", "30s"}, {"tcp-keepalive-count", "3"}, {"log-format", "text"},
		{"log-level", "info"}, {"history", "1000"}, {"history-page", "50"}, {"version", "false"},
		{"metrics-listen", `""`}, {"metrics-room-names", "false"}, {"web", "true"},
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
		{[]string{"--metrics-listen", "9090"}, nil, "metrics listen address"},
		{[]string{"--metrics-listen", ":8080"}, nil, "their own port"},
		{nil, map[string]string{"HEARTLINE_METRICS_ROOM_NAMES": "maybe"}, "not true or false"},
		{[]string{"--auth-max-backoff", "100ms"}, nil, "auth max backoff"},
		{[]string{"--trusted-proxies", "127.0.0.1,proxy.example.org"}, nil, "not an IP address or a CIDR prefix"},
		{[]string{"--no-such-flag"}, nil, "not defined"},
		{[]string{"stray"}, nil, "unexpected argument"},
		{[]string{"--public-host", "https://chat.example.org"}, nil, "public host"},
		{[]string{"--public-host", "chat.example.org:0"}, nil, "public host"},
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
		"HEARTLINE_METRICS_LISTEN": "127.0.0.1:9090", "HEARTLINE_METRICS_ROOM_NAMES": "true",
		"HEARTLINE_PUBLIC_HOST": "chat.example.org, chat.example.net:8443",
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
	if c.MetricsListen != "127.0.0.1:9090" || !c.MetricsRoomNames {
		t.Errorf("metrics env not applied: listen %q room names %v", c.MetricsListen, c.MetricsRoomNames)
	}
	if len(c.Origins) != 2 || c.Origins[1] != "https://b.example" {
		t.Errorf("origins %q", c.Origins)
	}
	if len(c.PublicHosts) != 2 || c.PublicHosts[1] != "chat.example.net:8443" {
		t.Errorf("public hosts %q", c.PublicHosts)
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

// damagedDBSource writes a real history (several rooms, members, enough
// messages over many commits to span dozens of pages) and returns the bytes
// of its file.
func damagedDBSource(t *testing.T) []byte {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(dir, store.Options{History: 200})
	if err != nil {
		t.Fatal(err)
	}
	for r := range 3 {
		room := fmt.Sprintf("room-%d", r)
		if _, err := st.EnsureRoom(room); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		st.PutMember(room, store.MemberRecord{ID: "m1", Name: "Alice", KeyHash: strings.Repeat("ab", 32)}, func(err error) { done <- err })
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		for i := range 120 {
			done := make(chan error, 1)
			rec := store.Record{Seq: uint64(i + 1), TS: int64(i), MemberID: "m1", ClientID: fmt.Sprint(i),
				Text: fmt.Sprintf("message %d %s", i, strings.Repeat("y", 300))}
			if !st.TryAppend(room, rec, func(err error) { done <- err }) {
				t.Fatal("store queue full")
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// A damaged database (empty, truncated anywhere, garbage) stops the relay
// binary at start with exit 2 and one line that says what to do, and the
// file is left exactly as it was. Truncations used to crash it with SIGBUS
// (bbolt's consistency check runs on a goroutine of its own, outside the
// store's fault guard), and an empty file used to start a fresh history.
func TestProcessDamagedDatabaseExit2(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the relay binary")
	}
	bin := buildRelay(t)
	healthy := damagedDBSource(t)
	pageSize := os.Getpagesize()
	cases := map[string][]byte{
		"empty file":         {},
		"garbage":            bytes.Repeat([]byte("garbage!"), 8192),
		"random bytes":       randomBytes(t, 64<<10),
		"one byte":           healthy[:1],
		"zeroed middle page": zeroPage(healthy, len(healthy)/pageSize/2, pageSize),
	}
	// bbolt grows its file ahead of the pages in use; cutting only that
	// unused tail loses nothing (TestProcessUnusedTailCut).
	used := usedBytes(t, healthy)
	for off := pageSize; off < used; off += pageSize {
		cases[fmt.Sprintf("truncated at %d", off)] = healthy[:off]
	}
	for _, off := range []int{100, pageSize - 1, pageSize + 1, 2*pageSize + 17, 3*pageSize - 5, used/2 + 123, used - 1} {
		cases[fmt.Sprintf("truncated at %d", off)] = healthy[:off]
	}
	t.Logf("%d cases from a %d-byte database", len(cases), len(healthy))
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, store.FileName)
			if err := os.WriteFile(path, content, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(path, mtime, mtime); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "--listen", "127.0.0.1:0", "--data-dir", dir, "--stun-port", "0")
			pipe, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer
			sc := bufio.NewScanner(pipe)
			for sc.Scan() {
				stderr.WriteString(sc.Text() + "\n")
				if listenRe.MatchString(sc.Text()) {
					cmd.Process.Kill() // it took the damaged file for a history
				}
			}
			err = cmd.Wait()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Fatalf("relay: %v, want exit 2; stderr %d bytes:\n%.2000s", err, stderr.Len(), stderr.String())
			}
			msg := strings.TrimSuffix(stderr.String(), "\n")
			if strings.Contains(msg, "\n") || !strings.Contains(msg, path) ||
				!strings.Contains(msg, "backup") || !strings.Contains(msg, "move it aside") {
				t.Errorf("stderr is not one line naming the file, a backup and moving it aside:\n%s", stderr.String())
			}
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(after, content) || !fi.ModTime().Equal(mtime) {
				t.Errorf("the file changed: %d bytes (was %d), mtime %v (was %v)", len(after), len(content), fi.ModTime(), mtime)
			}
			t.Log(msg)
		})
	}
}

// usedBytes is how far into the file bbolt's pages reach (its high water mark).
func usedBytes(t *testing.T, db []byte) int {
	t.Helper()
	path := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(path, db, 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var n int64
	b.View(func(tx *bolt.Tx) error { n = tx.Size(); return nil })
	if n >= int64(len(db)) {
		t.Fatalf("the test database has no unused tail (%d bytes used of %d)", n, len(db))
	}
	return int(n)
}

// A file cut after its last used page is whole: the relay starts on it
// with its history.
func TestProcessUnusedTailCut(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the relay binary")
	}
	bin := buildRelay(t)
	healthy := damagedDBSource(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, store.FileName), healthy[:usedBytes(t, healthy)], 0o600); err != nil {
		t.Fatal(err)
	}
	cmd, addr, log := startProcess(t, bin, "--listen", "127.0.0.1:0", "--data-dir", dir, "--stun-port", "0")
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	h, _ := protocol.Encode(&protocol.Hello{V: 1, Room: "room-1", Name: "Bob", Key: "another-key-of-16-chars"})
	ws.WriteMessage(websocket.TextMessage, h)
	ws.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, data, err := ws.ReadMessage()
	if err != nil {
		t.Fatalf("welcome: %v\n%s", err, log.String())
	}
	f, err := protocol.DecodeRelay(data)
	w, ok := f.(*protocol.Welcome)
	if err != nil || !ok || w.Seq != 120 || len(w.History) == 0 {
		t.Fatalf("want a welcome with the room's 120 messages, got %T %v: %.300s", f, err, data)
	}
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func zeroPage(data []byte, page, pageSize int) []byte {
	out := bytes.Clone(data)
	clear(out[page*pageSize : (page+1)*pageSize])
	return out
}

// The quota flags: defaults, env variables, 0 as "no limit", and refusals.
func TestQuotaFlags(t *testing.T) {
	code, out, _ := runArgs(t, noEnv, "--help")
	for _, f := range []struct{ name, def string }{
		{"history-bytes", "1MiB"}, {"max-rooms", "10000"}, {"room-create-rate", "10"},
		{"room-create-burst", "10"}, {"max-store-bytes", "1GiB"},
	} {
		if want := "--" + f.name + " (env " + envName(f.name) + ", default " + f.def + ")"; code != 0 || !strings.Contains(out, want) {
			t.Errorf("--help lacks %q", want)
		}
	}
	o, _, err := parse([]string{"--room-create-rate", "30"}, envOf(map[string]string{
		"HEARTLINE_HISTORY_BYTES": "256KiB", "HEARTLINE_MAX_ROOMS": "0", "HEARTLINE_MAX_STORE_BYTES": "2GiB",
		"HEARTLINE_ROOM_CREATE_BURST": "4",
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	c := o.cfg
	if c.HistoryBytes != 256<<10 || c.MaxRooms != -1 || c.MaxStoreBytes != 2<<30 || c.RoomCreateRate != 0.5 || c.RoomCreateBurst != 4 {
		t.Errorf("parsed %d %d %d %v %d", c.HistoryBytes, c.MaxRooms, c.MaxStoreBytes, c.RoomCreateRate, c.RoomCreateBurst)
	}
	if o, _, _ := parse([]string{"--history-bytes", "0", "--max-store-bytes", "0"}, noEnv, nil); o.cfg.HistoryBytes != -1 || o.cfg.MaxStoreBytes != -1 {
		t.Errorf("0 is not 'no limit': %d %d", o.cfg.HistoryBytes, o.cfg.MaxStoreBytes)
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--history-bytes", "8KiB"}, "history bytes"},
		{[]string{"--max-store-bytes", "64KiB"}, "max store bytes"},
		{[]string{"--max-rooms", "-1"}, "--max-rooms"},
		{[]string{"--room-create-rate", "0"}, "--room-create-rate"},
		{[]string{"--room-create-burst", "0"}, "--room-create-burst"},
	} {
		code, _, stderr := runArgs(t, noEnv, append([]string{"--data-dir", dir}, tc.args...)...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d %q, want 2 naming %s", tc.args, code, stderr, tc.want)
		}
	}
}
