package protocol

import (
	"strings"
	"testing"
)

func TestRelayURL(t *testing.T) {
	for in, want := range map[string][2]string{ // address -> WebSocket URL, HTTP base
		"10.0.0.2:7070":              {"ws://10.0.0.2:7070/ws", "http://10.0.0.2:7070"},
		" relay.example.org:9000/ ":  {"ws://relay.example.org:9000/ws", "http://relay.example.org:9000"},
		"ws://relay.example":         {"ws://relay.example/ws", "http://relay.example"},
		"https://relay.example:8443": {"wss://relay.example:8443/ws", "https://relay.example:8443"},
		"wss://chat.example.org/ws":  {"wss://chat.example.org/ws", "https://chat.example.org"},
		"ws://10.0.0.1:80/custom":    {"ws://10.0.0.1:80/custom", "http://10.0.0.1:80/custom"},
		" wss://[::1]:443/chat ":     {"wss://[::1]:443/chat", "https://[::1]:443/chat"},
		"ws://h:1/prefix/ws?x=1#top": {"ws://h:1/prefix/ws", "http://h:1/prefix"},
		"ws://user:pw@h:1/ws":        {"ws://h:1/ws", "http://h:1"},
		"http://localhost:8080/ws/":  {"ws://localhost:8080/ws", "http://localhost:8080"},
	} {
		u, err := RelayURL(in)
		if err != nil {
			t.Errorf("RelayURL(%q): %v", in, err)
			continue
		}
		if u.String() != want[0] || RelayHTTPBase(u) != want[1] {
			t.Errorf("RelayURL(%q) = %s, base %s; want %s, %s", in, u, RelayHTTPBase(u), want[0], want[1])
		}
	}
	for in, msg := range map[string]string{
		"":                "empty",
		"   ":             "empty",
		"ftp://h:1":       "not ftp://",
		"ws://":           "no host",
		"ws://:80":        "no host",
		"ws://host:99999": "not a port",
		"ws://host:abc":   "not a relay address",
		"ws://host:0":     "not a port",
	} {
		_, err := RelayURL(in)
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("RelayURL(%q) = %v; want an error saying %q", in, err, msg)
		}
	}
}

func TestInviteAddress(t *testing.T) {
	for _, tc := range []struct{ addr, relay, token string }{
		{"192.168.1.20:7070#token=abc-_DEF123", "192.168.1.20:7070", "abc-_DEF123"},
		{" ws://chat.lan:7070/ws?token=t0k ", "ws://chat.lan:7070/ws", "t0k"},
		{"[fd00::1]:7070#token=x%2By", "[fd00::1]:7070", "x+y"},
		{"192.168.1.20:7070", "192.168.1.20:7070", ""},
		{"192.168.1.20:7070#other=1", "192.168.1.20:7070#other=1", ""},
		{"wss://chat.example.org/ws#token=", "wss://chat.example.org/ws#token=", ""},
	} {
		relay, token := SplitInvite(tc.addr)
		if relay != tc.relay || token != tc.token {
			t.Errorf("SplitInvite(%q) = %q, %q; want %q, %q", tc.addr, relay, token, tc.relay, tc.token)
		}
	}
	inv := InviteAddress("192.168.1.20:7070", "a+b/c")
	if relay, token := SplitInvite(inv); relay != "192.168.1.20:7070" || token != "a+b/c" {
		t.Errorf("round trip of %q: %q, %q", inv, relay, token)
	}
	if u, err := RelayURL(inv); err != nil || u.String() != "ws://192.168.1.20:7070/ws" {
		t.Errorf("RelayURL(%q) = %v, %v: the token must never reach the URL dialed", inv, u, err)
	}
	if got := InviteAddress("192.168.1.20:7070", ""); got != "192.168.1.20:7070" {
		t.Errorf("no token: %q", got)
	}
}
