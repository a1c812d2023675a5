package packaging

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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

// fakeRelay stands in for a relay behind the proxy: it records what the
// proxy forwards and answers /readyz and websocket handshakes like a relay
// that is running (200, 101) or draining (503).
type fakeRelay struct {
	name     string
	draining atomic.Bool
	srv      *httptest.Server
	mu       sync.Mutex
	upgrades []http.Header // handshakes it accepted
	refused  int           // handshakes it answered 503
	readyz   int           // health checks it answered
}

func newFakeRelay(t *testing.T, name string) *fakeRelay {
	f := &fakeRelay{name: name}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		switch r.URL.Path {
		case "/readyz":
			f.readyz++
			if f.draining.Load() {
				http.Error(w, "draining", http.StatusServiceUnavailable)
				return
			}
			io.WriteString(w, "ok\n")
		case "/ws":
			if f.draining.Load() {
				f.refused++
				http.Error(w, "the relay is shutting down", http.StatusServiceUnavailable)
				return
			}
			f.upgrades = append(f.upgrades, r.Header.Clone())
			hj, ok := w.(http.Hijacker)
			if !ok {
				http.Error(w, "no hijack", http.StatusInternalServerError)
				return
			}
			conn, buf, err := hj.Hijack()
			if err != nil {
				return
			}
			// Enough of a handshake for the proxy to switch protocols; the
			// test only looks at the status and which relay answered.
			fmt.Fprintf(buf, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Relay: %s\r\n\r\n", f.name)
			buf.Flush()
			conn.Close()
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeRelay) addr() string { return strings.TrimPrefix(f.srv.URL, "http://") }

func (f *fakeRelay) counts() (upgrades, refused, readyz int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.upgrades), f.refused, f.readyz
}

// handshake sends a websocket upgrade to the proxy and returns the status
// and the relay that answered it.
func handshake(t *testing.T, client *http.Client, url string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Host = "chat.example.org"
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("handshake through the proxy: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("X-Relay")
}

func threeFakeRelays(t *testing.T) []*fakeRelay {
	return []*fakeRelay{newFakeRelay(t, "r1"), newFakeRelay(t, "r2"), newFakeRelay(t, "r3")}
}

// pointAt rewrites an example's relay addresses 10.0.0.11-13:8080 to relays.
func pointAt(conf string, relays []*fakeRelay) string {
	for i, r := range relays {
		conf = strings.ReplaceAll(conf, fmt.Sprintf("10.0.0.1%d:8080", i+1), r.addr())
	}
	return conf
}

func freePort(t *testing.T) int {
	t.Helper()
	return freePortRun(t, 1)
}

// startProc runs a proxy until the test ends.
func startProc(t *testing.T, dir string, name string, args ...string) *testutil.SyncBuffer {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var out testutil.SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, out.String())
		}
	})
	return &out
}

