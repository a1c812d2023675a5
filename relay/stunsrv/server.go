// Package stunsrv is the relay's STUN Binding responder (RFC 8489).
//
// It answers Binding requests on a primary UDP port and on the port after it,
// so that a client can compare the mappings its NAT gives one socket towards
// two destination ports. With a second IP address configured it also sends
// OTHER-ADDRESS and honours CHANGE-REQUEST (RFC 5780 section 6). It is built
// to be exposed to the internet: replies are rate limited per source, never
// much larger than the request, and anything that is not a well-formed
// Binding request is dropped and counted, never answered.
package stunsrv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/stun/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults used for zero Config fields.
const (
	DefaultRate       = 5.0  // replies per second per source
	DefaultBurst      = 10   // replies a source may get at once
	DefaultMaxSources = 4096 // sources the rate limiter remembers
	DefaultGlobalRate = 2000 // replies per second in total
	DefaultSoftware   = "heartline-relay"
)

// maxReplyFactor bounds a reply's size to this many times its request's
// size, so that a spoofed request cannot turn the relay into an amplifier.
// A bare 20-byte request still gets XOR-MAPPED-ADDRESS and FINGERPRINT;
// clients that want every attribute pad their request (SOFTWARE does).
const maxReplyFactor = 3

// maxPacket is the largest request handled; larger datagrams are dropped.
const maxPacket = 1500

// CHANGE-REQUEST flags (RFC 5780 section 7.2).
const (
	changeIPFlag   = 0x4
	changePortFlag = 0x2
)

// Config configures a responder. Zero values are documented per field.
type Config struct {
	// Addr is the IP address to bind. "" binds every address: IPv4 and,
	// when the host has it, IPv6.
	Addr string
	// Port is the primary UDP port; the alternate port is Port+1. 0 picks a
	// free pair of ports (for tests). A relay with STUN disabled simply does
	// not call Listen.
	Port int
	// AltIP is an optional second IP address of this host, of the same family
	// as Addr (which must then be a specific address). Only with it are
	// OTHER-ADDRESS sent and CHANGE-REQUEST honoured (RFC 5780 section 6);
	// without it a request carrying CHANGE-REQUEST gets 420. "" = none.
	AltIP string
	// Rate is the number of replies per second one source IP address (an
	// IPv6 /64) may get. 0 = DefaultRate.
	Rate float64
	// Burst is how many replies a source may get at once. 0 = DefaultBurst.
	Burst int
	// MaxSources bounds the rate limiter's memory: when that many sources are
	// tracked, the least recently seen is forgotten. 0 = DefaultMaxSources.
	MaxSources int
	// GlobalRate caps replies per second over all sources, so that a flood
	// from many spoofed addresses cannot be reflected either. 0 =
	// DefaultGlobalRate.
	GlobalRate float64
	// Software is the SOFTWARE attribute's value. "" = DefaultSoftware.
	Software string
	// Logger receives start-up and debug messages. nil = discard.
	Logger *slog.Logger
	// Registerer receives the heartline_stun_requests_total counter. nil =
	// no metrics (Stats still counts).
	Registerer prometheus.Registerer
}

// Result labels of heartline_stun_requests_total.
const (
	ResultOK          = "ok"           // Binding success response sent
	ResultError420    = "error_420"    // unknown comprehension-required attribute
	ResultError400    = "error_400"    // malformed CHANGE-REQUEST
	ResultMalformed   = "malformed"    // not STUN, broken STUN, bad FINGERPRINT, bogus source: dropped
	ResultRateLimited = "rate_limited" // a reply was due but the source is over its rate: dropped
	ResultIgnored     = "ignored"      // valid STUN that is not a Binding request: dropped
)

// Stats counts requests by result since Listen.
type Stats struct {
	OK, Error420, Error400, Malformed, RateLimited, Ignored uint64
}

// Server is a running responder. Close stops it.
type Server struct {
	log      *slog.Logger
	software string
	hasAlt   bool
	ports    []int
	socks    []*socket
	limiter  *sourceLimiter
	metric   *prometheus.CounterVec
	counts   [6]atomic.Uint64
	wg       sync.WaitGroup
	closeMu  sync.Mutex
	closed   bool
}

