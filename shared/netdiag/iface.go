package netdiag

import (
	"net"
	"slices"
	"strings"
)

// Interfaces returns the addresses of this computer's active, non-loopback
// network interfaces as sorted "name address/prefix" strings (link-local
// IPv6 left out: it never reaches a relay). Save it with a good connection
// and pass it back as Target.PreviousInterfaces. nil means the interfaces
// could not be read; an empty slice means there are none.
func Interfaces() []string {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil
	}
	out := []string{}
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok || ipn.IP.IsLinkLocalUnicast() || ipn.IP.IsLoopback() {
				continue
			}
			out = append(out, ifc.Name+" "+ipn.String())
		}
	}
	slices.Sort(out)
	return out
}

func compareInterfaces(prev, now []string) Finding {
	switch {
	case prev == nil:
		return Finding{NotChecked, "no earlier snapshot"}
	case now == nil:
		return Finding{NotChecked, "interfaces could not be read"}
	}
	var added, removed []string
	for _, s := range now {
		if !slices.Contains(prev, s) {
			added = append(added, s)
		}
	}
	for _, s := range prev {
		if !slices.Contains(now, s) {
			removed = append(removed, s)
		}
	}
	if len(added) == 0 && len(removed) == 0 {
		return Finding{No, ""}
	}
	var parts []string
	if len(removed) > 0 {
		parts = append(parts, "gone: "+strings.Join(removed, ", "))
	}
	if len(added) > 0 {
		parts = append(parts, "new: "+strings.Join(added, ", "))
	}
	return Finding{Yes, strings.Join(parts, "; ")}
}
