package server

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gorilla/websocket"
)

func TestTrustedProxyNamesTheClient(t *testing.T) {
	ps, err := parseProxies([]string{"127.0.0.1", "10.0.0.0/8", "::1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, peer string
		xff        []string
		want       string
	}{
		{"untrusted peer: the header is anyone's", "198.51.100.9:4000", []string{"203.0.113.5"}, "198.51.100.9"},
		{"proxy names the client", "127.0.0.1:4000", []string{"203.0.113.5"}, "203.0.113.5"},
		{"what the client wrote before it proves nothing", "127.0.0.1:4000", []string{"1.2.3.4, 203.0.113.5"}, "203.0.113.5"},
		{"a chain of trusted proxies", "127.0.0.1:4000", []string{"203.0.113.5, 10.1.2.3"}, "203.0.113.5"},
		{"header given twice", "127.0.0.1:4000", []string{"1.2.3.4", "203.0.113.5"}, "203.0.113.5"},
		{"no header: the proxy itself", "127.0.0.1:4000", nil, "127.0.0.1"},
		{"a hop with a port", "127.0.0.1:4000", []string{"203.0.113.5:51234"}, "203.0.113.5"},
		{"garbled hop: the proxy", "127.0.0.1:4000", []string{"203.0.113.5, not-an-ip"}, "127.0.0.1"},
		{"only trusted hops: the proxy", "127.0.0.1:4000", []string{"10.0.0.1"}, "127.0.0.1"},
		{"IPv6 client counted by its /64", "[::1]:4000", []string{"2001:db8:1:2:3:4:5:6"}, "2001:db8:1:2::/64"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/ws", nil)
			r.RemoteAddr = c.peer
			for _, v := range c.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := ps.client(r); got != c.want {
				t.Errorf("client = %q, want %q", got, c.want)
			}
		})
	}
	if _, err := parseProxies([]string{"proxy.example.org"}); err == nil {
		t.Error("a host name was accepted as a trusted proxy")
	}
}

// Behind a trusted proxy, per-address limits count the clients the proxy
// names; from anyone else, X-Forwarded-For changes nothing.
func TestPerAddressLimitsBehindAProxy(t *testing.T) {
	dial := func(tr *testRelay, client string) int {
		h := http.Header{"X-Forwarded-For": {client}}
		ws, resp, err := websocket.DefaultDialer.Dial(tr.url, h)
		if err != nil {
			if resp == nil {
				t.Fatalf("dial: %v", err)
			}
			return resp.StatusCode
		}
		t.Cleanup(func() { ws.Close() })
		return http.StatusSwitchingProtocols
	}

	cfg := fastConfig(t)
	cfg.MaxConnsPerIP = 1
	cfg.TrustedProxies = []string{"127.0.0.1"}
	proxied := startRelay(t, cfg)
	for i, c := range []struct {
		client string
		want   int
	}{{"203.0.113.5", 101}, {"203.0.113.5", 429}, {"203.0.113.6", 101}} {
		if got := dial(proxied, c.client); got != c.want {
			t.Errorf("behind the proxy, connection %d from %s: HTTP %d, want %d", i+1, c.client, got, c.want)
		}
	}

	cfg = fastConfig(t)
	cfg.MaxConnsPerIP = 1
	direct := startRelay(t, cfg)
	if got := dial(direct, "203.0.113.5"); got != 101 {
		t.Fatalf("first connection: HTTP %d", got)
	}
	if got := dial(direct, "203.0.113.6"); got != 429 {
		t.Errorf("a made-up X-Forwarded-For escaped the per-address cap: HTTP %d, want 429", got)
	}
}
