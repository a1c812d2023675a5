// Package redistest runs a real redis-server (Debian's package) for tests:
// one private process per call on a free 127.0.0.1 port, its data, config and
// log in the test's temporary directory, never the system service. Only tests
// import it.
package redistest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RequireEnv, set to 1, turns "redis-server is not installed" from a skip
// into a failure (make test sets it, so Redis tests cannot silently vanish).
const RequireEnv = "HEARTLINE_REQUIRE_REDIS"

// ServerEnv names a redis-server binary to use instead of the one on PATH
// (a newer Redis built from source, say); one that cannot be run fails the
// test rather than skipping it.
const ServerEnv = "HEARTLINE_REDIS_SERVER"

// ErrNil is what Do returns for a nil reply (GET of a missing key).
var ErrNil = errors.New("redis: nil reply")

// How long a start or restart may take before the test fails; generous,
// because CI shares two cores with other jobs and AOF loading takes time.
const startTimeout = 60 * time.Second

// How many fresh ports Start tries when another process takes the one it
// picked between the probe and redis-server's bind.
const portAttempts = 8

// Options shape the generated redis.conf.
type Options struct {
	// AppendOnly turns on the append-only file (appendonly yes).
	AppendOnly bool
	// AppendFsync is "always", "everysec" or "no"; with AppendOnly, empty
	// means "always" (nothing acknowledged is lost on a kill -9).
	AppendFsync string
	// Save is the RDB snapshot rule, for example "3600 1"; empty writes
	// `save ""` (no snapshots), so only the AOF, if any, persists data.
	Save string
	// Password, when set, becomes requirepass; Do authenticates with it.
	Password string
	// Config holds further redis.conf lines, such as "maxmemory-policy allkeys-lru".
	Config []string
}

// Server is one running redis-server. Addr stays the same across Restart.
type Server struct {
	// Addr is host:port, always 127.0.0.1.
	Addr string
	// Dir holds redis.conf, redis.log and the data files.
	Dir string

	t       testing.TB
	opt     Options
	bin     string
	conf    string
	logPath string
	port    int

	mu   sync.Mutex
	proc *process // nil while stopped
}

// process is one run of redis-server; done closes when it has exited.
type process struct {
	pid  int
	done chan struct{}
	err  error // the exit status, valid after done
}

// Start runs redis-server with opt and waits until it answers PING. It skips
// the test when redis-server is not installed (fails instead when
// HEARTLINE_REQUIRE_REDIS=1). The server is killed when the test ends.
func Start(t testing.TB, opt Options) *Server {
	t.Helper()
	bin, err := findRedis()
	switch {
	case err == nil:
	case !errors.Is(err, errNotInstalled):
		t.Fatalf("redistest: %v", err) // asked for by name: never skip
	case os.Getenv(RequireEnv) == "1":
		t.Fatalf("%v (%s=1 requires it; install it with scripts/deps.sh)", err, RequireEnv)
	default:
		t.Skipf("%v; install it with scripts/deps.sh (apt-get install redis-server) to run this test", err)
	}
	switch opt.AppendFsync {
	case "":
		opt.AppendFsync = "always"
	case "always", "everysec", "no":
	default:
		t.Fatalf("redistest: AppendFsync %q: want always, everysec or no", opt.AppendFsync)
	}
	dir := t.TempDir()
	s := &Server{
		Dir:     dir,
		t:       t,
		opt:     opt,
		bin:     bin,
		conf:    filepath.Join(dir, "redis.conf"),
		logPath: filepath.Join(dir, "redis.log"),
	}
	t.Cleanup(func() {
		s.Kill()
		if t.Failed() {
			t.Logf("redis-server log (%s):\n%s", s.logPath, s.logTail(4000))
		}
	})
	for attempt := 1; ; attempt++ {
		port, err := pickPort()
		if err != nil {
			t.Fatalf("redistest: find a free port: %v", err)
		}
		s.port = port
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if err := s.writeConfig(); err != nil {
			t.Fatalf("redistest: %v", err)
		}
		err = s.launch()
		if err == nil {
			return s
		}
		if errors.Is(err, errPortTaken) && attempt < portAttempts {
			t.Logf("redistest: port %d was taken before redis-server bound it; trying another", port)
			continue
		}
		t.Fatalf("redistest: start redis-server on %s: %v\nlog:\n%s", s.Addr, err, s.logTail(4000))
	}
}

// URL is the address in the form the relay's --redis-url takes (database 0).
func (s *Server) URL() string {
	u := url.URL{Scheme: "redis", Host: s.Addr, Path: "/0"}
	if s.opt.Password != "" {
		u.User = url.UserPassword("", s.opt.Password)
	}
	return u.String()
}

