package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestStartAnswersWithTheGeneratedConfig(t *testing.T) {
	s := Start(t, Options{})
	if !strings.HasPrefix(s.Addr, "127.0.0.1:") {
		t.Fatalf("Addr = %q, want 127.0.0.1:PORT", s.Addr)
	}
	if want := "redis://" + s.Addr + "/0"; s.URL() != want {
		t.Fatalf("URL() = %q, want %q", s.URL(), want)
	}
	want := map[string]string{
		"appendonly":       "no",
		"save":             "",
		"dir":              s.Dir,
		"bind":             "127.0.0.1",
		"protected-mode":   "no",
		"logfile":          filepath.Join(s.Dir, "redis.log"),
		"maxmemory-policy": "noeviction",
	}
	for name, value := range want {
		got, err := s.Do("CONFIG", "GET", name)
		if err != nil {
			t.Fatalf("CONFIG GET %s: %v", name, err)
		}
		if got != name+"\n"+value {
			t.Errorf("CONFIG GET %s = %q, want %q", name, got, name+"\n"+value)
		}
	}
	if _, err := s.Do("SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Do("GET", "k"); err != nil || got != "v" {
		t.Fatalf("GET k = %q, %v; want v", got, err)
	}
	if _, err := s.Do("GET", "missing"); !errors.Is(err, ErrNil) {
		t.Fatalf("GET missing: err = %v, want ErrNil", err)
	}
	var re *ReplyError
	if _, err := s.Do("NOSUCHCOMMAND"); !errors.As(err, &re) || !strings.Contains(re.Msg, "unknown command") {
		t.Fatalf("unknown command: err = %v, want a Redis error reply", err)
	}
	if got, err := s.Do("DBSIZE"); err != nil || got != "1" {
		t.Fatalf("DBSIZE = %q, %v; want 1", got, err)
	}
	if got, err := s.Do("MEMORY", "USAGE", "k"); err != nil || got == "" || got == "0" {
		t.Fatalf("MEMORY USAGE k = %q, %v; want a byte count", got, err)
	}
}

func TestTwoServersGetTheirOwnPortsAndData(t *testing.T) {
	a := Start(t, Options{})
	b := Start(t, Options{})
	if a.Addr == b.Addr || a.Dir == b.Dir {
		t.Fatalf("two servers share %s / %s", a.Addr, a.Dir)
	}
	if _, err := a.Do("SET", "only-a", "1"); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Do("DBSIZE"); err != nil || got != "0" {
		t.Fatalf("second server DBSIZE = %q, %v; want 0", got, err)
	}
}

func TestRestartAfterKillKeepsAppendOnlyData(t *testing.T) {
	s := Start(t, Options{AppendOnly: true})
	if got, _ := s.Do("CONFIG", "GET", "appendfsync"); got != "appendfsync\nalways" {
		t.Fatalf("CONFIG GET appendfsync = %q, want always by default", got)
	}
	for _, k := range []string{"a", "b", "c"} {
		if _, err := s.Do("RPUSH", "list", k); err != nil {
			t.Fatal(err)
		}
	}
	addr := s.Addr
	s.Kill() // no shutdown fsync: only appendfsync always keeps the writes
	if s.Running() {
		t.Fatal("Running() after Kill")
	}
	if _, err := s.Do("PING"); err == nil {
		t.Fatal("PING answered after Kill")
	}
	s.Restart(t)
	if s.Addr != addr {
		t.Fatalf("Restart moved the server from %s to %s", addr, s.Addr)
	}
	if got, err := s.Do("LRANGE", "list", "0", "-1"); err != nil || got != "a\nb\nc" {
		t.Fatalf("after kill -9 and restart, LRANGE = %q, %v; want a b c", got, err)
	}
}

