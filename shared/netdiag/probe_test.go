package netdiag

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v2"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeResponder answers Binding requests on a loopback socket the way any
// RFC 8489 server does; answerEvery lets it drop some, so loss is known.
// The full relay responder is exercised in run_test.go.
func fakeResponder(t *testing.T, answerEvery int) netip.AddrPort {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { c.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		seen := map[netip.AddrPort]int{}
		for {
			l, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			req := new(stun.Message)
			if stun.Decode(buf[:l], req) != nil {
				continue
			}
			seen[from]++
			if seen[from]%answerEvery != 0 {
				continue
			}
			res := stun.MustBuild(stun.NewTransactionIDSetter(req.TransactionID), stun.BindingSuccess,
				&stun.XORMappedAddress{IP: from.Addr().AsSlice(), Port: int(from.Port())}, stun.Fingerprint)
			c.WriteToUDPAddrPort(res.Raw, from)
		}
	}()
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

func TestProbeMeasuresLoss(t *testing.T) {
	srv := fakeResponder(t, 2) // answers every second request
	res := probeSTUN(context.Background(), probeConfig{Primary: srv, Interval: 20 * time.Millisecond, Budget: 3 * time.Second, Samples: 4})
	if res.Status != UDPAnswered || res.Received != 4 {
		t.Fatalf("status %v, %d answers, want answered with 4", res.Status, res.Received)
	}
	// Every other request is lost; the last may still be unanswered when
	// the probe stops (8 or 9 sent for 4 answers).
	if res.Loss < 0.45 || res.Loss > 0.6 {
		t.Fatalf("loss %.2f (%d sent, %d answered), want about half", res.Loss, res.Sent, res.Received)
	}
}

func TestProbePortClosed(t *testing.T) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	closed := c.LocalAddr().(*net.UDPAddr).AddrPort()
	c.Close() // nothing listens there now: the kernel answers "port unreachable"
	start := time.Now()
	res := probeSTUN(context.Background(), probeConfig{Primary: closed, Budget: 3 * time.Second})
	if res.Status != UDPPortClosed {
		t.Fatalf("status %v, want port closed", res.Status)
	}
	// ICMP comes back at once; the probe must not sit out its budget.
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("port closed took %v to notice", took)
	}
}

func TestProbeFilteredWithinBudget(t *testing.T) {
	// A socket that never answers: the requests vanish as behind a
	// firewall that drops them.
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const budget = time.Second
	start := time.Now()
	res := probeSTUN(context.Background(), probeConfig{Primary: c.LocalAddr().(*net.UDPAddr).AddrPort(), Budget: budget})
	took := time.Since(start)
	if res.Status != UDPFiltered {
		t.Fatalf("status %v, want filtered", res.Status)
	}
	if took < budget || took > budget+time.Second {
		t.Fatalf("took %v, want the budget of %v", took, budget)
	}
	// About one request per 200 ms interval.
	if res.Sent < 3 || res.Sent > 7 {
		t.Fatalf("%d requests in %v, want about %d", res.Sent, budget, budget/defaultSTUNInterval)
	}
}

func TestParseRelayURL(t *testing.T) {
	for in, want := range map[string]string{
		"relay.example:8080":       "ws://relay.example:8080/ws",
		"ws://relay.example":       "ws://relay.example/ws",
		"https://relay.example/ws": "wss://relay.example/ws",
		" wss://[::1]:443/chat ":   "wss://[::1]:443/chat",
	} {
		u, _, _, err := parseRelayURL(in)
		if err != nil || u.String() != want {
			t.Errorf("parseRelayURL(%q) = %v, %v; want %s", in, u, err, want)
		}
	}
	for _, bad := range []string{"", "ftp://x", "ws://:80", "ws://host:99999", "ws://host:abc"} {
		if _, _, _, err := parseRelayURL(bad); err == nil {
			t.Errorf("parseRelayURL(%q) accepted", bad)
		}
	}
}

func TestCompareInterfaces(t *testing.T) {
	prev := []string{"eth0 192.168.1.5/24", "wlan0 10.0.0.7/24"}
	if f := compareInterfaces(nil, prev); f.Answer != NotChecked {
		t.Errorf("no snapshot: %v", f)
	}
	if f := compareInterfaces(prev, prev); f.Answer != No {
		t.Errorf("same snapshot: %v", f)
	}
	f := compareInterfaces(prev, []string{"eth0 192.168.1.5/24", "wlan0 10.0.0.9/24"})
	if f.Answer != Yes || f.Detail != "gone: wlan0 10.0.0.7/24; new: wlan0 10.0.0.9/24" {
		t.Errorf("changed address: %v", f)
	}
}