// Stop shuts redis-server down with SIGTERM (it writes what its persistence
// settings say it must) and waits for it to exit.
func (s *Server) Stop() {
	s.t.Helper()
	p := s.current()
	if p == nil {
		return
	}
	_ = syscall.Kill(p.pid, syscall.SIGTERM)
	_ = syscall.Kill(p.pid, syscall.SIGCONT) // a paused server must run to handle SIGTERM
	select {
	case <-p.done:
	case <-time.After(startTimeout):
		_ = syscall.Kill(p.pid, syscall.SIGKILL)
		<-p.done
		s.t.Errorf("redistest: redis-server did not exit within %v of SIGTERM; killed it", startTimeout)
	}
	s.clear(p)
}

// Kill ends redis-server with SIGKILL (no shutdown work, as in a crash or
// power cut) and waits for it to exit.
func (s *Server) Kill() {
	p := s.current()
	if p == nil {
		return
	}
	_ = syscall.Kill(p.pid, syscall.SIGKILL)
	<-p.done
	s.clear(p)
}

// Restart starts redis-server again on the same port with the same directory
// and config, stopping it first (SIGTERM) if it still runs. It returns once
// the server answers PING and has finished loading its data.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	deadline := time.Now().Add(startTimeout)
	for {
		err := s.launch()
		if err == nil {
			return
		}
		// Another process grabbed the port while Redis was down; it may let
		// go of it (a probe like ours), so retry until the deadline.
		if errors.Is(err, errPortTaken) && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		t.Fatalf("redistest: restart redis-server on %s: %v\nlog:\n%s", s.Addr, err, s.logTail(4000))
	}
}

// Pause stops the process with SIGSTOP: connections stay open but nothing
// answers, like a Redis stuck on a slow disk or a long fork.
func (s *Server) Pause() {
	if p := s.current(); p != nil {
		_ = syscall.Kill(p.pid, syscall.SIGSTOP)
	}
}

// Resume continues a paused server with SIGCONT.
func (s *Server) Resume() {
	if p := s.current(); p != nil {
		_ = syscall.Kill(p.pid, syscall.SIGCONT)
	}
}

