package server

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heartline/heartline/relay/metrics"
	"github.com/heartline/heartline/shared/protocol"
)

// fakeClock is Config.now for tests that must move time on by minutes.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Now()} }

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fromDialer dials from another loopback address (another "client address").
func fromDialer(ip string) *websocket.Dialer {
	return &websocket.Dialer{NetDial: func(network, addr string) (net.Conn, error) {
		return (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}).Dial(network, addr)
	}}
}

func (tr *testRelay) dialFrom(ip string) *tclient {
	tr.t.Helper()
	ws, resp, err := fromDialer(ip).Dial(tr.url, nil)
	if err != nil {
		tr.t.Fatalf("dial from %s: %v (%v)", ip, err, resp)
	}
	return newTClient(tr.t, ws)
}

// expectThrottled dials and wants the upgrade refused with 429 and a
// Retry-After of want seconds.
func (tr *testRelay) expectThrottled(want int) {
	tr.t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(tr.url, nil)
	if err == nil {
		ws.Close()
		tr.t.Fatal("a throttled address got its websocket")
	}
	if resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		tr.t.Fatalf("throttled upgrade: %v %v, want HTTP 429", err, resp)
	}
	if got := resp.Header.Get("Retry-After"); got != strconv.Itoa(want) {
		tr.t.Fatalf("Retry-After %q, want %d", got, want)
	}
}

// Wrong tokens from one address: the first AuthFreeFailures cost nothing,
// then the address must wait (1 s, then twice as long after each further
// failure) and every attempt meanwhile is refused unread, the right token
// included, with a signal the client retries after. Once the wait is over
// the right token gets in. Other addresses are not affected.
func TestAuthFailuresThrottleTheAddress(t *testing.T) {
	cfg := fastConfig(t)
	cfg.HeartbeatInterval, cfg.HeartbeatTimeout = time.Second, 3*time.Second
	cfg.Token = "the-right-token"
	clock := newFakeClock()
	cfg.now = clock.now
	tr := startRelay(t, cfg)
	failures := tr.srv.metrics.AuthFailures.WithLabelValues(metrics.AuthToken)
	throttled := func(at string) float64 {
		return testutilCounter(tr.srv.metrics.AuthThrottled.WithLabelValues(at))
	}

	// A hello without a token guesses nothing and costs nothing.
	for range 8 {
		c := tr.dial(nil)
		c.hello("lobby", "eve", newKey())
		c.expectClose(protocol.CloseUnauthorized)
	}
	// Opened before the address is throttled; says hello while it is.
	early := tr.dial(nil)
	for i := range DefaultAuthFreeFailures + 1 {
		c := tr.dial(nil)
		c.hello("lobby", "eve", newKey(), withToken(fmt.Sprintf("guess-%d", i)))
		c.expectClose(protocol.CloseUnauthorized)
	}
	if got := testutilCounter(failures); got != DefaultAuthFreeFailures+1 {
		t.Fatalf("auth failures %v, want %d", got, DefaultAuthFreeFailures+1)
	}
	tr.expectThrottled(1)
	tr.expectThrottled(1) // the right token cannot be sent either, nor can a guess
	if got := throttled(metrics.ThrottledUpgrade); got != 2 {
		t.Errorf("throttled upgrades %v, want 2", got)
	}
	// A hello on a socket opened earlier gets rate_limited and a close in
	// the reconnect class, right token or not.
	early.hello("lobby", "ann", newKey(), withToken(cfg.Token))
	e := early.expectError(protocol.ErrRateLimited)
	if e.RetryAfterMS < 1 || e.RetryAfterMS > 1000 || !strings.Contains(e.Message, "failed sign-ins") {
		t.Errorf("throttled hello: %+v", e)
	}
	early.expectClose(protocol.CloseThrottled)
	if !protocol.ShouldReconnect(protocol.CloseThrottled) {
		t.Error("a throttled client must reconnect by itself")
	}
	if got := throttled(metrics.ThrottledHello); got != 1 {
		t.Errorf("throttled hellos %v, want 1", got)
	}
	// Another address is not throttled.
	other := tr.dialFrom("127.0.0.2")
	other.hello("lobby", "bob", newKey(), withToken(cfg.Token))
	other.welcome()

	// After the wait, the right token gets in ...
	clock.advance(time.Second)
	ann, _ := tr.join("lobby", "ann", newKey(), withToken(cfg.Token))
	ann.quiet(50 * time.Millisecond)
	// ... and one more wrong guess costs twice as long as the last one.
	c := tr.dial(nil)
	c.hello("lobby", "eve", newKey(), withToken("guess-again"))
	c.expectClose(protocol.CloseUnauthorized)
	tr.expectThrottled(2)
	clock.advance(2 * time.Second)
	tr.join("lobby", "cy", newKey(), withToken(cfg.Token))
}

