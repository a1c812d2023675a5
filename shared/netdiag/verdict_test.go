package netdiag

import (
	"strings"
	"testing"
	"time"
)

func ok(name string) Stage { return Stage{Name: name, Status: StatusOK} }
func failed(name string, p Problem) Stage {
	return Stage{Name: name, Status: StatusFailed, Problem: p, Detail: "detail"}
}

var allOK = []Stage{
	{Name: StageDNS, Status: StatusOK, Detail: "relay.example -> 198.18.0.1"},
	ok(StageTCP), ok(StageTLS), ok(StageWebSocket), ok(StageHeartbeat), ok(StageUDP),
}

func with(stages []Stage, replace ...Stage) []Stage {
	out := append([]Stage(nil), stages...)
	for _, r := range replace {
		for i := range out {
			if out[i].Name == r.Name {
				out[i] = r
			}
		}
	}
	return out
}

func TestClassify(t *testing.T) {
	answered := UDPResult{Status: UDPAnswered, Sent: 4, Received: 4}
	ifaces := []string{"eth0 198.18.0.2/24"}
	cases := []struct {
		name    string
		r       Report
		want    VerdictKind
		summary string // a part of the summary a person must read
	}{
		{"bad address", Report{Stages: []Stage{failed(StageAddress, ProblemBadAddress)}}, VerdictBadAddress, "not valid"},
		{"no interfaces, DNS times out", Report{Interfaces: []string{}, Stages: []Stage{failed(StageDNS, ProblemTimeout)}}, VerdictNoNetwork, "No network"},
		{"DNS unreachable", Report{Interfaces: ifaces, Stages: []Stage{failed(StageDNS, ProblemUnreachable)}}, VerdictNoNetwork, "No network"},
		{"name not found", Report{Interfaces: ifaces, Stages: []Stage{failed(StageDNS, ProblemNotFound)}}, VerdictDNS, "does not exist"},
		{"DNS server silent", Report{Interfaces: ifaces, Stages: []Stage{failed(StageDNS, ProblemTimeout)}}, VerdictDNS, "DNS server does not answer"},
		{"no route to relay", Report{Interfaces: ifaces, Stages: with(allOK, failed(StageTCP, ProblemUnreachable))}, VerdictNoNetwork, "No network"},
		{"refused", Report{Interfaces: ifaces, Stages: with(allOK, failed(StageTCP, ProblemRefused))}, VerdictNotListening, "not running"},
		{"relay down", Report{Interfaces: ifaces, Stages: with(allOK, failed(StageTCP, ProblemTimeout)), UDP: UDPResult{Status: UDPFiltered}},
			VerdictRelayDown, "Your internet works but the relay does not answer: it may be down."},
		{"relay down, IP literal", Report{Interfaces: ifaces, Stages: with(allOK, Stage{Name: StageDNS, Status: StatusOK, Detail: literalDetail}, failed(StageTCP, ProblemTimeout))},
			VerdictRelayDown, "Your network is up but the relay does not answer"},
		{"TCP blocked, UDP fine", Report{Interfaces: ifaces, Stages: with(allOK, failed(StageTCP, ProblemTimeout)), UDP: answered}, VerdictTCPBlocked, "firewall"},
		{"TLS", Report{Stages: with(allOK, failed(StageTLS, ProblemTLS))}, VerdictTLS, "secure connection"},
		{"not a relay", Report{Stages: with(allOK, failed(StageWebSocket, ProblemHTTP))}, VerdictNotRelay, "not a Heartline relay"},
		{"upgrade hangs", Report{Stages: with(allOK, failed(StageWebSocket, ProblemTimeout))}, VerdictRelaySilent, "overloaded"},
		{"no pongs", Report{Stages: with(allOK, failed(StageHeartbeat, ProblemNoAnswer))}, VerdictRelaySilent, "does not answer pings"},
		{"public address changed", Report{Stages: allOK, UDP: answered, PublicChanged: Finding{Answer: Yes},
			Drop: &DropInfo{Cause: "connection reset"}}, VerdictNetworkChanged, "Your network changed address"},
		{"interfaces changed", Report{Stages: allOK, InterfacesChanged: Finding{Answer: Yes}}, VerdictNetworkChanged, "changed address"},
		{"slow consumer", Report{Stages: allOK, UDP: answered, Drop: &DropInfo{Cause: "closed by relay: 4001 slow", CloseCode: 4001}}, VerdictRelayClosed, "could not keep up"},
		{"name taken", Report{Stages: allOK, Drop: &DropInfo{Cause: "closed by relay", CloseCode: 4501}}, VerdictRelayClosed, "name is taken"},
		{"replaced", Report{Stages: allOK, Drop: &DropInfo{Cause: "closed by relay", CloseCode: 4002}}, VerdictRelayClosed, "another window or device"},
		{"lossy", Report{Stages: allOK, UDP: UDPResult{Status: UDPAnswered, Sent: 10, Received: 6, Loss: 0.4}}, VerdictLossy, "40% lost"},
		{"heartbeat timeout, path fine now", Report{Stages: allOK, UDP: answered, Drop: &DropInfo{Cause: "heartbeat timeout"}}, VerdictInterrupted, "interrupted (heartbeat timeout)"},
		{"drop with UDP blocked: the drop matters more", Report{Stages: allOK, UDP: UDPResult{Status: UDPFiltered}, Drop: &DropInfo{Cause: "connection reset"}}, VerdictInterrupted, "interrupted"},
		{"UDP blocked", Report{Stages: allOK, UDP: UDPResult{Status: UDPFiltered, Sent: 15}}, VerdictUDPBlocked, "UDP is blocked here: chat still works, diagnostics are limited."},
		{"STUN port closed", Report{Stages: allOK, UDP: UDPResult{Status: UDPPortClosed}}, VerdictNoSTUN, "port is closed"},
		{"all good", Report{Stages: allOK, UDP: answered, PingRTT: 23 * time.Millisecond}, VerdictOK, "Everything works: the relay answers in 23 ms."},
		// "not checked" never counts as "no change" nor as "changed".
		{"unchecked findings", Report{Stages: allOK, PublicChanged: Finding{Answer: NotChecked}, InterfacesChanged: Finding{Answer: NotChecked}}, VerdictOK, "Everything works"},
	}
	for _, tc := range cases {
		v := Classify(tc.r)
		if v.Kind != tc.want || !strings.Contains(v.Summary, tc.summary) {
			t.Errorf("%s: got %q %q, want %q containing %q", tc.name, v.Kind, v.Summary, tc.want, tc.summary)
		}
		if v.NextStep == "" || !strings.HasSuffix(v.NextStep, ".") || !strings.HasSuffix(v.Summary, ".") {
			t.Errorf("%s: %q / next step %q: want a sentence and one next step", tc.name, v.Summary, v.NextStep)
		}
	}
}