// Running reports whether the redis-server process is alive (paused counts).
func (s *Server) Running() bool {
	p := s.current()
	if p == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Do sends one command and returns its reply as text, with a 10 s deadline:
// integers in decimal, arrays as their elements joined by "\n" (so CONFIG GET
// maxmemory-policy gives "maxmemory-policy\nnoeviction"), a nil reply as
// ErrNil and a Redis error reply as an error carrying its text.
func (s *Server) Do(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.DoContext(ctx, args...)
}

// DoContext is Do with the caller's deadline; against a paused server it
// returns the context's error when the deadline passes.
func (s *Server) DoContext(ctx context.Context, args ...string) (string, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	// Ending the exchange from the context (not a copy of its deadline on
	// the socket) means ctx.Err() is set whenever the socket gives up.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	r := bufio.NewReader(conn)
	if s.opt.Password != "" {
		if _, err := roundTrip(conn, r, "AUTH", s.opt.Password); err != nil {
			return "", ctxErr(ctx, fmt.Errorf("AUTH: %w", err))
		}
	}
	reply, err := roundTrip(conn, r, args...)
	return reply, ctxErr(ctx, err)
}

// ctxErr reports the context's own error when the context ended the exchange.
func ctxErr(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}

var errPortTaken = errors.New("port already in use")

// launch starts one redis-server process and waits until it is ready, has
// exited, or startTimeout passes.
func (s *Server) launch() error {
	logStart := fileSize(s.logPath)
	p := &process{done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		// The kernel sends Pdeathsig when the thread that forked exits, not
		// the process: keep this thread (and this goroutine) until the child
		// is gone, so the server dies with the test binary and only then.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		cmd := exec.Command(s.bin, s.conf)
		cmd.Dir = s.Dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		// With logfile set Redis writes nothing here unless it fails to
		// open the log or parse the config; keep that for the error.
		out := &tailBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		p.pid = cmd.Process.Pid
		started <- nil
		err := cmd.Wait()
		if err != nil && out.String() != "" {
			err = fmt.Errorf("%w: %s", err, strings.TrimSpace(out.String()))
		}
		p.err = err
		close(p.done)
	}()
	if err := <-started; err != nil {
		return err
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()

	deadline := time.Now().Add(startTimeout)
	wait := 5 * time.Millisecond
	for {
		select {
		case <-p.done:
			s.clear(p)
			if strings.Contains(s.logSince(logStart), "Address already in use") {
				return errPortTaken
			}
			return fmt.Errorf("redis-server exited: %v", p.err)
		default:
		}
		if s.ready(p) {
			return nil
		}
		if time.Now().After(deadline) {
			s.Kill()
			return fmt.Errorf("not ready (PING, pid, loading) within %v", startTimeout)
		}
		time.Sleep(wait) // polling a condition, not synchronising on time
		if wait < 100*time.Millisecond {
			wait *= 2
		}
	}
}

// ready reports whether our process (not another server that happens to hold
// the port) answers PING and has loaded its data.
func (s *Server) ready(p *process) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	// Whoever else holds the port may accept and never answer: stop asking
	// as soon as our process has exited.
	go func() {
		select {
		case <-p.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	pid := p.pid
	if pong, err := s.DoContext(ctx, "PING"); err != nil || pong != "PONG" {
		return false
	}
	info, err := s.DoContext(ctx, "INFO", "server")
	if err != nil || infoField(info, "process_id") != strconv.Itoa(pid) {
		return false
	}
	info, err = s.DoContext(ctx, "INFO", "persistence")
	return err == nil && infoField(info, "loading") == "0" && infoField(info, "async_loading") != "1"
}

func (s *Server) current() *process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc
}

func (s *Server) clear(p *process) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == p {
		s.proc = nil
	}
}

func (s *Server) writeConfig() error {
	appendOnly := "no"
	if s.opt.AppendOnly {
		appendOnly = "yes"
	}
	save := `""`
	if s.opt.Save != "" {
		save = s.opt.Save
	}
	lines := []string{
		"# Written by internal/redistest for one test; not the system service.",
		"port " + strconv.Itoa(s.port),
		"bind 127.0.0.1",
		"protected-mode no",
		"daemonize no",
		"dir " + quote(s.Dir),
		"logfile " + quote(s.logPath),
		"dbfilename dump.rdb",
		"save " + save,
		"appendonly " + appendOnly,
		"appendfsync " + s.opt.AppendFsync,
	}
	if s.opt.Password != "" {
		lines = append(lines, "requirepass "+quote(s.opt.Password))
	}
	lines = append(lines, s.opt.Config...)
	return os.WriteFile(s.conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600)
}

// quote writes a value as a redis.conf double-quoted string.
func quote(v string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, c := range []byte(v) {
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&b, "\\x%02x", c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func (s *Server) logSince(offset int64) string {
	f, err := os.Open(s.logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

func (s *Server) logTail(n int64) string {
	size := fileSize(s.logPath)
	return s.logSince(max(0, size-n))
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// Where redis-server is looked for besides PATH (Debian installs it in
// /usr/bin, which a trimmed PATH may lack); tests of the skip replace it.
var (
	lookPath     = exec.LookPath
	fallbackBins = []string{"/usr/bin/redis-server", "/usr/local/bin/redis-server", "/usr/sbin/redis-server"}
)

// errNotInstalled is findRedis's answer when no redis-server is found.
var errNotInstalled = errors.New("redis-server is not installed (not on PATH or in /usr/bin)")

func findRedis() (string, error) {
	if p := os.Getenv(ServerEnv); p != "" {
		if _, err := lookPath(p); err != nil {
			return "", fmt.Errorf("%s=%s cannot be run: %w", ServerEnv, p, err)
		}
		return p, nil
	}
	if p, err := lookPath("redis-server"); err == nil {
		return p, nil
	}
	for _, p := range fallbackBins {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	return "", errNotInstalled
}

// pickPort is freePort; a test replaces it to hand out a taken port.
var pickPort = freePort

// freePort asks the kernel for an unused port. Another process may take it
// before redis-server binds; Start notices that in the log and retries.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func infoField(info, name string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

// roundTrip writes one command as a RESP array of bulk strings and reads the reply.
func roundTrip(w io.Writer, r *bufio.Reader, args ...string) (string, error) {
	if len(args) == 0 {
		return "", errors.New("redistest: Do needs a command")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return "", err
	}
	return readReply(r)
}

func readReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", errors.New("redistest: empty reply line")
	}
	body := line[1:]
	switch line[0] {
	case '+':
		return body, nil
	case '-':
		return "", &ReplyError{Msg: body}
	case ':':
		return body, nil
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil {
			return "", fmt.Errorf("redistest: bad bulk length %q", body)
		}
		if n < 0 {
			return "", ErrNil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil {
			return "", fmt.Errorf("redistest: bad array length %q", body)
		}
		if n < 0 {
			return "", ErrNil
		}
		elems := make([]string, 0, n)
		var firstErr error
		for range n {
			e, err := readReply(r)
			switch {
			case errors.Is(err, ErrNil):
				e = ""
			case errors.As(err, new(*ReplyError)):
				// An error inside an array (EXEC) still leaves the rest to read.
				if firstErr == nil {
					firstErr = err
				}
			case err != nil:
				return "", err
			}
			elems = append(elems, e)
		}
		return strings.Join(elems, "\n"), firstErr
	default:
		return "", fmt.Errorf("redistest: unexpected reply %q", line)
	}
}

// ReplyError is an error reply from Redis, such as "LOADING ..." or "ERR ...".
type ReplyError struct{ Msg string }

func (e *ReplyError) Error() string { return "redis: " + e.Msg }

// tailBuffer keeps the last few KiB a process wrote.
type tailBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 8192 {
		t.b = t.b[len(t.b)-8192:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
