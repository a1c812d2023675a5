// Package netdiag explains a dropped link in plain words. Run checks the path
// to a relay stage by stage (DNS, TCP, TLS, WebSocket, heartbeat, UDP/STUN),
// looks at the public address and the NAT's behaviour, and turns it all into
// a verdict with one next step and a report a person can paste into a
// support chat. It needs only the relay's address; what the chat client knows
// (the last drop, the address the relay saw, the previous public address)
// makes the verdict sharper.
package netdiag

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Target is what Run checks and what the caller already knows. Only
// RelayURL is required; every other field sharpens the report.
type Target struct {
	// RelayURL is "ws://host:port/ws", "wss://...", or "host:port" (ws://
	// and /ws are added).
	RelayURL string
	// STUNPorts are the relay's STUN ports from welcome.stun: primary first,
	// then the alternate. nil = UDP not checked.
	STUNPorts []int
	// ObservedAddr is welcome.observed_addr ("ip:port" the relay saw on the
	// last connection). "" = not compared.
	ObservedAddr string
	// PreviousPublic is the public address STUN reported on the last good
	// connection (a Report's PublicAddr). "" = not compared.
	PreviousPublic string
	// PreviousInterfaces is an Interfaces() snapshot from the last good
	// connection. nil = not compared.
	PreviousInterfaces []string
	// Drop describes how the last link ended. nil = an on-demand check.
	Drop *DropInfo
	// Heartbeat is the timers the link used (welcome.heartbeat). Zero = unknown.
	Heartbeat Heartbeat
	// LastRTT is the chat client's last heartbeat round trip. 0 = unknown.
	LastRTT time.Duration

	// TLSConfig is used for wss:// relays. nil = system roots, server name
	// from the URL.
	TLSConfig *tls.Config
	// Budget bounds the whole run. 0 = 15 s.
	Budget time.Duration
	// StepTimeout bounds each of DNS, TCP, TLS and the WebSocket upgrade,
	// and the wait for each heartbeat ping's answer when it is under 2 s.
	// 0 = 5 s.
	StepTimeout time.Duration
	// STUNBudget bounds the UDP probe. 0 = 3 s.
	STUNBudget time.Duration
	// STUNInterval is the time between STUN requests (the retransmit
	// timeout). 0 = 200 ms.
	STUNInterval time.Duration
	// STUNSamples is how many answered requests the probe waits for before
	// it stops; more give a finer loss figure. 0 = 4.
	STUNSamples int
	// Logger receives debug messages. nil = discard.
	Logger *slog.Logger
}

// DropInfo is how the chat client noticed the link was gone (the client
// engine's LinkDropped event, mapped field by field).
type DropInfo struct {
	At        time.Time
	Cause     string // "heartbeat timeout", "connection reset", "closed by relay: 4001 ..."
	CloseCode int    // WebSocket close code, 0 if none was received
	Detected  string // how, e.g. "no frame from the relay for 25 s"
}

// Heartbeat holds the link's timers.
type Heartbeat struct {
	Interval time.Duration // the client pings this often
	Timeout  time.Duration // silence after which either side gives up
}

// Status of a stage.
type Status string

const (
	StatusOK      Status = "ok"
	StatusFailed  Status = "failed"
	StatusSkipped Status = "skipped"
)

// Problem classifies a failed stage, for the verdict.
type Problem string

const (
	ProblemNone        Problem = ""
	ProblemBadAddress  Problem = "bad address"
	ProblemNotFound    Problem = "name not found"
	ProblemTimeout     Problem = "timeout"
	ProblemRefused     Problem = "refused"
	ProblemUnreachable Problem = "unreachable"
	ProblemTLS         Problem = "tls"
	ProblemHTTP        Problem = "http"
	ProblemNoAnswer    Problem = "no answer"
	ProblemOther       Problem = "other"
)

// Stage names, in the order they run.
const (
	StageAddress   = "Relay address"
	StageDNS       = "DNS lookup"
	StageTCP       = "TCP connect"
	StageTLS       = "TLS handshake"
	StageWebSocket = "WebSocket upgrade"
	StageHeartbeat = "Heartbeat"
	StageUDP       = "UDP to STUN"
)

// Stage is one step of the check, as the UI shows it.
type Stage struct {
	Name     string
	Status   Status
	Detail   string // one line a person can read
	Duration time.Duration
	Problem  Problem // why it failed; ProblemNone otherwise
}

// Tri is a yes/no answer that may not have been checked. The zero value is
// NotChecked, so a check that did not run never reads as "no".
type Tri int

const (
	NotChecked Tri = iota
	Yes
	No
)

func (t Tri) String() string {
	switch t {
	case Yes:
		return "yes"
	case No:
		return "no"
	default:
		return "not checked"
	}
}

// Finding is a Tri with the reason behind it.
type Finding struct {
	Answer Tri
	Detail string
}

func (f Finding) String() string {
	if f.Detail == "" {
		return f.Answer.String()
	}
	return f.Answer.String() + " (" + f.Detail + ")"
}