type socket struct {
	conn    *net.UDPConn
	local   netip.AddrPort // bound address; unspecified IP for a wildcard socket
	ipIdx   int            // 0 = Addr, 1 = AltIP
	portIdx int            // 0 = primary port, 1 = alternate port
	wild    bool
	pktinfo bool
}

type bindIP struct {
	network  string // "udp4" or "udp6"
	ip       netip.Addr
	ipIdx    int
	optional bool // the IPv6 wildcard: skipped when the host has no IPv6
}

// Listen binds the primary and alternate ports (on both IPs when AltIP is
// set) and starts answering. The returned Server owns one goroutine per
// socket until Close.
func Listen(cfg Config) (*Server, error) {
	if cfg.Rate == 0 {
		cfg.Rate = DefaultRate
	}
	if cfg.Burst == 0 {
		cfg.Burst = DefaultBurst
	}
	if cfg.MaxSources == 0 {
		cfg.MaxSources = DefaultMaxSources
	}
	if cfg.GlobalRate == 0 {
		cfg.GlobalRate = DefaultGlobalRate
	}
	if cfg.Software == "" {
		cfg.Software = DefaultSoftware
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case cfg.Port < 0 || cfg.Port > 65534:
		return nil, fmt.Errorf("stun: port %d is out of range: use 1-65534 (the alternate port is the next one)", cfg.Port)
	case cfg.Rate < 0 || cfg.Burst < 0 || cfg.MaxSources < 0 || cfg.GlobalRate < 0:
		return nil, errors.New("stun: rate, burst, max sources and global rate must not be negative")
	case len(cfg.Software) > 763: // RFC 8489 section 14.14
		return nil, errors.New("stun: software description is longer than 763 bytes")
	}
	ips, err := bindIPs(cfg.Addr, cfg.AltIP)
	if err != nil {
		return nil, err
	}
	s := &Server{
		log:      cfg.Logger,
		software: cfg.Software,
		hasAlt:   cfg.AltIP != "",
		limiter:  newSourceLimiter(cfg.Rate, cfg.Burst, cfg.MaxSources, cfg.GlobalRate, max(cfg.Burst, int(cfg.GlobalRate/10))),
	}
	if cfg.Registerer != nil {
		s.metric, err = registerCounter(cfg.Registerer)
		if err != nil {
			return nil, err
		}
	}
	// With Port 0 the kernel picks the primary port; the alternate one may
	// then be taken, so try a few pairs.
	for attempt := 0; ; attempt++ {
		s.socks, err = bindAll(ips, cfg.Port)
		if err == nil || cfg.Port != 0 || attempt == 20 {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	s.ports = []int{int(s.socks[0].local.Port()), int(s.socks[0].local.Port()) + 1}
	addrs := make([]string, 0, len(s.socks))
	for _, sk := range s.socks {
		addrs = append(addrs, sk.local.String())
		s.wg.Add(1)
		go s.serve(sk)
	}
	s.log.Info("stun responder listening", "addrs", strings.Join(addrs, " "),
		"rate_per_source", cfg.Rate, "burst", cfg.Burst, "change_request", s.hasAlt)
	return s, nil
}

func bindIPs(addr, alt string) ([]bindIP, error) {
	if addr == "" {
		if alt != "" {
			return nil, errors.New("stun: a second IP needs the first one too: set the bind address to a specific IP")
		}
		return []bindIP{
			{network: "udp4", ip: netip.IPv4Unspecified()},
			{network: "udp6", ip: netip.IPv6Unspecified(), optional: true},
		}, nil
	}
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return nil, fmt.Errorf("stun: bind address %q is not an IP address", addr)
	}
	a = a.Unmap()
	ips := []bindIP{{network: network(a), ip: a}}
	if alt != "" {
		b, err := netip.ParseAddr(alt)
		if err != nil {
			return nil, fmt.Errorf("stun: second IP %q is not an IP address", alt)
		}
		b = b.Unmap()
		if b.Is4() != a.Is4() || b == a || a.IsUnspecified() || b.IsUnspecified() {
			return nil, fmt.Errorf("stun: second IP %s must be another specific address of the same family as %s", b, a)
		}
		ips = append(ips, bindIP{network: network(b), ip: b, ipIdx: 1})
	}
	return ips, nil
}

func network(a netip.Addr) string {
	if a.Is4() {
		return "udp4"
	}
	return "udp6"
}

// bindAll opens every (IP, port) socket; on error it closes what it opened.
func bindAll(ips []bindIP, port int) ([]*socket, error) {
	var socks []*socket
	fail := func(err error) ([]*socket, error) {
		for _, sk := range socks {
			sk.conn.Close()
		}
		return nil, err
	}
	for portIdx := 0; portIdx < 2; portIdx++ {
		for _, b := range ips {
			p := port
			if p != 0 || len(socks) > 0 {
				if len(socks) > 0 {
					p = int(socks[0].local.Port())
				}
				p += portIdx
			}
			if p > 65535 {
				return fail(errors.New("stun: no room for the alternate port above 65535"))
			}
			c, err := net.ListenUDP(b.network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(b.ip, uint16(p))))
			if err != nil {
				if b.optional {
					continue
				}
				return fail(fmt.Errorf("stun: cannot listen on udp %s: %w (is another program using the port? choose another STUN port)",
					netip.AddrPortFrom(b.ip, uint16(p)), err))
			}
			sk := &socket{
				conn:    c,
				local:   netip.AddrPortFrom(b.ip, uint16(c.LocalAddr().(*net.UDPAddr).Port)),
				ipIdx:   b.ipIdx,
				portIdx: portIdx,
				wild:    b.ip.IsUnspecified(),
			}
			if sk.wild && pktinfoSupported {
				sk.pktinfo = enablePktinfo(c, b.ip.Is6()) == nil
			}
			socks = append(socks, sk)
		}
	}
	return socks, nil
}