// The wait doubles with each failure up to the cap, and failures are
// forgiven with time; the table forgets what no longer matters and never
// holds more than maxTrackedAddrs addresses.
func TestAuthThrottleBackoff(t *testing.T) {
	a := newAuthThrottle(2, 10*time.Second)
	now := time.Unix(1_000_000, 0)
	var waits []time.Duration
	for range 9 {
		waits = append(waits, a.fail("198.51.100.7", now))
	}
	want := []time.Duration{0, 0, 1, 2, 4, 8, 10, 10, 10}
	for i := range want {
		if waits[i].Round(time.Millisecond) != want[i]*time.Second {
			t.Fatalf("waits %v, want %v s", waits, want)
		}
	}
	if d := a.wait("198.51.100.7", now.Add(9*time.Second)); d != time.Second {
		t.Errorf("wait 9 s into a 10 s backoff: %v", d)
	}
	if d := a.wait("198.51.100.8", now); d != 0 {
		t.Errorf("another address waits %v", d)
	}
	// Six half-lives later 9 failures count as 0.14: two free ones again.
	later := now.Add(6 * authHalfLife)
	if d := a.wait("198.51.100.7", later); d != 0 {
		t.Errorf("still waiting after an hour: %v", d)
	}
	a.prune(later)
	if n := len(a.t.m); n != 0 {
		t.Errorf("prune kept %d addresses", n)
	}
	if d := a.fail("198.51.100.7", later); d != 0 {
		t.Errorf("a failure after an hour of quiet waits %v", d)
	}
	for i := range maxTrackedAddrs + 100 {
		a.fail(fmt.Sprintf("10.%d.%d.%d", i>>16, i>>8&255, i&255), later)
	}
	if n := len(a.t.m); n > maxTrackedAddrs {
		t.Errorf("the table holds %d addresses, more than %d", n, maxTrackedAddrs)
	}
	// Failures seconds apart have decayed a little; the one after the free
	// ones must still wait.
	b := newAuthThrottle(5, time.Minute)
	var last time.Duration
	for i := range 6 {
		last = b.fail("203.0.113.1", now.Add(time.Duration(i)*5*time.Second))
	}
	if last < 900*time.Millisecond {
		t.Errorf("the 6th failure in 25 s waits %v", last)
	}
	if off := newAuthThrottle(-1, time.Minute); off.fail("x", now) != 0 || off.fail("x", now) != 0 || len(off.t.m) != 0 {
		t.Error("a negative AuthFreeFailures must turn the throttle off")
	}
}

