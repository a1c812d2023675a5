// Package crashtest proves the relay's durability promise with real
// processes (issue 3): once a client has an ack, its message is in the
// room's history, even if the relay is killed with SIGKILL a moment later;
// a resent id is never posted twice; and a client that comes back after the
// restart gets exactly what it missed.
//
// It builds the relay binary with `go build`, runs it as a subprocess on a
// free port and speaks protocol v1 to it over real websockets.
package crashtest

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/heartline/heartline/shared/protocol"
)

const (
	room            = "crash-test"
	senders         = 4
	window          = 16               // messages a sender keeps awaiting their ack
	ackedBeforeKill = 150              // SIGKILL once this many messages are acked
	waitLimit       = 30 * time.Second // bound on every wait (slow shared machine)
)

// Every reader, relay watcher and log scanner this test starts must be gone
// at the end.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// ---- the relay process ----

// buildRelay compiles the relay into a temp dir, or takes the binary named
// by HEARTLINE_RELAY_BIN (to test a release build).
func buildRelay(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("HEARTLINE_RELAY_BIN"); bin != "" {
		return bin
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "heartline-relay")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command(goTool, append(args, "github.com/heartline/heartline/relay")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build of the relay failed: %v\n%s", err, out)
	}
	return bin
}

type relayProc struct {
	cmd    *exec.Cmd
	addr   string // host:port it listens on
	logMu  sync.Mutex
	log    strings.Builder // its stderr and stdout, for failure messages
	exited chan struct{}
}

var listenLine = regexp.MustCompile(`relay listening.*?addr"?[=:]"?([0-9.]+:[0-9]+)`)

// startRelay runs the relay on a free port with dataDir and waits until it
// answers /healthz-free: it is ready when it logs its listening address.
func startRelay(t *testing.T, bin, dataDir string) *relayProc {
	t.Helper()
	r := &relayProc{exited: make(chan struct{})}
	r.cmd = exec.Command(bin, relayArgs(dataDir)...)
	pr, pw := io.Pipe()
	r.cmd.Stdout, r.cmd.Stderr = pw, pw
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("starting the relay: %v", err)
	}
	go func() {
		_ = r.cmd.Wait()
		pw.Close()
		close(r.exited)
	}()
	addrCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			r.logMu.Lock()
			r.log.WriteString(line + "\n")
			r.logMu.Unlock()
			if m := listenLine.FindStringSubmatch(line); m != nil {
				select {
				case addrCh <- m[1]:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	t.Cleanup(func() { r.kill(t) })
	select {
	case r.addr = <-addrCh:
	case <-r.exited:
		t.Fatalf("the relay exited before listening:\n%s", r.output())
	case <-time.After(waitLimit):
		t.Fatalf("the relay did not report its address within %s:\n%s", waitLimit, r.output())
	}
	return r
}

// relayArgs: a free port, the data dir, a history larger than the test
// posts (so that a resume from 0 is complete), and a rate limit loose
// enough that senders keep a full window in flight when the kill comes
// (they handle rate_limited anyway).
func relayArgs(dataDir string) []string {
	return []string{
		"--listen", "127.0.0.1:0",
		"--data-dir", dataDir,
		"--history", "1000",
		"--rate", "100000", "--burst", "100000",
	}
}

func (r *relayProc) output() string {
	r.logMu.Lock()
	defer r.logMu.Unlock()
	return r.log.String()
}

// kill sends SIGKILL (no graceful shutdown, no flush) and waits for the exit.
func (r *relayProc) kill(t *testing.T) {
	t.Helper()
	select {
	case <-r.exited:
		return
	default:
	}
	if err := r.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("SIGKILL: %v", err)
	}
	select {
	case <-r.exited:
	case <-time.After(waitLimit):
		t.Errorf("the relay did not exit after SIGKILL")
	}
	if out := r.output(); strings.Contains(out, "WARNING: DATA RACE") {
		t.Errorf("the relay reported a data race:\n%s", out)
	}
}

