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
		"--stun-port", "0", // tests run in parallel: no fixed UDP port
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
	if err := r.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) { // SIGKILL on Unix
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

// observer is a member that only reads. It tracks the highest seq up to
// which it holds every message: its resume point.
type observer struct {
	key  string
	mu   sync.Mutex
	seen map[uint64]protocol.Message
	last uint64
}

func (o *observer) add(m protocol.Message) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seen[m.Seq] = m
	for {
		if _, ok := o.seen[o.last+1]; !ok {
			return
		}
		o.last++
	}
}

func (o *observer) resumePoint() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.last
}

// watch reads c until it ends (the returned channel closes then).
func (o *observer) watch(c *client) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for f := range c.frames {
			if m, ok := f.(*protocol.Message); ok {
				o.add(*m)
			}
		}
	}()
	return done
}

// resumeCheck is one resume the observer made: from its resume point, the
// welcome it got.
type resumeCheck struct {
	from    uint64
	welcome *protocol.Welcome
}

// TestAckedMessagesSurviveSIGKILL: senders stream messages into a room; the
// relay is killed with SIGKILL mid-stream and restarted on the same data dir,
// twice (the second time while senders are resending and streaming again).
// After each restart every sender resends whatever was not acked (same ids)
// before going on; at the end it also resends a sample of acked ids, which
// must get their original acks. Then every acked id must be in the history
// exactly once, gap-free and in seq order, under the seq and ts its ack
// named; and every resume the observer made from before a kill got
// recovered: true with exactly the messages it had missed.
func TestAckedMessagesSurviveSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the relay and kills it with SIGKILL; skipped with -short")
	}
	const kills = 2
	bin := buildRelay(t)
	dataDir := t.TempDir()
	relay := startRelay(t, bin, dataDir)

	obs := &observer{key: randomKey(t), seen: map[uint64]protocol.Message{}}
	oc, err := join(t, relay.addr, protocol.Hello{Name: "observer", Key: obs.key})
	if err != nil {
		t.Fatalf("observer: %v\nrelay log:\n%s", err, relay.output())
	}
	epoch := oc.welcome.Epoch
	obsClient, observerDone := oc, obs.watch(oc)
	var resumes []resumeCheck
	// resumeObserver brings the observer back after a restart from its
	// resume point, checks the epoch and recovery, and keeps it reading.
	resumeObserver := func() {
		t.Helper()
		from := obs.resumePoint()
		c, err := join(t, relay.addr, protocol.Hello{Name: "observer", Key: obs.key,
			Resume: &protocol.Resume{Epoch: epoch, LastSeq: from}})
		if err != nil {
			t.Fatalf("observer resume: %v\nrelay log:\n%s", err, relay.output())
		}
		if c.welcome.Epoch != epoch {
			t.Fatalf("the epoch changed across a restart: %s -> %s", epoch, c.welcome.Epoch)
		}
		if !c.welcome.Recovered {
			t.Fatalf("resume from seq %d across a restart: recovered=false (room seq %d)", from, c.welcome.Seq)
		}
		resumes = append(resumes, resumeCheck{from, c.welcome})
		for _, m := range c.welcome.History {
			obs.add(m)
		}
		obsClient, observerDone = c, obs.watch(c)
	}

	var acked atomic.Int64
	ss := make([]*sender, senders)
	for i := range ss {
		ss[i] = newSender(t, i)
	}
	// connectSenders joins every sender (after a restart: with its key, so
	// it is the same member) and returns the relay's seq at that moment.
	connectSenders := func() ([]*client, uint64) {
		t.Helper()
		clients := make([]*client, len(ss))
		var seq uint64
		for i, s := range ss {
			c, err := join(t, relay.addr, protocol.Hello{Name: s.name, Key: s.key})
			if err != nil {
				t.Fatalf("%s: %v\nrelay log:\n%s", s.name, err, relay.output())
			}
			if c.welcome.Epoch != epoch {
				t.Fatalf("the epoch changed across a restart: %s -> %s", epoch, c.welcome.Epoch)
			}
			if i == 0 {
				seq = c.welcome.Seq
			}
			clients[i] = c
		}
		return clients, seq
	}
	var unackedAtKill []map[*sender][]string // per kill
	var seqAtRestart []uint64                // per restart
	var wg sync.WaitGroup
	for round := range kills {
		if round > 0 {
			relay = startRelay(t, bin, dataDir)
			resumeObserver()
		}
		clients, seq := connectSenders()
		if round > 0 {
			seqAtRestart = append(seqAtRestart, seq)
		}
		for i, s := range ss {
			// Resend what the last kill left unacked, then stream new ids
			// until this round's kill.
			pending, n := s.unacked(), len(s.order)
			next := func() (string, bool) {
				if len(pending) > 0 {
					id := pending[0]
					pending = pending[1:]
					return id, true
				}
				n++
				return fmt.Sprintf("%s-m%d", s.name, n), true
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := s.pump(clients[i], next, &acked); !errors.Is(err, errConnLost) {
					t.Errorf("%s in round %d: %v", s.name, round, err)
				}
			}()
		}
		// The observer drops off (no bye) a while before the kill, so that
		// its next resume has messages to recover.
		target := int64(ackedBeforeKill * (round + 1))
		waitFor(t, "acks before the observer drops", func() bool { return acked.Load() >= target-ackedBeforeKill/2 }, relay)
		obsClient.close()
		<-observerDone
		waitFor(t, fmt.Sprintf("%d acks before kill %d", target, round+1), func() bool { return acked.Load() >= target }, relay)
		relay.kill(t)
		wg.Wait()
		sent, left := 0, map[*sender][]string{}
		for _, s := range ss {
			sent += len(s.order)
			left[s] = s.unacked()
		}
		unackedAtKill = append(unackedAtKill, left)
		t.Logf("kill %d: %d messages sent, %d acked; the observer holds 1..%d", round+1, sent, acked.Load(), obs.resumePoint())
	}

	// Last restart: the observer resumes; every sender resends its unacked
	// ids, then a sample of acked ones, and stops.
	relay = startRelay(t, bin, dataDir)
	resumeObserver()
	clients, seq := connectSenders()
	seqAtRestart = append(seqAtRestart, seq)
	for i, s := range ss {
		resend := s.unacked()
		ackedIDs := s.ackedIDs()
		for j := 0; j < len(ackedIDs); j += 7 {
			resend = append(resend, ackedIDs[j])
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.pump(clients[i], fromList(resend), &acked); err != nil {
				t.Errorf("%s resending after the last restart: %v", s.name, err)
			}
		}()
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
	// Whatever the observer saw was broadcast after its commit, so it must
	// be in the history unchanged.
	obs.mu.Lock()
	for seq, m := range obs.seen {
		if seq > uint64(len(history)) {
			t.Errorf("observer saw seq %d, beyond the history's %d", seq, len(history))
		} else if h := history[seq-1]; h.ID != m.ID || h.Text != m.Text || h.TS != m.TS {
			t.Errorf("observer saw seq %d as %s %q, the history has %s %q", seq, m.ID, m.Text, h.ID, h.Text)
		}
	}
	obs.mu.Unlock()

	// Each resume got exactly the messages after its resume point, up to
	// the room's seq at that moment.
	for _, r := range resumes {
		want := history[r.from:r.welcome.Seq]
		if len(r.welcome.History) != len(want) {
			t.Errorf("resume from %d (room seq %d) got %d messages, want %d", r.from, r.welcome.Seq, len(r.welcome.History), len(want))
			continue
		}
		for i, m := range r.welcome.History {
			if m.Seq != want[i].Seq || m.ID != want[i].ID || m.Text != want[i].Text || m.TS != want[i].TS {
				t.Errorf("resume from %d: history[%d] = seq %d %s, want seq %d %s", r.from, i, m.Seq, m.ID, want[i].Seq, want[i].ID)
				break
			}
		}
	}

	// Of the messages in flight at a kill, those committed before it got
	// their original seq back when resent (at most the seq the relay had
	// on restart); the rest were posted once, after the restart.
	committedUnacked, unacked := 0, 0
	for k, left := range unackedAtKill {
		for s, ids := range left {
			for _, id := range ids {
				unacked++
				if s.acked[id].Seq <= seqAtRestart[k] {
					committedUnacked++
				}
			}
		}
	}
	var missed []int
	for _, r := range resumes {
		missed = append(missed, len(r.welcome.History))
	}
	t.Logf("history: %d messages, every acked one exactly once; %d unacked at the kills, %d of them committed before (same seq on resend); observer resumes got %v messages, recovered",
		len(history), unacked, committedUnacked, missed)
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
