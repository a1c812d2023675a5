package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"github.com/heartline/heartline/relay/redisengine"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heartline/heartline/internal/testutil"
	"github.com/heartline/heartline/relay/avatar"
	"github.com/heartline/heartline/shared/protocol"
)

// Graceful shutdown: every client gets 1001, readyz turns 503, new
// upgrades are refused, and members stay stored for the restart.
func TestShutdownSends1001(t *testing.T) {
	cfg := fastConfig(t)
	cfg.HeartbeatInterval, cfg.HeartbeatTimeout = time.Second, 3*time.Second
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	tr := &testRelay{t: t, srv: srv, cfg: cfg, url: "ws://" + srv.Addr().String() + "/ws", web: "http://" + srv.Addr().String()}
	if resp, _ := tr.get("/readyz", nil); resp.StatusCode != 200 {
		t.Fatalf("readyz before shutdown: %d", resp.StatusCode)
	}
	a, wa := tr.join("x", "Alice", newKey())
	b, _ := tr.join("x", "Bob", newKey())
	pre := tr.dial(nil) // not joined yet
	a.expectNext(protocol.TypeJoined)

	start := time.Now()
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Logf("shutdown with 3 clients took %v", time.Since(start))
	for _, c := range []*tclient{a, b, pre} {
		c.expectClose(websocket.CloseGoingAway)
	}
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "http://127.0.0.1/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("readyz while draining: %d", rec.Code)
	}
	rec = httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "http://127.0.0.1/ws", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("upgrade while draining: %d", rec.Code)
	}
	if _, err := net.DialTimeout("tcp", srv.Addr().String(), time.Second); err == nil {
		t.Error("listener still accepts after shutdown")
	}
	if redisEngine() {
		return // in Redis the grace counts from the shutdown (other relays carry on), covered by TestProcessRelayKilledClientsMoveOn
	}
	// Members survive: a restart on the same dir knows Alice's id.
	tr2 := startRelay(t, cfg)
	c := tr2.dial(nil)
	c.hello("x", "alice", newKey()) // another key: the name is still hers
	c.expectClose(protocol.CloseNameTaken)
	_ = wa
}

func TestAdminRooms(t *testing.T) {
	cfg := fastConfig(t)
	cfg.HeartbeatInterval, cfg.HeartbeatTimeout = time.Second, 3*time.Second
	cfg.AdminToken = "admin-secret"
	tr := startRelay(t, cfg)
	key := newKey()
	_, wa := tr.join("lobby", "Alice", key)
	b, _ := tr.join("lobby", "Bob", newKey())
	b.ws.Close()
	waitFor(t, 2*time.Second, "bob away", func() bool {
		_, body := tr.get("/v1/rooms", http.Header{"Authorization": {"Bearer admin-secret"}})
		return strings.Contains(string(body), `"away"`)
	})
	for _, h := range []http.Header{nil, {"Authorization": {"Bearer wrong"}}, {"Authorization": {"admin-secret"}}} {
		if resp, _ := tr.get("/v1/rooms", h); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("rooms with %v: %d", h, resp.StatusCode)
		}
	}
	resp, body := tr.get("/v1/rooms", http.Header{"Authorization": {"Bearer admin-secret"}})
	if resp.StatusCode != 200 {
		t.Fatalf("rooms: %d %s", resp.StatusCode, body)
	}
	var out struct {
		Rooms []struct {
			Room    string
			Seq     uint64
			Epoch   string
			Members []struct {
				ID, Name, State, Remote string
				IdleSeconds             float64 `json:"idle_seconds"`
			}
		}
	}
	decodeJSON(t, body, &out)
	if len(out.Rooms) != 1 || out.Rooms[0].Room != "lobby" || out.Rooms[0].Epoch == "" || len(out.Rooms[0].Members) != 2 {
		t.Fatalf("rooms: %s", body)
	}
	alice := out.Rooms[0].Members[0]
	if alice.ID != wa.You.ID || alice.State != "online" || !strings.HasPrefix(alice.Remote, "127.0.0.1:") || alice.IdleSeconds < 0 {
		t.Errorf("alice: %+v", alice)
	}
	if out.Rooms[0].Members[1].State != "away" {
		t.Errorf("bob: %+v", out.Rooms[0].Members[1])
	}
	if strings.Contains(string(body), key) || strings.Contains(string(body), keyHash(key)) {
		t.Error("the admin listing shows a member key or its hash")
	}
}

