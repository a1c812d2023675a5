package server

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heartline/heartline/internal/redistest"
	"github.com/heartline/heartline/shared/protocol"
)

// engines runs a test against both engines: the relay's own store, and
// Redis (a real redis-server of the test's own).
func engines(t *testing.T, test func(t *testing.T, start func() *testRelay)) {
	t.Run("bolt", func(t *testing.T) {
		test(t, func() *testRelay {
			cfg := fastConfig(t)
			cfg.HeartbeatInterval, cfg.HeartbeatTimeout = time.Second, 3*time.Second
			return startRelay(t, cfg)
		})
	})
	t.Run("redis", func(t *testing.T) {
		rs := redistest.Start(t, redistest.Options{AppendOnly: true})
		test(t, func() *testRelay { return startRelay(t, redisConfig(t, rs)) })
	})
}

func redisConfig(t *testing.T, rs *redistest.Server) Config {
	cfg := fastConfig(t)
	cfg.RedisURL = rs.URL()
	cfg.HeartbeatInterval, cfg.HeartbeatTimeout = time.Second, 3*time.Second
	cfg.Grace = time.Second
	cfg.RedisDeadAfter = 2 * time.Second
	return cfg
}

// cluster is n relays on one Redis.
func cluster(t *testing.T, n int) ([]*testRelay, *redistest.Server) {
	rs := redistest.Start(t, redistest.Options{AppendOnly: true})
	relays := make([]*testRelay, n)
	for i := range relays {
		relays[i] = startRelay(t, redisConfig(t, rs))
	}
	return relays, rs
}

func TestEnginesChatInSeqOrder(t *testing.T) {
	engines(t, func(t *testing.T, start func() *testRelay) {
		tr := start()
		alice, w := tr.join("lobby", "alice", newKey())
		if w.Epoch == "" || len(w.Members) != 1 {
			t.Fatalf("welcome: epoch %q, members %v", w.Epoch, w.Members)
		}
		bob, _ := tr.join("lobby", "bob", newKey())
		if j := alice.expect(protocol.TypeJoined).(*protocol.Joined); j.Member.Name != "bob" {
			t.Fatalf("alice saw %s join", j.Member.Name)
		}
		for i := range 5 {
			alice.msg(fmt.Sprintf("a%d", i), fmt.Sprintf("hello %d", i))
		}
		var last uint64
		for i := range 5 {
			m := bob.expect(protocol.TypeMsg).(*protocol.Message)
			if m.Text != fmt.Sprintf("hello %d", i) || m.Seq != last+1 || m.From.Name != "alice" {
				t.Fatalf("bob got %+v after seq %d", m, last)
			}
			last = m.Seq
		}
		// The outbox's resend of a message already stored gets its original ack.
		alice.msg("a2", "hello 2")
		for {
			a := alice.expect(protocol.TypeAck).(*protocol.Ack)
			if a.ID == "a2" && a.Seq == 3 {
				break
			}
		}
		bob.quiet(200 * time.Millisecond)
	})
}

func TestEnginesResumeExactlyAndLeaveAfterGrace(t *testing.T) {
	engines(t, func(t *testing.T, start func() *testRelay) {
		tr := start()
		alice, _ := tr.join("lobby", "alice", newKey())
		bobKey := newKey()
		bob, w := tr.join("lobby", "bob", bobKey)
		alice.expect(protocol.TypeJoined)
		alice.msg("1", "one")
		bob.expect(protocol.TypeMsg)
		bob.ws.Close()
		if p := alice.expect(protocol.TypePresence).(*protocol.Presence); p.Member.State != protocol.StateAway {
			t.Fatalf("presence %+v, want away", p.Member)
		}
		alice.msg("2", "two")
		alice.msg("3", "three")
		alice.expect(protocol.TypeAck)
		alice.expect(protocol.TypeAck)
		bob2, w2 := tr.join("lobby", "bob", bobKey, withResume(&protocol.Resume{Epoch: w.Epoch, LastSeq: 1}))
		if !w2.Recovered || len(w2.History) != 2 || w2.History[0].Text != "two" || w2.History[1].Text != "three" {
			t.Fatalf("resume: recovered %v, history %+v", w2.Recovered, w2.History)
		}
		if p := alice.expect(protocol.TypePresence).(*protocol.Presence); p.Member.State != protocol.StateOnline {
			t.Fatalf("presence %+v, want online", p.Member)
		}
		bob2.ws.Close()
		alice.expect(protocol.TypePresence)
		stop := alice.keepAlive(50 * time.Millisecond)
		defer stop()
		if l := alice.expect(protocol.TypeLeft).(*protocol.Left); l.Member.Name != "bob" || l.Reason != protocol.ReasonClosed {
			t.Fatalf("left %+v", l)
		}
	})
}