// Wrong bearer tokens on the avatar upload and the admin endpoint are failed
// authentications, which answer 429 while the address waits. A name taken
// (4501) is not: it says nothing about keys, and people pick taken names.
func TestAuthThrottleCountsBearerTokensNotTakenNames(t *testing.T) {
	cfg := fastConfig(t)
	cfg.HeartbeatInterval, cfg.HeartbeatTimeout = time.Second, 3*time.Second
	clock := newFakeClock()
	cfg.now = clock.now
	cfg.Token, cfg.AdminToken = "tok", "admin"
	tr := startRelay(t, cfg)
	tr.join("lobby", "ann", newKey(), withToken("tok"))
	for range 2 * DefaultAuthFreeFailures {
		c := tr.dial(nil)
		c.hello("lobby", "Ann", newKey(), withToken("tok"))
		c.expectClose(protocol.CloseNameTaken)
	}
	if got := testutilCounter(tr.srv.metrics.AuthFailures.WithLabelValues(metrics.AuthToken)); got != 0 {
		t.Fatalf("names taken counted as %v failed sign-ins", got)
	}
	tr.join("lobby", "Bea", newKey(), withToken("tok")) // not throttled

	clock.advance(3 * time.Hour) // forgiven
	upload := func(token string) *http.Response {
		req, _ := http.NewRequest("POST", tr.web+"/v1/avatars", bytes.NewReader(pngBytes(t, 8, 8)))
		req.Header.Set("Content-Type", "image/png")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, _ := tr.do(req)
		return resp
	}
	rooms := func(token string) *http.Response {
		resp, _ := tr.get("/v1/rooms", http.Header{"Authorization": {"Bearer " + token}})
		return resp
	}
	for i := range DefaultAuthFreeFailures + 1 {
		var resp *http.Response
		if i%2 == 0 {
			resp = upload("wrong")
		} else {
			resp = rooms("wrong")
		}
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong bearer token %d: HTTP %d", i, resp.StatusCode)
		}
	}
	for _, resp := range []*http.Response{rooms("admin"), upload("tok")} {
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" {
			t.Errorf("%s while throttled: HTTP %d, Retry-After %q", resp.Request.URL.Path, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
	for _, at := range []string{metrics.ThrottledRooms, metrics.ThrottledAvatars} {
		if got := testutilCounter(tr.srv.metrics.AuthThrottled.WithLabelValues(at)); got != 1 {
			t.Errorf("throttled %s: %v", at, got)
		}
	}
	clock.advance(time.Second)
	if resp := rooms("admin"); resp.StatusCode != http.StatusOK {
		t.Errorf("rooms after the wait: HTTP %d", resp.StatusCode)
	}
}

func TestClientAddr(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7:5000":             "192.0.2.7",
		"[::ffff:192.0.2.7]:5000":    "192.0.2.7",
		"[2001:db8:1:2:3::9]:443":    "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::1]:443": "2001:db8:1:2::/64", // same host, another address of its /64
		"[::1]:80":                   "::/64",
		"no-port":                    "no-port",
	} {
		if got := clientAddr(in); got != want {
			t.Errorf("clientAddr(%q) = %q, want %q", in, got, want)
		}
	}
}

// Zero values mean finite caps: the connection cap follows the open-file
// limit, the per-address ones are well below it; negative means no cap.
func TestDefaultCaps(t *testing.T) {
	for limit, want := range map[int]int{0: 10000, 100: 50, 1024: 960, 20000: 19000, 65536: 64512, 1 << 30: 1<<20 - 1024} {
		if got := defaultMaxConns(limit); got != want {
			t.Errorf("defaultMaxConns(%d) = %d, want %d", limit, got, want)
		}
	}
	c := Config{}.withDefaults()
	limit := openFileLimit()
	if c.MaxConns != defaultMaxConns(limit) || c.MaxConns <= 0 || (limit > 0 && c.MaxConns >= limit) {
		t.Errorf("default MaxConns %d with an open-file limit of %d", c.MaxConns, limit)
	}
	if c.MaxConnsPerIP != 128 || c.MaxRoomMembersPerIP != 10 || c.AuthFreeFailures != 5 || c.AuthMaxBackoff != time.Minute {
		t.Errorf("defaults: per IP %d, room members per IP %d, auth %d/%v", c.MaxConnsPerIP, c.MaxRoomMembersPerIP, c.AuthFreeFailures, c.AuthMaxBackoff)
	}
	off := Config{MaxConns: -1, MaxConnsPerIP: -1, MaxRoomMembersPerIP: -1, DataDir: "x"}
	if err := off.Validate(); err != nil {
		t.Errorf("-1 (no cap) refused: %v", err)
	}
	if c := off.withDefaults(); c.MaxConns >= 0 || c.MaxConnsPerIP >= 0 || c.MaxRoomMembersPerIP >= 0 {
		t.Errorf("-1 did not stay no cap: %d %d %d", c.MaxConns, c.MaxConnsPerIP, c.MaxRoomMembersPerIP)
	}
}