// A room everyone left is still listed, with its seq: its history is kept.
func TestAdminRoomsListsEmptyRooms(t *testing.T) {
	cfg := fastConfig(t)
	cfg.AdminToken = "admin-secret"
	tr := startRelay(t, cfg)
	a, _ := tr.join("quiet", "Alice", newKey())
	a.msg("1", "anyone?")
	a.expectNext(protocol.TypeAck)
	a.send(&protocol.Bye{})
	a.expectClose(protocol.CloseNormal)

	var out struct {
		Rooms []struct {
			Room    string
			Seq     uint64
			Members []json.RawMessage
		}
	}
	waitFor(t, 2*time.Second, "room listed without members", func() bool {
		_, body := tr.get("/v1/rooms", http.Header{"Authorization": {"Bearer admin-secret"}})
		decodeJSON(t, body, &out)
		return len(out.Rooms) == 1 && len(out.Rooms[0].Members) == 0
	})
	if r := out.Rooms[0]; r.Room != "quiet" || r.Seq != 1 || r.Members == nil {
		t.Errorf("rooms: %+v", out.Rooms)
	}
}

func pngBytes(t *testing.T, w, h int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), 100, 255})
		}
	}
	var b bytes.Buffer
	png.Encode(&b, img)
	return b.Bytes()
}

