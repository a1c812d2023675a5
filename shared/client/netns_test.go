package client

// A laptop moving from one network to another, for real: the client engine
// runs in a network namespace of its own, connected to a real relay in
// another one by two veth pairs (the Wi-Fi and the phone's hotspot). The
// test moves the client from one to the other with ip(8) and measures how
// long the engine takes to notice (rtnetlink), give up the old link and be
// connected and resumed on the new one. Root only (skipped otherwise). The
// test binary runs itself in the namespaces (HEARTLINE_CLIENT_NSTEST_ROLE).

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heartline/heartline/internal/testutil"
	"github.com/heartline/heartline/relay/server"
)

const nsRoleEnv = "HEARTLINE_CLIENT_NSTEST_ROLE"

// Addresses (RFC 2544 benchmarking range only).
const (
	nsWifiClient    = "198.18.1.2" // the client on the Wi-Fi
	nsWifiGateway   = "198.18.1.1"
	nsHotspotClient = "198.18.2.2" // the client on the hotspot
	nsHotspotGW     = "198.18.2.1"
	nsRelayIP       = "198.19.0.2"
)

func nsRelayURL() string { return "ws://" + nsRelayIP + ":8080/ws" }

// nsRole plays a part inside a namespace; the exit code is the process's.
func nsRole(role string) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	var err error
	switch role {
	case "relay":
		err = nsRelay(log)
	case "alice":
		err = nsMember(log, "alice", false)
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "role", role+":", err)
		return 1
	}
	return 0
}

// nsRelay runs the real relay (its default heartbeat: 10 s, dead after
// 25 s) and bob, a member on the relay's own machine.
func nsRelay(log *slog.Logger) error {
	dir, err := os.MkdirTemp("", "wake-relay-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	srv, err := server.New(server.Config{Listen: nsRelayIP + ":8080", DataDir: dir, Logger: log})
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		srv.Shutdown(context.Background())
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	return nsMember(log, "bob", true)
}

// nsMember runs a member, prints its events as lines ("WORD json") and
// sends what stdin says ("SAY text") until stdin ends.
func nsMember(log *slog.Logger, name string, onRelay bool) error {
	c, err := New(Config{URL: nsRelayURL(), Room: "wake", Name: name, Key: NewKey(),
		Logger: log.With("member", name), NoNetworkWatch: onRelay})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- c.Run(ctx) }()
	printed := make(chan struct{})
	go func() {
		defer close(printed)
		connected := false
		for ev := range c.Events() {
			switch e := ev.(type) {
			case StateChanged:
				if e.State.Phase == Connected && e.State.RTT == 0 {
					if !connected && onRelay {
						fmt.Println("READY")
					}
					connected = true
					say("CONNECTED", nil)
				}
			case Welcomed:
				say("WELCOMED", map[string]any{"recovered": e.Welcome.Recovered, "seq": e.Welcome.Seq})
			case NetworkChanged:
				say("NETCHANGE", map[string]any{"text": e.Text(), "detail": e.Change.Detail})
			case LinkChecked:
				say("CHECKED", map[string]any{"alive": e.Alive, "cause": e.Cause})
			case LinkDropped:
				say("DROPPED", map[string]any{"detected": e.Drop.Detected, "cause": e.Drop.Cause})
			case MessageReceived:
				say("GOT", map[string]any{"seq": e.Msg.Seq, "from": e.Msg.From.Name, "text": e.Msg.Text, "own": e.Own})
			}
		}
	}()
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if text, ok := strings.CutPrefix(sc.Text(), "SAY "); ok {
			if _, err := c.Send(text); err != nil {
				fmt.Fprintln(os.Stderr, "send:", err)
			}
		}
	}
	cancel()
	<-ran
	<-printed
	return nil
}

var sayMu sync.Mutex

func say(word string, v any) {
	sayMu.Lock()
	defer sayMu.Unlock()
	b, _ := json.Marshal(v)
	fmt.Printf("%s %s\n", word, b)
}

// transcript keeps every line a child printed, with when it arrived.
type transcript struct {
	mu      sync.Mutex
	lines   []stampedLine
	changed chan struct{}
}

type stampedLine struct {
	at      time.Time
	word    string
	payload map[string]any
}

