package ui

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/heartline/heartline/relay/server"
	"github.com/heartline/heartline/relay/web"
	"github.com/heartline/heartline/shared/protocol"
)

// host is "Host a room on this computer": the relay as a library, listening
// on every interface, its data in the app's storage directory, plus its STUN
// responder on the same port number over UDP (and the next one). It needs
// the room token, which travels in the invite address the host copies to
// friends: anyone else who reaches the port is refused (4500).
//
// It knows nothing of Fyne: the UI shows what it hosts (host.go).
type host struct {
	log     *slog.Logger
	dataDir string // the embedded relay's data lives in dataDir/relay
	srv     *server.Server
	port    int
	token   string
}

// newRoomToken makes a hosted room's token: 24 URL-safe characters from
// crypto/rand (144 bits), so the invite needs no escaping.
func newRoomToken() string {
	var b [18]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (h *host) running() bool { return h.srv != nil }

// localAddr is the address this app itself joins.
func (h *host) localAddr() string {
	if h.srv == nil {
		return ""
	}
	return fmt.Sprintf("127.0.0.1:%d", h.port)
}

// start runs the embedded relay on port with the room token (already
// running so: reused) and returns the address to join.
func (h *host) start(port int, token string) (string, error) {
	if token == "" {
		return "", fmt.Errorf("Could not host the room: it has no access token")
	}
	if h.srv != nil && h.port == port && h.token == token {
		return h.localAddr(), nil
	}
	h.stop()
	cfg := server.Config{
		Listen:  fmt.Sprintf(":%d", port),
		DataDir: filepath.Join(h.dataDir, "relay"),
		Token:   token,
		// STUN on the same port number over UDP when it is free: without
		// it the room still works, diagnostics just do not check UDP.
		STUNOptional: true,
		// Friends without the app join from a browser at the same address.
		Web:    web.Handler(),
		Logger: h.log.With("component", "embedded-relay"),
	}
	if port < 65535 { // the responder needs the next port too
		cfg.STUNPort = port
	}
	srv, err := server.New(cfg)
	if err == nil {
		err = srv.Start()
		if err != nil {
			srv.Shutdown(context.Background())
		}
	}
	if err != nil {
		return "", fmt.Errorf("Could not host the room: %v. Pick another port, or stop the program that uses port %d.", err, port)
	}
	h.srv, h.token = srv, token
	if a, ok := srv.Addr().(*net.TCPAddr); ok {
		h.port = a.Port
	} else {
		h.port = port
	}
	return h.localAddr(), nil
}

// stop shuts the embedded relay down (members get 1001 and come back when
// someone hosts again).
func (h *host) stop() {
	if h.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := h.srv.Shutdown(ctx); err != nil {
		h.log.Info("embedded relay shutdown", "err", err)
	}
	h.srv = nil
}

// lanAddrs lists the addresses others on the network can join: every
// non-loopback address of an interface that is up.
func (h *host) lanAddrs() []string {
	var out []string
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil
	}
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok || ipn.IP.IsLinkLocalUnicast() || ipn.IP.IsLoopback() {
				continue
			}
			out = append(out, net.JoinHostPort(ipn.IP.String(), fmt.Sprint(h.port)))
		}
	}
	// IPv4 first: that is what people type.
	var v4, v6 []string
	for _, a := range out {
		if strings.Count(a, ":") > 1 {
			v6 = append(v6, a)
		} else {
			v4 = append(v4, a)
		}
	}
	return append(v4, v6...)
}

// invites are the addresses to give to others (lanAddrs), each carrying the
// room token.
func (h *host) invites() []string {
	var out []string
	for _, a := range h.lanAddrs() {
		out = append(out, protocol.InviteAddress(a, h.token))
	}
	return out
}

// browserLink is the address a friend without the app opens in a browser
// for an invite ("host:port#token=..."): the hosted relay serves the web
// client, which takes the token from the fragment (never sent to a server).
func browserLink(invite string) string {
	relay, token := protocol.SplitInvite(invite)
	return protocol.InviteAddress("http://"+relay+"/", token)
}
