package netdiag

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heartline/heartline/shared/protocol"
)

const (
	defaultBudget      = 15 * time.Second
	defaultStepTimeout = 5 * time.Second
	pingCount          = 3
	pingWait           = 2 * time.Second // per ping; a shorter Target.StepTimeout wins
)

// Run checks the path to the relay and returns the report. It never takes
// longer than Target.Budget (15 s by default) and never joins a room: the
// WebSocket it opens is closed right after a few pings.
func Run(ctx context.Context, t Target) Report {
	if t.Budget <= 0 {
		t.Budget = defaultBudget
	}
	if t.StepTimeout <= 0 {
		t.StepTimeout = defaultStepTimeout
	}
	if t.STUNBudget <= 0 {
		t.STUNBudget = defaultSTUNBudget
	}
	if t.STUNInterval <= 0 {
		t.STUNInterval = defaultSTUNInterval
	}
	log := t.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, t.Budget)
	defer cancel()

	r := Report{
		Started: start, Relay: t.RelayURL, Heartbeat: t.Heartbeat, LastRTT: t.LastRTT, Drop: t.Drop,
		STUNInterval: t.STUNInterval, STUNBudget: t.STUNBudget,
	}
	r.Interfaces = Interfaces()
	r.InterfacesChanged = compareInterfaces(t.PreviousInterfaces, r.Interfaces)
	finish := func() Report {
		r.fillFindings(t)
		r.Verdict = Classify(r)
		r.Duration = time.Since(start)
		log.Debug("netdiag done", "relay", r.Relay, "verdict", r.Verdict.Kind, "took", r.Duration)
		return r
	}
	skipRest := func(why string, names ...string) {
		for _, n := range names {
			r.Stages = append(r.Stages, Stage{Name: n, Status: StatusSkipped, Detail: why})
		}
	}

	u, host, port, err := parseRelayURL(t.RelayURL)
	if err != nil {
		r.Stages = append(r.Stages, Stage{Name: StageAddress, Status: StatusFailed, Detail: err.Error(), Problem: ProblemBadAddress})
		skipRest("the address is not valid", StageDNS, StageTCP, StageTLS, StageWebSocket, StageHeartbeat, StageUDP)
		return finish()
	}
	r.Relay = u.String()

	ips, st := lookup(ctx, host, t.StepTimeout)
	r.Stages = append(r.Stages, st)
	log.Debug("netdiag stage", "stage", st.Name, "status", st.Status, "detail", st.Detail)
	if st.Status != StatusOK {
		skipRest("the name was not found", StageTCP, StageTLS, StageWebSocket, StageHeartbeat, StageUDP)
		return finish()
	}

	// UDP runs alongside the TCP stages: it has its own budget and the two
	// do not disturb each other.
	udpDone := make(chan UDPResult, 1)
	if len(t.STUNPorts) > 0 && t.STUNPorts[0] > 0 && t.STUNPorts[0] < 65536 {
		cfg := probeConfig{
			Primary:  netip.AddrPortFrom(ips[0], uint16(t.STUNPorts[0])),
			Interval: t.STUNInterval, Budget: t.STUNBudget, Samples: t.STUNSamples,
		}
		if len(t.STUNPorts) > 1 && t.STUNPorts[1] > 0 && t.STUNPorts[1] < 65536 {
			cfg.Alternate = netip.AddrPortFrom(ips[0], uint16(t.STUNPorts[1]))
		}
		go func() { udpDone <- probeSTUN(ctx, cfg) }()
	} else {
		udpDone <- UDPResult{}
	}

	conn, st := dialTCP(ctx, ips, port, t.StepTimeout)
	r.Stages = append(r.Stages, st)
	log.Debug("netdiag stage", "stage", st.Name, "status", st.Status, "detail", st.Detail)
	if conn != nil {
		if u.Scheme == "wss" {
			conn, st = handshakeTLS(ctx, conn, host, t.TLSConfig, t.StepTimeout)
			r.Stages = append(r.Stages, st)
		} else {
			skipRest("plain ws://, no TLS", StageTLS)
		}
	} else {
		skipRest("no TCP connection", StageTLS)
	}
	if conn != nil {
		var wsSt, hbSt Stage
		wsSt, hbSt, r.PingRTT = upgradeAndPing(ctx, conn, u, t.StepTimeout, t.LastRTT)
		r.Stages = append(r.Stages, wsSt, hbSt)
	} else {
		skipRest("no connection", StageWebSocket, StageHeartbeat)
	}

	r.UDP = <-udpDone
	r.Stages = append(r.Stages, udpStage(r.UDP, t.STUNPorts))
	return finish()
}