func registerCounter(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "heartline_stun_requests_total",
		Help: "STUN datagrams received by the relay's responder, by result (ok, error_420, error_400, malformed, rate_limited, ignored).",
	}, []string{"result"})
	for _, r := range []string{ResultOK, ResultError420, ResultError400, ResultMalformed, ResultRateLimited, ResultIgnored} {
		c.WithLabelValues(r) // every result exported from the start, at 0
	}
	if err := reg.Register(c); err != nil {
		// A relay restarted in the same process (the desktop's host mode)
		// keeps counting in the collector it registered before.
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				return existing, nil
			}
		}
		return nil, fmt.Errorf("stun: registering metrics: %w", err)
	}
	return c, nil
}

// Ports returns the primary and the alternate port.
func (s *Server) Ports() []int { return append([]int(nil), s.ports...) }

// Stats returns the request counters.
func (s *Server) Stats() Stats {
	return Stats{
		OK:          s.counts[0].Load(),
		Error420:    s.counts[1].Load(),
		Error400:    s.counts[2].Load(),
		Malformed:   s.counts[3].Load(),
		RateLimited: s.counts[4].Load(),
		Ignored:     s.counts[5].Load(),
	}
}

var resultIndex = map[string]int{
	ResultOK: 0, ResultError420: 1, ResultError400: 2, ResultMalformed: 3, ResultRateLimited: 4, ResultIgnored: 5,
}

func (s *Server) count(result string) {
	s.counts[resultIndex[result]].Add(1)
	if s.metric != nil {
		s.metric.WithLabelValues(result).Inc()
	}
}

// Close stops answering, closes the sockets and waits for the goroutines.
// It is safe to call more than once.
func (s *Server) Close() error {
	s.closeMu.Lock()
	if s.closed {
		s.closeMu.Unlock()
		return nil
	}
	s.closed = true
	s.closeMu.Unlock()
	var first error
	for _, sk := range s.socks {
		if err := sk.conn.Close(); err != nil && first == nil {
			first = err
		}
	}
	s.wg.Wait()
	return first
}

