package netdiag

import (
	"fmt"

	"github.com/heartline/heartline/shared/protocol"
)

// VerdictKind names a verdict, for icons and tests; Summary and NextStep
// are what a person reads.
type VerdictKind string

const (
	VerdictOK             VerdictKind = "ok"
	VerdictBadAddress     VerdictKind = "bad address"
	VerdictNoNetwork      VerdictKind = "no network"
	VerdictDNS            VerdictKind = "dns"
	VerdictRelayDown      VerdictKind = "relay down"
	VerdictNotListening   VerdictKind = "relay not listening"
	VerdictTCPBlocked     VerdictKind = "tcp blocked"
	VerdictTLS            VerdictKind = "tls"
	VerdictNotRelay       VerdictKind = "not a relay"
	VerdictRelaySilent    VerdictKind = "relay silent"
	VerdictNetworkChanged VerdictKind = "network changed"
	VerdictRelayClosed    VerdictKind = "relay closed the link"
	VerdictLossy          VerdictKind = "packet loss"
	VerdictInterrupted    VerdictKind = "interrupted"
	VerdictUDPBlocked     VerdictKind = "udp blocked"
	VerdictNoSTUN         VerdictKind = "no stun"
)

// Verdict is the report's conclusion in plain words, with one next step.
type Verdict struct {
	Kind     VerdictKind
	Summary  string
	NextStep string
}

func (v Verdict) String() string { return v.Summary + " " + v.NextStep }

// lossWorthMentioning is the STUN loss from which the network itself is
// blamed for drops.
const lossWorthMentioning = 0.2

// Classify derives the verdict from the stages and findings. The first
// failing stage decides; when the whole path works, what changed or what the
// drop says decides.
func Classify(r Report) Verdict {
	noIfaces := r.Interfaces != nil && len(r.Interfaces) == 0
	addr, dns, tcp := r.Stage(StageAddress), r.Stage(StageDNS), r.Stage(StageTCP)
	tlsStage, ws, hb := r.Stage(StageTLS), r.Stage(StageWebSocket), r.Stage(StageHeartbeat)
	internet := "Your network is up"
	if dns.Status == StatusOK && dns.Problem == ProblemNone && !isLiteral(dns) {
		internet = "Your internet works" // a public name was resolved
	}
	switch {
	case addr.Status == StatusFailed:
		return Verdict{VerdictBadAddress, "The relay address is not valid: " + addr.Detail + ".",
			"Check the address in the settings (for example ws://relay.example.org:8080/ws)."}

	case dns.Status == StatusFailed && (noIfaces || dns.Problem == ProblemUnreachable):
		return noNetwork()
	case dns.Status == StatusFailed && dns.Problem == ProblemNotFound:
		return Verdict{VerdictDNS, "The relay's name does not exist: " + dns.Detail + ".",
			"Check the relay address for typos."}
	case dns.Status == StatusFailed:
		return Verdict{VerdictDNS, "The relay's name could not be looked up: your DNS server does not answer.",
			"Check your Wi-Fi or cable; if websites work, restart your router."}

	case tcp.Status == StatusFailed && (noIfaces || tcp.Problem == ProblemUnreachable):
		return noNetwork()
	case tcp.Status == StatusFailed && tcp.Problem == ProblemRefused:
		return Verdict{VerdictNotListening, "The relay's computer answers but the relay is not running on that port.",
			"Check the port in the address, or ask the relay's host to start it."}
	case tcp.Status == StatusFailed && r.UDP.Status == UDPAnswered:
		return Verdict{VerdictTCPBlocked, "The relay's computer answers on UDP but not on its chat port: a firewall blocks it.",
			"Ask the relay's host (or your network admin) to allow the chat port."}
	case tcp.Status == StatusFailed:
		return Verdict{VerdictRelayDown, internet + " but the relay does not answer: it may be down.",
			"Try again later or ask its host."}

	case tlsStage.Status == StatusFailed:
		return Verdict{VerdictTLS, "The secure connection to the relay failed: " + tlsStage.Detail + ".",
			"Check your computer's clock and the address; if both are right, ask the relay's host about its certificate."}
	case ws.Status == StatusFailed && ws.Problem == ProblemTimeout:
		return Verdict{VerdictRelaySilent, "The relay accepts connections but does not answer: it may be overloaded.",
			"Try again in a few minutes or ask its host."}
	case ws.Status == StatusFailed:
		return Verdict{VerdictNotRelay, "Something answers at that address, but not a Heartline relay: " + ws.Detail + ".",
			"Check the address (it usually ends in /ws) or ask the relay's host."}
	case hb.Status == StatusFailed:
		return Verdict{VerdictRelaySilent, "The relay accepts connections but does not answer pings: it may be overloaded.",
			"Try again in a few minutes or ask its host."}
	}

	// The path to the relay works now.
	if r.PublicChanged.Answer == Yes || r.InterfacesChanged.Answer == Yes {
		return Verdict{VerdictNetworkChanged, "Your network changed address: the old link was lost, and the relay answers on the new one.",
			"Nothing to do: the app reconnects by itself."}
	}
	if d := r.Drop; d != nil && d.CloseCode >= 4000 {
		// The relay chose to end the link; its close code says why.
		if protocol.ShouldReconnect(d.CloseCode) {
			return Verdict{VerdictRelayClosed, protocol.CloseText(d.CloseCode),
				"Nothing to do: the app reconnects by itself. If it keeps happening, send this report to the relay's host."}
		}
		next := "After that, connect again."
		switch d.CloseCode {
		case protocol.CloseReplaced:
			next = "Use the other window, or connect again here to take over."
		case protocol.CloseKicked:
			next = "Ask the room's host if you think this is a mistake."
		}
		return Verdict{VerdictRelayClosed, protocol.CloseText(d.CloseCode), next}
	}
	if r.UDP.Status == UDPAnswered && r.UDP.Sent >= 3 && r.UDP.Loss >= lossWorthMentioning {
		return Verdict{VerdictLossy, fmt.Sprintf("Your network is losing packets (%.0f%% lost on the way to the relay): the link may drop again.", r.UDP.Loss*100),
			"Move closer to the Wi-Fi router or use a cable."}
	}
	if d := r.Drop; d != nil {
		return Verdict{VerdictInterrupted, "The link was interrupted (" + d.Cause + "), but the relay answers again now: the network had a short outage.",
			"Nothing to do: the app reconnects by itself. If it keeps happening, send this report to the relay's host."}
	}
	switch r.UDP.Status {
	case UDPFiltered:
		return Verdict{VerdictUDPBlocked, "UDP is blocked here: chat still works, diagnostics are limited.",
			"Nothing to do for chat; ask your network admin to allow UDP if you need the full diagnosis."}
	case UDPPortClosed:
		return Verdict{VerdictNoSTUN, "The relay does not answer STUN (its UDP port is closed): chat works, diagnostics are limited.",
			"Nothing to do for chat; the relay's host can enable STUN for the full diagnosis."}
	}
	rtt := r.PingRTT
	if rtt == 0 {
		rtt = r.LastRTT
	}
	s := "Everything works: the relay answers."
	if rtt > 0 {
		s = "Everything works: the relay answers in " + roundDur(rtt) + "."
	}
	return Verdict{VerdictOK, s, "Nothing to do."}
}

func noNetwork() Verdict {
	return Verdict{VerdictNoNetwork, "No network: this computer cannot reach the internet.", "Check your Wi-Fi or cable."}
}

// isLiteral reports whether the DNS stage had nothing to resolve.
func isLiteral(dns Stage) bool { return dns.Detail == literalDetail }

const literalDetail = "an IP address, nothing to look up"
