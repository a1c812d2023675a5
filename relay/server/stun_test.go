package server

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pion/stun/v2"
)

// freeUDPPair finds a port p such that p and p+1 are free on 127.0.0.1 (a
// STUN responder needs both).
func freeUDPPair(t *testing.T) int {
	t.Helper()
	for range 50 {
		a, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		p := a.LocalAddr().(*net.UDPAddr).Port
		b, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p + 1})
		a.Close()
		if err == nil {
			b.Close()
			return p
		}
	}
	t.Fatal("no free pair of UDP ports")
	return 0
}

// stunBinding asks 127.0.0.1:port for this socket's address.
func stunBinding(t *testing.T, port int) (*net.UDPAddr, error) {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	if _, err := c.WriteToUDP(req.Raw, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}); err != nil {
		return nil, err
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 1500)
	n, _, err := c.ReadFromUDP(buf)
	if err != nil {
		return nil, err
	}
	res := &stun.Message{Raw: buf[:n]}
	if err := res.Decode(); err != nil {
		return nil, err
	}
	var xor stun.XORMappedAddress
	if err := xor.GetFrom(res); err != nil {
		return nil, err
	}
	if got, want := xor.Port, c.LocalAddr().(*net.UDPAddr).Port; got != want {
		t.Errorf("XOR-MAPPED-ADDRESS port %d, want %d", got, want)
	}
	return &net.UDPAddr{IP: xor.IP, Port: xor.Port}, nil
}

// With STUNPort the relay answers STUN on that port and the next, announces
// both in the welcome, counts requests in /metrics, and frees the ports on
// Shutdown.
func TestSTUNResponderRunsWithTheRelay(t *testing.T) {
	port := freeUDPPair(t)
	cfg := fastConfig(t)
	cfg.STUNPort = port
	tr := startRelay(t, cfg)

	_, w := tr.join("lobby", "Alice", newKey())
	if len(w.STUN) != 2 || w.STUN[0] != port || w.STUN[1] != port+1 {
		t.Fatalf("welcome.stun = %v, want [%d %d]", w.STUN, port, port+1)
	}
	for _, p := range w.STUN {
		if _, err := stunBinding(t, p); err != nil {
			t.Fatalf("STUN on port %d: %v", p, err)
		}
	}
	_, body := tr.get("/metrics", nil)
	if !strings.Contains(string(body), `heartline_stun_requests_total{result="ok"} 2`) {
		t.Errorf("metrics do not count the two STUN replies")
	}
	if !strings.Contains(string(body), `heartline_stun_requests_total{result="rate_limited"} 0`) {
		t.Errorf("metrics do not export the STUN results that have not happened yet")
	}

	tr.stop()
	u, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		t.Fatalf("STUN port still held after Shutdown: %v", err)
	}
	u.Close()
}

// takenUDPPort returns a port (with a free next one) that another socket
// holds until the test ends.
func takenUDPPort(t *testing.T) int {
	t.Helper()
	port := freeUDPPair(t)
	hog, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hog.Close() })
	return port
}

// A STUN port that is taken fails Start with a message naming the fix.
func TestSTUNPortTakenFailsStart(t *testing.T) {
	port := takenUDPPort(t)
	cfg := fastConfig(t)
	cfg.STUNPort = port
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(t.Context())
	err = srv.Start()
	if err == nil || !strings.Contains(err.Error(), "--stun-port") {
		t.Fatalf("Start with a taken STUN port: %v; want an error naming --stun-port", err)
	}
}

// Without STUNPort there is no responder and the welcome lists no ports.
func TestNoSTUNByDefault(t *testing.T) {
	tr := startRelay(t, fastConfig(t))
	_, w := tr.join("lobby", "Alice", newKey())
	if len(w.STUN) != 0 {
		t.Errorf("welcome.stun = %v without a responder", w.STUN)
	}
}

// With STUNOptional (the desktop's host mode) a taken STUN port leaves the
// relay running without STUN: Start succeeds, chat works, and the welcome
// announces no STUN ports.
func TestSTUNPortTakenWithSTUNOptionalRunsWithoutSTUN(t *testing.T) {
	port := takenUDPPort(t)
	cfg := fastConfig(t)
	cfg.STUNPort, cfg.STUNOptional = port, true
	tr := startRelay(t, cfg)
	_, w := tr.join("lobby", "Alice", newKey())
	if len(w.STUN) != 0 {
		t.Errorf("welcome.stun = %v, want none: the responder could not bind", w.STUN)
	}
}