func TestEnginesRefuseTakenNamesAndFullRooms(t *testing.T) {
	engines(t, func(t *testing.T, start func() *testRelay) {
		tr := start()
		tr.join("lobby", "alice", newKey())
		c := tr.dial(nil)
		c.hello("lobby", "Alice", newKey())
		c.expectClose(protocol.CloseNameTaken)
	})
}

func TestClusterOneRoomThroughThreeRelays(t *testing.T) {
	relays, _ := cluster(t, 3)
	a, w := relays[0].join("lobby", "alice", newKey())
	b, _ := relays[1].join("lobby", "bob", newKey())
	c, wc := relays[2].join("lobby", "carol", newKey())
	if len(wc.Members) != 3 {
		t.Fatalf("carol's welcome lists %d members", len(wc.Members))
	}
	a.expect(protocol.TypeJoined)
	a.expect(protocol.TypeJoined)
	b.expect(protocol.TypeJoined)
	// Interleaved senders on different relays: one order for everyone.
	for i := range 10 {
		a.msg(fmt.Sprintf("a%d", i), fmt.Sprintf("a%d", i))
		b.msg(fmt.Sprintf("b%d", i), fmt.Sprintf("b%d", i))
	}
	seqs := func(cl *tclient, n int) []string {
		var out []string
		for len(out) < n {
			f := cl.expect(protocol.TypeMsg).(*protocol.Message)
			out = append(out, fmt.Sprintf("%d:%s", f.Seq, f.Text))
		}
		return out
	}
	got := seqs(c, 20)
	for i, s := range got {
		var seq uint64
		fmt.Sscanf(s, "%d:", &seq)
		if seq != uint64(i+1) {
			t.Fatalf("carol's messages out of order: %v", got)
		}
	}
	gotA, gotB := seqs(a, 10), seqs(b, 10)
	for _, s := range gotA {
		if s[len(s)-2] != 'b' {
			t.Fatalf("alice got her own message back: %v", gotA)
		}
	}
	_ = gotB
	if w.Epoch != wc.Epoch {
		t.Fatalf("epochs differ across relays: %s, %s", w.Epoch, wc.Epoch)
	}
}

func TestClusterResumeOnAnotherRelay(t *testing.T) {
	relays, _ := cluster(t, 2)
	alice, _ := relays[0].join("lobby", "alice", newKey())
	bobKey := newKey()
	bob, w := relays[0].join("lobby", "bob", bobKey)
	alice.expect(protocol.TypeJoined)
	alice.msg("1", "one")
	bob.expect(protocol.TypeMsg)
	bob.ws.Close()
	alice.expect(protocol.TypePresence)
	alice.msg("2", "two")
	alice.expect(protocol.TypeAck)
	// Back through the other relay: exact resume, no left/joined, online again.
	bob2, w2 := relays[1].join("lobby", "bob", bobKey, withResume(&protocol.Resume{Epoch: w.Epoch, LastSeq: 1}))
	if !w2.Recovered || len(w2.History) != 1 || w2.History[0].Text != "two" || w2.You.ID != w.You.ID {
		t.Fatalf("resume elsewhere: recovered %v, history %+v, you %s want %s", w2.Recovered, w2.History, w2.You.ID, w.You.ID)
	}
	if p := alice.expect(protocol.TypePresence).(*protocol.Presence); p.Member.State != protocol.StateOnline {
		t.Fatalf("alice saw %+v", p.Member)
	}
	// An outbox resend through the other relay gets the original ack.
	bob2.msg("b1", "from bob")
	a1 := bob2.expect(protocol.TypeAck).(*protocol.Ack)
	alice.expect(protocol.TypeMsg)
	bob2.msg("b1", "from bob")
	if a2 := bob2.expect(protocol.TypeAck).(*protocol.Ack); a2.Seq != a1.Seq {
		t.Fatalf("resend acked as seq %d, first as %d", a2.Seq, a1.Seq)
	}
	alice.quiet(200 * time.Millisecond)
}