// parseRelayURL accepts what the chat client accepts (protocol.RelayURL)
// and adds the port a URL without one implies.
func parseRelayURL(raw string) (u *url.URL, host, port string, err error) {
	u, err = protocol.RelayURL(raw)
	if err != nil {
		return nil, "", "", err
	}
	host, port = u.Hostname(), u.Port()
	if port == "" {
		port = map[string]string{"ws": "80", "wss": "443"}[u.Scheme]
	}
	return u, host, port, nil
}

func lookup(ctx context.Context, host string, timeout time.Duration) ([]netip.Addr, Stage) {
	st := Stage{Name: StageDNS}
	start := time.Now()
	if ip, err := netip.ParseAddr(host); err == nil {
		st.Status, st.Detail = StatusOK, literalDetail
		return []netip.Addr{ip.Unmap()}, st
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	st.Duration = time.Since(start)
	if err != nil {
		st.Status = StatusFailed
		var de *net.DNSError
		switch {
		case errors.As(err, &de) && de.IsNotFound:
			st.Problem, st.Detail = ProblemNotFound, "no such name: "+host
		case isUnreachable(err):
			st.Problem, st.Detail = ProblemUnreachable, "no route to a DNS server"
		case errors.As(err, &de) && de.IsTimeout, errors.Is(err, context.DeadlineExceeded):
			st.Problem, st.Detail = ProblemTimeout, "no answer from the DNS server within "+roundDur(timeout)
		default:
			st.Problem, st.Detail = ProblemOther, err.Error()
		}
		return nil, st
	}
	for i := range ips {
		ips[i] = ips[i].Unmap()
	}
	// IPv4 first, as IPv6 is the more often broken path; the same first
	// address serves TCP and STUN, so both look at one host.
	slices.SortStableFunc(ips, func(a, b netip.Addr) int {
		switch {
		case a.Is4() && !b.Is4():
			return -1
		case !a.Is4() && b.Is4():
			return 1
		}
		return 0
	})
	ips = slices.Compact(ips)
	strs := make([]string, len(ips))
	for i, ip := range ips {
		strs[i] = ip.String()
	}
	st.Status, st.Detail = StatusOK, host+" -> "+strings.Join(strs, ", ")
	return ips, st
}

func dialTCP(ctx context.Context, ips []netip.Addr, port string, timeout time.Duration) (net.Conn, Stage) {
	st := Stage{Name: StageTCP}
	start := time.Now()
	var firstErr error
	var firstAddr string
	for _, ip := range ips {
		addr := net.JoinHostPort(ip.String(), port)
		d := net.Dialer{Timeout: timeout}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			st.Status, st.Duration = StatusOK, time.Since(start)
			st.Detail = fmt.Sprintf("connected to %s from %s", addr, c.LocalAddr())
			return c, st
		}
		if firstErr == nil {
			firstErr, firstAddr = err, addr
		}
		if ctx.Err() != nil {
			break
		}
	}
	st.Status, st.Duration = StatusFailed, time.Since(start)
	st.Problem = netProblem(firstErr)
	switch st.Problem {
	case ProblemRefused:
		st.Detail = firstAddr + " refused the connection"
	case ProblemUnreachable:
		st.Detail = "no route to " + firstAddr
	case ProblemTimeout:
		st.Detail = "no answer from " + firstAddr + " within " + roundDur(timeout)
	default:
		st.Detail = firstErr.Error()
	}
	return nil, st
}

func handshakeTLS(ctx context.Context, conn net.Conn, host string, cfg *tls.Config, timeout time.Duration) (net.Conn, Stage) {
	st := Stage{Name: StageTLS}
	start := time.Now()
	if cfg == nil {
		cfg = &tls.Config{}
	} else {
		cfg = cfg.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	cfg.NextProtos = []string{"http/1.1"}
	tc := tls.Client(conn, cfg)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := tc.HandshakeContext(ctx)
	st.Duration = time.Since(start)
	if err != nil {
		conn.Close()
		st.Status, st.Problem = StatusFailed, ProblemTLS
		st.Detail = tlsDetail(err)
		if netProblem(err) == ProblemTimeout {
			st.Problem, st.Detail = ProblemTimeout, "no TLS answer within "+roundDur(timeout)
		}
		return nil, st
	}
	cs := tc.ConnectionState()
	st.Status = StatusOK
	st.Detail = tls.VersionName(cs.Version)
	if len(cs.PeerCertificates) > 0 {
		st.Detail += ", certificate for " + strings.Join(cs.PeerCertificates[0].DNSNames, ", ") +
			" valid until " + cs.PeerCertificates[0].NotAfter.UTC().Format("2006-01-02")
	}
	return tc, st
}

func tlsDetail(err error) string {
	var host x509.HostnameError
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &host):
		return "the relay's certificate is for another name (" + host.Error() + ")"
	case errors.As(err, &unknown):
		return "the relay's certificate is not signed by an authority this computer trusts"
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return "the relay's certificate has expired or is not valid yet (" + invalid.Detail + ")"
	}
	return err.Error()
}