// With no setting, one address gets DefaultMaxConnsPerIP sockets and the
// next is refused with 429; -1 lifts the cap.
func TestDefaultConnectionCapPerAddress(t *testing.T) {
	dialN := func(tr *testRelay, n int) (opened int, refused *http.Response) {
		for range n {
			ws, resp, err := websocket.DefaultDialer.Dial(tr.url, nil)
			if err != nil {
				return opened, resp
			}
			t.Cleanup(func() { ws.Close() })
			opened++
		}
		return opened, nil
	}
	cfg := fastConfig(t)
	cfg.HeartbeatInterval, cfg.HeartbeatTimeout, cfg.HelloTimeout = 2*time.Second, 10*time.Second, 10*time.Second
	cfg.MaxConnsPerIP = 0 // the default
	tr := startRelay(t, cfg)
	opened, refused := dialN(tr, DefaultMaxConnsPerIP+1)
	if opened != DefaultMaxConnsPerIP || refused == nil || refused.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("opened %d of %d, then %v; want %d then HTTP 429", opened, DefaultMaxConnsPerIP+1, refused, DefaultMaxConnsPerIP)
	}
	cfg2 := fastConfig(t)
	cfg2.HeartbeatInterval, cfg2.HeartbeatTimeout, cfg2.HelloTimeout = 2*time.Second, 10*time.Second, 10*time.Second
	cfg2.MaxConnsPerIP = -1
	tr2 := startRelay(t, cfg2)
	if opened, refused := dialN(tr2, DefaultMaxConnsPerIP+1); opened != DefaultMaxConnsPerIP+1 {
		t.Fatalf("with -1: opened %d, then %v", opened, refused)
	}
}

// One address may add at most MaxRoomMembersPerIP members to a room; the
// next gets room_full saying why, and close 4505. Members coming back with
// their key, other addresses and other rooms are not affected, and a
// member that leaves frees its place.
func TestRoomMembersPerAddress(t *testing.T) {
	cfg := fastConfig(t)
	cfg.HeartbeatInterval, cfg.HeartbeatTimeout = time.Second, 3*time.Second
	cfg.MaxRoomMembersPerIP = 3
	tr := startRelay(t, cfg)
	keys := []string{newKey(), newKey(), newKey()}
	var clients []*tclient
	for i, k := range keys {
		c, _ := tr.join("lobby", fmt.Sprintf("m%d", i), k)
		clients = append(clients, c)
	}
	c := tr.dial(nil)
	c.hello("lobby", "squatter", newKey())
	e := c.expectError(protocol.ErrRoomFull)
	if !strings.Contains(e.Message, "3 members from your address") {
		t.Errorf("room_full message %q does not say why", e.Message)
	}
	c.expectClose(protocol.CloseRoomFull)

	// A member coming back with its key (a second connection replaces the first).
	back, _ := tr.join("lobby", "m0", keys[0])
	clients[0].expectClose(protocol.CloseReplaced)
	// Another address, another room.
	other := tr.dialFrom("127.0.0.2")
	other.hello("lobby", "neighbour", newKey())
	other.welcome()
	tr.join("kitchen", "squatter", newKey())

	// A member that leaves frees its place.
	back.send(&protocol.Bye{})
	back.expectClose(protocol.CloseNormal)
	tr.join("lobby", "newcomer", newKey())
}