func TestClusterReplacedAcrossRelays(t *testing.T) {
	relays, _ := cluster(t, 2)
	key := newKey()
	old, _ := relays[0].join("lobby", "alice", key)
	relays[1].join("lobby", "alice", key)
	old.expectClose(protocol.CloseReplaced)
}

// Redis stopped (SIGSTOP) for longer than the heartbeat timeout: links
// stay up (heartbeats are answered by each relay alone), the relays report
// not ready, a message gets a retryable error, and once Redis is back the
// resend is delivered, with no presence change for anyone.
func TestClusterRedisPausedLongerThanHeartbeatTimeout(t *testing.T) {
	relays, rs := cluster(t, 2)
	alice, _ := relays[0].join("lobby", "alice", newKey())
	bob, _ := relays[1].join("lobby", "bob", newKey())
	alice.expect(protocol.TypeJoined)
	stopA, stopB := alice.keepAlive(200*time.Millisecond), bob.keepAlive(200*time.Millisecond)
	defer stopA()
	defer stopB()
	sendUntilAcked(t, alice, "1", "before")
	bob.expect(protocol.TypeMsg)

	rs.Pause()
	for _, tr := range relays {
		waitFor(t, 15*time.Second, "readyz 503", func() bool {
			resp, _ := tr.get("/readyz", nil)
			return resp.StatusCode == http.StatusServiceUnavailable
		})
	}
	alice.msg("2", "during")
	if e := alice.expectError(protocol.ErrRateLimited); e.ID != "2" || e.RetryAfterMS <= 0 {
		t.Fatalf("a message while Redis is away: %+v", e)
	}
	time.Sleep(relays[0].cfg.HeartbeatTimeout + relays[0].cfg.RedisDeadAfter) // Redis stays stopped past both
	rs.Resume()
	for _, tr := range relays {
		waitFor(t, 15*time.Second, "readyz 200", func() bool {
			resp, _ := tr.get("/readyz", nil)
			return resp.StatusCode == http.StatusOK
		})
	}
	sendUntilAcked(t, alice, "2", "during")
	for {
		f := bob.expect(protocol.TypeMsg).(*protocol.Message)
		if f.ID == "2" {
			if f.Seq != 2 {
				t.Fatalf("the resend got seq %d", f.Seq)
			}
			break
		}
	}
	// Nobody was taken for gone: no presence, leave or join for either.
	for _, c := range []*tclient{alice, bob} {
		for {
			f, err := c.next(3 * time.Second)
			if err == errTimeout {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			switch f.(type) {
			case *protocol.Presence, *protocol.Left, *protocol.Joined:
				t.Fatalf("%s saw %+v after Redis came back", c.name, f)
			}
		}
	}
}

// sendUntilAcked sends a message until the relay acks it (while Redis is
// away the relay answers rate_limited; the outbox resends the same id).
func sendUntilAcked(t *testing.T, c *tclient, id, text string) *protocol.Ack {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		c.msg(id, text)
		for {
			f, err := c.next(2 * time.Second)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if a, ok := f.(*protocol.Ack); ok && a.ID == id {
				return a
			}
			if e, ok := f.(*protocol.Error); ok && e.ID == id {
				if e.Code != protocol.ErrRateLimited || e.RetryAfterMS <= 0 {
					t.Fatalf("%s: error %s (%s), want a retryable rate_limited", c.name, e.Code, e.Message)
				}
				time.Sleep(time.Duration(e.RetryAfterMS) * time.Millisecond)
				break
			}
		}
	}
	t.Fatalf("%s: %s never acked", c.name, id)
	return nil
}

