// Command heartline-load is Heartline's load generator: it speaks protocol v1
// to a running relay and measures it (memory and CPU per idle member, fan-out
// latency and loss, churn, restart storms), sampling the relay's RSS and CPU
// from /proc. Every run is bounded in connections and time and stops by itself.
//
//	heartline-load idle    -n 19000 -hold 30s
//	heartline-load fanout  -receivers 1000 -senders 10 -rate 10 -duration 20s
//	heartline-load fanout  -receivers 1000 -senders 1 -window 16 -duration 20s
//	heartline-load fanout  -url ws://127.0.0.1:8081/ws,ws://127.0.0.1:8082/ws,ws://127.0.0.1:8083/ws \
//	                       -receivers 1000 -senders 10 -rate 10 -duration 20s   (relays sharing one Redis)
//	heartline-load churn   -members 200 -churn 20 -duration 40s
//	heartline-load storm   -n 10000 -relay-cmd "/tmp/heartline-relay --listen 127.0.0.1:8080 ..."
//	heartline-load guess   -duration 5s -src 127.0.0.2
//	heartline-load failover -url ws://127.0.0.1:8081/ws,ws://127.0.0.1:8082/ws,ws://127.0.0.1:8083/ws \
//	                       -n 10000 -kill-pid 1234   (SIGKILL one of the relays under traffic)
//	heartline-load rolling  -url ... -relay-cmd "..." -relay-cmd "..." -relay-cmd "..."
//	heartline-load fill    -sockets 20 -duration 60s -src 127.0.0.2 -db /tmp/data/heartline.db
//
// It prints a readable summary and, last, one JSON line with the same figures.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

const usage = `heartline-load: load generator for a Heartline relay (protocol v1)

usage: heartline-load <mode> [flags]

modes:
  idle     N heartbeating members in rooms, held idle; relay KiB/connection and CPU%%
  fanout   R receivers and S senders in one room, at a rate or a closed-loop window;
           latency p50/p90/p99/max, loss (gaps, backlog, evicted), deliveries/s,
           relay CPU per delivery
  churn    members joining and leaving (bye and abrupt closes) while others chat
  storm    N members connected while the relay restarts; time until all resumed,
           loss, peak relay RSS
  guess    wrong tokens from one address, one after another: guesses per second
           the relay answers, and how many it refuses unheard (throttled)
  failover N shared/client engines over several relays on one Redis, each
           dialling its own relay first and the others when that fails; one
           relay is killed (SIGKILL): time until its clients are back
           elsewhere, loss, duplicates, order, left/joined and away seen
  rolling  the same engines while the tool restarts every relay in turn
           (SIGTERM, wait for the exit, start again): the same figures
  fill     the longest messages at the relay's rate from one address, a fresh
           room every few dozen: growth of the relay's database per second

Run "heartline-load <mode> -h" for a mode's flags. Only 127.0.0.0/8 relays and
source addresses are accepted. -url may list several relays that share one
Redis, comma-separated (idle, fanout, churn, failover, rolling): members are spread over them
round robin, and fanout also reports each relay's share.
`

func main() {
	if len(os.Args) < 2 || strings.HasPrefix(os.Args[1], "-") {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	mode := os.Args[1]
	run, ok := modes[mode]
	if !ok {
		fmt.Fprintf(os.Stderr, "heartline-load: unknown mode %q\n\n%s", mode, usage)
		os.Exit(2)
	}
	fs := flag.NewFlagSet(mode, flag.ExitOnError)
	c := commonFlags(fs)
	exec := run(fs)
	_ = fs.Parse(os.Args[2:])
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "heartline-load %s: unexpected arguments %q\n", mode, fs.Args())
		os.Exit(2)
	}
	e, err := c.env()
	if err != nil {
		fmt.Fprintf(os.Stderr, "heartline-load %s: %v\n", mode, err)
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	load0 := loadAvg()
	started := time.Now().UTC()
	res, err := exec(ctx, e, c)
	if err != nil {
		fmt.Fprintf(os.Stderr, "heartline-load %s: %v\n", mode, err)
	}
	if res != nil {
		load1 := loadAvg()
		fmt.Printf("  machine: %d CPUs, load average %s at start, %s at end (other tenants' load moves every figure)\n",
			runtime.NumCPU(), load0, load1)
		line, jerr := withMachine(res, map[string]any{"started": started.Format(time.RFC3339),
			"cpus": runtime.NumCPU(), "loadavg_start": load0, "loadavg_end": load1, "args": os.Args[1:]})
		if jerr != nil {
			fmt.Fprintf(os.Stderr, "heartline-load: encoding the result: %v\n", jerr)
			os.Exit(1)
		}
		fmt.Println(string(line))
	}
	if err != nil {
		os.Exit(1)
	}
}

