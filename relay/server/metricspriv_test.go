package server

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heartline/heartline/shared/protocol"
)

// A room's name is the only secret of an open relay (it is all resume
// last_seq 0 needs to return the history), and /metrics has no auth even
// with a token: by default no series names a room, while the aggregates
// still say how big the rooms are. The opt-in brings the per-room series
// back.
func TestMetricsDoNotNameRoomsUnlessAskedTo(t *testing.T) {
	const secret = "secret-room-xyz"
	for _, optIn := range []bool{false, true} {
		cfg := fastConfig(t)
		cfg.HeartbeatInterval, cfg.HeartbeatTimeout = time.Second, 3*time.Second
		cfg.Token = "relay-token"
		cfg.MetricsRoomNames = optIn
		tr := startRelay(t, cfg)
		a, _ := tr.join(secret, "Alice", newKey(), withToken(cfg.Token))
		tr.join(secret, "Bob", newKey(), withToken(cfg.Token))
		a.expectNext(protocol.TypeJoined)
		tr.join("lobby", "Carol", newKey(), withToken(cfg.Token))

		resp, body := tr.get("/metrics", nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/metrics: HTTP %d", resp.StatusCode)
		}
		named := strings.Contains(string(body), secret)
		if !optIn && named {
			t.Errorf("/metrics names the room %q by default:\n%s", secret, grepLines(body, secret))
		}
		for _, want := range []string{
			`heartline_rooms_by_members{members="2-10"} 1`, `heartline_rooms_by_members{members="1"} 1`,
			`heartline_rooms_by_members{members="0"} 0`, `heartline_rooms_by_members{members="1001+"} 0`,
			"heartline_room_members_max 2", "heartline_members 3", "heartline_rooms 2",
		} {
			if !strings.Contains(string(body), want) {
				t.Errorf("opt-in %v: /metrics lacks %q", optIn, want)
			}
		}
		if optIn && !strings.Contains(string(body), `heartline_room_members{room="`+secret+`"} 2`) {
			t.Errorf("with MetricsRoomNames, /metrics lacks the room's member count:\n%s", grepLines(body, "room_members"))
		}
	}
}

func grepLines(body []byte, sub string) string {
	var out []string
	for _, l := range strings.Split(string(body), "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// With MetricsListen the metrics move to their own listener, which also
// answers the probes; the public one keeps the probes but not the metrics,
// and the internal listener goes away with Shutdown.
func TestMetricsListenMovesMetricsOffThePublicListener(t *testing.T) {
	cfg := fastConfig(t)
	cfg.HeartbeatInterval, cfg.HeartbeatTimeout = time.Second, 3*time.Second
	cfg.MetricsListen = "127.0.0.1:0"
	tr := startRelay(t, cfg)
	tr.join("m", "Alice", newKey())

	if resp, _ := tr.get("/metrics", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("public /metrics: HTTP %d, want 404", resp.StatusCode)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if resp, _ := tr.get(path, nil); resp.StatusCode != http.StatusOK {
			t.Errorf("public %s: HTTP %d, want 200", path, resp.StatusCode)
		}
	}

	addr := tr.srv.MetricsAddr()
	if addr == nil {
		t.Fatal("MetricsAddr is nil after Start")
	}
	if addr.String() == tr.srv.Addr().String() {
		t.Fatalf("metrics listener shares the public address %s", addr)
	}
	ops := &testRelay{t: t, web: "http://" + addr.String()}
	resp, body := ops.get("/metrics", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "heartline_connections 1") {
		t.Errorf("internal /metrics: HTTP %d, body lacks heartline_connections 1:\n%.300s", resp.StatusCode, body)
	}
	for path, want := range map[string]string{"/healthz": "ok\n", "/readyz": "ready\n"} {
		if resp, body := ops.get(path, nil); resp.StatusCode != http.StatusOK || string(body) != want {
			t.Errorf("internal %s: HTTP %d %q", path, resp.StatusCode, body)
		}
	}
	if resp, _ := ops.get("/ws", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("internal /ws: HTTP %d, want 404 (clients use the public listener)", resp.StatusCode)
	}
	// A page rebound to the internal address must not read it either.
	req, _ := http.NewRequest("GET", ops.web+"/metrics", nil)
	req.Host = "evil.example"
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("internal /metrics for Host evil.example: %v %v, want 421", resp.StatusCode, err)
	} else {
		resp.Body.Close()
	}

	tr.stop()
	if c, err := net.DialTimeout("tcp", addr.String(), time.Second); err == nil {
		c.Close()
		t.Errorf("the metrics listener %s still accepts after Shutdown", addr)
	}
}

func TestMetricsListenIsValidated(t *testing.T) {
	for _, tc := range []struct{ listen, metrics, want string }{
		{"127.0.0.1:0", "9090", "not host:port"},
		{"127.0.0.1:0", "127.0.0.1:99999", "not host:port"},
		{"127.0.0.1:8080", "127.0.0.1:8080", "their own port"},
	} {
		cfg := Config{DataDir: t.TempDir(), Listen: tc.listen, MetricsListen: tc.metrics}
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("listen %q metrics %q: %v, want an error with %q", tc.listen, tc.metrics, err, tc.want)
		}
	}
	// A taken port fails Start with the flag's name, and leaks nothing
	// (TestMain checks for goroutines).
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg := fastConfig(t)
	cfg.MetricsListen = taken.Addr().String()
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(t.Context())
	if err := srv.Start(); err == nil || !strings.Contains(err.Error(), "--metrics-listen") {
		t.Errorf("Start with a taken metrics port: %v", err)
	}
	if srv.Addr() != nil {
		t.Errorf("the public listener %v stays open after Start failed", srv.Addr())
	}
}