func record(lines <-chan string) *transcript {
	tr := &transcript{changed: make(chan struct{}, 1)}
	go func() {
		for l := range lines {
			word, rest, _ := strings.Cut(l, " ")
			var payload map[string]any
			json.Unmarshal([]byte(rest), &payload)
			tr.mu.Lock()
			tr.lines = append(tr.lines, stampedLine{time.Now(), word, payload})
			tr.mu.Unlock()
			select {
			case tr.changed <- struct{}{}:
			default:
			}
		}
	}()
	return tr
}

// wait returns the first line from index from on that matches, and its
// index; it fails t after within.
func (tr *transcript) wait(t *testing.T, what string, from int, within time.Duration, match func(stampedLine) bool) (stampedLine, int) {
	t.Helper()
	deadline := time.After(within)
	for {
		tr.mu.Lock()
		for i := from; i < len(tr.lines); i++ {
			if match(tr.lines[i]) {
				l := tr.lines[i]
				tr.mu.Unlock()
				return l, i
			}
		}
		tr.mu.Unlock()
		select {
		case <-tr.changed:
		case <-deadline:
			t.Fatalf("no %s within %v", what, within)
		}
	}
}

func (tr *transcript) count(match func(stampedLine) bool) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	n := 0
	for _, l := range tr.lines {
		if match(l) {
			n++
		}
	}
	return n
}

func word(w string) func(stampedLine) bool {
	return func(l stampedLine) bool { return l.word == w }
}

func got(text string) func(stampedLine) bool {
	return func(l stampedLine) bool { return l.word == "GOT" && l.payload["text"] == text }
}

