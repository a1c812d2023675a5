package server

import (
	"strings"
	"testing"
	"time"

	"github.com/heartline/heartline/shared/protocol"
)

// Rule 1 and 3: the relay stamps from, seq and ts; the sender gets an ack,
// everyone else the msg; a join creates the room and announces the member.
func TestChatBetweenTwoMembers(t *testing.T) {
	tr := startRelay(t, Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", Logger: testLogger(t)})
	alice, wa := tr.join("lobby", "Alice", newKey())
	if wa.Room != "lobby" || wa.Seq != 0 || wa.Epoch == "" || wa.You.Name != "Alice" || wa.You.State != protocol.StateOnline {
		t.Fatalf("welcome: %+v", wa)
	}
	if wa.Heartbeat.IntervalMS != 10000 || wa.Heartbeat.TimeoutMS != 25000 {
		t.Errorf("default heartbeat %+v, want 10000/25000", wa.Heartbeat)
	}
	if !strings.HasPrefix(wa.ObservedAddr, "127.0.0.1:") || wa.ObservedAddr == "127.0.0.1:0" {
		t.Errorf("observed_addr %q is not the client's address", wa.ObservedAddr)
	}
	bob, wb := tr.join("lobby", "Bob", newKey())
	if len(wb.Members) != 2 {
		t.Errorf("bob's welcome lists %d members, want 2", len(wb.Members))
	}
	j := alice.expectNext(protocol.TypeJoined).(*protocol.Joined)
	if j.Member.ID != wb.You.ID || j.Member.Name != "Bob" {
		t.Fatalf("joined %+v, want bob %+v", j.Member, wb.You)
	}
	if wa.You.ID == wb.You.ID {
		t.Fatal("two members share an id")
	}

	before := time.Now().UnixMilli()
	// A client cannot choose its sender or time: extra fields are ignored.
	alice.raw([]byte(`{"type":"msg","id":"m1","text":"hi bob","from":{"id":"x","name":"Mallory"},"ts":1,"seq":99}`))
	ack := alice.expectNext(protocol.TypeAck).(*protocol.Ack)
	got := bob.expectNext(protocol.TypeMsg).(*protocol.Message)
	if ack.ID != "m1" || ack.Seq != 1 || ack.TS < before {
		t.Fatalf("ack %+v", ack)
	}
	if got.Seq != 1 || got.ID != "m1" || got.Text != "hi bob" || got.TS != ack.TS ||
		got.From.ID != wa.You.ID || got.From.Name != "Alice" {
		t.Fatalf("bob got %+v (alice is %+v)", got, wa.You)
	}
	bob.msg("m1", "hello alice") // ids are per member: bob may use m1 too
	if a := bob.expectNext(protocol.TypeAck).(*protocol.Ack); a.Seq != 2 {
		t.Fatalf("bob's ack %+v, want seq 2", a)
	}
	if m := alice.expectNext(protocol.TypeMsg).(*protocol.Message); m.Seq != 2 || m.From.ID != wb.You.ID {
		t.Fatalf("alice got %+v", m)
	}
	alice.quiet(50 * time.Millisecond) // no echo of her own message

	// bye: left (reason bye) at once, close 1000.
	bob.send(&protocol.Bye{})
	bob.expectClose(protocol.CloseNormal)
	l := alice.expectNext(protocol.TypeLeft).(*protocol.Left)
	if l.Member.ID != wb.You.ID || l.Reason != protocol.ReasonBye {
		t.Fatalf("left %+v", l)
	}
}

// Rule 2: names are trimmed, unique case-insensitively; a name held by
// another key closes 4501; bad input gets an error frame then 4504.
func TestHelloRefusals(t *testing.T) {
	tr := startRelay(t, fastConfig(t))
	tr.join("r1", "  Alice  ", newKey())

	c := tr.dial(nil)
	c.hello("r1", "ALICE", newKey())
	c.expectClose(protocol.CloseNameTaken)

	cases := []struct {
		name, room, nick, key, avatar string
		code                          string
	}{
		{"empty name", "r1", "   ", newKey(), "", protocol.ErrBadName},
		{"long name", "r1", strings.Repeat("é", 33), newKey(), "", protocol.ErrBadName},
		{"control char", "r1", "bo\x7fb", newKey(), "", protocol.ErrBadName},
		{"bad room", "Lobby!", "Bob", newKey(), "", protocol.ErrBadRoom},
		{"short key", "r1", "Bob", "short", "", protocol.ErrBadKey},
		{"unknown builtin", "r1", "Bob", newKey(), "builtin:no-such-avatar", protocol.ErrBadAvatar},
		{"unknown upload", "r1", "Bob", newKey(), "sha256:" + strings.Repeat("ab", 32), protocol.ErrBadAvatar},
		{"bad avatar syntax", "r1", "Bob", newKey(), "http://x/y.png", protocol.ErrBadAvatar},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := tr.dial(nil)
			c.t = t
			c.hello(tc.room, tc.nick, tc.key, withAvatar(tc.avatar))
			c.expectError(tc.code)
			c.expectClose(protocol.CloseHelloRefused)
		})
	}

	// Wrong protocol version: error frame, then 4503.
	c = tr.dial(nil)
	c.raw([]byte(`{"type":"hello","v":2,"room":"r1","name":"Bob","key":"` + newKey() + `"}`))
	c.expectError(protocol.ErrBadFrame)
	c.expectClose(protocol.CloseUnsupportedVersion)

	// A built-in avatar that exists is fine.
	_, w := tr.join("r1", "Carol", newKey(), withAvatar("builtin:default"))
	if w.You.Avatar != "builtin:default" {
		t.Errorf("avatar %q", w.You.Avatar)
	}
}