// upgradeAndPing performs the WebSocket handshake on conn, measures a few
// WebSocket pings (the relay answers them without a hello), and closes.
func upgradeAndPing(ctx context.Context, conn net.Conn, u *url.URL, timeout time.Duration, lastRTT time.Duration) (Stage, Stage, time.Duration) {
	ws := Stage{Name: StageWebSocket}
	hb := Stage{Name: StageHeartbeat}
	start := time.Now()
	given := func(context.Context, string, string) (net.Conn, error) { return conn, nil }
	d := websocket.Dialer{
		NetDialContext:    given,
		NetDialTLSContext: given,
		HandshakeTimeout:  timeout,
		ReadBufferSize:    1024,
		WriteBufferSize:   1024,
	}
	c, resp, err := d.DialContext(ctx, u.String(), http.Header{"User-Agent": {"heartline-netdiag"}})
	ws.Duration = time.Since(start)
	if err != nil {
		conn.Close()
		ws.Status = StatusFailed
		switch {
		case resp != nil:
			ws.Problem, ws.Detail = ProblemHTTP, "HTTP "+resp.Status+" instead of a WebSocket upgrade at "+u.Path
		case netProblem(err) == ProblemTimeout:
			ws.Problem, ws.Detail = ProblemTimeout, "no answer to the upgrade within "+roundDur(timeout)
		default:
			ws.Problem, ws.Detail = ProblemOther, err.Error()
		}
		hb.Status, hb.Detail = StatusSkipped, "no WebSocket"
		if lastRTT > 0 {
			hb.Detail += "; the app's last round trip was " + roundDur(lastRTT)
		}
		return ws, hb, 0
	}
	ws.Status, ws.Detail = StatusOK, "upgraded at "+u.Path+" (no room joined)"

	perPing := min(pingWait, timeout)
	hbStart := time.Now()
	rtts := pingThenClose(ctx, c, perPing, timeout)
	hb.Duration = time.Since(hbStart)

	rtt := median(rtts)
	switch {
	case len(rtts) > 0:
		hb.Status = StatusOK
		hb.Detail = fmt.Sprintf("ping answered in %s (%d of %d)", roundDur(rtt), len(rtts), pingCount)
	default:
		hb.Status, hb.Problem = StatusFailed, ProblemNoAnswer
		hb.Detail = fmt.Sprintf("%d pings, no answer within %s each", pingCount, roundDur(perPing))
	}
	if lastRTT > 0 {
		hb.Detail += "; the app's last round trip was " + roundDur(lastRTT)
	}
	return ws, hb, rtt
}

// pingThenClose sends pingCount WebSocket pings, one at a time, waiting up
// to perPing for each answer, then closes c. It returns the round trips of
// the answered ones.
func pingThenClose(ctx context.Context, c *websocket.Conn, perPing, writeTimeout time.Duration) []time.Duration {
	type pong struct {
		data string
		at   time.Time
	}
	pongs := make(chan pong, pingCount)
	c.SetPongHandler(func(data string) error {
		select {
		case pongs <- pong{data, time.Now()}:
		default:
		}
		return nil
	})
	readerDone := make(chan struct{})
	go func() {
		// Reading is only what makes gorilla see pongs. The address may be
		// any WebSocket service, one that streams huge frames at once
		// included, so frames are thrown away as they come, never buffered.
		defer close(readerDone)
		for {
			_, r, err := c.NextReader()
			if err != nil {
				return
			}
			if _, err := io.Copy(io.Discard, r); err != nil {
				return
			}
		}
	}()
	// Each ping carries its own payload: on a link slower than the wait, the
	// pong of an earlier ping arrives during a later one's wait and must not
	// pass for its answer (that would report a round trip shorter than the
	// link's).
	var rtts []time.Duration
	for i := 0; i < pingCount && ctx.Err() == nil; i++ {
		payload := "netdiag-" + strconv.Itoa(i)
		sent := time.Now()
		if err := c.WriteControl(websocket.PingMessage, []byte(payload), sent.Add(writeTimeout)); err != nil {
			break
		}
		wait := time.NewTimer(perPing)
	waiting:
		for {
			select {
			case p := <-pongs:
				if p.data != payload {
					continue // late, for an earlier ping
				}
				rtts = append(rtts, p.at.Sub(sent))
				break waiting
			case <-wait.C:
				break waiting
			case <-ctx.Done():
				break waiting
			}
		}
		wait.Stop()
	}
	c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "diagnostics done"), time.Now().Add(time.Second))
	c.Close()
	<-readerDone
	return rtts
}