// Report is the result of Run.
type Report struct {
	Started  time.Time
	Duration time.Duration
	Relay    string // the normalized relay URL
	Stages   []Stage
	UDP      UDPResult

	// PublicAddr is the public "ip:port" STUN saw ("" if unknown). Keep it
	// as the next run's Target.PreviousPublic when the link is good.
	PublicAddr string
	// PublicChanged: did the public IP change since the last good connection?
	PublicChanged Finding
	// ObservedMatches: does the IP the relay saw on TCP equal the STUN IP?
	ObservedMatches Finding
	// MappingVaries: does the NAT give the same socket another public port
	// towards the alternate STUN port (a "hard", address-and-port-dependent
	// mapping)?
	MappingVaries Finding
	// Interfaces is this run's snapshot; keep it as the next run's
	// Target.PreviousInterfaces when the link is good.
	Interfaces []string
	// InterfacesChanged: did the local addresses change since then?
	InterfacesChanged Finding

	Heartbeat Heartbeat
	LastRTT   time.Duration
	PingRTT   time.Duration // WebSocket ping measured now; 0 = none answered
	// STUNInterval and STUNBudget are the probe's timers.
	STUNInterval, STUNBudget time.Duration
	Drop                     *DropInfo

	Verdict Verdict
}

// Stage returns the stage with the given name, or a skipped one.
func (r Report) Stage(name string) Stage {
	for _, s := range r.Stages {
		if s.Name == name {
			return s
		}
	}
	return Stage{Name: name, Status: StatusSkipped}
}

// Text is the report as plain text, for "Copy report".
func (r Report) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Heartline link report, %s (took %s)\n", r.Started.UTC().Format("2006-01-02 15:04:05 UTC"), roundDur(r.Duration))
	fmt.Fprintf(&b, "Relay: %s\n", r.Relay)
	fmt.Fprintf(&b, "Verdict: %s\n", r.Verdict.Summary)
	fmt.Fprintf(&b, "Next step: %s\n", r.Verdict.NextStep)
	if r.Drop != nil {
		d := r.Drop
		fmt.Fprintf(&b, "Last drop: %s", d.Cause)
		if !d.At.IsZero() {
			fmt.Fprintf(&b, " at %s", d.At.UTC().Format("15:04:05 UTC"))
		}
		if d.CloseCode != 0 {
			fmt.Fprintf(&b, ", close code %d", d.CloseCode)
		}
		if d.Detected != "" {
			fmt.Fprintf(&b, "; detected by %s", d.Detected)
		}
		b.WriteString("\n")
	}
	b.WriteString("\nChecks:\n")
	for _, s := range r.Stages {
		fmt.Fprintf(&b, "  %-9s %-17s %s", "["+string(s.Status)+"]", s.Name, s.Detail)
		if s.Status != StatusSkipped {
			fmt.Fprintf(&b, " [checked in %s]", roundDur(s.Duration))
		}
		b.WriteString("\n")
	}
	b.WriteString("\nNetwork:\n")
	pub := r.PublicAddr
	if pub == "" {
		pub = "unknown"
	}
	fmt.Fprintf(&b, "  Public address (STUN):                 %s\n", pub)
	fmt.Fprintf(&b, "  Public address changed:                %s\n", r.PublicChanged)
	fmt.Fprintf(&b, "  Relay-seen address matches STUN:       %s\n", r.ObservedMatches)
	fmt.Fprintf(&b, "  NAT mapping changes with dest. port:   %s\n", r.MappingVaries)
	fmt.Fprintf(&b, "  Local interfaces changed:              %s\n", r.InterfacesChanged)
	ifs := "none"
	if len(r.Interfaces) > 0 {
		ifs = strings.Join(r.Interfaces, ", ")
	}
	fmt.Fprintf(&b, "  Local interfaces:                      %s\n", ifs)
	b.WriteString("\nTimers:\n")
	if r.Heartbeat.Interval > 0 || r.Heartbeat.Timeout > 0 {
		fmt.Fprintf(&b, "  Heartbeat: ping every %s, link dead after %s of silence\n", roundDur(r.Heartbeat.Interval), roundDur(r.Heartbeat.Timeout))
	} else {
		b.WriteString("  Heartbeat: unknown (not connected yet)\n")
	}
	if r.LastRTT > 0 {
		fmt.Fprintf(&b, "  Last heartbeat round trip: %s\n", roundDur(r.LastRTT))
	}
	if r.UDP.Status != UDPNotChecked {
		fmt.Fprintf(&b, "  STUN: %s retransmit, %s budget\n", roundDur(r.STUNInterval), roundDur(r.STUNBudget))
	}
	return b.String()
}

// roundDur prints durations the way a person reads them.
func roundDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "0 s"
	case d < time.Millisecond:
		return fmt.Sprintf("%d µs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	case d < time.Minute:
		s := d.Round(100 * time.Millisecond).Seconds()
		return strings.TrimSuffix(strings.TrimSuffix(fmt.Sprintf("%.1f", s), "0"), ".") + " s"
	default:
		return d.Round(time.Second).String()
	}
}