// ---- a protocol v1 client ----

type client struct {
	conn    *websocket.Conn
	frames  chan protocol.Frame // closed when the connection ends
	welcome *protocol.Welcome
	readers sync.WaitGroup
}

func randomKey(t *testing.T) string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// join dials the relay and says hello; it returns once the welcome arrived.
func join(t *testing.T, addr string, hello protocol.Hello) (*client, error) {
	t.Helper()
	hello.V, hello.Room, hello.Client = protocol.Version, room, "heartline-crashtest"
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	conn, _, err := d.Dial("ws://"+addr+"/ws", nil)
	if err != nil {
		return nil, err
	}
	c := &client{conn: conn, frames: make(chan protocol.Frame, 4096)}
	c.readers.Add(1)
	go c.read()
	t.Cleanup(c.close)
	if err := c.send(&hello); err != nil {
		return nil, err
	}
	deadline := time.After(waitLimit)
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				return nil, fmt.Errorf("connection closed before the welcome")
			}
			switch f := f.(type) {
			case *protocol.Welcome:
				c.welcome = f
				return c, nil
			case *protocol.Error:
				return nil, fmt.Errorf("hello refused: %s: %s", f.Code, f.Message)
			}
		case <-deadline:
			return nil, fmt.Errorf("no welcome within %s", waitLimit)
		}
	}
}

func (c *client) read() {
	defer c.readers.Done()
	defer close(c.frames)
	for {
		_, data, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		f, err := protocol.DecodeRelay(data)
		if err != nil {
			continue // the relay sent a frame this test does not know; ignore, as a v1 client must
		}
		c.frames <- f
	}
}

func (c *client) send(f protocol.Frame) error {
	b, err := protocol.Encode(f)
	if err != nil {
		return err
	}
	_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return c.conn.WriteMessage(websocket.TextMessage, b)
}

func (c *client) close() {
	c.conn.Close()
	c.readers.Wait()
}

// ---- senders ----

// sender is one member posting a stream of messages with ids it chose.
type sender struct {
	name, key string
	mu        sync.Mutex
	order     []string                // ids in the order first sent
	text      map[string]string       // id -> text
	acked     map[string]protocol.Ack // id -> first ack
	mismatch  []string                // acks that changed for an id (must stay empty)
}

func newSender(t *testing.T, i int) *sender {
	return &sender{name: fmt.Sprint("sender", i), key: randomKey(t),
		text: map[string]string{}, acked: map[string]protocol.Ack{}}
}

func (s *sender) unacked() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, id := range s.order {
		if _, ok := s.acked[id]; !ok {
			out = append(out, id)
		}
	}
	return out
}

func (s *sender) ackedIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, id := range s.order {
		if _, ok := s.acked[id]; ok {
			out = append(out, id)
		}
	}
	return out
}

// pump sends the ids next() yields, keeping up to window awaiting acks, and
// handles refusals: rate_limited waits retry_after_ms and resends in order,
// internal resends. It returns when next() is exhausted and every id is
// acked (nil), or when the connection ends (errConnLost).
var errConnLost = errors.New("connection lost")

