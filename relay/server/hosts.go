package server

import (
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// hostAllowlist decides which names the relay answers to, against DNS
// rebinding: a web page on evil.example whose name is made to resolve to the
// relay's address talks to the relay from the browser with Host and Origin
// both evil.example, which a same-host Origin check alone lets through. The
// page cannot make the browser send a Host it does not own, so checking
// Host against the relay's own names stops it. IP literals and localhost are
// always answered: a page can only be served under an IP literal by the
// host at that address, and browsers resolve localhost themselves.
type hostAllowlist struct {
	any   bool                // "*" listed: every name (no rebinding protection)
	names map[string][]string // lower-case name -> allowed ports ("" = any port)

	refusedMu sync.Mutex
	refused   map[string]bool // names already logged at warn level
}

// maxRefusedLogged bounds the names remembered for logging once each (a
// scanner trying many names would otherwise grow the map).
const maxRefusedLogged = 64

// splitHostPort splits a Host header or --public-host entry into a lower-case
// name without brackets or a final dot, and its port ("" when none).
func splitHostPort(s string) (host, port string) {
	s = strings.TrimSpace(s)
	if h, p, err := net.SplitHostPort(s); err == nil {
		host, port = h, p
	} else {
		host = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	}
	return strings.TrimSuffix(strings.ToLower(host), "."), port
}

// validPublicHost reports what is wrong with a --public-host entry, or "".
func validPublicHost(s string) string {
	if s == "*" {
		return ""
	}
	if strings.Contains(s, "://") || strings.ContainsAny(s, "/?#@ ") {
		return "is not a host name: give the name alone, like chat.example.org or chat.example.org:443 (no scheme or path)"
	}
	host, port := splitHostPort(s)
	if host == "" {
		return "has no host name"
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "has a port that is not a number from 1 to 65535"
		}
	}
	return ""
}

// machineHostNames are the names of this machine a client on the network
// may use without configuration: its host name, the short form of it, and
// the short form under .local (mDNS).
func machineHostNames() []string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return nil
	}
	h = strings.TrimSuffix(strings.ToLower(h), ".")
	short, _, _ := strings.Cut(h, ".")
	out := []string{h}
	if short != h {
		out = append(out, short)
	}
	return append(out, short+".local")
}

// newHostAllowlist builds the list from Config.PublicHosts; when that is
// empty, the machine's own host names stand in for it.
func newHostAllowlist(public []string) *hostAllowlist {
	a := &hostAllowlist{names: map[string][]string{}, refused: map[string]bool{}}
	if len(public) == 0 {
		public = machineHostNames()
	}
	for _, p := range public {
		if strings.TrimSpace(p) == "*" {
			a.any = true
			continue
		}
		host, port := splitHostPort(p)
		a.names[host] = append(a.names[host], port)
	}
	return a
}

// allowed reports whether a request naming hostHeader is for this relay.
func (a *hostAllowlist) allowed(hostHeader string) bool {
	if a.any || hostHeader == "" {
		// No Host at all (HTTP/1.0) never comes from a browser.
		return true
	}
	host, port := splitHostPort(hostHeader)
	if host == "localhost" {
		return true
	}
	if ip, _, _ := strings.Cut(host, "%"); net.ParseIP(ip) != nil {
		return true
	}
	for _, p := range a.names[host] {
		// A Host without a port names the scheme's default port: clients
		// leave out 80 and 443.
		if p == "" || p == port || (port == "" && (p == "80" || p == "443")) {
			return true
		}
	}
	return false
}

// describe lists what the relay answers to, for the startup log line.
func (a *hostAllowlist) describe() string {
	if a.any {
		return "any host name (--public-host *: no protection against DNS rebinding)"
	}
	var names []string
	for n, ports := range a.names {
		for _, p := range ports {
			if p != "" {
				n = net.JoinHostPort(n, p)
			}
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return "IP addresses and localhost"
	}
	slices.Sort(names)
	return "IP addresses, localhost, " + strings.Join(names, ", ")
}

// firstRefusal reports whether name is refused for the first time (to log it
// once at warn level).
func (a *hostAllowlist) firstRefusal(name string) bool {
	a.refusedMu.Lock()
	defer a.refusedMu.Unlock()
	if a.refused[name] || len(a.refused) >= maxRefusedLogged {
		return false
	}
	a.refused[name] = true
	return true
}

// checkHost refuses, with 421 Misdirected Request, every request (websocket
// upgrades and plain HTTP alike) whose Host is not one of the relay's names.
// Plain requests are checked too: a browser sends no Origin on a same-origin
// GET, so a rebound page could read /metrics.
func (s *Server) checkHost(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.hosts.allowed(r.Host) {
			next.ServeHTTP(w, r)
			return
		}
		name, _ := splitHostPort(r.Host)
		s.metrics.HTTPRefused.WithLabelValues("host").Inc()
		attrs := []any{"host", r.Host, "remote", r.RemoteAddr, "path", r.URL.Path}
		if s.hosts.firstRefusal(name) {
			s.log.Warn("refused a request for a host name this relay does not answer to; if it is one of the relay's names, add it with --public-host", attrs...)
		} else {
			s.log.Debug("refused a request for an unknown host name", attrs...)
		}
		writeJSONError(w, http.StatusMisdirectedRequest, "unknown_host",
			"this relay does not answer to the name "+strconv.Quote(name)+
				": connect by its IP address, or ask its operator to add the name with --public-host "+name)
	})
}