func TestRestartWithoutPersistenceLosesData(t *testing.T) {
	s := Start(t, Options{})
	if _, err := s.Do("SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	s.Stop() // a clean shutdown: with save "" it still writes nothing
	s.Restart(t)
	if got, err := s.Do("DBSIZE"); err != nil || got != "0" {
		t.Fatalf("DBSIZE after restart without persistence = %q, %v; want 0", got, err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir, "dump.rdb")); !os.IsNotExist(err) {
		t.Fatalf("dump.rdb exists (stat err %v): save \"\" should write no snapshot", err)
	}
}

func TestRestartOfARunningServerStopsItFirst(t *testing.T) {
	s := Start(t, Options{AppendOnly: true, AppendFsync: "everysec"})
	if got, _ := s.Do("CONFIG", "GET", "appendfsync"); got != "appendfsync\neverysec" {
		t.Fatalf("CONFIG GET appendfsync = %q, want everysec", got)
	}
	if _, err := s.Do("SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	s.Restart(t) // SIGTERM flushes the AOF even with everysec
	if got, err := s.Do("GET", "k"); err != nil || got != "v" {
		t.Fatalf("GET k after a clean restart = %q, %v; want v", got, err)
	}
}

func TestPauseMakesPingTimeOutAndResumeRecovers(t *testing.T) {
	s := Start(t, Options{})
	// A connection opened before the pause stays open but gets no answer.
	conn, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	s.Pause()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err = s.DoContext(ctx, "PING")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("PING to a paused server: err = %v, want the deadline to pass", err)
	}
	if !s.Running() {
		t.Fatal("a paused server should still count as running")
	}

	s.Resume()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := s.Do("PING")
		if err == nil && got == "PONG" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("PING after Resume: %q, %v", got, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 7)
	if n, err := conn.Read(buf); err != nil || string(buf[:n]) != "+PONG\r\n" {
		t.Fatalf("the connection opened before the pause: %q, %v", buf[:n], err)
	}
}

func TestStopOfAPausedServerEnds(t *testing.T) {
	s := Start(t, Options{})
	s.Pause()
	s.Stop()
	if s.Running() {
		t.Fatal("a paused server still runs after Stop")
	}
}

func TestPasswordAndExtraConfig(t *testing.T) {
	s := Start(t, Options{Password: "pw with space", Config: []string{"maxmemory-policy allkeys-lru"}})
	if got, err := s.Do("CONFIG", "GET", "maxmemory-policy"); err != nil || got != "maxmemory-policy\nallkeys-lru" {
		t.Fatalf("CONFIG GET maxmemory-policy = %q, %v", got, err)
	}
	if want := "redis://:pw%20with%20space@" + s.Addr + "/0"; s.URL() != want {
		t.Fatalf("URL() = %q, want %q", s.URL(), want)
	}
	// Without AUTH the server refuses.
	conn, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := conn.Write([]byte("*1\r\n$6\r\nDBSIZE\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, _ := conn.Read(buf)
	if !strings.HasPrefix(string(buf[:n]), "-NOAUTH") {
		t.Fatalf("DBSIZE without AUTH: %q, want -NOAUTH", buf[:n])
	}
}

func TestConfigQuoting(t *testing.T) {
	for in, want := range map[string]string{
		`plain`:    `"plain"`,
		`a "b" \c`: `"a \"b\" \\c"`,
		"x\ny":     `"x\x0ay"`,
	} {
		if got := quote(in); got != want {
			t.Errorf("quote(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestStartRetriesWhenThePickedPortIsTaken(t *testing.T) {
	// Another process binds the port between the probe and redis-server's bind.
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	taken := held.Addr().(*net.TCPAddr).Port
	calls := 0
	pickPort = func() (int, error) {
		calls++
		if calls == 1 {
			return taken, nil
		}
		return freePort()
	}
	t.Cleanup(func() { pickPort = freePort })

	s := Start(t, Options{})
	if calls < 2 || s.Addr == held.Addr().String() {
		t.Fatalf("Start used %s after %d port picks; want a second, free port", s.Addr, calls)
	}
	if got, err := s.Do("PING"); err != nil || got != "PONG" {
		t.Fatalf("PING = %q, %v", got, err)
	}
}

// outcome records how Start ended a test it could not run.
type outcome struct {
	testing.TB
	skipped, failed string
}

func (o *outcome) Helper() {}
func (o *outcome) Skipf(format string, args ...any) {
	o.skipped = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (o *outcome) Fatalf(format string, args ...any) {
	o.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// startWithout runs Start where no redis-server can be found.
func startWithout(t *testing.T) *outcome {
	lookPath = func(string) (string, error) { return "", exec.ErrNotFound }
	fallbackBins = []string{filepath.Join(t.TempDir(), "redis-server")}
	t.Cleanup(func() {
		lookPath = exec.LookPath
		fallbackBins = []string{"/usr/bin/redis-server", "/usr/local/bin/redis-server", "/usr/sbin/redis-server"}
	})
	o := &outcome{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Start(o, Options{})
		t.Error("Start returned without a redis-server")
	}()
	<-done
	return o
}

func TestWithoutRedisServerSkipsWithAdvice(t *testing.T) {
	t.Setenv(RequireEnv, "")
	t.Setenv(ServerEnv, "")
	o := startWithout(t)
	if o.failed != "" || !strings.Contains(o.skipped, "not installed") || !strings.Contains(o.skipped, "scripts/deps.sh") {
		t.Fatalf("skipped %q, failed %q; want a skip saying how to install it", o.skipped, o.failed)
	}
}

func TestWithoutRedisServerFailsWhenRequired(t *testing.T) {
	t.Setenv(RequireEnv, "1")
	t.Setenv(ServerEnv, "")
	o := startWithout(t)
	if o.skipped != "" || !strings.Contains(o.failed, RequireEnv+"=1") {
		t.Fatalf("skipped %q, failed %q; want a failure naming %s", o.skipped, o.failed, RequireEnv)
	}
}

func TestANamedRedisServerThatCannotRunFails(t *testing.T) {
	t.Setenv(RequireEnv, "")
	t.Setenv(ServerEnv, "/nonexistent/redis-server")
	o := &outcome{TB: t}
	done := make(chan struct{})
	go func() { defer close(done); Start(o, Options{}) }()
	<-done
	if o.skipped != "" || !strings.Contains(o.failed, ServerEnv) {
		t.Fatalf("skipped %q, failed %q; want a failure naming %s", o.skipped, o.failed, ServerEnv)
	}
}