// waitFor polls cond until it holds (a condition, not a clock).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The several-relays nginx example, run: handshakes go round robin over
// every relay with the upgrade headers, and one a draining relay refuses
// (503) lands on another relay instead of reaching the client.
func TestNginxRelaysExampleBalances(t *testing.T) {
	if testing.Short() {
		t.Skip("runs nginx")
	}
	nginx := need(t, "nginx")
	data, err := os.ReadFile(filepath.Join("proxy", "nginx-relays.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile(`(?m)^\s*(ip_hash|hash|sticky)\b`).FindString(string(data)); m != "" {
		t.Errorf("nginx-relays.conf uses %q: no stickiness is needed, and it unbalances the relays", strings.TrimSpace(m))
	}
	relays := threeFakeRelays(t)
	dir := t.TempDir()
	run(t, dir, nil, "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
		"-subj", "/CN=chat.example.org", "-keyout", "key.pem", "-out", "cert.pem")
	port := freePort(t)
	site := strings.NewReplacer(
		"/etc/letsencrypt/live/chat.example.org/fullchain.pem", filepath.Join(dir, "cert.pem"),
		"/etc/letsencrypt/live/chat.example.org/privkey.pem", filepath.Join(dir, "key.pem"),
		"    listen 80;\n", "", "    listen [::]:80;\n", "", "    listen [::]:443 ssl;\n", "",
		"listen 443 ssl;", fmt.Sprintf("listen 127.0.0.1:%d ssl;", port),
	).Replace(pointAt(string(data), relays))
	os.WriteFile(filepath.Join(dir, "site.conf"), []byte(site), 0o644)
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;\n" // workers would otherwise be nobody, locked out of dir
	}
	main := fmt.Sprintf("%[2]sdaemon off;\npid %[1]s/nginx.pid;\nerror_log stderr;\nevents {}\nhttp {\n access_log off;\n"+
		" client_body_temp_path %[1]s/body; proxy_temp_path %[1]s/proxy; fastcgi_temp_path %[1]s/fcgi;\n"+
		" uwsgi_temp_path %[1]s/uwsgi; scgi_temp_path %[1]s/scgi;\n include %[1]s/site.conf;\n}\n", dir, user)
	os.WriteFile(filepath.Join(dir, "main.conf"), []byte(main), 0o644)
	startProc(t, dir, nginx, "-e", filepath.Join(dir, "error.log"), "-p", dir, "-c", filepath.Join(dir, "main.conf"))

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	url := fmt.Sprintf("https://127.0.0.1:%d/ws", port)
	waitFor(t, "nginx to listen", func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
		}
		return err == nil
	})

	seen := map[string]int{}
	for range 9 {
		status, relay := handshake(t, client, url)
		if status != http.StatusSwitchingProtocols {
			t.Fatalf("handshake status %d, want 101", status)
		}
		seen[relay]++
	}
	for _, r := range relays {
		if seen[r.name] != 3 {
			t.Errorf("9 handshakes reached the relays %v; want 3 each (round robin)", seen)
			break
		}
	}
	h := relays[0].upgrades[0]
	if h.Get("Upgrade") != "websocket" || !strings.EqualFold(h.Get("Connection"), "upgrade") ||
		h.Get("X-Forwarded-For") != "127.0.0.1" || h.Get("X-Forwarded-Proto") != "https" {
		t.Errorf("the relay got Upgrade %q, Connection %q, X-Forwarded-For %q, X-Forwarded-Proto %q",
			h.Get("Upgrade"), h.Get("Connection"), h.Get("X-Forwarded-For"), h.Get("X-Forwarded-Proto"))
	}

	// One relay drains: every handshake still gets 101, from the others.
	relays[1].draining.Store(true)
	for range 9 {
		status, relay := handshake(t, client, url)
		if status != http.StatusSwitchingProtocols || relay == "r2" {
			t.Fatalf("with r2 draining, a handshake got %d from %q; want 101 from another relay", status, relay)
		}
	}
	if _, refused, _ := relays[1].counts(); refused == 0 {
		t.Error("the draining relay was never asked: the test did not exercise the retry")
	}

	// Metrics stay per relay.
	resp, err := client.Get(fmt.Sprintf("https://127.0.0.1:%d/metrics", port))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("/metrics through the balancer: %d, want 404", resp.StatusCode)
	}
}

// The several-relays Caddy example, run: handshakes spread over the
// relays, and a relay whose /readyz turns 503 stops getting new ones.
func TestCaddyRelaysExampleBalances(t *testing.T) {
	if testing.Short() {
		t.Skip("runs caddy")
	}
	caddy := need(t, "caddy")
	data, err := os.ReadFile(filepath.Join("proxy", "Caddyfile-relays"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"lb_policy round_robin", "health_uri /readyz"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("Caddyfile-relays lacks %q", want)
		}
	}
	relays := threeFakeRelays(t)
	dir := t.TempDir()
	port := freePort(t)
	// Plain HTTP on a local port and no admin endpoint: no certificate to
	// fetch, nothing shared with another Caddy on this machine.
	conf := "{\n\tadmin off\n\tstorage file_system " + filepath.Join(dir, "data") + "\n}\n\n" +
		strings.Replace(pointAt(string(data), relays), "chat.example.org {", fmt.Sprintf("http://:%d {\n\tbind 127.0.0.1", port), 1)
	os.WriteFile(filepath.Join(dir, "Caddyfile"), []byte(conf), 0o644)
	t.Setenv("HOME", dir) // caddy keeps its config autosave under $HOME
	startProc(t, dir, caddy, "run", "--adapter", "caddyfile", "--config", filepath.Join(dir, "Caddyfile"))

	client := &http.Client{}
	url := fmt.Sprintf("http://127.0.0.1:%d/ws", port)
	waitFor(t, "caddy to answer", func() bool {
		resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusNotFound
	})
	seen := map[string]int{}
	for range 9 {
		status, relay := handshake(t, client, url)
		if status != http.StatusSwitchingProtocols {
			t.Fatalf("handshake status %d, want 101", status)
		}
		seen[relay]++
	}
	for _, r := range relays {
		if seen[r.name] != 3 {
			t.Errorf("9 handshakes reached the relays %v; want 3 each (round robin)", seen)
			break
		}
	}

	// r2 starts draining: once a health check has seen its 503 (two checks
	// after the switch, so the first one's result is recorded), Caddy sends
	// it nothing new.
	_, _, before := relays[1].counts()
	relays[1].draining.Store(true)
	waitFor(t, "two health checks of the draining relay", func() bool {
		_, _, n := relays[1].counts()
		return n >= before+2
	})
	for range 9 {
		status, relay := handshake(t, client, url)
		if status != http.StatusSwitchingProtocols || relay == "r2" {
			t.Fatalf("with r2's /readyz at 503, a handshake got %d from %q; want 101 from another relay", status, relay)
		}
	}
}
