package nstest

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/heartline/heartline/internal/testutil"
	"github.com/heartline/heartline/shared/netdiag"
)

func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(runRole(role))
	}
	os.Exit(m.Run())
}

// needRoot skips unless namespaces, veth pairs and iptables can be used.
func needRoot(t *testing.T) {
	t.Helper()
	testutil.NeedNetNS(t, "iptables")
}

// topo is three namespaces: client -- nat -- relay.
type topo struct {
	t                  *testing.T
	client, nat, relay string
}

// newTopo creates the namespaces and links; t.Cleanup deletes them.
func newTopo(t *testing.T) *topo {
	t.Helper()
	ns := testutil.NewNetNS(t, "hl", "c", "n", "r")
	tp := &topo{t: t, client: ns[0], nat: ns[1], relay: ns[2]}
	steps := [][]string{
		// The veth ends are created straight inside the namespaces: no name
		// ever appears in the host's namespace.
		{"ip", "link", "add", "name", "c0", "netns", tp.client, "type", "veth", "peer", "name", "n0", "netns", tp.nat},
		{"ip", "link", "add", "name", "n1", "netns", tp.nat, "type", "veth", "peer", "name", "r0", "netns", tp.relay},
		{"ip", "-n", tp.client, "addr", "add", clientIP + "/24", "dev", "c0"},
		{"ip", "-n", tp.nat, "addr", "add", natInside + "/24", "dev", "n0"},
		{"ip", "-n", tp.nat, "addr", "add", natOutside + "/24", "dev", "n1"},
		{"ip", "-n", tp.relay, "addr", "add", relayIP + "/24", "dev", "r0"},
		{"ip", "-n", tp.relay, "addr", "add", relayIP2 + "/24", "dev", "r0"},
	}
	for _, ns := range []string{tp.client, tp.nat, tp.relay} {
		steps = append(steps, []string{"ip", "-n", ns, "link", "set", "lo", "up"})
	}
	steps = append(steps,
		[]string{"ip", "-n", tp.client, "link", "set", "c0", "up"},
		[]string{"ip", "-n", tp.nat, "link", "set", "n0", "up"},
		[]string{"ip", "-n", tp.nat, "link", "set", "n1", "up"},
		[]string{"ip", "-n", tp.relay, "link", "set", "r0", "up"},
		[]string{"ip", "-n", tp.client, "route", "add", "default", "via", natInside},
		// Without NAT the relay must route replies back to the client's
		// network through the middle namespace.
		[]string{"ip", "-n", tp.relay, "route", "add", "198.18.1.0/24", "via", natOutside},
		[]string{"ip", "netns", "exec", tp.nat, "sysctl", "-qw", "net.ipv4.ip_forward=1"},
	)
	testutil.RunAll(t, steps...)
	return tp
}

func (tp *topo) iptables(args ...string) {
	tp.t.Helper()
	testutil.RunAll(tp.t, append([]string{"ip", "netns", "exec", tp.nat, "iptables"}, args...))
}

func (tp *topo) masquerade(extra ...string) {
	tp.iptables(append([]string{"-t", "nat", "-A", "POSTROUTING", "-o", "n1", "-j", "MASQUERADE"}, extra...)...)
}

// start runs the test binary again inside ns, playing role.
func (tp *topo) start(ns, role string, env ...string) *testutil.Child {
	tp.t.Helper()
	return testutil.StartInNetNS(tp.t, ns, roleEnv, role, env...)
}

func (tp *topo) startRelay() *testutil.Child {
	h := tp.start(tp.relay, "relay")
	h.Expect("READY", 15*time.Second)
	return h
}

func (tp *topo) diagnose(target netdiag.Target) netdiag.Report {
	tp.t.Helper()
	b, _ := json.Marshal(target)
	h := tp.start(tp.client, "diag", targetEnv+"="+string(b))
	var r netdiag.Report
	if err := json.Unmarshal([]byte(h.Expect("REPORT", 30*time.Second)), &r); err != nil {
		tp.t.Fatal(err)
	}
	tp.t.Log("\n" + r.Text())
	return r
}