func TestTriZeroIsNotChecked(t *testing.T) {
	var r Report
	if r.MappingVaries.Answer != NotChecked || r.MappingVaries.String() != "not checked" {
		t.Fatalf("zero Finding reads %q", r.MappingVaries)
	}
}

// The NAT check compares what one socket looks like towards the two STUN
// ports. When only the second, connected socket (which asks the primary
// port to learn of a closed port at once) got the primary's answer, its
// mapping is another socket's: comparing it with the main socket's
// alternate mapping would call a NAT "hard" that is not.
func TestMappingVariesComparesOneSocketOnly(t *testing.T) {
	r := Report{UDP: UDPResult{
		Status: UDPAnswered, Server: "198.18.0.1:3478", Alternate: "198.18.0.1:3479",
		Sent: 10, Received: 0, // every request of the main socket to the primary was lost
		Mapped:    "198.18.1.2:40001", // the connected socket's answer
		AltMapped: "198.18.1.2:40000", // the main socket's answer
	}}
	r.fillFindings(Target{})
	if r.MappingVaries.Answer != NotChecked {
		t.Fatalf("mapping varies = %v from two sockets' mappings, want not checked", r.MappingVaries)
	}
	r.UDP.Received, r.UDP.Mapped = 1, "198.18.1.2:40000"
	r.fillFindings(Target{})
	if r.MappingVaries.Answer != No {
		t.Fatalf("mapping varies = %v for one socket with one mapping, want no", r.MappingVaries)
	}
}
