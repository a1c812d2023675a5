package netdiag_test

// These tests run Run against the real relay STUN responder and a real
// WebSocket endpoint on loopback. (Only this test package imports relay/;
// netdiag itself does not.)

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/heartline/heartline/relay/stunsrv"
	"github.com/heartline/heartline/shared/netdiag"
)

// relayLike serves /ws like the relay before a hello: it upgrades and
// reads (which answers pings) until the client goes away.
func relayLike(t *testing.T, tlsOn bool) *httptest.Server {
	t.Helper()
	up := websocket.Upgrader{}
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	})
	var srv *httptest.Server
	if tlsOn {
		srv = httptest.NewTLSServer(mux)
	} else {
		srv = httptest.NewServer(mux)
	}
	t.Cleanup(srv.Close)
	return srv
}

func stunResponder(t *testing.T) *stunsrv.Server {
	t.Helper()
	s, err := stunsrv.Listen(stunsrv.Config{Addr: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func wsURL(srv *httptest.Server) string {
	return strings.Replace(srv.URL, "http", "ws", 1) + "/ws"
}

func stageStatuses(r netdiag.Report) string {
	var b strings.Builder
	for _, s := range r.Stages {
		b.WriteString(s.Name + "=" + string(s.Status) + " ")
	}
	return b.String()
}

func TestRunAllGood(t *testing.T) {
	srv := relayLike(t, false)
	st := stunResponder(t)
	r := netdiag.Run(context.Background(), netdiag.Target{
		RelayURL:       wsURL(srv),
		STUNPorts:      st.Ports(),
		ObservedAddr:   "127.0.0.1:40000",
		PreviousPublic: "127.0.0.1:39999",
		Heartbeat:      netdiag.Heartbeat{Interval: 10 * time.Second, Timeout: 25 * time.Second},
		LastRTT:        12 * time.Millisecond,
	})
	for _, name := range []string{netdiag.StageDNS, netdiag.StageTCP, netdiag.StageWebSocket, netdiag.StageHeartbeat, netdiag.StageUDP} {
		if s := r.Stage(name); s.Status != netdiag.StatusOK {
			t.Errorf("stage %s: %s %s", name, s.Status, s.Detail)
		}
	}
	if s := r.Stage(netdiag.StageTLS); s.Status != netdiag.StatusSkipped {
		t.Errorf("TLS on ws://: %v", s)
	}
	if r.UDP.Status != netdiag.UDPAnswered || r.UDP.Loss != 0 || r.UDP.Received == 0 {
		t.Errorf("UDP = %+v, want answered without loss", r.UDP)
	}
	if !strings.HasPrefix(r.PublicAddr, "127.0.0.1:") {
		t.Errorf("public address %q, want the loopback mapping", r.PublicAddr)
	}
	if r.PublicChanged.Answer != netdiag.No || r.ObservedMatches.Answer != netdiag.Yes {
		t.Errorf("public changed %v, observed matches %v", r.PublicChanged, r.ObservedMatches)
	}
	// No NAT on loopback: one socket keeps its port towards both STUN ports.
	if r.MappingVaries.Answer != netdiag.No {
		t.Errorf("mapping varies = %v, want no", r.MappingVaries)
	}
	if r.PingRTT <= 0 {
		t.Errorf("no WebSocket ping measured")
	}
	if r.Verdict.Kind != netdiag.VerdictOK {
		t.Errorf("verdict %v", r.Verdict)
	}
	text := r.Text()
	t.Log("\n" + text)
	for _, s := range []string{
		"Relay: " + wsURL(srv), "Verdict: Everything works", "Next step: Nothing to do.",
		"[ok]", "UDP to STUN", "NAT mapping changes with dest. port:   no",
		"Heartbeat: ping every 10 s, link dead after 25 s", "Last heartbeat round trip: 12 ms",
		"STUN: 200 ms retransmit, 3 s budget",
	} {
		if !strings.Contains(text, s) {
			t.Errorf("report text lacks %q:\n%s", s, text)
		}
	}
}

func TestRunTLS(t *testing.T) {
	srv := relayLike(t, true)
	roots := srv.Client().Transport.(*http.Transport).TLSClientConfig
	url := strings.Replace(srv.URL, "https", "wss", 1)
	r := netdiag.Run(context.Background(), netdiag.Target{RelayURL: url, TLSConfig: roots})
	if s := r.Stage(netdiag.StageTLS); s.Status != netdiag.StatusOK {
		t.Fatalf("TLS stage: %+v", s)
	}
	if s := r.Stage(netdiag.StageWebSocket); s.Status != netdiag.StatusOK {
		t.Fatalf("WebSocket over TLS: %+v", s)
	}
	// UDP not checked (no STUN ports known), which is not an error.
	if r.Verdict.Kind != netdiag.VerdictOK || r.MappingVaries.Answer != netdiag.NotChecked {
		t.Fatalf("verdict %v, mapping %v", r.Verdict, r.MappingVaries)
	}

	// The same relay without its certificate trusted.
	r = netdiag.Run(context.Background(), netdiag.Target{RelayURL: url})
	if s := r.Stage(netdiag.StageTLS); s.Status != netdiag.StatusFailed || !strings.Contains(s.Detail, "not signed by an authority") {
		t.Fatalf("untrusted certificate: %+v", s)
	}
	if r.Verdict.Kind != netdiag.VerdictTLS {
		t.Fatalf("verdict %v", r.Verdict)
	}
}

func TestRunHostnameAndWrongPath(t *testing.T) {
	srv := relayLike(t, false)
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	// "localhost" comes from /etc/hosts: a real lookup, no DNS traffic.
	r := netdiag.Run(context.Background(), netdiag.Target{RelayURL: "ws://localhost:" + strconv.Itoa(port) + "/chat"})
	if s := r.Stage(netdiag.StageDNS); s.Status != netdiag.StatusOK || !strings.Contains(s.Detail, "localhost -> 127.0.0.1") {
		t.Fatalf("DNS stage: %+v", s)
	}
	if s := r.Stage(netdiag.StageWebSocket); s.Status != netdiag.StatusFailed || !strings.Contains(s.Detail, "404") {
		t.Fatalf("WebSocket at a wrong path: %+v", s)
	}
	if r.Verdict.Kind != netdiag.VerdictNotRelay {
		t.Fatalf("verdict %v", r.Verdict)
	}
}

func TestRunRelayNotListening(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	st := stunResponder(t)
	r := netdiag.Run(context.Background(), netdiag.Target{RelayURL: addr, STUNPorts: st.Ports()})
	if s := r.Stage(netdiag.StageTCP); s.Status != netdiag.StatusFailed || s.Problem != netdiag.ProblemRefused {
		t.Fatalf("TCP stage: %+v", s)
	}
	if s := r.Stage(netdiag.StageWebSocket); s.Status != netdiag.StatusSkipped {
		t.Fatalf("WebSocket stage after a failed connect: %+v", s)
	}
	if r.Verdict.Kind != netdiag.VerdictNotListening {
		t.Fatalf("verdict %v", r.Verdict)
	}
}

// A relay that accepts TCP but never answers the upgrade: the run ends on
// time with the WebSocket stage timed out.
func TestRunRelayHangsWithinBudget(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	t.Cleanup(func() {
		l.Close()
		for c := range accepted {
			c.Close()
		}
	})
	start := time.Now()
	r := netdiag.Run(context.Background(), netdiag.Target{RelayURL: l.Addr().String(), StepTimeout: 500 * time.Millisecond, Budget: 5 * time.Second})
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("run took %v with 500 ms steps", took)
	}
	if s := r.Stage(netdiag.StageWebSocket); s.Status != netdiag.StatusFailed || s.Problem != netdiag.ProblemTimeout {
		t.Fatalf("WebSocket stage: %+v", s)
	}
	if r.Verdict.Kind != netdiag.VerdictRelaySilent {
		t.Fatalf("verdict %v", r.Verdict)
	}

	// The overall budget wins over longer step timeouts.
	start = time.Now()
	r = netdiag.Run(context.Background(), netdiag.Target{RelayURL: l.Addr().String(), Budget: time.Second})
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("run took %v with a 1 s budget", took)
	}
	if s := r.Stage(netdiag.StageWebSocket); s.Status != netdiag.StatusFailed {
		t.Fatalf("WebSocket stage after the budget: %+v", s)
	}
}

func TestRunUDPFilteredAndClosed(t *testing.T) {
	srv := relayLike(t, false)
	silent, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	port := silent.LocalAddr().(*net.UDPAddr).Port
	start := time.Now()
	r := netdiag.Run(context.Background(), netdiag.Target{RelayURL: wsURL(srv), STUNPorts: []int{port}, STUNBudget: time.Second})
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("run took %v with a 1 s STUN budget", took)
	}
	if r.UDP.Status != netdiag.UDPFiltered || r.Verdict.Kind != netdiag.VerdictUDPBlocked {
		t.Fatalf("silent UDP: %v, verdict %v", r.UDP.Status, r.Verdict)
	}
	if r.Verdict.Summary != "UDP is blocked here: chat still works, diagnostics are limited." {
		t.Fatalf("summary %q", r.Verdict.Summary)
	}
	if r.PublicChanged.Answer != netdiag.NotChecked || r.MappingVaries.Answer != netdiag.NotChecked {
		t.Fatalf("unchecked findings must read 'not checked': %v %v", r.PublicChanged, r.MappingVaries)
	}

	silent.Close() // now the port is closed: the kernel refuses it
	r = netdiag.Run(context.Background(), netdiag.Target{RelayURL: wsURL(srv), STUNPorts: []int{port}})
	if r.UDP.Status != netdiag.UDPPortClosed || r.Verdict.Kind != netdiag.VerdictNoSTUN {
		t.Fatalf("closed UDP port: %v, verdict %v", r.UDP.Status, r.Verdict)
	}
}

