package ui

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heartline/heartline/desktop/settings"
	"github.com/heartline/heartline/shared/client"
	"github.com/heartline/heartline/shared/protocol"
)

// Hosting a room needs no window: the controller starts the embedded relay
// with the room token, the host and a guest with the invite join it through
// the session controller, a stranger without the token is refused, and
// stopping closes the port.
func TestHostStartStopWithoutAWindow(t *testing.T) {
	h := &host{log: slog.New(slog.DiscardHandler), dataDir: t.TempDir()}
	token := newRoomToken()
	addr, err := h.start(0, token)
	if err != nil {
		t.Fatal(err)
	}
	defer h.stop()
	if again, err := h.start(h.port, token); err != nil || again != addr {
		t.Fatalf("starting the same room again: %q %v, want the running one at %q", again, err, addr)
	}

	// A friend without the app opens the invite's browser link.
	link := browserLink(protocol.InviteAddress(addr, token))
	if want := "http://" + addr + "/#token="; !strings.HasPrefix(link, want) {
		t.Fatalf("browser link %q, want it to start with %q", link, want)
	}
	resp, err := http.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Security-Policy") == "" || !strings.Contains(string(page), "<html") {
		t.Fatalf("the hosted room's web page: %d, CSP %q", resp.StatusCode, resp.Header.Get("Content-Security-Policy"))
	}

	ctl := &sessions{store: newMapStore(), clientName: "heartline-desktop/test", do: func(f func()) { f() }}
	ignore := func([]client.Event) {}
	host, err := ctl.join(nil, joinRequest{Profile: settings.Profile{Relay: addr, Room: "lan", Name: "Host"}, Token: token}, func(*settings.ResumePoint) {}, ignore)
	if err != nil {
		t.Fatal(err)
	}
	waitConnected(t, host.c)
	invite := protocol.InviteAddress(addr, h.token)
	guest, err := ctl.join(nil, joinRequest{Profile: settings.Profile{Relay: invite, Room: "lan", Name: "Guest"}}, func(*settings.ResumePoint) {}, ignore)
	if err != nil {
		t.Fatal(err)
	}
	waitConnected(t, guest.c)

	stranger, err := client.New(client.Config{URL: addr, Room: "lan", Name: "Stranger", Key: client.NewKey()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() {
		for range stranger.Events() {
		}
	}()
	var stopped *client.StopError
	if err := stranger.Run(ctx); !errors.As(err, &stopped) || stopped.Code != protocol.CloseUnauthorized {
		t.Fatalf("a client without the room token: %v, want stopped with %d", err, protocol.CloseUnauthorized)
	}

	ctl.stop(guest, true)
	ctl.stop(host, true)
	h.stop()
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("the hosted room's port %s still accepts after stop", addr)
	}
}