func (s *Server) serve(sk *socket) {
	defer s.wg.Done()
	buf := make([]byte, maxPacket+1) // one spare byte reveals an oversized datagram
	var oob []byte
	if sk.pktinfo {
		oob = make([]byte, oobSize)
	}
	req, res := new(stun.Message), new(stun.Message)
	for {
		n, oobn, _, from, err := sk.conn.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Transient (an ICMP error surfacing on some systems): keep serving,
			// but never spin on a socket that keeps failing.
			s.log.Debug("stun read failed", "addr", sk.local, "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if n > maxPacket {
			s.count(ResultMalformed)
			continue
		}
		local := sk.local
		if sk.wild {
			local = netip.AddrPort{}
			if dst, ok := pktDst(oob[:oobn]); ok {
				local = netip.AddrPortFrom(dst.Unmap(), sk.local.Port())
			}
		}
		s.handle(sk, local, buf[:n], from, req, res)
	}
}

// handle answers one datagram, or drops it. local is the address the
// request arrived at (invalid when unknown).
func (s *Server) handle(sk *socket, local netip.AddrPort, pkt []byte, from netip.AddrPort, req, res *stun.Message) {
	from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	if !replyableSource(from) || !looksLikeSTUN(pkt) {
		s.count(ResultMalformed)
		return
	}
	if err := stun.Decode(pkt, req); err != nil {
		s.count(ResultMalformed)
		return
	}
	if req.Type != stun.BindingRequest {
		// Indications and responses are never answered (RFC 8489 section 6.3).
		s.count(ResultIgnored)
		return
	}
	if req.Contains(stun.AttrFingerprint) && stun.Fingerprint.Check(req) != nil {
		s.count(ResultMalformed)
		return
	}
	var unknown []stun.AttrType
	for _, a := range req.Attributes {
		if a.Type.Required() && !s.understood(a.Type) {
			unknown = append(unknown, a.Type)
		}
	}
	if !s.limiter.allow(from.Addr(), time.Now()) {
		s.count(ResultRateLimited)
		return
	}
	budget := maxReplyFactor * len(pkt)
	if len(unknown) > 0 {
		s.buildError(res, req, stun.CodeUnknownAttribute, unknown, budget)
		s.send(sk, local, res.Raw, from, ResultError420)
		return
	}
	out := sk
	if s.hasAlt {
		if v, err := req.Get(stun.AttrChangeRequest); err == nil {
			if len(v) != 4 {
				s.buildError(res, req, stun.CodeBadRequest, nil, budget)
				s.send(sk, local, res.Raw, from, ResultError400)
				return
			}
			flags := binary.BigEndian.Uint32(v)
			ipIdx, portIdx := sk.ipIdx, sk.portIdx
			if flags&changeIPFlag != 0 {
				ipIdx ^= 1
			}
			if flags&changePortFlag != 0 {
				portIdx ^= 1
			}
			out = s.socket(ipIdx, portIdx)
			local = out.local
		}
	}
	var other netip.AddrPort
	if s.hasAlt {
		// OTHER-ADDRESS differs from the address the request reached in both
		// IP and port (RFC 5780 section 7.4).
		other = s.socket(sk.ipIdx^1, sk.portIdx^1).local
	}
	s.buildSuccess(res, req, from, local, other, budget)
	s.send(out, local, res.Raw, from, ResultOK)
}

func (s *Server) understood(t stun.AttrType) bool {
	// CHANGE-REQUEST is understood only with a second IP: RFC 5780 section
	// 6.1 has a single-address server answer it with 420.
	return t == stun.AttrChangeRequest && s.hasAlt
}

func (s *Server) socket(ipIdx, portIdx int) *socket {
	for _, sk := range s.socks {
		if sk.ipIdx == ipIdx && sk.portIdx == portIdx {
			return sk
		}
	}
	panic("stunsrv: missing socket") // Listen opens every combination
}

func (s *Server) send(sk *socket, local netip.AddrPort, raw []byte, to netip.AddrPort, result string) {
	// Counted before the write: once a client holds the reply, the stats
	// already include it.
	s.count(result)
	var err error
	if sk.wild && local.IsValid() {
		_, _, err = sk.conn.WriteMsgUDPAddrPort(raw, srcOOB(local.Addr()), to)
	} else {
		_, err = sk.conn.WriteToUDPAddrPort(raw, to)
	}
	if err != nil {
		s.log.Debug("stun reply not sent", "to", to, "err", err)
	}
}

