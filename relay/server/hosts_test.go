package server

import (
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

// hostDial upgrades with the given Host and Origin ("" sends none) and
// returns the HTTP status (101 when it opened).
func hostDial(t *testing.T, tr *testRelay, host, origin string) (int, []byte) {
	t.Helper()
	h := http.Header{}
	if host != "" {
		h.Set("Host", host)
	}
	if origin != "" {
		h.Set("Origin", origin)
	}
	ws, resp, err := websocket.DefaultDialer.Dial(tr.url, h)
	if err == nil {
		ws.Close()
		return http.StatusSwitchingProtocols, nil
	}
	if resp == nil {
		t.Fatalf("dial with Host %q: %v", host, err)
	}
	defer resp.Body.Close()
	var body strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		body.WriteString(string(buf[:n]))
		if err != nil {
			break
		}
	}
	return resp.StatusCode, []byte(body.String())
}

func hostGet(tr *testRelay, host, path string) int {
	req, _ := http.NewRequest("GET", tr.web+path, nil)
	req.Host = host
	resp, _ := tr.do(req)
	return resp.StatusCode
}

// A DNS-rebound page (Host and Origin both the attacker's name) is refused
// with 421 and a message saying what to do; the relay's IP address,
// localhost and the machine's own name still work, from a browser or not.
func TestHostCheckRefusesRebinding(t *testing.T) {
	tr := startRelay(t, fastConfig(t))
	addr := tr.srv.Addr().String()
	port := addr[strings.LastIndex(addr, ":")+1:]

	evil := "evil.example:" + port
	status, body := hostDial(t, tr, evil, "http://"+evil)
	if status != http.StatusMisdirectedRequest {
		t.Fatalf("rebound upgrade: HTTP %d, want 421", status)
	}
	var e struct{ Error, Message string }
	if err := json.Unmarshal(body, &e); err != nil || e.Error != "unknown_host" || !strings.Contains(e.Message, "--public-host evil.example") {
		t.Errorf("refusal body %q (%v)", body, err)
	}
	// Without Origin too (a rebound same-origin GET carries none).
	if status, _ := hostDial(t, tr, evil, ""); status != http.StatusMisdirectedRequest {
		t.Errorf("upgrade for evil.example without Origin: HTTP %d, want 421", status)
	}
	if got := hostGet(tr, evil, "/metrics"); got != http.StatusMisdirectedRequest {
		t.Errorf("GET /metrics for evil.example: HTTP %d, want 421", got)
	}
	if got := testutilCounter(tr.srv.metrics.HTTPRefused.WithLabelValues("host")); got != 3 {
		t.Errorf("refused host counter %v, want 3", got)
	}

	hostname, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"127.0.0.1:" + port, "localhost:" + port, "[::1]:" + port, "LocalHost.", hostname + ":" + port} {
		if status, body := hostDial(t, tr, host, "http://"+host); status != http.StatusSwitchingProtocols {
			t.Errorf("Host %q: HTTP %d %s, want 101", host, status, body)
		}
		if got := hostGet(tr, host, "/healthz"); got != http.StatusOK {
			t.Errorf("GET /healthz for Host %q: HTTP %d", host, got)
		}
	}
	// The Origin check still applies behind an accepted Host.
	if status, _ := hostDial(t, tr, "127.0.0.1:"+port, "http://evil.example"); status != http.StatusForbidden {
		t.Errorf("foreign Origin to the relay's IP: HTTP %d, want 403", status)
	}
}

// --public-host lists the relay's names: with or without a port, any case,
// a final dot; "*" turns the check off.
func TestPublicHostsListed(t *testing.T) {
	cfg := fastConfig(t)
	cfg.PublicHosts = []string{"chat.example.org", "relay.example.org:8443", "tls.example.org:443"}
	tr := startRelay(t, cfg)
	addr := tr.srv.Addr().String()
	port := addr[strings.LastIndex(addr, ":")+1:]
	for _, tc := range []struct {
		host string
		want int
	}{
		{"chat.example.org:" + port, 101},
		{"Chat.Example.Org.", 101},
		{"relay.example.org:8443", 101},
		{"relay.example.org:" + port, 421},
		{"relay.example.org", 421},
		{"evil.example:" + port, 421},
		{"example.org:" + port, 421},
		{"127.0.0.1:" + port, 101},
		{"tls.example.org", 101}, // clients leave out the default port
		{"tls.example.org:" + port, 421},
	} {
		if status, body := hostDial(t, tr, tc.host, "https://"+tc.host); status != tc.want {
			t.Errorf("Host %q: HTTP %d %s, want %d", tc.host, status, body, tc.want)
		}
	}
	// The machine's own name is answered only while nothing is listed.
	hostname, _ := os.Hostname()
	if status, _ := hostDial(t, tr, hostname+":"+port, ""); status != http.StatusMisdirectedRequest && !strings.EqualFold(hostname, "chat.example.org") {
		t.Errorf("machine name with --public-host set: HTTP %d, want 421", status)
	}

	cfg = fastConfig(t)
	cfg.PublicHosts = []string{"*"}
	tr = startRelay(t, cfg)
	if status, _ := hostDial(t, tr, "evil.example", "http://evil.example"); status != http.StatusSwitchingProtocols {
		t.Errorf("--public-host *: HTTP %d, want 101", status)
	}
}

func TestPublicHostsValidated(t *testing.T) {
	for _, bad := range []string{"https://chat.example.org", "chat.example.org/ws", "chat.example.org:99999", ":8080", "a b"} {
		cfg := fastConfig(t)
		cfg.PublicHosts = []string{bad}
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "public host") {
			t.Errorf("%q: %v", bad, err)
		}
	}
	cfg := fastConfig(t)
	cfg.PublicHosts = []string{"chat.example.org", "chat.example.org:443", "[2001:db8::1]:443", "*"}
	if err := cfg.Validate(); err != nil {
		t.Error(err)
	}
}
