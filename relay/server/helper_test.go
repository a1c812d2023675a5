package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/heartline/heartline/internal/redistest"
	"github.com/heartline/heartline/shared/protocol"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testRelay is a real relay on 127.0.0.1:0 with a real bbolt store in a
// temp dir.
type testRelay struct {
	t   *testing.T
	srv *Server
	cfg Config
	url string // ws://127.0.0.1:port/ws
	web string // http://127.0.0.1:port
}

// fastConfig has short timings so expiry tests run in well under a second.
// Every test client connects from 127.0.0.1, so the per-address caps are
// off (they have tests of their own).
func fastConfig(t *testing.T) Config {
	return Config{
		MaxConnsPerIP:       -1,
		MaxRoomMembersPerIP: -1,
		DataDir:             t.TempDir(),
		Listen:              "127.0.0.1:0",
		HeartbeatInterval:   100 * time.Millisecond,
		HeartbeatTimeout:    250 * time.Millisecond,
		Grace:               300 * time.Millisecond,
		SweepInterval:       20 * time.Millisecond,
		ShutdownTimeout:     5 * time.Second,
		Logger:              testLogger(t),
	}
}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("RELAY_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

var (
	testRedisMu sync.Mutex
	testRedis   = map[string]*redistest.Server{}
)

func startRelay(t *testing.T, cfg Config) *testRelay {
	t.Helper()
	if os.Getenv("HEARTLINE_TEST_ENGINE") == "redis" && cfg.RedisURL == "" && cfg.Store == nil {
		// One Redis per data dir: a relay restarted on its data dir finds
		// its rooms again, as it would in its own store.
		testRedisMu.Lock()
		rs := testRedis[cfg.DataDir]
		if rs == nil {
			rs = redistest.Start(t, redistest.Options{AppendOnly: true})
			testRedis[cfg.DataDir] = rs
			dir := cfg.DataDir
			t.Cleanup(func() {
				testRedisMu.Lock()
				delete(testRedis, dir)
				testRedisMu.Unlock()
			})
		}
		testRedisMu.Unlock()
		cfg.RedisURL = rs.URL()
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	tr := &testRelay{t: t, srv: srv, cfg: cfg}
	addr := srv.Addr().String()
	tr.url = "ws://" + addr + "/ws"
	tr.web = "http://" + addr
	t.Cleanup(func() { tr.stop() })
	return tr
}

func (tr *testRelay) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tr.srv.Shutdown(ctx); err != nil {
		tr.t.Errorf("Shutdown: %v", err)
	}
}

// tclient is a bare protocol client: it sends and reads raw frames, so tests
// see exactly what the relay sends. A reader goroutine feeds frames (and
// finally the end of the connection) into a channel, so a test can wait for
// "nothing" without breaking the connection.
type tclient struct {
	t      *testing.T
	ws     *websocket.Conn
	name   string
	frames chan inbound
	ended  *inbound // the connection's end, once seen
}

type inbound struct {
	data []byte
	typ  int
	err  error // the connection ended
}

func newTClient(t *testing.T, ws *websocket.Conn) *tclient {
	c := &tclient{t: t, ws: ws, frames: make(chan inbound, 4096)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			typ, data, err := ws.ReadMessage()
			c.frames <- inbound{data: data, typ: typ, err: err}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { ws.Close(); <-done })
	return c
}

var keyCounter atomic.Int64

// newKey returns a fresh member key (16+ chars).
func newKey() string { return fmt.Sprintf("test-key-%012d", keyCounter.Add(1)) }

func (tr *testRelay) dial(header http.Header) *tclient {
	tr.t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(tr.url, header)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		tr.t.Fatalf("dial: %v (HTTP %d)", err, status)
	}
	return newTClient(tr.t, ws)
}

type helloOpt func(*protocol.Hello)

func withAvatar(a string) helloOpt           { return func(h *protocol.Hello) { h.Avatar = a } }
func withToken(tok string) helloOpt          { return func(h *protocol.Hello) { h.Token = tok } }
func withResume(r *protocol.Resume) helloOpt { return func(h *protocol.Hello) { h.Resume = r } }

// join dials, says hello and returns the client with its welcome.
func (tr *testRelay) join(room, name, key string, opts ...helloOpt) (*tclient, *protocol.Welcome) {
	tr.t.Helper()
	c := tr.dial(nil)
	c.name = name
	c.hello(room, name, key, opts...)
	return c, c.welcome()
}

func (c *tclient) hello(room, name, key string, opts ...helloOpt) {
	c.t.Helper()
	h := &protocol.Hello{V: protocol.Version, Room: room, Name: name, Key: key, Client: "server-test"}
	for _, o := range opts {
		o(h)
	}
	c.send(h)
}

func (c *tclient) send(f protocol.Frame) {
	c.t.Helper()
	data, err := protocol.Encode(f)
	if err != nil {
		c.t.Fatal(err)
	}
	c.raw(data)
}