func (s *sender) pump(c *client, next func() (string, bool), ackCount *atomic.Int64) error {
	var (
		inflight  = map[string]bool{}
		retry     []string // refused ids, resent first and in order
		pausedTil time.Time
		exhausted bool
		timer     = time.NewTimer(time.Hour)
	)
	defer timer.Stop()
	deadline := time.After(5 * waitLimit)
	for {
		for len(inflight) < window && time.Now().After(pausedTil) {
			var id string
			if len(retry) > 0 {
				id, retry = retry[0], retry[1:]
			} else if !exhausted {
				var ok bool
				if id, ok = next(); !ok {
					exhausted = true
					continue
				}
			} else {
				break
			}
			s.mu.Lock()
			if _, known := s.text[id]; !known {
				s.text[id] = fmt.Sprintf("%s says %s", s.name, id)
				s.order = append(s.order, id)
			}
			text := s.text[id]
			s.mu.Unlock()
			inflight[id] = true
			if err := c.send(&protocol.Send{ID: id, Text: text}); err != nil {
				return errConnLost
			}
		}
		if exhausted && len(retry) == 0 && len(inflight) == 0 {
			return nil
		}
		if !pausedTil.IsZero() {
			timer.Reset(max(time.Until(pausedTil), 0))
		}
		select {
		case f, ok := <-c.frames:
			if !ok {
				return errConnLost
			}
			switch f := f.(type) {
			case *protocol.Ack:
				if !inflight[f.ID] {
					continue // a second ack for an id resent while in flight
				}
				delete(inflight, f.ID)
				s.mu.Lock()
				if first, ok := s.acked[f.ID]; ok {
					if first != *f {
						s.mismatch = append(s.mismatch, fmt.Sprintf("%s: first ack %+v, now %+v", f.ID, first, *f))
					}
				} else {
					s.acked[f.ID] = *f
					ackCount.Add(1)
				}
				s.mu.Unlock()
			case *protocol.Error:
				if f.ID == "" || !inflight[f.ID] {
					return fmt.Errorf("%s got error %s: %s", s.name, f.Code, f.Message)
				}
				delete(inflight, f.ID)
				switch f.Code {
				case protocol.ErrRateLimited:
					pausedTil = time.Now().Add(time.Duration(f.RetryAfterMS) * time.Millisecond)
				case protocol.ErrInternal:
				default:
					return fmt.Errorf("%s: message %s refused: %s: %s", s.name, f.ID, f.Code, f.Message)
				}
				retry = insertInOrder(retry, f.ID, s.position)
			}
		case <-timer.C:
			pausedTil = time.Time{}
		case <-deadline:
			return fmt.Errorf("%s: %d messages still unacked after %s", s.name, len(inflight)+len(retry), 5*waitLimit)
		}
	}
}

// position is an id's place in the sender's order (for resending in order).
func (s *sender) position(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, o := range s.order {
		if o == id {
			return i
		}
	}
	return len(s.order)
}

func insertInOrder(ids []string, id string, pos func(string) int) []string {
	p := pos(id)
	for i, o := range ids {
		if pos(o) > p {
			return append(ids[:i], append([]string{id}, ids[i:]...)...)
		}
	}
	return append(ids, id)
}

func fromList(ids []string) func() (string, bool) {
	return func() (string, bool) {
		if len(ids) == 0 {
			return "", false
		}
		id := ids[0]
		ids = ids[1:]
		return id, true
	}
}

// ---- the test ----

