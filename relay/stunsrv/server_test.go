package stunsrv

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func start(t *testing.T, cfg Config) *Server {
	t.Helper()
	if cfg.Addr == "" && cfg.AltIP == "" {
		cfg.Addr = "127.0.0.1"
	}
	s, err := Listen(cfg)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// client is a real UDP socket on a loopback address.
func client(t *testing.T, ip string) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatalf("client socket: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func localAP(c *net.UDPConn) netip.AddrPort {
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

func to(ip string, port int) *net.UDPAddr {
	return &net.UDPAddr{IP: net.ParseIP(ip), Port: port}
}

func request(t *testing.T, extra ...stun.Setter) *stun.Message {
	t.Helper()
	setters := append([]stun.Setter{stun.BindingRequest, stun.TransactionID}, extra...)
	m, err := stun.Build(setters...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// padded builds a request the size a real client sends (SOFTWARE +
// FINGERPRINT), so the reply budget allows every attribute.
func padded(t *testing.T, extra ...stun.Setter) *stun.Message {
	return request(t, append(extra, stun.NewSoftware("heartline-test/1 padding"), stun.Fingerprint)...)
}

type reply struct {
	msg  *stun.Message
	from netip.AddrPort
	size int
}

// exchange sends req and returns the reply, checking it is no larger than
// the amplification bound allows.
func exchange(t *testing.T, c *net.UDPConn, dst *net.UDPAddr, req *stun.Message) reply {
	t.Helper()
	if _, err := c.WriteToUDP(req.Raw, dst); err != nil {
		t.Fatalf("send: %v", err)
	}
	r, err := read(c, 2*time.Second)
	if err != nil {
		t.Fatalf("no reply from %v: %v", dst, err)
	}
	if r.msg.TransactionID != req.TransactionID {
		t.Fatalf("reply for another transaction")
	}
	if r.size > maxReplyFactor*len(req.Raw) && r.size > 40 {
		t.Fatalf("reply of %d bytes to a %d-byte request: amplification", r.size, len(req.Raw))
	}
	if err := stun.Fingerprint.Check(r.msg); err != nil {
		t.Fatalf("reply fingerprint: %v", err)
	}
	return r
}

func read(c *net.UDPConn, wait time.Duration) (reply, error) {
	buf := make([]byte, 1500)
	c.SetReadDeadline(time.Now().Add(wait))
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		return reply{}, err
	}
	m := new(stun.Message)
	if err := stun.Decode(buf[:n], m); err != nil {
		return reply{}, err
	}
	return reply{msg: m, from: from, size: n}, nil
}

func TestBindingSuccessAttributes(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := start(t, Config{Software: "heartline-relay/test", Registerer: reg})
	c := client(t, "127.0.0.1")
	p := s.Ports()
	if len(p) != 2 || p[1] != p[0]+1 {
		t.Fatalf("Ports() = %v, want a primary and the next port", p)
	}
	for _, port := range p {
		r := exchange(t, c, to("127.0.0.1", port), padded(t))
		if r.msg.Type != stun.BindingSuccess {
			t.Fatalf("port %d: reply type %v", port, r.msg.Type)
		}
		var xor stun.XORMappedAddress
		if err := xor.GetFrom(r.msg); err != nil {
			t.Fatalf("XOR-MAPPED-ADDRESS: %v", err)
		}
		if got := apOf(xor.IP, xor.Port); got != localAP(c) {
			t.Errorf("XOR-MAPPED-ADDRESS = %v, want the client socket %v", got, localAP(c))
		}
		var mapped stun.MappedAddress
		if err := mapped.GetFrom(r.msg); err != nil || apOf(mapped.IP, mapped.Port) != localAP(c) {
			t.Errorf("MAPPED-ADDRESS = %v (%v), want %v", mapped, err, localAP(c))
		}
		var origin stun.ResponseOrigin
		wantOrigin := netip.MustParseAddrPort("127.0.0.1:0")
		wantOrigin = netip.AddrPortFrom(wantOrigin.Addr(), uint16(port))
		if err := origin.GetFrom(r.msg); err != nil || apOf(origin.IP, origin.Port) != wantOrigin {
			t.Errorf("RESPONSE-ORIGIN = %v (%v), want %v", origin, err, wantOrigin)
		}
		if r.from != wantOrigin {
			t.Errorf("reply came from %v, want %v", r.from, wantOrigin)
		}
		var sw stun.Software
		if err := sw.GetFrom(r.msg); err != nil || sw.String() != "heartline-relay/test" {
			t.Errorf("SOFTWARE = %q (%v)", sw, err)
		}
		if r.msg.Contains(stun.AttrOtherAddress) {
			t.Errorf("OTHER-ADDRESS sent by a single-IP server (RFC 5780 section 6 forbids it)")
		}
	}
	if got := s.Stats().OK; got != 2 {
		t.Errorf("Stats().OK = %d, want 2", got)
	}
	if got := metricValue(t, reg, ResultOK); got != 2 {
		t.Errorf("metric ok = %v, want 2", got)
	}
}

func apOf(ip net.IP, port int) netip.AddrPort {
	a, _ := netip.AddrFromSlice(ip)
	return netip.AddrPortFrom(a.Unmap(), uint16(port))
}

func TestBareRequestGetsSmallReply(t *testing.T) {
	s := start(t, Config{})
	c := client(t, "127.0.0.1")
	req := request(t) // 20 bytes, no attributes
	r := exchange(t, c, to("127.0.0.1", s.Ports()[0]), req)
	if r.size > 3*len(req.Raw) {
		t.Fatalf("reply %d bytes to a %d-byte request", r.size, len(req.Raw))
	}
	var xor stun.XORMappedAddress
	if err := xor.GetFrom(r.msg); err != nil || apOf(xor.IP, xor.Port) != localAP(c) {
		t.Fatalf("XOR-MAPPED-ADDRESS missing or wrong: %v %v", xor, err)
	}
}

func TestWildcardBindReportsTrueOrigin(t *testing.T) {
	s, err := Listen(Config{})
	if err != nil {
		t.Fatalf("Listen on all addresses: %v", err)
	}
	defer s.Close()
	c := client(t, "127.0.0.1")
	r := exchange(t, c, to("127.0.0.1", s.Ports()[1]), padded(t))
	want := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(s.Ports()[1]))
	if r.from != want {
		t.Errorf("reply from %v, want %v", r.from, want)
	}
	var origin stun.ResponseOrigin
	err = origin.GetFrom(r.msg)
	if pktinfoSupported && (err != nil || apOf(origin.IP, origin.Port) != want) {
		t.Errorf("RESPONSE-ORIGIN = %v (%v), want %v", origin, err, want)
	}
}

func TestMalformedDroppedAndCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := start(t, Config{Registerer: reg})
	c := client(t, "127.0.0.1")
	dst := to("127.0.0.1", s.Ports()[0])

	good := padded(t)
	badCookie := append([]byte(nil), good.Raw...)
	binary.BigEndian.PutUint32(badCookie[4:8], 0xdeadbeef)
	badFingerprint := append([]byte(nil), good.Raw...)
	badFingerprint[len(badFingerprint)-1] ^= 0xff
	lengthLies := append([]byte(nil), good.Raw...)
	binary.BigEndian.PutUint16(lengthLies[2:4], uint16(len(good.Raw)+16))
	attrOverruns := request(t, stun.NewSoftware("abcd"))
	binary.BigEndian.PutUint16(attrOverruns.Raw[22:24], 200) // SOFTWARE claims 200 bytes
	topBits := append([]byte(nil), good.Raw...)
	topBits[0] |= 0x80
	malformed := [][]byte{
		[]byte("GET / HTTP/1.1\r\n\r\n"),
		{0x00, 0x01},
		good.Raw[:19],
		badCookie,
		badFingerprint,
		lengthLies,
		attrOverruns.Raw,
		topBits,
		make([]byte, 1600), // oversized
	}
	for _, p := range malformed {
		if _, err := c.WriteToUDP(p, dst); err != nil {
			t.Fatal(err)
		}
	}
	indication := request(t)
	indication.Type = stun.NewType(stun.MethodBinding, stun.ClassIndication)
	indication.WriteHeader()
	successFromPeer := request(t)
	successFromPeer.Type = stun.BindingSuccess
	successFromPeer.WriteHeader()
	for _, p := range [][]byte{indication.Raw, successFromPeer.Raw} {
		c.WriteToUDP(p, dst)
	}
	// The responder reads one socket in order: the first reply must be the
	// answer to this request, proving nothing before it was answered.
	r := exchange(t, c, dst, good)
	if r.msg.Type != stun.BindingSuccess {
		t.Fatalf("reply type %v", r.msg.Type)
	}
	st := s.Stats()
	if st.Malformed != uint64(len(malformed)) || st.Ignored != 2 || st.OK != 1 {
		t.Fatalf("stats = %+v, want %d malformed, 2 ignored, 1 ok", st, len(malformed))
	}
	if got := metricValue(t, reg, ResultMalformed); got != float64(len(malformed)) {
		t.Errorf("metric malformed = %v", got)
	}
}

func TestUnknownComprehensionRequiredGets420(t *testing.T) {
	s := start(t, Config{})
	c := client(t, "127.0.0.1")
	dst := to("127.0.0.1", s.Ports()[0])
	unknownRequired := stun.RawAttribute{Type: 0x7777, Value: []byte{1, 2, 3, 4}}
	unknownOptional := stun.RawAttribute{Type: 0xC0DE, Value: []byte{1, 2, 3, 4}}

	r := exchange(t, c, dst, padded(t, unknownRequired, unknownOptional))
	assert420(t, r, 0x7777)

	// An unknown comprehension-optional attribute alone is ignored.
	r = exchange(t, c, dst, padded(t, unknownOptional))
	if r.msg.Type != stun.BindingSuccess {
		t.Fatalf("optional unknown attribute: reply %v, want success", r.msg.Type)
	}

	// CHANGE-REQUEST on a server with one IP: 420 (RFC 5780 section 6.1).
	change := stun.RawAttribute{Type: stun.AttrChangeRequest, Value: []byte{0, 0, 0, changePortFlag}}
	r = exchange(t, c, dst, padded(t, change))
	assert420(t, r, stun.AttrChangeRequest)

	if st := s.Stats(); st.Error420 != 2 || st.OK != 1 {
		t.Fatalf("stats = %+v, want 2 error_420 and 1 ok", st)
	}
}

func assert420(t *testing.T, r reply, want stun.AttrType) {
	t.Helper()
	if r.msg.Type != stun.BindingError {
		t.Fatalf("reply type %v, want Binding error response", r.msg.Type)
	}
	var ec stun.ErrorCodeAttribute
	if err := ec.GetFrom(r.msg); err != nil || ec.Code != stun.CodeUnknownAttribute {
		t.Fatalf("ERROR-CODE = %v (%v), want 420", ec, err)
	}
	v, err := r.msg.Get(stun.AttrUnknownAttributes)
	if err != nil || len(v) != 2 || stun.AttrType(binary.BigEndian.Uint16(v)) != want {
		t.Fatalf("UNKNOWN-ATTRIBUTES = %x (%v), want [%v]", v, err, want)
	}
}

func TestRateLimitPerSource(t *testing.T) {
	const burst = 3
	// A rate this low refills nothing during the test: exactly burst replies.
	s := start(t, Config{Rate: 0.001, Burst: burst})
	flood := client(t, "127.0.0.1")
	other := client(t, "127.0.0.2")
	dst := to("127.0.0.1", s.Ports()[0])
	const sent = 10
	for i := 0; i < sent; i++ {
		if _, err := flood.WriteToUDP(padded(t).Raw, dst); err != nil {
			t.Fatal(err)
		}
	}
	// Another source is not affected; its reply also marks that the flood
	// before it on the same socket has been handled.
	exchange(t, other, dst, padded(t))
	answered := 0
	for {
		if _, err := read(flood, 200*time.Millisecond); err != nil {
			break
		}
		answered++
	}
	if answered != burst {
		t.Fatalf("flooding source got %d replies to %d requests, want %d", answered, sent, burst)
	}
	if st := s.Stats(); st.RateLimited != sent-burst || st.OK != burst+1 {
		t.Fatalf("stats = %+v, want %d rate_limited, %d ok", st, sent-burst, burst+1)
	}
}

func TestLimiterMemoryIsBounded(t *testing.T) {
	l := newSourceLimiter(1, 1, 100, 1e9, 1e9)
	now := time.Now()
	for i := 0; i < 100000; i++ {
		ip := netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
		l.allow(ip, now)
	}
	if got := l.tracked(); got != 100 {
		t.Fatalf("limiter tracks %d sources after a spoofed flood, want at most 100", got)
	}
	// IPv6 sources are grouped by /64.
	a := netip.MustParseAddr("2001:db8::1")
	b := netip.MustParseAddr("2001:db8::ffff:2")
	if !l.allow(a, now) || l.allow(b, now) {
		t.Fatalf("two addresses of one /64 must share a bucket")
	}
}

func TestGlobalRateCapsSpoofedSources(t *testing.T) {
	l := newSourceLimiter(10, 10, 10, 1, 5) // global: 5 at once
	now := time.Now()
	allowed := 0
	for i := 0; i < 50; i++ {
		if l.allow(netip.AddrFrom4([4]byte{198, 18, 0, byte(i)}), now) {
			allowed++
		}
	}
	if allowed != 5 {
		t.Fatalf("%d replies to 50 distinct sources, want the global burst of 5", allowed)
	}
}

func TestChangeRequestWithSecondIP(t *testing.T) {
	// 127.0.0.2 is a second loopback address on Linux.
	s := start(t, Config{Addr: "127.0.0.1", AltIP: "127.0.0.2"})
	c := client(t, "127.0.0.1")
	p := s.Ports()
	primary := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(p[0]))
	r := exchange(t, c, net.UDPAddrFromAddrPort(primary), padded(t))
	var other stun.OtherAddress
	if err := other.GetFrom(r.msg); err != nil {
		t.Fatalf("OTHER-ADDRESS missing with a second IP: %v", err)
	}
	wantOther := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), uint16(p[1]))
	if got := apOf(other.IP, other.Port); got != wantOther {
		t.Fatalf("OTHER-ADDRESS = %v, want %v", got, wantOther)
	}
	cases := []struct {
		flags byte
		from  netip.AddrPort
	}{
		{changePortFlag, netip.AddrPortFrom(primary.Addr(), uint16(p[1]))},
		{changeIPFlag, netip.AddrPortFrom(wantOther.Addr(), uint16(p[0]))},
		{changeIPFlag | changePortFlag, wantOther},
		{0, primary},
	}
	for _, tc := range cases {
		change := stun.RawAttribute{Type: stun.AttrChangeRequest, Value: []byte{0, 0, 0, tc.flags}}
		r := exchange(t, c, net.UDPAddrFromAddrPort(primary), padded(t, change))
		if r.msg.Type != stun.BindingSuccess || r.from != tc.from {
			t.Errorf("flags %x: %v from %v, want success from %v", tc.flags, r.msg.Type, r.from, tc.from)
		}
		var origin stun.ResponseOrigin
		if err := origin.GetFrom(r.msg); err != nil || apOf(origin.IP, origin.Port) != tc.from {
			t.Errorf("flags %x: RESPONSE-ORIGIN %v, want %v", tc.flags, origin, tc.from)
		}
	}
}