func defaultTarget() netdiag.Target {
	return netdiag.Target{RelayURL: relayURL(), STUNPorts: []int{stunPort, stunPort + 1}}
}

func publicIP(t *testing.T, r netdiag.Report) string {
	t.Helper()
	ip, _, ok := strings.Cut(r.PublicAddr, ":")
	if !ok {
		t.Fatalf("no public address in the report (UDP %v)", r.UDP.Status)
	}
	return ip
}

func stagesOK(t *testing.T, r netdiag.Report, names ...string) {
	t.Helper()
	for _, n := range names {
		if s := r.Stage(n); s.Status != netdiag.StatusOK {
			t.Errorf("stage %s: %s (%s)", n, s.Status, s.Detail)
		}
	}
}

func TestNoNAT(t *testing.T) {
	needRoot(t)
	tp := newTopo(t)
	tp.startRelay()
	r := tp.diagnose(defaultTarget())
	stagesOK(t, r, netdiag.StageTCP, netdiag.StageWebSocket, netdiag.StageHeartbeat, netdiag.StageUDP)
	if ip := publicIP(t, r); ip != clientIP {
		t.Errorf("public IP %s, want the client's own %s (no NAT)", ip, clientIP)
	}
	if r.MappingVaries.Answer != netdiag.No || r.Verdict.Kind != netdiag.VerdictOK {
		t.Errorf("mapping varies %v, verdict %v", r.MappingVaries, r.Verdict)
	}
}

func TestMasqueradeKeepsMapping(t *testing.T) {
	needRoot(t)
	tp := newTopo(t)
	tp.masquerade()
	tp.startRelay()
	r := tp.diagnose(defaultTarget())
	stagesOK(t, r, netdiag.StageTCP, netdiag.StageWebSocket, netdiag.StageUDP)
	if ip := publicIP(t, r); ip != natOutside {
		t.Errorf("public IP %s, want the NAT's %s", ip, natOutside)
	}
	if r.MappingVaries.Answer != netdiag.No {
		t.Errorf("mapping varies = %v, want no (MASQUERADE keeps the source port)", r.MappingVaries)
	}
	if r.Verdict.Kind != netdiag.VerdictOK {
		t.Errorf("verdict %v", r.Verdict)
	}
}

func TestMasqueradeRandomFullyVariesMapping(t *testing.T) {
	needRoot(t)
	tp := newTopo(t)
	tp.masquerade("--random-fully")
	tp.startRelay()
	r := tp.diagnose(defaultTarget())
	if ip := publicIP(t, r); ip != natOutside {
		t.Errorf("public IP %s, want the NAT's %s", ip, natOutside)
	}
	if r.MappingVaries.Answer != netdiag.Yes {
		t.Errorf("mapping varies = %v, want yes (--random-fully picks a port per destination)", r.MappingVaries)
	}
}

func TestUDPDropped(t *testing.T) {
	needRoot(t)
	tp := newTopo(t)
	tp.masquerade()
	tp.iptables("-A", "FORWARD", "-p", "udp", "-j", "DROP")
	tp.startRelay()
	start := time.Now()
	r := tp.diagnose(defaultTarget())
	took := time.Since(start)
	stagesOK(t, r, netdiag.StageTCP, netdiag.StageWebSocket, netdiag.StageHeartbeat)
	if r.UDP.Status != netdiag.UDPFiltered {
		t.Errorf("UDP %v, want filtered", r.UDP.Status)
	}
	if r.MappingVaries.Answer != netdiag.NotChecked || r.PublicChanged.Answer != netdiag.NotChecked {
		t.Errorf("without STUN these are not checked: %v, %v", r.MappingVaries, r.PublicChanged)
	}
	if r.Verdict.Kind != netdiag.VerdictUDPBlocked {
		t.Errorf("verdict %v", r.Verdict)
	}
	if took > 10*time.Second {
		t.Errorf("diagnosis took %v with a 3 s STUN budget", took)
	}
}

