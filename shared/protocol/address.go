package protocol

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// RelayURL turns a relay address as a person types it ("host:port",
// "ws://host:port/ws", "wss://host/ws", "http(s)://host") into the WebSocket
// URL of the relay's endpoint: ws:// or wss://, the path /ws unless the
// address names another (a relay behind a proxy's path prefix), no query,
// fragment or user info. Its errors are sentences a person can act on.
func RelayURL(addr string) (*url.URL, error) {
	s := strings.TrimSpace(addr)
	if s == "" {
		return nil, errors.New("the relay address is empty: enter host:port (like 192.168.1.20:8080) or a ws:// URL")
	}
	if !strings.Contains(s, "://") {
		s = "ws://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not a relay address: enter host:port (like 192.168.1.20:8080) or a ws:// URL", addr)
	}
	switch u.Scheme {
	case "ws", "http":
		u.Scheme = "ws"
	case "wss", "https":
		u.Scheme = "wss"
	default:
		return nil, fmt.Errorf("relay address %q: use ws://, wss:// or just host:port (not %s://)", addr, u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("relay address %q has no host name", addr)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("relay address %q: %q is not a port number", addr, p)
		}
	}
	// The relay's route is exactly /ws: "/ws/" would miss it.
	u.Path = strings.TrimRight(u.Path, "/")
	if u.Path == "" {
		u.Path = "/ws"
	}
	u.RawPath, u.RawQuery, u.Fragment, u.User = "", "", "", nil
	return u, nil
}

// RelayHTTPBase is the base URL of the HTTP endpoints (/healthz,
// /v1/avatars...) of the relay whose WebSocket URL is ws: same host, http or
// https, the path without its final /ws. It has no trailing slash.
func RelayHTTPBase(ws *url.URL) string {
	u := *ws
	u.Scheme = "http"
	if ws.Scheme == "wss" {
		u.Scheme = "https"
	}
	u.Path = strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), "/ws")
	u.RawPath = ""
	return strings.TrimSuffix(u.String(), "/")
}

// InviteAddress is the relay address a host shares with the relay's token
// inside it: "192.168.1.20:7070#token=...". The token rides in the fragment,
// which is never sent over the network (not even if someone opens the
// address in a browser); SplitInvite takes it out again.
func InviteAddress(relay, token string) string {
	if token == "" {
		return relay
	}
	return relay + "#token=" + url.QueryEscape(token)
}

// SplitInvite separates an invite address into the relay address and the
// token it carries in its fragment ("#token=...") or query ("?token=...").
// An address without a token comes back as typed (trimmed), with "".
func SplitInvite(addr string) (relay, token string) {
	relay = strings.TrimSpace(addr)
	for _, sep := range []string{"#", "?"} {
		i := strings.LastIndex(relay, sep)
		if i < 0 {
			continue
		}
		q, err := url.ParseQuery(relay[i+1:])
		if err != nil || q.Get("token") == "" {
			continue
		}
		return relay[:i], q.Get("token")
	}
	return relay, ""
}