type modeFunc func(fs *flag.FlagSet) func(ctx context.Context, e *env, c *common) (any, error)

var modes = map[string]modeFunc{
	"idle":     idleMode,
	"fanout":   fanoutMode,
	"churn":    churnMode,
	"storm":    stormMode,
	"guess":    guessMode,
	"fill":     fillMode,
	"failover": failoverMode,
	"rolling":  rollingMode,
}

// common holds the flags every mode has.
type common struct {
	url      string   // the -url flag as given
	urls     []string // its relay URLs, set by env()
	srcs     string
	pid      int
	token    string
	conc     int
	timeout  time.Duration
	readBuf  int
	writeBuf int
	quiet    bool
}

func commonFlags(fs *flag.FlagSet) *common {
	c := &common{}
	fs.StringVar(&c.url, "url", "ws://127.0.0.1:8080/ws", "relay websocket URL (a 127.0.0.0/8 address); several, comma-separated, spread the members round robin over relays that share one Redis (idle, fanout, churn)")
	fs.StringVar(&c.srcs, "src", "127.0.0.2-127.0.0.17", "source addresses: a range a-b or a comma list, all in 127.0.0.0/8 (about 28,000 connections per address)")
	fs.IntVar(&c.pid, "pid", 0, "relay process id for /proc sampling; 0 finds the process listening on each URL's port (with several relays, their figures are summed)")
	fs.StringVar(&c.token, "token", "", "relay token for hello, if the relay requires one")
	fs.IntVar(&c.conc, "conc", 64, "connection attempts in flight while joining")
	fs.DurationVar(&c.timeout, "timeout", 15*time.Minute, "hard limit for the whole run")
	fs.IntVar(&c.readBuf, "read-buf", 0, "websocket read buffer per connection in bytes; 0: the mode's default")
	fs.IntVar(&c.writeBuf, "write-buf", 512, "websocket write buffer in bytes (pooled: held only while writing)")
	fs.BoolVar(&c.quiet, "q", false, "no progress lines on stderr")
	return c
}

func (c *common) env() (*env, error) {
	urls, err := parseURLs(c.url)
	if err != nil {
		return nil, err
	}
	c.urls = urls
	srcs, err := parseSources(c.srcs)
	if err != nil {
		return nil, err
	}
	if c.conc < 1 {
		return nil, fmt.Errorf("-conc must be at least 1")
	}
	return &env{url: urls[0], urls: urls, srcs: srcs, token: c.token, readBuf: c.readBuf, writeBuf: c.writeBuf,
		wpool: &sync.Pool{}, start: time.Now(), fails: map[string]int{}}, nil
}

// relayLabel names the sampled relay process(es) in a summary line.
func relayLabel(pid string) string {
	if strings.Contains(pid, ",") {
		return "relays (pids " + pid + ", summed)"
	}
	return "relay pid " + pid
}

// parseURLs splits -url into relay websocket URLs, each on this machine.
func parseURLs(spec string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, raw := range strings.Split(spec, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
			return nil, fmt.Errorf("-url %q is not a ws:// URL", raw)
		}
		host := u.Hostname()
		ip := net.ParseIP(host)
		if host == "localhost" {
			ip = net.IPv4(127, 0, 0, 1)
		}
		if ip == nil || !ip.IsLoopback() || ip.To4() == nil {
			return nil, fmt.Errorf("-url host %q must be a 127.x address: this tool only loads relays on this machine", host)
		}
		if seen[raw] {
			return nil, fmt.Errorf("-url names %s twice: each relay once (members are spread evenly over the list)", raw)
		}
		seen[raw] = true
		out = append(out, raw)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("-url %q names no relay", spec)
	}
	return out, nil
}

// oneRelay refuses several -url for a mode that measures one relay.
func (c *common) oneRelay(mode, why string) error {
	if len(c.urls) > 1 {
		return fmt.Errorf("-url names %d relays, but %s %s: give one -url", len(c.urls), mode, why)
	}
	return nil
}

// relayPort is the first URL's port (for finding the relay's pid).
func (c *common) relayPort() int { return urlPort(c.url) }

// urlPort is a ws:// URL's port, or the scheme's default.
func urlPort(raw string) int {
	raw, _, _ = strings.Cut(raw, ",")
	u, _ := url.Parse(strings.TrimSpace(raw))
	p, _ := strconv.Atoi(u.Port())
	if p == 0 {
		if u.Scheme == "wss" {
			return 443
		}
		return 80
	}
	return p
}