func TestUDPLoss(t *testing.T) {
	needRoot(t)
	tp := newTopo(t)
	tp.masquerade()
	// 60% of the requests vanish on the way to the relay (no netem here).
	tp.iptables("-A", "FORWARD", "-i", "n0", "-p", "udp", "-m", "statistic", "--mode", "random", "--probability", "0.6", "-j", "DROP")
	tp.startRelay()
	// 20 answers wanted: measuring under 20% loss when 60% is lost has a
	// probability of about 4e-5.
	target := defaultTarget()
	target.STUNSamples, target.STUNInterval = 20, 50*time.Millisecond
	r := tp.diagnose(target)
	if r.UDP.Status != netdiag.UDPAnswered || r.UDP.Loss < 0.2 {
		t.Errorf("UDP %v, loss %.2f (%d/%d), want answered with about half lost", r.UDP.Status, r.UDP.Loss, r.UDP.Received, r.UDP.Sent)
	}
	if r.Verdict.Kind != netdiag.VerdictLossy {
		t.Errorf("verdict %v", r.Verdict)
	}
}

// The TCP path goes silent after the client joined (no RST, no FIN): the
// client engine must notice by heartbeat timeout, the relay must reap the
// member, and the report must say that TCP is blocked while UDP works.
func TestTCPSilentlyDroppedAfterConnect(t *testing.T) {
	needRoot(t)
	tp := newTopo(t)
	tp.masquerade()
	relay := tp.startRelay()
	c := tp.start(tp.client, "client")
	var welcomed struct {
		Observed, Public string
		STUN             []int
	}
	json.Unmarshal([]byte(c.Expect("WELCOMED", 20*time.Second)), &welcomed)
	relay.Expect("STATE alice online", 5*time.Second)
	if !strings.HasPrefix(welcomed.Observed, natOutside+":") {
		t.Errorf("relay observed %q, want the NAT's address", welcomed.Observed)
	}

	tp.iptables("-I", "FORWARD", "-p", "tcp", "-j", "DROP")
	cut := time.Now()

	var drop struct {
		Cause, Detected string
		SilentForMS     int64 `json:"silent_for_ms"`
	}
	json.Unmarshal([]byte(c.Expect("DROPPED", 10*time.Second)), &drop)
	noticed := time.Since(cut)
	// One heartbeat timeout of silence, checked every interval or so.
	if noticed > hbTimeout+2*hbInterval+time.Second {
		t.Errorf("client noticed the dead path after %v, want within about %v", noticed, hbTimeout)
	}
	if drop.Detected != "heartbeat timeout" {
		t.Errorf("drop detected by %q (%s), want heartbeat timeout", drop.Detected, drop.Cause)
	}
	relay.Expect("STATE alice away", hbTimeout+3*time.Second)
	t.Logf("client noticed after %v: %s", noticed.Round(time.Millisecond), drop.Cause)

	var r netdiag.Report
	if err := json.Unmarshal([]byte(c.Expect("REPORT", 30*time.Second)), &r); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + r.Text())
	if s := r.Stage(netdiag.StageTCP); s.Status != netdiag.StatusFailed || s.Problem != netdiag.ProblemTimeout {
		t.Errorf("TCP stage %v (%s), want a timeout", s.Status, s.Detail)
	}
	if r.UDP.Status != netdiag.UDPAnswered || r.ObservedMatches.Answer != netdiag.Yes || r.PublicChanged.Answer != netdiag.No {
		t.Errorf("UDP %v, observed matches %v, public changed %v", r.UDP.Status, r.ObservedMatches, r.PublicChanged)
	}
	if r.Verdict.Kind != netdiag.VerdictTCPBlocked || r.Drop == nil || !strings.Contains(r.Text(), "detected by heartbeat timeout") {
		t.Errorf("verdict %v, drop %+v", r.Verdict, r.Drop)
	}
}