func TestAvatarEndpoints(t *testing.T) {
	cfg := fastConfig(t)
	cfg.HeartbeatInterval, cfg.HeartbeatTimeout = time.Second, 3*time.Second
	cfg.Token = "tok"
	cfg.AvatarRate, cfg.AvatarBurst = 0.001, 3
	tr := startRelay(t, cfg)
	upload := func(body []byte, ct, token string) (*http.Response, []byte) {
		req, _ := http.NewRequest("POST", tr.web+"/v1/avatars", bytes.NewReader(body))
		req.Header.Set("Content-Type", ct)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		return tr.do(req)
	}
	if resp, _ := upload(pngBytes(t, 10, 10), "image/png", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("upload without token: %d", resp.StatusCode)
	}
	resp, body := upload(pngBytes(t, 300, 200), "image/png", "tok")
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload: %d %s", resp.StatusCode, body)
	}
	var up struct{ Avatar string }
	decodeJSON(t, body, &up)
	hex, ok := strings.CutPrefix(up.Avatar, "sha256:")
	if !ok || !avatar.ValidHex(hex) {
		t.Fatalf("avatar %q", up.Avatar)
	}
	stored, err := os.ReadFile(filepath.Join(cfg.DataDir, "avatars", hex+".png"))
	if err != nil || avatar.Hash(stored) != hex {
		t.Fatalf("stored file: %v", err)
	}

	resp, body = tr.get("/v1/avatars/"+hex, nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/png" ||
		!strings.Contains(resp.Header.Get("Cache-Control"), "immutable") || resp.Header.Get("ETag") != `"`+hex+`"` {
		t.Fatalf("GET avatar: %d %v", resp.StatusCode, resp.Header)
	}
	img, err := png.Decode(bytes.NewReader(body))
	if err != nil || img.Bounds().Dx() != 128 || img.Bounds().Dy() != 128 {
		t.Fatalf("served picture: %v %v", err, img.Bounds())
	}
	if resp, _ := tr.get("/v1/avatars/"+hex, http.Header{"If-None-Match": {`"` + hex + `"`}}); resp.StatusCode != http.StatusNotModified {
		t.Errorf("conditional GET: %d", resp.StatusCode)
	}
	for _, p := range []string{"/v1/avatars/" + strings.Repeat("0", 64), "/v1/avatars/..%2f..%2fetc", "/v1/avatars/nothex"} {
		if resp, body := tr.get(p, nil); resp.StatusCode != 404 || !strings.Contains(string(body), `"error"`) {
			t.Errorf("GET %s: %d %s", p, resp.StatusCode, body)
		}
	}
	resp, body = tr.get("/v1/avatars", nil)
	var list struct{ Builtin []string }
	decodeJSON(t, body, &list)
	if resp.StatusCode != 200 || len(list.Builtin) < 8 || !contains(list.Builtin, "default") {
		t.Errorf("builtin list: %s", body)
	}
	if resp, body := tr.get("/v1/avatars/builtin/default", nil); resp.StatusCode != 200 || !bytes.HasPrefix(body, []byte("\x89PNG")) {
		t.Errorf("builtin default: %d", resp.StatusCode)
	}

	// Too big, a picture bomb, and not an image.
	if resp, _ := upload(make([]byte, 300<<10), "image/png", "tok"); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("300 KiB upload: %d", resp.StatusCode)
	}
	if resp, body := upload(bombPNG(), "image/png", "tok"); resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("bomb: %d %s", resp.StatusCode, body)
	}
	// The per-address limit (burst 3, used up by the 3 uploads above) answers 429.
	if resp, _ := upload(pngBytes(t, 5, 5), "image/png", "tok"); resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("rate limit: %d", resp.StatusCode)
	}

	// A hello may use the uploaded picture.
	_, w := tr.join("a", "Alice", newKey(), withToken("tok"), withAvatar(up.Avatar))
	if w.You.Avatar != up.Avatar {
		t.Errorf("avatar in welcome %q", w.You.Avatar)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// bombPNG claims 50000x50000 pixels in a few dozen bytes.
func bombPNG() []byte {
	var b bytes.Buffer
	png.Encode(&b, image.NewGray(image.Rect(0, 0, 1, 1)))
	data := b.Bytes()
	// IHDR width/height live at bytes 16..24; patch them and fix the CRC.
	put := func(off int, v uint32) {
		data[off], data[off+1], data[off+2], data[off+3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
	}
	put(16, 50000)
	put(20, 50000)
	put(29, crc32IEEE(data[12:29]))
	return data
}

func TestHealthAndMetricsEndpoints(t *testing.T) {
	cfg := fastConfig(t)
	cfg.HeartbeatInterval, cfg.HeartbeatTimeout = time.Second, 3*time.Second
	tr := startRelay(t, cfg)
	a, _ := tr.join("m", "Alice", newKey())
	a.msg("1", "hello")
	a.expectNext(protocol.TypeAck)
	if resp, _ := tr.get("/healthz", nil); resp.StatusCode != 200 {
		t.Errorf("healthz %d", resp.StatusCode)
	}
	_, body := tr.get("/metrics", nil)
	for _, want := range []string{
		"heartline_connections 1", "heartline_room_members_max 1", `heartline_frames_in_total{type="msg"} 1`,
		`heartline_frames_out_total{type="welcome"} 1`, "heartline_messages_accepted_total 1",
		"heartline_fanout_duration_seconds_count",
		"heartline_heartbeat_timeouts_total 0", "heartline_queue_overflows_total 0",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	want := "heartline_store_commit_seconds_count 1"
	if redisEngine() {
		want = `heartline_redis_call_seconds_count{op="publish"} 1`
	}
	if !strings.Contains(string(body), want) {
		t.Errorf("metrics lack %q", want)
	}
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := testutil.SelfSigned(t)
	cfg := fastConfig(t)
	cfg.HeartbeatInterval, cfg.HeartbeatTimeout = time.Second, 3*time.Second
	cfg.TLSCert, cfg.TLSKey = certFile, keyFile
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	d := websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: pool}}
	ws, _, err := d.Dial("wss://"+srv.Addr().String()+"/ws", nil)
	if err != nil {
		t.Fatalf("wss dial: %v", err)
	}
	c := newTClient(t, ws)
	c.hello("t", "Alice", newKey())
	if w := c.welcome(); w.Room != "t" {
		t.Fatalf("welcome %+v", w)
	}
	// Plain ws:// to a TLS listener fails.
	if _, _, err := websocket.DefaultDialer.Dial("ws://"+srv.Addr().String()+"/ws", nil); err == nil {
		t.Error("plain websocket accepted by a TLS relay")
	}

	// Bad TLS settings fail at New with a clear error.
	bad := fastConfig(t)
	bad.TLSCert, bad.TLSKey = certFile, filepath.Join(dir, "missing.pem")
	if _, err := New(bad); err == nil || !strings.Contains(err.Error(), "TLS") {
		t.Errorf("missing key file: %v", err)
	}
	bad.TLSKey = ""
	if _, err := New(bad); err == nil || !strings.Contains(err.Error(), "both") {
		t.Errorf("cert without key: %v", err)
	}
}

func crc32IEEE(b []byte) uint32 { return crc32.ChecksumIEEE(b) }

// Redis's pub/sub delivers until the relay's client closes, at the very end
// of Shutdown, after Shutdown began waiting for its background work: an
// event then must not start a drainer (its Add raced that Wait, seen by the
// race detector in CI) but be dropped, since no link is left to deliver to.
func TestNoBackgroundWorkStartsOnceShutdownWaits(t *testing.T) {
	srv, err := New(Config{Listen: "127.0.0.1:0", DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	r := srv.newRoom("late")
	if err := srv.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if srv.goBackground(func() { t.Error("background work ran after Shutdown") }) {
		t.Error("goBackground started work after Shutdown")
	}
	r.completedEvents([]*redisengine.Event{{Kind: redisengine.KindMessage, Seq: 1, ID: "m1", Client: "c1", Text: "late"}})
	r.doneMu.Lock()
	defer r.doneMu.Unlock()
	if r.draining || len(r.doneQ) != 0 {
		t.Errorf("an event after Shutdown left the room draining=%v with %d queued", r.draining, len(r.doneQ))
	}
}