func TestTokenRequired(t *testing.T) {
	cfg := fastConfig(t)
	cfg.Token = "s3cret-token"
	tr := startRelay(t, cfg)
	c := tr.dial(nil)
	c.hello("r1", "Alice", newKey())
	c.expectClose(protocol.CloseUnauthorized)
	c = tr.dial(nil)
	c.hello("r1", "Alice", newKey(), withToken("wrong"))
	c.expectClose(protocol.CloseUnauthorized)
	tr.join("r1", "Alice", newKey(), withToken("s3cret-token"))
}

// Rule 8: a full room answers room_full and 4505; away members count.
func TestRoomFull(t *testing.T) {
	cfg := fastConfig(t)
	cfg.MaxRoomMembers = 2
	cfg.Grace = time.Minute
	tr := startRelay(t, cfg)
	a, _ := tr.join("small", "A", newKey())
	b, _ := tr.join("small", "B", newKey())
	stop := a.keepAlive(30 * time.Millisecond)
	defer stop()
	b.ws.Close() // B is away, still a member
	c := tr.dial(nil)
	c.hello("small", "C", newKey())
	c.expectError(protocol.ErrRoomFull)
	c.expectClose(protocol.CloseRoomFull)
	// Other rooms are unaffected.
	tr.join("other", "C", newKey())
}

// Frames before hello: msg gets not_joined, ping gets pong; the connection stays.
func TestBeforeHello(t *testing.T) {
	tr := startRelay(t, fastConfig(t))
	c := tr.dial(nil)
	c.msg("m1", "too early")
	e := c.expectError(protocol.ErrNotJoined)
	if e.ID != "m1" {
		t.Errorf("error id %q, want m1", e.ID)
	}
	c.send(&protocol.Ping{T: 42})
	if p := c.expectNext(protocol.TypePong).(*protocol.Pong); p.T != 42 || p.ServerTime == 0 {
		t.Errorf("pong %+v", p)
	}
	c.hello("r1", "Alice", newKey())
	c.welcome()
	c.hello("r1", "Alice", newKey()) // a second hello is refused, connection stays
	c.expectError(protocol.ErrBadFrame)
	c.send(&protocol.Ping{T: 7})
	c.expectNext(protocol.TypePong)
}

// The 10 s hello window (shortened through Config.HelloTimeout) closes 4003
// whatever the heartbeat says.
func TestHelloTimeout(t *testing.T) {
	cfg := fastConfig(t)
	cfg.HelloTimeout = 200 * time.Millisecond
	cfg.HeartbeatInterval, cfg.HeartbeatTimeout = 40*time.Millisecond, 90*time.Millisecond
	tr := startRelay(t, cfg)
	c := tr.dial(nil)
	start := time.Now()
	c.expectClose(protocol.CloseProtocolError)
	if el := time.Since(start); el < 150*time.Millisecond {
		t.Errorf("closed after %v, before the hello window", el)
	}
}

func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "data dir"},
		{Config{DataDir: dir, HeartbeatInterval: 10 * time.Second, HeartbeatTimeout: 20 * time.Second}, "more than twice"},
		{Config{DataDir: dir, SweepInterval: 6 * time.Second}, "half the heartbeat interval"},
		{Config{DataDir: dir, TLSCert: "c.pem"}, "both"},
		{Config{DataDir: dir, Listen: "nocolon"}, "host:port"},
		{Config{DataDir: dir, MaxFrame: 100}, "too small"},
		{Config{DataDir: dir, FlushInterval: 30 * time.Second}, "at most 1s"},
		{Config{DataDir: dir, CommitInterval: 2 * time.Second}, "at most 1s"},
		{Config{DataDir: dir, AvatarRate: -1}, "avatar rate"},
		{Config{DataDir: dir, TrustedProxies: []string{"proxy.example.org"}}, "trusted proxy"},
	} {
		err := c.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
		if _, err := New(c.cfg); err == nil {
			t.Errorf("New accepted %+v", c.cfg)
		}
	}
	if err := (Config{DataDir: dir}).Validate(); err != nil {
		t.Errorf("zero config with a data dir: %v", err)
	}
}