func TestClusterRedisRestartWithAOFLosesNothing(t *testing.T) {
	relays, rs := cluster(t, 2)
	alice, w := relays[0].join("lobby", "alice", newKey())
	bob, _ := relays[1].join("lobby", "bob", newKey())
	stopA, stopB := alice.keepAlive(200*time.Millisecond), bob.keepAlive(200*time.Millisecond)
	defer stopA()
	defer stopB()
	alice.expect(protocol.TypeJoined)
	sendUntilAcked(t, alice, "1", "before")
	rs.Kill()
	rs.Restart(t)
	a := sendUntilAcked(t, alice, "2", "after")
	if a.Seq != 2 {
		t.Fatalf("after the restart the message got seq %d, want 2", a.Seq)
	}
	var texts []string
	for len(texts) < 2 {
		texts = append(texts, bob.expect(protocol.TypeMsg).(*protocol.Message).Text)
	}
	if texts[0] != "before" || texts[1] != "after" {
		t.Fatalf("bob got %v", texts)
	}
	_, w2 := relays[1].join("lobby", "carol", newKey())
	if w2.Epoch != w.Epoch || w2.Seq != 2 {
		t.Fatalf("after an AOF restart: epoch %s seq %d, want %s and 2", w2.Epoch, w2.Seq, w.Epoch)
	}
}

func TestClusterRedisRestartWithoutPersistenceStartsANewEpoch(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	cfg := redisConfig(t, rs)
	cfg.RedisAllowVolatile = true
	tr := startRelay(t, cfg)
	bobKey := newKey()
	alice, _ := tr.join("lobby", "alice", newKey())
	bob, w := tr.join("lobby", "bob", bobKey)
	stopA, stopB := alice.keepAlive(200*time.Millisecond), bob.keepAlive(200*time.Millisecond)
	defer stopA()
	defer stopB()
	alice.expect(protocol.TypeJoined)
	sendUntilAcked(t, alice, "1", "one")
	bob.expect(protocol.TypeMsg)
	rs.Kill()
	rs.Restart(t)
	// The relay notices Redis forgot the room: its members reconnect, and a
	// resume of the old history is refused (recovered=false), never merged.
	if code := bob.closeCode(20 * time.Second); code != protocol.CloseGoingAway {
		t.Fatalf("bob's link ended with %d, want 1001", code)
	}
	_, w2 := tr.join("lobby", "bob", bobKey, withResume(&protocol.Resume{Epoch: w.Epoch, LastSeq: 1}))
	if w2.Epoch == w.Epoch || w2.Recovered {
		t.Fatalf("after Redis lost everything: epoch %s (was %s), recovered %v", w2.Epoch, w.Epoch, w2.Recovered)
	}
}

func TestClusterRefusesVolatileRedis(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	_, err := New(redisConfig(t, rs))
	if err == nil || !strings.Contains(err.Error(), "appendonly yes") || !strings.Contains(err.Error(), "--redis-allow-volatile") {
		t.Fatalf("New on a Redis without persistence: %v", err)
	}
}

func TestClusterAvatarUploadedOnOneRelayWorksOnAnother(t *testing.T) {
	relays, _ := cluster(t, 2)
	req, _ := http.NewRequest("POST", relays[0].web+"/v1/avatars", bytes.NewReader(pngBytes(t, 64, 64)))
	req.Header.Set("Content-Type", "image/png")
	resp, data := relays[0].do(req)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload: %d %s", resp.StatusCode, data)
	}
	var up struct{ Avatar string }
	decodeJSON(t, data, &up)
	_, w := relays[1].join("lobby", "alice", newKey(), withAvatar(up.Avatar))
	if w.You.Avatar != up.Avatar {
		t.Fatalf("joined with avatar %q", w.You.Avatar)
	}
	resp, _ = relays[1].get("/v1/avatars/"+strings.TrimPrefix(up.Avatar, protocol.AvatarSHA256+":"), nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the other relay serves the picture with %d", resp.StatusCode)
	}
}