// TestAckedMessagesSurviveSIGKILL: senders stream messages into a room; the
// relay is killed with SIGKILL mid-stream and restarted on the same data dir;
// every sender resends whatever was not acked (same ids) plus some that were.
// Then every acked id must be in the history exactly once, in seq order with
// no gaps, under the seq its ack named; resent acked ids get the same ack;
// and a member that resumes from before the kill gets exactly the messages
// it missed, with recovered: true.
func TestAckedMessagesSurviveSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the relay and kills it with SIGKILL; skipped with -short")
	}
	bin := buildRelay(t)
	dataDir := t.TempDir()
	relay := startRelay(t, bin, dataDir)

	// An observer that only reads: it tracks the highest seq up to which it
	// holds every message (its resume point).
	observerKey := randomKey(t)
	observer, err := join(t, relay.addr, protocol.Hello{Name: "observer", Key: observerKey})
	if err != nil {
		t.Fatalf("observer: %v\nrelay log:\n%s", err, relay.output())
	}
	epoch := observer.welcome.Epoch
	var observed sync.Map // seq -> protocol.Message
	var observerLast atomic.Uint64
	observerDone := make(chan struct{})
	go func() {
		defer close(observerDone)
		for f := range observer.frames {
			if m, ok := f.(*protocol.Message); ok {
				observed.Store(m.Seq, *m)
				for {
					next := observerLast.Load() + 1
					if _, ok := observed.Load(next); !ok {
						break
					}
					observerLast.Store(next)
				}
			}
		}
	}()

	// Senders stream until the relay dies.
	var acked atomic.Int64
	ss := make([]*sender, senders)
	var wg sync.WaitGroup
	for i := range ss {
		ss[i] = newSender(t, i)
		c, err := join(t, relay.addr, protocol.Hello{Name: ss[i].name, Key: ss[i].key})
		if err != nil {
			t.Fatalf("%s: %v\nrelay log:\n%s", ss[i].name, err, relay.output())
		}
		wg.Add(1)
		go func(s *sender, c *client) {
			defer wg.Done()
			n := 0
			next := func() (string, bool) { n++; return fmt.Sprintf("%s-m%d", s.name, n), true }
			if err := s.pump(c, next, &acked); !errors.Is(err, errConnLost) {
				t.Errorf("%s before the kill: %v", s.name, err)
			}
		}(ss[i], c)
	}
	waitFor(t, "acks before the kill", func() bool { return acked.Load() >= ackedBeforeKill }, relay)
	relay.kill(t)
	wg.Wait()
	<-observerDone
	resumeFrom := observerLast.Load()
	var totalSent, totalAcked int
	for _, s := range ss {
		totalSent += len(s.order)
		totalAcked += len(s.acked)
	}
	t.Logf("killed the relay with %d messages sent, %d acked; observer holds 1..%d", totalSent, totalAcked, resumeFrom)
	if totalSent == totalAcked {
		t.Logf("note: nothing was in flight at the kill this time")
	}

	// Restart on the same data dir; every sender resends its unacked ids,
	// then a sample of acked ones (which must get their original acks).
	relay = startRelay(t, bin, dataDir)
	clients := make([]*client, len(ss))
	var seqAtRestart uint64
	for i, s := range ss {
		c, err := join(t, relay.addr, protocol.Hello{Name: s.name, Key: s.key})
		if err != nil {
			t.Fatalf("%s after restart: %v\nrelay log:\n%s", s.name, err, relay.output())
		}
		if c.welcome.Epoch != epoch {
			t.Fatalf("epoch changed across the restart: %s -> %s", epoch, c.welcome.Epoch)
		}
		if i == 0 {
			seqAtRestart = c.welcome.Seq
		}
		clients[i] = c
	}
	if seqAtRestart < uint64(totalAcked) {
		t.Errorf("the restarted relay's seq is %d, below the %d messages it acked", seqAtRestart, totalAcked)
	}
	unackedAtKill := map[*sender][]string{}
	for i, s := range ss {
		unackedAtKill[s] = s.unacked()
		wg.Add(1)
		go func(s *sender, c *client) {
			defer wg.Done()
			resend := s.unacked()
			ackedIDs := s.ackedIDs()
			for i := 0; i < len(ackedIDs); i += 7 {
				resend = append(resend, ackedIDs[i])
			}
			if err := s.pump(c, fromList(resend), &acked); err != nil {
				t.Errorf("%s resending after the restart: %v", s.name, err)
			}
			c.close()
		}(s, clients[i])
	}
	wg.Wait()
	if t.Failed() {
		t.Fatalf("relay log:\n%s", relay.output())
	}
	for _, s := range ss {
		for _, m := range s.mismatch {
			t.Errorf("%s: a resent id got a different ack: %s", s.name, m)
		}
	}

	// The whole history, read by a new member resuming from seq 0.
	auditor, err := join(t, relay.addr, protocol.Hello{Name: "auditor", Key: randomKey(t),
		Resume: &protocol.Resume{Epoch: epoch, LastSeq: 0}})
	if err != nil {
		t.Fatalf("auditor: %v", err)
	}
	w := auditor.welcome
	if !w.Recovered {
		t.Fatalf("a resume from 0 with %d messages (within retention) was not recovered", w.Seq)
	}
	history := w.History
	if uint64(len(history)) != w.Seq {
		t.Fatalf("history has %d messages but the room's seq is %d", len(history), w.Seq)
	}
	where := map[[2]string]protocol.Message{} // (member name, id) -> message
	for i, m := range history {
		if m.Seq != uint64(i+1) {
			t.Fatalf("history position %d holds seq %d: not gap-free ascending", i, m.Seq)
		}
		k := [2]string{m.From.Name, m.ID}
		if prev, dup := where[k]; dup {
			t.Errorf("id %s of %s is in the history twice: seq %d and %d", m.ID, m.From.Name, prev.Seq, m.Seq)
		}
		where[k] = m
	}
	var allAcked int
	for _, s := range ss {
		for id, a := range s.acked {
			allAcked++
			m, ok := where[[2]string{s.name, id}]
			switch {
			case !ok:
				t.Errorf("%s's acked message %s (seq %d) is missing from the history", s.name, id, a.Seq)
			case m.Seq != a.Seq || m.TS != a.TS || m.Text != s.text[id]:
				t.Errorf("%s's message %s: ack said seq %d ts %d, history has seq %d ts %d text %q",
					s.name, id, a.Seq, a.TS, m.Seq, m.TS, m.Text)
			}
		}
		for _, id := range s.order {
			if _, ok := s.acked[id]; !ok {
				t.Errorf("%s's message %s was never acked, even after resending", s.name, id)
			}
		}
	}
	if allAcked != len(history) {
		t.Errorf("history has %d messages, the senders hold %d acks: someone posted what nobody sent", len(history), allAcked)
	}
	// Whatever the observer saw before the kill was broadcast after its
	// commit, so it must be in the history unchanged.
	observed.Range(func(k, v any) bool {
		m := v.(protocol.Message)
		if h := history[m.Seq-1]; h.ID != m.ID || h.Text != m.Text || h.TS != m.TS {
			t.Errorf("observer saw seq %d as %s %q before the kill, history has %s %q", m.Seq, m.ID, m.Text, h.ID, h.Text)
		}
		return true
	})

	// The observer comes back with its resume point from before the kill:
	// exactly the messages after it, recovered.
	back, err := join(t, relay.addr, protocol.Hello{Name: "observer", Key: observerKey,
		Resume: &protocol.Resume{Epoch: epoch, LastSeq: resumeFrom}})
	if err != nil {
		t.Fatalf("observer resume: %v", err)
	}
	bw := back.welcome
	if !bw.Recovered {
		t.Fatalf("resume from seq %d across the restart: recovered=false", resumeFrom)
	}
	if bw.Seq != w.Seq {
		t.Fatalf("room seq %d for the observer, %d for the auditor", bw.Seq, w.Seq)
	}
	want := history[resumeFrom:]
	if len(bw.History) != len(want) {
		t.Fatalf("resume from %d got %d messages, missed %d", resumeFrom, len(bw.History), len(want))
	}
	for i, m := range bw.History {
		if m.Seq != want[i].Seq || m.ID != want[i].ID || m.Text != want[i].Text || m.TS != want[i].TS {
			t.Fatalf("resume history[%d] = seq %d %s, want seq %d %s", i, m.Seq, m.ID, want[i].Seq, want[i].ID)
		}
	}
	// Of the messages in flight at the kill, those committed before it got
	// their original seq back when resent (at most seqAtRestart); the
	// rest were posted once, after the restart.
	committedUnacked := 0
	for s, ids := range unackedAtKill {
		for _, id := range ids {
			if s.acked[id].Seq <= seqAtRestart {
				committedUnacked++
			}
		}
	}
	t.Logf("history: %d messages, every acked one exactly once; of %d unacked at the kill, %d had been committed (same seq on resend); observer resumed from %d and got %d, recovered",
		len(history), totalSent-totalAcked, committedUnacked, resumeFrom, len(bw.History))
}

func waitFor(t *testing.T, what string, cond func() bool, r *relayProc) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %s\nrelay log:\n%s", what, waitLimit, r.output())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
