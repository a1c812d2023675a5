package netdiag

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/pion/stun/v2"
)

// UDPStatus says what became of the Binding requests sent to the relay's
// STUN port.
type UDPStatus int

const (
	UDPNotChecked UDPStatus = iota // nothing sent (no STUN port known, or no address)
	UDPAnswered                    // at least one reply
	UDPPortClosed                  // the relay's host said "port unreachable" at once
	UDPFiltered                    // silence for the whole budget: something drops UDP
)

func (s UDPStatus) String() string {
	switch s {
	case UDPAnswered:
		return "answered"
	case UDPPortClosed:
		return "port closed"
	case UDPFiltered:
		return "filtered (no answer)"
	default:
		return "not checked"
	}
}

// UDPResult is the outcome of the STUN probe.
type UDPResult struct {
	Status    UDPStatus
	Server    string        // primary STUN address probed, "ip:port"
	Alternate string        // alternate STUN address, "" when none
	RTT       time.Duration // median round trip of the primary's replies
	Sent      int           // requests sent to the primary from the main socket
	Received  int           // replies to them
	Loss      float64       // 1 - Received/Sent, 0..1; meaningful when Sent > 0
	Mapped    string        // public "ip:port" seen by the primary port (from the second socket when Received is 0)
	AltMapped string        // public "ip:port" seen by the alternate port, "" if it did not answer
	Duration  time.Duration
}

// probeConfig tunes one probe; zero values take the defaults below.
type probeConfig struct {
	Primary, Alternate netip.AddrPort // Alternate may be invalid
	Interval           time.Duration  // between requests; about one retransmit timeout
	Budget             time.Duration  // total time allowed
	Samples            int            // primary replies wanted for RTT and loss
}

const (
	defaultSTUNInterval = 200 * time.Millisecond
	defaultSTUNBudget   = 3 * time.Second
	defaultSTUNSamples  = 4
	netdiagSoftware     = "heartline-netdiag"
)

type stunReply struct {
	id     [stun.TransactionIDSize]byte
	mapped netip.AddrPort
	at     time.Time
}

