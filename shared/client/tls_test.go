package client

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/heartline/heartline/internal/testutil"
	"github.com/heartline/heartline/relay/server"
)

func TestWSSToARelayWithTLS(t *testing.T) {
	certFile, keyFile, pool := testutil.SelfSigned(t)
	relay := startRelay(t, server.Config{TLSCert: certFile, TLSKey: keyFile})
	ann := newMember(t, Config{URL: "wss://" + relay.addr + "/ws", Name: "ann", TLSConfig: &tls.Config{RootCAs: pool}})
	bob := newMember(t, Config{URL: "https://" + relay.addr, Name: "bob", TLSConfig: &tls.Config{RootCAs: pool}})
	ann.run()
	bob.run()
	ann.waitConnected()
	bob.waitConnected()
	ann.c.Send("over TLS")
	bob.waitUntil("ann's message", 5*time.Second, func() bool { return len(bob.got["ann"]) == 1 })

	// Without the certificate in its roots the client says so, and retries.
	eve := newMember(t, Config{URL: "wss://" + relay.addr, Name: "eve"})
	eve.run()
	eve.waitUntil("a failed attempt", 5*time.Second, func() bool { return eve.phase() == Reconnecting })
	if s := eve.c.State(); !strings.Contains(s.LastError, "certificate this computer does not trust") {
		t.Fatalf("last error %q", s.LastError)
	}
}

func TestDialErrorsSayWhatToCheck(t *testing.T) {
	notARelay := httptest.NewServer(http.NotFoundHandler())
	defer notARelay.Close()
	cases := map[string]struct{ url, want string }{
		"refused":   {closedPort(t), "refused the connection: is the relay running on that port?"},
		"not found": {notARelay.Listener.Addr().String(), "there is no Heartline relay at"},
	}
	for name, tc := range cases {
		m := newMember(t, Config{URL: tc.url, Name: "ann"})
		m.run()
		m.waitUntil(name+": a failed attempt", 5*time.Second, func() bool { return m.phase() == Reconnecting })
		if s := m.c.State(); !strings.Contains(s.LastError, tc.want) {
			t.Errorf("%s: last error %q, want it to contain %q", name, s.LastError, tc.want)
		}
		m.stop()
	}
}