func (c *tclient) raw(data []byte) {
	c.t.Helper()
	c.ws.SetWriteDeadline(time.Now().Add(2 * time.Second))
	if err := c.ws.WriteMessage(websocket.TextMessage, data); err != nil {
		c.t.Fatalf("%s: write: %v", c.name, err)
	}
}

func (c *tclient) msg(id, text string) {
	c.t.Helper()
	c.send(&protocol.Send{ID: id, Text: text})
}

// errTimeout is next's error when no frame arrived in time.
var errTimeout = errors.New("no frame in time")

// frameWait bounds the wait for a frame a test expects. It only matters when
// the frame never comes, so it is generous: a busy machine (CI shares its
// cores) can take seconds to deliver one.
const frameWait = 15 * time.Second

// next returns the next relay frame within d.
func (c *tclient) next(d time.Duration) (protocol.Frame, error) {
	if c.ended != nil {
		return nil, c.ended.err
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case in := <-c.frames:
		if in.err != nil {
			c.ended = &in
			return nil, in.err
		}
		if in.typ != websocket.TextMessage {
			return nil, fmt.Errorf("relay sent a non-text frame (%d)", in.typ)
		}
		return protocol.DecodeRelay(in.data)
	case <-timer.C:
		return nil, errTimeout
	}
}

// expect reads frames until one of type typ arrives (others are skipped,
// except that an error frame is reported when typ is not "error").
func (c *tclient) expect(typ string) protocol.Frame {
	c.t.Helper()
	deadline := time.Now().Add(frameWait)
	for {
		f, err := c.next(time.Until(deadline))
		if err != nil {
			c.t.Fatalf("%s: waiting for %s: %v", c.name, typ, err)
		}
		if f.FrameType() == typ {
			return f
		}
		if e, ok := f.(*protocol.Error); ok && typ != protocol.TypeError {
			c.t.Fatalf("%s: waiting for %s, got error %s: %s", c.name, typ, e.Code, e.Message)
		}
	}
}

// expectNext requires the very next frame to be of type typ.
func (c *tclient) expectNext(typ string) protocol.Frame {
	c.t.Helper()
	f, err := c.next(frameWait)
	if err != nil {
		c.t.Fatalf("%s: waiting for %s: %v", c.name, typ, err)
	}
	if f.FrameType() != typ {
		c.t.Fatalf("%s: got %s (%+v), want %s", c.name, f.FrameType(), f, typ)
	}
	return f
}

func (c *tclient) welcome() *protocol.Welcome {
	c.t.Helper()
	return c.expect(protocol.TypeWelcome).(*protocol.Welcome)
}

func (c *tclient) expectError(code string) *protocol.Error {
	c.t.Helper()
	e := c.expect(protocol.TypeError).(*protocol.Error)
	if e.Code != code {
		c.t.Fatalf("%s: error %s (%s), want %s", c.name, e.Code, e.Message, code)
	}
	if e.Message == "" {
		c.t.Errorf("%s: error %s has no message", c.name, code)
	}
	return e
}

// expectClose reads until the relay closes and checks the close code.
func (c *tclient) expectClose(code int) {
	c.t.Helper()
	got := c.closeCode(frameWait)
	if got != code {
		c.t.Fatalf("%s: close code %d, want %d", c.name, got, code)
	}
}

// closeCode reads until the connection ends and returns the close code
// (-1 if it did not end within d, 1006 for an abnormal end).
func (c *tclient) closeCode(d time.Duration) int {
	deadline := time.Now().Add(d)
	for {
		_, err := c.next(time.Until(deadline))
		if err == nil {
			continue
		}
		if err == errTimeout {
			return -1
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code
		}
		return websocket.CloseAbnormalClosure
	}
}

// quiet asserts that no frame arrives within d.
func (c *tclient) quiet(d time.Duration) {
	c.t.Helper()
	f, err := c.next(d)
	if err == nil {
		c.t.Fatalf("%s: unexpected %s frame: %+v", c.name, f.FrameType(), f)
	}
	if err != errTimeout {
		c.t.Fatalf("%s: connection ended: %v", c.name, err)
	}
}

// pinger keeps a client alive with protocol pings until stop is called,
// discarding whatever the relay sends except what the caller reads first.
func (c *tclient) keepAlive(every time.Duration) (stop func()) {
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(time.Second))
			}
		}
	}()
	return func() { close(done); <-exited }
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (tr *testRelay) get(path string, header http.Header) (*http.Response, []byte) {
	tr.t.Helper()
	req, _ := http.NewRequest("GET", tr.web+path, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	return tr.do(req)
}

func (tr *testRelay) do(req *http.Request) (*http.Response, []byte) {
	tr.t.Helper()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		tr.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp, []byte(b.String())
}

func decodeJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("bad JSON %q: %v", b, err)
	}
}

// testutilCounter reads a counter or gauge's value.
func testutilCounter(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}