func TestListenErrors(t *testing.T) {
	s := start(t, Config{})
	busy := s.Ports()[0]
	for _, cfg := range []Config{
		{Addr: "127.0.0.1", Port: busy},
		{Addr: "not-an-ip"},
		{AltIP: "127.0.0.2"},
		{Addr: "127.0.0.1", AltIP: "::1"},
		{Addr: "127.0.0.1", Port: 65535},
	} {
		if s2, err := Listen(cfg); err == nil {
			s2.Close()
			t.Errorf("Listen(%+v) succeeded, want an error", cfg)
		}
	}
}

func TestCloseStopsAndFreesPorts(t *testing.T) {
	s, err := Listen(Config{Addr: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	port := s.Ports()[0]
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := goleak.Find(goleak.IgnoreCurrent()); err != nil {
		t.Fatalf("goroutines left after Close: %v", err)
	}
	// The ports are free again: a relay restart can take them.
	s2, err := Listen(Config{Addr: "127.0.0.1", Port: port})
	if err != nil {
		t.Fatalf("rebinding port %d after Close: %v", port, err)
	}
	s2.Close()
	c := client(t, "127.0.0.1")
	c.WriteToUDP(padded(t).Raw, to("127.0.0.1", port))
	if _, err := read(c, 100*time.Millisecond); err == nil {
		t.Fatalf("a closed responder answered")
	}
}

func TestMetricsSurviveReRegistration(t *testing.T) {
	reg := prometheus.NewRegistry()
	s1 := start(t, Config{Registerer: reg})
	s2 := start(t, Config{Registerer: reg})
	if s1.metric != s2.metric {
		t.Fatalf("a second responder on the same registry must reuse the counter")
	}
}

// metricValue reads heartline_stun_requests_total{result} the way a scrape
// would.
func metricValue(t *testing.T, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "heartline_stun_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func TestWildcardBindIPv6(t *testing.T) {
	c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	defer c.Close()
	s, err := Listen(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := exchange(t, c, &net.UDPAddr{IP: net.IPv6loopback, Port: s.Ports()[0]}, padded(t))
	var xor stun.XORMappedAddress
	if err := xor.GetFrom(r.msg); err != nil || apOf(xor.IP, xor.Port) != localAP(c) {
		t.Fatalf("XOR-MAPPED-ADDRESS %v (%v), want %v", xor, err, localAP(c))
	}
	want := netip.AddrPortFrom(netip.IPv6Loopback(), uint16(s.Ports()[0]))
	var origin stun.ResponseOrigin
	if err := origin.GetFrom(r.msg); pktinfoSupported && (err != nil || apOf(origin.IP, origin.Port) != want) {
		t.Fatalf("RESPONSE-ORIGIN %v (%v), want %v", origin, err, want)
	}
}