func TestClusterRoomsListedOnEveryRelay(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{AppendOnly: true})
	var relays []*testRelay
	for range 2 {
		cfg := redisConfig(t, rs)
		cfg.AdminToken = "admin"
		relays = append(relays, startRelay(t, cfg))
	}
	relays[0].join("lobby", "alice", newKey())
	relays[1].join("lobby", "bob", newKey())
	relays[1].join("kitchen", "carol", newKey())
	for i, tr := range relays {
		resp, body := tr.get("/v1/rooms", http.Header{"Authorization": {"Bearer admin"}})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("relay %d: /v1/rooms %d %s", i, resp.StatusCode, body)
		}
		var got struct{ Rooms []adminRoom }
		decodeJSON(t, body, &got)
		if len(got.Rooms) != 2 || got.Rooms[0].Room != "kitchen" || got.Rooms[1].Room != "lobby" ||
			len(got.Rooms[1].Members) != 2 || got.Rooms[1].Members[0].Name != "alice" || got.Rooms[1].Members[1].State != protocol.StateOnline {
			t.Fatalf("relay %d lists %+v", i, got.Rooms)
		}
		// Remote addresses only for the members connected to this relay.
		local := got.Rooms[1].Members[i].Remote
		other := got.Rooms[1].Members[1-i].Remote
		if local == "" || other != "" {
			t.Fatalf("relay %d: remote of its own member %q, of the other's %q", i, local, other)
		}
	}
}

// A relay that opens a room while messages flow sees, on the room's
// channel, messages it already read with the roster: that is no sign of
// lost writes, and must not give the room a new epoch.
func TestClusterJoiningWhileMessagesFlowKeepsTheEpoch(t *testing.T) {
	relays, _ := cluster(t, 2)
	for _, tr := range relays {
		tr.srv.cfg.Rate, tr.srv.cfg.Burst = 10000, 10000
	}
	alice, w := relays[0].join("lobby", "alice", newKey())
	stop := alice.keepAlive(200 * time.Millisecond)
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 300 {
			alice.msg(fmt.Sprintf("m%d", i), "flowing")
		}
	}()
	var joined []*tclient
	for i := range 6 {
		c, wj := relays[1].join("lobby", fmt.Sprintf("bob%d", i), newKey())
		joined = append(joined, c)
		if wj.Epoch != w.Epoch {
			t.Fatalf("bob%d joined epoch %s, want %s", i, wj.Epoch, w.Epoch)
		}
		c.ws.Close()
	}
	<-done
	_, last := relays[1].join("lobby", "carol", newKey())
	if last.Epoch != w.Epoch {
		t.Fatalf("the room's epoch changed to %s from %s", last.Epoch, w.Epoch)
	}
	for i, tr := range relays {
		if n := testutilCounter(tr.srv.metrics.RedisEpochResets); n != 0 {
			t.Fatalf("relay %d reset %v epochs", i, n)
		}
	}
}

// On a Redis Cluster the rooms' keys spread over the nodes (each room's
// keys carry one hash tag), and relays given different nodes share every
// room: one order, exact resume through the other relay.
func TestClusterOnRedisCluster(t *testing.T) {
	nodes := redistest.StartCluster(t, 3, redistest.Options{AppendOnly: true})
	relays := []*testRelay{startRelay(t, redisConfig(t, nodes[0])), startRelay(t, redisConfig(t, nodes[1]))}
	for i := range 6 {
		room := fmt.Sprintf("room-%d", i)
		alice, _ := relays[0].join(room, "alice", newKey())
		bobKey := newKey()
		bob, w := relays[1].join(room, "bob", bobKey)
		alice.expect(protocol.TypeJoined)
		alice.msg("1", "one")
		if m := bob.expect(protocol.TypeMsg).(*protocol.Message); m.Seq != 1 || m.Text != "one" {
			t.Fatalf("%s: bob got %+v", room, m)
		}
		alice.expect(protocol.TypeAck)
		bob.ws.Close()
		alice.expect(protocol.TypePresence)
		alice.msg("2", "two")
		alice.expect(protocol.TypeAck)
		_, w2 := relays[0].join(room, "bob", bobKey, withResume(&protocol.Resume{Epoch: w.Epoch, LastSeq: 1}))
		if !w2.Recovered || len(w2.History) != 1 || w2.History[0].Text != "two" || w2.You.ID != w.You.ID {
			t.Fatalf("%s: resume on the other relay: recovered %v, history %+v", room, w2.Recovered, w2.History)
		}
	}
	for _, n := range nodes {
		if size, err := n.Do("DBSIZE"); err != nil || size == "0" {
			t.Errorf("node %s holds %s keys (%v): the rooms should spread over the nodes", n.Addr, size, err)
		}
	}
}