func udpStage(u UDPResult, ports []int) Stage {
	st := Stage{Name: StageUDP, Duration: u.Duration}
	switch u.Status {
	case UDPNotChecked:
		st.Status = StatusSkipped
		st.Detail = "the relay announced no STUN port (not connected yet, or STUN is off)"
		if len(ports) > 0 {
			st.Detail = "no address to send to"
		}
	case UDPAnswered:
		st.Status = StatusOK
		st.Detail = fmt.Sprintf("%s answered in %s, %.0f%% lost (%d of %d answered)",
			u.Server, roundDur(u.RTT), u.Loss*100, u.Received, u.Sent)
	case UDPPortClosed:
		st.Status, st.Problem = StatusFailed, ProblemRefused
		st.Detail = u.Server + ": port closed (the relay's host refused it)"
	case UDPFiltered:
		st.Status, st.Problem = StatusFailed, ProblemNoAnswer
		st.Detail = fmt.Sprintf("%s: no answer to %d requests in %s (filtered)", u.Server, u.Sent, roundDur(u.Duration))
	}
	return st
}

func (r *Report) fillFindings(t Target) {
	r.PublicAddr = r.UDP.Mapped
	mapped, mappedOK := parseAddrPort(r.UDP.Mapped)
	prev, prevOK := parseAddrPort(t.PreviousPublic)
	switch {
	case !mappedOK:
		r.PublicChanged = Finding{NotChecked, "no STUN answer"}
	case t.PreviousPublic == "" || !prevOK:
		r.PublicChanged = Finding{NotChecked, "no earlier address known"}
	case prev.Addr() != mapped.Addr():
		r.PublicChanged = Finding{Yes, "was " + prev.Addr().String() + ", now " + mapped.Addr().String()}
	default:
		r.PublicChanged = Finding{No, ""}
	}
	obs, obsOK := parseAddrPort(t.ObservedAddr)
	switch {
	case t.ObservedAddr == "" || !obsOK:
		r.ObservedMatches = Finding{NotChecked, "the relay's view of this computer is not known"}
	case !mappedOK:
		r.ObservedMatches = Finding{NotChecked, "no STUN answer"}
	case obs.Addr() == mapped.Addr():
		r.ObservedMatches = Finding{Yes, obs.Addr().String()}
	default:
		r.ObservedMatches = Finding{No, "the relay saw " + obs.Addr().String() + " on TCP, STUN says " +
			mapped.Addr().String() + ": a VPN, proxy or second connection carries one of them"}
	}
	alt, altOK := parseAddrPort(r.UDP.AltMapped)
	switch {
	case !mappedOK:
		r.MappingVaries = Finding{NotChecked, "no STUN answer"}
	case r.UDP.Alternate == "":
		r.MappingVaries = Finding{NotChecked, "the relay has only one STUN port"}
	case !altOK:
		r.MappingVaries = Finding{NotChecked, "the alternate STUN port did not answer"}
	case r.UDP.Received == 0:
		// Mapped then comes from the probe's second socket: another local
		// port, so another mapping even without any NAT.
		r.MappingVaries = Finding{NotChecked, "the primary STUN port did not answer the socket that asked both"}
	case alt != mapped:
		r.MappingVaries = Finding{Yes, fmt.Sprintf("%s towards one port, %s towards the other", mapped, alt)}
	default:
		r.MappingVaries = Finding{No, "the same public port towards both STUN ports"}
	}
}

func parseAddrPort(s string) (netip.AddrPort, bool) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
}

func netProblem(err error) Problem {
	var ne net.Error
	switch {
	case err == nil:
		return ProblemNone
	case errors.Is(err, syscall.ECONNREFUSED):
		return ProblemRefused
	case isUnreachable(err):
		return ProblemUnreachable
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return ProblemTimeout
	}
	return ProblemOther
}

func isUnreachable(err error) bool {
	return errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.EADDRNOTAVAIL)
}