// probeSTUN sends Binding requests from one unconnected socket to the
// primary and alternate ports, matching replies by transaction id, so that
// both mappings come from the same local port and a reply from any source
// is seen. A second, connected socket asks the primary once per interval
// too: only a connected socket learns of an ICMP "port unreachable"
// (ECONNREFUSED), which tells "port closed" from "filtered" at once.
func probeSTUN(ctx context.Context, cfg probeConfig) UDPResult {
	if cfg.Interval <= 0 {
		cfg.Interval = defaultSTUNInterval
	}
	if cfg.Budget <= 0 {
		cfg.Budget = defaultSTUNBudget
	}
	if cfg.Samples <= 0 {
		cfg.Samples = defaultSTUNSamples
	}
	start := time.Now()
	res := UDPResult{Server: cfg.Primary.String()}
	if cfg.Alternate.IsValid() {
		res.Alternate = cfg.Alternate.String()
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Budget)
	defer cancel()

	network := "udp4"
	if cfg.Primary.Addr().Is6() {
		network = "udp6"
	}
	main, err := net.ListenUDP(network, nil)
	if err != nil {
		res.Status = UDPNotChecked
		return res
	}
	probe, err := net.DialUDP(network, nil, net.UDPAddrFromAddrPort(cfg.Primary))
	if err != nil {
		main.Close()
		// A connected socket that cannot even be created means there is no
		// route at all; the unconnected one would fail the same way.
		res.Status = UDPFiltered
		return res
	}

	replies := make(chan stunReply, 64)
	refused := make(chan struct{}, 1)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); readReplies(main, replies, nil) }()
	go func() { defer wg.Done(); readReplies(probe, replies, refused) }()
	defer func() {
		main.Close()
		probe.Close()
		wg.Wait()
	}()

	type pending struct {
		alt   bool
		probe bool
		at    time.Time
	}
	sent := map[[stun.TransactionIDSize]byte]pending{}
	var rtts []time.Duration
	altAnswered := false
	gotRefused := false
	send := func(alt, viaProbe bool) {
		m := stun.MustBuild(stun.BindingRequest, stun.TransactionID, stun.NewSoftware(netdiagSoftware), stun.Fingerprint)
		var err error
		switch {
		case viaProbe:
			_, err = probe.Write(m.Raw)
		case alt:
			_, err = main.WriteToUDPAddrPort(m.Raw, cfg.Alternate)
		default:
			_, err = main.WriteToUDPAddrPort(m.Raw, cfg.Primary)
		}
		if errors.Is(err, syscall.ECONNREFUSED) {
			gotRefused = true
		}
		if err != nil {
			return
		}
		sent[m.TransactionID] = pending{alt: alt, probe: viaProbe, at: time.Now()}
		if !alt && !viaProbe {
			res.Sent++
		}
	}
	done := func() bool {
		return len(rtts) >= cfg.Samples && (!cfg.Alternate.IsValid() || altAnswered)
	}
	tick := time.NewTicker(cfg.Interval)
	defer tick.Stop()
	var grace <-chan time.Time
	sendRound := func() {
		if len(rtts) < cfg.Samples {
			send(false, false)
		}
		if cfg.Alternate.IsValid() && !altAnswered {
			send(true, false)
		}
		if len(rtts) == 0 {
			send(false, true)
		}
	}
	sendRound()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-grace:
			break loop
		case <-refused:
			gotRefused = true
			if len(rtts) == 0 && !altAnswered {
				break loop
			}
		case <-tick.C:
			if grace == nil {
				sendRound()
			}
		case r := <-replies:
			p, ok := sent[r.id]
			if !ok {
				continue // a duplicate, or not ours
			}
			delete(sent, r.id)
			switch {
			case p.alt:
				altAnswered = true
				res.AltMapped = r.mapped.String()
			case p.probe:
				if res.Mapped == "" {
					res.Mapped = r.mapped.String()
				}
			default:
				res.Received++
				rtts = append(rtts, r.at.Sub(p.at))
				res.Mapped = r.mapped.String()
			}
			if grace == nil && done() {
				// Wait a little for replies still on their way, so that
				// late ones do not count as lost.
				grace = time.After(2*median(rtts) + 20*time.Millisecond)
			}
		}
	}
	switch {
	case res.Received > 0 || res.Mapped != "" || altAnswered:
		res.Status = UDPAnswered
	case gotRefused:
		res.Status = UDPPortClosed
	default:
		res.Status = UDPFiltered
	}
	res.RTT = median(rtts)
	if res.Sent > 0 && res.Status == UDPAnswered {
		res.Loss = 1 - float64(res.Received)/float64(res.Sent)
	}
	res.Duration = time.Since(start)
	return res
}

// readReplies decodes Binding success responses until the socket closes.
// On a connected socket an ECONNREFUSED read is reported on refused.
func readReplies(c *net.UDPConn, out chan<- stunReply, refused chan<- struct{}) {
	buf := make([]byte, 1500)
	for {
		n, err := c.Read(buf)
		if err != nil {
			if errors.Is(err, syscall.ECONNREFUSED) && refused != nil {
				select {
				case refused <- struct{}{}:
				default:
				}
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // transient; the socket is closed by the prober at the end
		}
		at := time.Now()
		m := new(stun.Message)
		if !stun.IsMessage(buf[:n]) || stun.Decode(buf[:n], m) != nil || m.Type != stun.BindingSuccess {
			continue
		}
		if m.Contains(stun.AttrFingerprint) && stun.Fingerprint.Check(m) != nil {
			continue
		}
		var xor stun.XORMappedAddress
		if xor.GetFrom(m) != nil {
			continue
		}
		ip, ok := netip.AddrFromSlice(xor.IP)
		if !ok {
			continue
		}
		select {
		case out <- stunReply{id: m.TransactionID, mapped: netip.AddrPortFrom(ip.Unmap(), uint16(xor.Port)), at: at}:
		default: // the prober has stopped listening or is flooded; drop
		}
	}
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