// looksLikeSTUN checks the fixed header (RFC 8489 section 5): two zero bits,
// the magic cookie, and a length that matches the datagram.
func looksLikeSTUN(b []byte) bool {
	if !stun.IsMessage(b) || b[0]&0xC0 != 0 {
		return false
	}
	n := int(binary.BigEndian.Uint16(b[2:4]))
	return n%4 == 0 && n == len(b)-20
}

// replyableSource refuses sources a reply must never go to.
func replyableSource(ap netip.AddrPort) bool {
	a := ap.Addr()
	return ap.Port() != 0 && a.IsValid() && !a.IsUnspecified() && !a.IsMulticast() &&
		a != netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

func addrAttrSize(a netip.Addr) int {
	if a.Is4() {
		return 4 + 8
	}
	return 4 + 20
}

func textAttrSize(s string) int { return 4 + (len(s)+3)&^3 }

const (
	headerSize      = 20
	fingerprintSize = 8
)

// buildSuccess writes a Binding success response into res, leaving out
// optional attributes (most useful kept first) that would push the reply
// over budget.
func (s *Server) buildSuccess(res, req *stun.Message, from, local, other netip.AddrPort, budget int) {
	size := headerSize + addrAttrSize(from.Addr()) + fingerprintSize
	fits := func(n int) bool {
		if size+n > budget {
			return false
		}
		size += n
		return true
	}
	withOrigin := local.IsValid() && fits(addrAttrSize(local.Addr()))
	withOther := other.IsValid() && fits(addrAttrSize(other.Addr()))
	withMapped := fits(addrAttrSize(from.Addr()))
	withSoftware := fits(textAttrSize(s.software))

	res.Reset()
	res.TransactionID = req.TransactionID
	res.Type = stun.BindingSuccess
	res.WriteHeader()
	ip, port := net.IP(from.Addr().AsSlice()), int(from.Port())
	must((&stun.XORMappedAddress{IP: ip, Port: port}).AddTo(res))
	if withMapped {
		must((&stun.MappedAddress{IP: ip, Port: port}).AddTo(res))
	}
	if withOrigin {
		must((&stun.ResponseOrigin{IP: local.Addr().AsSlice(), Port: int(local.Port())}).AddTo(res))
	}
	if withOther {
		must((&stun.OtherAddress{IP: other.Addr().AsSlice(), Port: int(other.Port())}).AddTo(res))
	}
	if withSoftware {
		must(stun.NewSoftware(s.software).AddTo(res))
	}
	must(stun.Fingerprint.AddTo(res))
}

// buildError writes a Binding error response; for 420 it lists as many of
// the unknown attributes as the budget allows (at least one).
func (s *Server) buildError(res, req *stun.Message, code stun.ErrorCode, unknown []stun.AttrType, budget int) {
	reason := "Bad Request"
	if code == stun.CodeUnknownAttribute {
		reason = "Unknown Attribute"
	}
	size := headerSize + 4 + 4 + (len(reason)+3)&^3 + fingerprintSize
	if len(unknown) > 0 {
		room := (budget - size - 4) / 2
		room = max(1, min(room, len(unknown)))
		unknown = unknown[:room]
		size += 4 + (2*len(unknown)+3)&^3
	}
	withSoftware := size+textAttrSize(s.software) <= budget

	res.Reset()
	res.TransactionID = req.TransactionID
	res.Type = stun.BindingError
	res.WriteHeader()
	must((&stun.ErrorCodeAttribute{Code: code, Reason: []byte(reason)}).AddTo(res))
	if len(unknown) > 0 {
		// UNKNOWN-ATTRIBUTES holds 16-bit types, padded to 4 bytes (pion's
		// helper spends 4 bytes per type, which would bloat the reply).
		v := make([]byte, 2*len(unknown))
		for i, t := range unknown {
			binary.BigEndian.PutUint16(v[2*i:], uint16(t))
		}
		res.Add(stun.AttrUnknownAttributes, v)
	}
	if withSoftware {
		must(stun.NewSoftware(s.software).AddTo(res))
	}
	must(stun.Fingerprint.AddTo(res))
}

// must panics on an encoding error, which with these fixed inputs would be
// a bug in this package, not bad input.
func must(err error) {
	if err != nil {
		panic("stunsrv: encoding reply: " + err.Error())
	}
}