// relayPID returns the relay's pid as a /proc name, or "" (with a warning)
// when it cannot be found: figures from /proc are then left out. With
// several relays it is their pids joined by commas, which readProc sums.
func (c *common) relayPID() string {
	if c.pid > 0 {
		return strconv.Itoa(c.pid)
	}
	urls := c.urls
	if len(urls) == 0 {
		urls = []string{c.url}
	}
	var pids []string
	seen := map[int]bool{}
	for _, u := range urls {
		pid, err := pidListeningOn(urlPort(u))
		if err != nil {
			fmt.Fprintf(os.Stderr, "heartline-load: relay CPU/RSS not sampled: %v\n", err)
			return ""
		}
		if !seen[pid] { // two URLs of one relay (or a balancer's port) count once
			seen[pid] = true
			pids = append(pids, strconv.Itoa(pid))
		}
	}
	return strings.Join(pids, ",")
}

func parseSources(spec string) ([]net.IP, error) {
	var out []net.IP
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a := net.ParseIP(lo).To4()
		if a == nil || a[0] != 127 {
			return nil, fmt.Errorf("-src %q: %q is not a 127.x IPv4 address", spec, lo)
		}
		if !isRange {
			out = append(out, a)
			continue
		}
		b := net.ParseIP(hi).To4()
		if b == nil || b[0] != 127 || a[0] != b[0] || a[1] != b[1] || a[2] != b[2] || b[3] < a[3] {
			return nil, fmt.Errorf("-src %q: a range must stay within one 127.x.y.0/24 and go upwards", spec)
		}
		for x := int(a[3]); x <= int(b[3]); x++ {
			out = append(out, net.IPv4(a[0], a[1], a[2], byte(x)).To4())
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("-src %q names no address", spec)
	}
	return out, nil
}

// newMembers makes n members spread over rooms, source addresses and relay
// URLs. A room's members take the relays in turn, starting with relay
// (room + shift) mod relays (member i is in room i mod rooms, on relay
// (i / rooms + i mod rooms + shift) mod relays): with as many rooms as
// relays no room sits on one relay alone, and with one member per room the
// rooms' members still spread over the relays. A second group (fanout's
// senders) passes shift 1 so a room's first sender and first receiver sit
// on different relays.
func newMembers(e *env, n int, rooms []string, namePrefix string, shift int) []*member {
	ms := make([]*member, n)
	for i := range ms {
		ms[i] = &member{
			idx:  i,
			room: rooms[i%len(rooms)],
			name: namePrefix + strconv.Itoa(i),
			key:  newKey(),
			src:  e.srcs[i%len(e.srcs)],
			url:  e.urlFor(i/len(rooms) + i%len(rooms) + shift),
		}
	}
	return ms
}

// progress prints a line on stderr unless -q.
func (c *common) progress(format string, a ...any) {
	if !c.quiet {
		fmt.Fprintf(os.Stderr, "%s  "+format+"\n", append([]any{time.Now().UTC().Format("15:04:05")}, a...)...)
	}
}

// relayFigures is the /proc view of the relay in a result.
type relayFigures struct {
	PID         string  `json:"pid,omitempty"`
	RSSBaseKiB  int64   `json:"rss_base_kib,omitempty"`
	RSSKiB      int64   `json:"rss_kib,omitempty"`
	RSSPeakKiB  int64   `json:"rss_peak_kib,omitempty"`
	HWMKiB      int64   `json:"hwm_kib,omitempty"`
	CPUPercent  float64 `json:"cpu_percent"`
	CPUSeconds  float64 `json:"cpu_seconds"`
	Threads     int64   `json:"threads,omitempty"`
	FDs         int64   `json:"fds,omitempty"`
	FDsBase     int64   `json:"fds_base,omitempty"`
	SampleError string  `json:"sample_error,omitempty"`
}

// peakRSS samples pid every interval until ctx ends and returns the largest
// VmRSS seen (VmHWM would include startup and earlier phases).
func peakRSS(ctx context.Context, pid string, every time.Duration) <-chan int64 {
	out := make(chan int64, 1)
	go func() {
		var peak int64
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if s, err := readProc(pid); err == nil {
				peak = max(peak, s.rssKiB)
			}
			select {
			case <-ctx.Done():
				out <- peak
				return
			case <-t.C:
			}
		}
	}()
	return out
}

func defaultReadBuf(c *common, def int) int {
	if c.readBuf > 0 {
		return c.readBuf
	}
	return def
}

var _ websocket.BufferPool = (*sync.Pool)(nil)

// loadAvg is the 1-minute load average from /proc/loadavg ("" if unreadable).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// withMachine marshals res with the extra fields added (one flat JSON object).
func withMachine(res any, extra map[string]any) ([]byte, error) {
	b, err := json.Marshal(res)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	for k, v := range extra {
		m[k] = v
	}
	return json.Marshal(m)
}