// nsTopology: namespaces c (the laptop) and r (the relay's machine), joined
// by two veth pairs: cA-rA (the Wi-Fi, where the client starts) and cB-rB
// (the hotspot, up but without an address yet). IPv6 is off so that its
// address autoconfiguration adds no changes of its own.
func nsTopology(t *testing.T) (c, r string) {
	ns := testutil.NewNetNS(t, "hlw", "c", "r")
	c, r = ns[0], ns[1]
	var cmds [][]string
	for _, n := range ns {
		cmds = append(cmds,
			[]string{"ip", "netns", "exec", n, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"},
			[]string{"ip", "netns", "exec", n, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"},
			[]string{"ip", "-n", n, "link", "set", "lo", "up"})
	}
	cmds = append(cmds,
		[]string{"ip", "link", "add", "name", "cA", "netns", c, "type", "veth", "peer", "name", "rA", "netns", r},
		[]string{"ip", "link", "add", "name", "cB", "netns", c, "type", "veth", "peer", "name", "rB", "netns", r},
		[]string{"ip", "-n", c, "addr", "add", nsWifiClient + "/24", "dev", "cA"},
		[]string{"ip", "-n", r, "addr", "add", nsWifiGateway + "/24", "dev", "rA"},
		[]string{"ip", "-n", r, "addr", "add", nsHotspotGW + "/24", "dev", "rB"},
		[]string{"ip", "-n", r, "addr", "add", nsRelayIP + "/32", "dev", "lo"},
		[]string{"ip", "-n", c, "link", "set", "cA", "up"},
		[]string{"ip", "-n", c, "link", "set", "cB", "up"},
		[]string{"ip", "-n", r, "link", "set", "rA", "up"},
		[]string{"ip", "-n", r, "link", "set", "rB", "up"},
		[]string{"ip", "-n", c, "route", "add", "default", "via", nsWifiGateway},
	)
	testutil.RunAll(t, cmds...)
	return c, r
}

// The laptop leaves the Wi-Fi for the hotspot. Without the watcher it
// would notice only after the 25-s heartbeat timeout; with it the engine is
// connected and resumed on the new network within 3 s of the move, and
// the messages sent meanwhile (by the relay's member, and typed on the
// laptop) arrive exactly once.
func TestNetworkMoveInNamespaces(t *testing.T) {
	testutil.NeedNetNS(t, "sysctl")
	for _, tc := range []struct {
		name, detected string
		move           func(c, r string) [][]string
	}{
		{
			// The Wi-Fi's address goes, the hotspot's comes with its route:
			// the link's address is gone, so it is dead without asking.
			name: "address moves", detected: DetectedAddressGone,
			move: func(c, r string) [][]string {
				return [][]string{
					{"ip", "-n", c, "addr", "del", nsWifiClient + "/24", "dev", "cA"},
					{"ip", "-n", c, "addr", "add", nsHotspotClient + "/24", "dev", "cB"},
					{"ip", "-n", c, "route", "add", "default", "via", nsHotspotGW},
				}
			},
		},
		{
			// The Wi-Fi keeps its address but no longer carries the
			// relay's packets back (its route on the far side is gone);
			// the laptop's default route moves to the hotspot. The address
			// is still there, so the engine checks: no answer within
			// 1.5 s, and it reconnects.
			name: "route moves, old path silent", detected: DetectedCheck,
			move: func(c, r string) [][]string {
				return [][]string{
					{"ip", "-n", r, "route", "del", "198.18.1.0/24", "dev", "rA"},
					{"ip", "-n", c, "addr", "add", nsHotspotClient + "/24", "dev", "cB"},
					{"ip", "-n", c, "route", "replace", "default", "via", nsHotspotGW},
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, r := nsTopology(t)
			relay := testutil.StartInNetNS(t, r, nsRoleEnv, "relay")
			relay.Expect("READY", 20*time.Second)
			bob := record(relay.Lines())
			alice := testutil.StartInNetNS(t, c, nsRoleEnv, "alice")
			al := record(alice.Lines())
			_, idx := al.wait(t, "alice connected", 0, 20*time.Second, word("CONNECTED"))

			// Both see each other's messages before the move.
			relay.Say("SAY before")
			al.wait(t, "bob's first message", 0, 10*time.Second, got("before"))

			start := time.Now()
			testutil.RunAll(t, tc.move(c, r)...)
			moved := time.Since(start)
			relay.Say("SAY sent by bob while alice moves")
			alice.Say("SAY typed by alice while moving")

			changed, _ := al.wait(t, "NetworkChanged", idx+1, 10*time.Second, word("NETCHANGE"))
			dropped, di := al.wait(t, "the drop", idx+1, 10*time.Second, word("DROPPED"))
			// The engine says Connected, then Welcomed (with the history).
			back, _ := al.wait(t, "connected again", di, 10*time.Second, word("CONNECTED"))
			welcomed, _ := al.wait(t, "the welcome again", di, 10*time.Second, word("WELCOMED"))
			took := max(back.at.Sub(start), welcomed.at.Sub(start))
			t.Logf("move (%d ip commands, %v) -> noticed %v (%q), dropped %v (%s), connected and resumed %v",
				len(tc.move(c, r)), moved.Round(time.Millisecond), changed.at.Sub(start).Round(time.Millisecond),
				changed.payload["detail"], dropped.at.Sub(start).Round(time.Millisecond), dropped.payload["detected"],
				took.Round(time.Millisecond))
			if changed.payload["text"] != "Network changed, checking the link…" {
				t.Errorf("NetworkChanged text %q", changed.payload["text"])
			}
			if dropped.payload["detected"] != tc.detected {
				t.Errorf("drop detected by %q (%s), want %q", dropped.payload["detected"], dropped.payload["cause"], tc.detected)
			}
			if welcomed.payload["recovered"] != true {
				t.Errorf("welcome after the move %v: not resumed", welcomed.payload)
			}
			if took > wakeBudget {
				t.Errorf("connected and resumed %v after the move, budget %v", took, wakeBudget)
			}

			// Exactly once, each: wait for them, then for a later message,
			// so that a duplicate would have arrived before it.
			al.wait(t, "bob's message from the move", 0, 10*time.Second, got("sent by bob while alice moves"))
			bob.wait(t, "alice's message from the move", 0, 10*time.Second, got("typed by alice while moving"))
			relay.Say("SAY after")
			al.wait(t, "bob's last message", 0, 10*time.Second, got("after"))
			alice.Say("SAY after too")
			bob.wait(t, "alice's last message", 0, 10*time.Second, got("after too"))
			for who, tr := range map[string]*transcript{"alice": al, "bob": bob} {
				for _, text := range []string{"before", "sent by bob while alice moves", "typed by alice while moving", "after"} {
					if n := tr.count(got(text)); n != 1 {
						t.Errorf("%s got %q %d times, want once", who, text, n)
					}
				}
			}
		})
	}
}
