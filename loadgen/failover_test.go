package main

import (
	"flag"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heartline/heartline/internal/redistest"
)

var relayBin struct {
	once sync.Once
	path string
	err  error
}

// buildRelayBinary builds ./relay once per test run: failover kills a
// relay process, so these tests need real ones.
func buildRelayBinary(t *testing.T) string {
	t.Helper()
	relayBin.once.Do(func() {
		dir, err := os.MkdirTemp("", "heartline-load-relay-")
		if err != nil {
			relayBin.err = err
			return
		}
		relayBin.path = filepath.Join(dir, "heartline-relay")
		out, err := exec.Command("go", "build", "-o", relayBin.path, "../relay").CombinedOutput()
		if err != nil {
			relayBin.err = &buildError{err: err, out: string(out)}
		}
	})
	if relayBin.err != nil {
		t.Fatalf("building the relay: %v", relayBin.err)
	}
	return relayBin.path
}

type buildError struct {
	err error
	out string
}

func (b *buildError) Error() string { return b.err.Error() + ": " + b.out }

// freePort is a loopback port nobody listened on a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// clusterCmds are the command lines of three relays on one Redis, and
// their URLs.
func clusterCmds(t *testing.T) (cmds, urls []string) {
	t.Helper()
	bin := buildRelayBinary(t)
	rd := redistest.Start(t, redistest.Options{AppendOnly: true})
	for range 3 {
		port := freePort(t)
		dir := t.TempDir()
		cmds = append(cmds, strings.Join([]string{bin, "--listen", "127.0.0.1:" + strconv.Itoa(port), "--data-dir", dir,
			"--redis-url", rd.URL(), "--grace", "30s", "--redis-dead-after", "10s", "--rate", "1000", "--burst", "1000",
			"--max-conns-per-ip", "-1", "--max-room-members-per-ip", "-1", "--stun-port", "0", "--log-level", "warn"}, " "))
		urls = append(urls, "ws://127.0.0.1:"+strconv.Itoa(port)+"/ws")
	}
	return cmds, urls
}

func TestFailoverKilledRelaysClientsComeBackElsewhereMissingNothing(t *testing.T) {
	cmds, urls := clusterCmds(t)
	var pids []int
	for i, cmd := range cmds {
		p, err := startRelay(t.Context(), cmd, filepath.Join(t.TempDir(), "relay.log"), urlPort(urls[i]))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.stop() })
		pids = append(pids, p.cmd.Process.Pid)
	}
	res := runMode(t, "failover", "-url", strings.Join(urls, ","), "-kill-pid", strconv.Itoa(pids[1]),
		"-n", "45", "-per-room", "15", "-senders", "3", "-rate", "5", "-before", "1s", "-after", "2s",
		"-back-timeout", "30s", "-drain", "20s").(*failoverResult)

	if len(res.Outages) != 1 {
		t.Fatalf("outages %+v", res.Outages)
	}
	o := res.Outages[0]
	if o.Relay != urls[1] || o.Clients != 15 || o.Back != 15 || o.BackOn[urls[1]] != 0 {
		t.Errorf("outage %+v: want the 15 clients of %s back on the other relays", o, urls[1])
	}
	if res.ClientsPerRelayEnd[urls[1]] != 0 || res.ClientsPerRelayEnd[urls[0]]+res.ClientsPerRelayEnd[urls[2]] != 45 {
		t.Errorf("clients per relay at the end %v: want all 45 on the two that live", res.ClientsPerRelayEnd)
	}
	if res.Acked == 0 || res.Acked != res.Typed || res.Unacked != 0 || !res.Settled {
		t.Errorf("typed %d, acked %d, unacked %d, settled %v", res.Typed, res.Acked, res.Unacked, res.Settled)
	}
	if res.Lost != 0 || res.Duplicated != 0 || res.OutOfOrder != 0 || res.AckedTwice != 0 {
		t.Errorf("lost %d, duplicated %d, out of order %d, acked twice %d", res.Lost, res.Duplicated, res.OutOfOrder, res.AckedTwice)
	}
	if res.LeftCameBack+res.JoinedCameBack+res.LeftOthers+res.JoinedOthers != 0 {
		t.Errorf("left/joined after the kill: %d/%d about who came back, %d/%d about the others",
			res.LeftCameBack, res.JoinedCameBack, res.LeftOthers, res.JoinedOthers)
	}
}

func TestRollingRestartsEveryRelayWithoutLosingAMessage(t *testing.T) {
	cmds, urls := clusterCmds(t)
	args := []string{"-url", strings.Join(urls, ","), "-n", "45", "-per-room", "15", "-senders", "3", "-rate", "5",
		"-before", "1s", "-between", "500ms", "-after", "1s", "-back-timeout", "30s", "-drain", "20s", "-relay-log-dir", t.TempDir()}
	for _, cmd := range cmds {
		args = append(args, "-relay-cmd", cmd)
	}
	start := time.Now()
	res := runMode(t, "rolling", args...).(*failoverResult)

	if len(res.Outages) != 3 {
		t.Fatalf("outages %+v: want one per relay", res.Outages)
	}
	for i, o := range res.Outages {
		if o.Relay != urls[i] || o.Signal != "SIGTERM" || o.Clients == 0 || o.Back != o.Clients || o.StopSeconds <= 0 {
			t.Errorf("restart %d: %+v", i+1, o)
		}
	}
	if res.Acked == 0 || res.Acked != res.Typed || res.Unacked != 0 || !res.Settled {
		t.Errorf("typed %d, acked %d, unacked %d, settled %v", res.Typed, res.Acked, res.Unacked, res.Settled)
	}
	if res.Lost != 0 || res.Duplicated != 0 || res.AckedTwice != 0 {
		t.Errorf("lost %d, duplicated %d, acked twice %d", res.Lost, res.Duplicated, res.AckedTwice)
	}
	if res.LeftCameBack+res.JoinedCameBack != 0 {
		t.Errorf("left %d, joined %d about members who came back", res.LeftCameBack, res.JoinedCameBack)
	}
	// The tool stopped the relays it started: nothing listens any more.
	for _, u := range urls {
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(urlPort(u)), time.Second); err == nil {
			c.Close()
			t.Errorf("%s still listens after the run (started %v ago)", u, time.Since(start))
		}
	}
}

func TestFailoverAndRollingRefuseWhatTheyCannotDo(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	u := "ws://" + ln.Addr().String() + "/ws"
	for _, tc := range []struct {
		mode string
		urls string
		args []string
		want string
	}{
		// pid 1 listens on neither port.
		{"failover", u + ",ws://127.0.0.1:1/ws", []string{"-kill-pid", "1"}, "listens on none of the -url ports"},
		{"failover", u + ",ws://127.0.0.1:1/ws", nil, "-kill-pid: give the pid"},
		{"failover", u, []string{"-kill-pid", "1"}, "at least two relays"},
		{"rolling", u + ",ws://127.0.0.1:1/ws", []string{"-relay-cmd", "/bin/true"}, "give one per -url (2)"},
	} {
		c := &common{url: tc.urls, srcs: "127.0.0.2", conc: 1}
		e, err := c.env()
		if err != nil {
			t.Fatal(err)
		}
		fs := flag.NewFlagSet(tc.mode, flag.ContinueOnError)
		exec := modes[tc.mode](fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		if _, err := exec(t.Context(), e, c); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %s %v: err = %v, want %q", tc.mode, tc.urls, tc.args, err, tc.want)
		}
	}
}