func TestRunAfterDropAndAddressChange(t *testing.T) {
	srv := relayLike(t, false)
	st := stunResponder(t)
	drop := &netdiag.DropInfo{At: time.Now(), Cause: "heartbeat timeout", CloseCode: 1006, Detected: "no frame from the relay for 25 s"}
	r := netdiag.Run(context.Background(), netdiag.Target{RelayURL: wsURL(srv), STUNPorts: st.Ports(), Drop: drop})
	if r.Verdict.Kind != netdiag.VerdictInterrupted || !strings.Contains(r.Text(), "Last drop: heartbeat timeout") {
		t.Fatalf("verdict %v\n%s", r.Verdict, r.Text())
	}
	r = netdiag.Run(context.Background(), netdiag.Target{RelayURL: wsURL(srv), STUNPorts: st.Ports(), Drop: drop,
		PreviousPublic: "198.18.0.7:4000"})
	if r.PublicChanged.Answer != netdiag.Yes || r.Verdict.Kind != netdiag.VerdictNetworkChanged {
		t.Fatalf("changed %v, verdict %v", r.PublicChanged, r.Verdict)
	}
}

func TestRunBadAddress(t *testing.T) {
	r := netdiag.Run(context.Background(), netdiag.Target{RelayURL: "ftp://relay"})
	if r.Verdict.Kind != netdiag.VerdictBadAddress || r.Stage(netdiag.StageTCP).Status != netdiag.StatusSkipped {
		t.Fatalf("verdict %v, stages %s", r.Verdict, stageStatuses(r))
	}
}

