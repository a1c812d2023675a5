//go:build !linux

package stunsrv

import (
	"net"
	"net/netip"
)

// Elsewhere a wildcard socket does not learn a request's destination
// address: its replies carry no RESPONSE-ORIGIN and leave from whatever
// address the kernel picks. Bind Config.Addr to a specific IP to get it.
const pktinfoSupported = false

var oobSize = 0

func enablePktinfo(*net.UDPConn, bool) error { return nil }

func pktDst([]byte) (netip.Addr, bool) { return netip.Addr{}, false }

func srcOOB(netip.Addr) []byte { return nil }