// A relay whose pongs take longer than the wait for them (a slow or
// congested link): a late pong answers an earlier ping and must not be
// taken for the answer to a later one, which would report a round trip far
// shorter than the real one.
func TestRunLatePongIsNotCountedForTheNextPing(t *testing.T) {
	const lag = 450 * time.Millisecond // longer than the 300 ms step timeout below
	var answering sync.WaitGroup
	t.Cleanup(answering.Wait)
	up := websocket.Upgrader{}
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		c.SetPingHandler(func(data string) error {
			answering.Go(func() {
				time.Sleep(lag) // the link's delay, not a wait for the test
				c.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
			})
			return nil
		})
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	r := netdiag.Run(context.Background(), netdiag.Target{RelayURL: wsURL(srv), StepTimeout: 300 * time.Millisecond})
	hb := r.Stage(netdiag.StageHeartbeat)
	if r.PingRTT != 0 && r.PingRTT < lag {
		t.Fatalf("measured a %v ping round trip on a link that takes %v: a late pong was matched to a later ping (%s)", r.PingRTT, lag, hb.Detail)
	}
	if hb.Status != netdiag.StatusFailed || hb.Problem != netdiag.ProblemNoAnswer {
		t.Fatalf("heartbeat stage %+v, want no answer within the wait", hb)
	}
	if want := "3 pings, no answer within 300 ms each"; !strings.Contains(hb.Detail, want) {
		t.Errorf("heartbeat detail %q, want it to say %q", hb.Detail, want)
	}
}

// Run goes wherever the person's address points, which may be a WebSocket
// service that is not a relay and streams data at once. The check reads
// only to see pongs: it must not hold a whole frame in memory.
func TestRunDoesNotBufferAHugeFrame(t *testing.T) {
	const frame = 64 << 20
	up := websocket.Upgrader{}
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		go func() { // answers pings
			for {
				if _, _, err := c.NextReader(); err != nil {
					return
				}
			}
		}()
		wr, err := c.NextWriter(websocket.BinaryMessage)
		if err != nil {
			return
		}
		chunk := make([]byte, 32<<10)
		for sent := 0; sent < frame; sent += len(chunk) {
			if _, err := wr.Write(chunk); err != nil {
				return
			}
		}
		wr.Close()
		c.ReadMessage() // until the client goes away
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r := netdiag.Run(context.Background(), netdiag.Target{RelayURL: wsURL(srv), StepTimeout: time.Second})
	runtime.ReadMemStats(&after)
	if s := r.Stage(netdiag.StageWebSocket); s.Status != netdiag.StatusOK {
		t.Fatalf("WebSocket stage %+v", s)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > frame/4 {
		t.Fatalf("the check allocated %d MiB while a %d MiB frame streamed in: it buffers frames", grew>>20, frame>>20)
	}
}
