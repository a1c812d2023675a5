package nstest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sort"
	"time"

	"github.com/heartline/heartline/relay/server"
	"github.com/heartline/heartline/relay/stunsrv"
	"github.com/heartline/heartline/shared/client"
	"github.com/heartline/heartline/shared/netdiag"
)

// Addresses (RFC 2544 benchmarking range only).
const (
	clientIP   = "198.18.1.2" // client namespace
	natInside  = "198.18.1.1" // NAT namespace, client side
	natOutside = "198.19.0.1" // NAT namespace, relay side
	relayIP    = "198.19.0.2" // relay namespace, first address
	relayIP2   = "198.19.0.3" // relay namespace, second address
	relayPort  = 8080
	stunPort   = 3478
	adminToken = "nstest-admin-token"
)

// The relay's heartbeat in these tests: short, through the relay's own
// options, so a silently dropped path is noticed in about a second.
const (
	hbInterval = 400 * time.Millisecond
	hbTimeout  = time.Second
)

const (
	roleEnv   = "HEARTLINE_NSTEST_ROLE"
	targetEnv = "HEARTLINE_NSTEST_TARGET"
)

func relayURL() string { return fmt.Sprintf("ws://%s:%d/ws", relayIP, relayPort) }

// runRole plays a part inside a namespace and returns the exit code.
// Lines on stdout are the protocol with the parent: "WORD payload".
func runRole(role string) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	var err error
	switch role {
	case "relay":
		err = roleRelay(log)
	case "diag":
		err = roleDiag(log)
	case "client":
		err = roleClient(log)
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "nstest role", role+":", err)
		return 1
	}
	return 0
}

func say(word string, v any) {
	b, _ := json.Marshal(v)
	fmt.Printf("%s %s\n", word, b)
}

// roleRelay runs the real relay and the STUN responder on both addresses
// until stdin closes. It reports member state changes as "STATE name state".
func roleRelay(log *slog.Logger) error {
	st, err := stunsrv.Listen(stunsrv.Config{Addr: relayIP, AltIP: relayIP2, Port: stunPort, Logger: log})
	if err != nil {
		return err
	}
	defer st.Close()
	dir, err := os.MkdirTemp("", "nstest-relay-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	srv, err := server.New(server.Config{
		Listen:            fmt.Sprintf("%s:%d", relayIP, relayPort),
		DataDir:           dir,
		HeartbeatInterval: hbInterval,
		HeartbeatTimeout:  hbTimeout,
		STUNPorts:         st.Ports(),
		AdminToken:        adminToken,
		Logger:            log,
	})
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		srv.Shutdown(context.Background())
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	watched := make(chan struct{})
	go func() { defer close(watched); watchMembers(ctx) }()
	fmt.Println("READY")
	io.Copy(io.Discard, os.Stdin) // the parent closes stdin to stop us
	cancel()
	<-watched
	sctx, scancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer scancel()
	return srv.Shutdown(sctx)
}

// watchMembers polls the relay's admin endpoint and prints each member's
// state when it changes.
func watchMembers(ctx context.Context) {
	seen := map[string]string{}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("http://%s:%d/v1/rooms", relayIP, relayPort), nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			continue
		}
		var body struct {
			Rooms []struct {
				Members []struct{ Name, State string }
			}
		}
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		var lines []string
		for _, r := range body.Rooms {
			for _, m := range r.Members {
				if seen[m.Name] != m.State {
					seen[m.Name] = m.State
					lines = append(lines, "STATE "+m.Name+" "+m.State)
				}
			}
		}
		sort.Strings(lines)
		for _, l := range lines {
			fmt.Println(l)
		}
	}
}

// roleDiag runs netdiag with the Target from the environment and prints
// the report.
func roleDiag(log *slog.Logger) error {
	var t netdiag.Target
	if err := json.Unmarshal([]byte(os.Getenv(targetEnv)), &t); err != nil {
		return fmt.Errorf("bad %s: %w", targetEnv, err)
	}
	t.Logger = log
	say("REPORT", netdiag.Run(context.Background(), t))
	return nil
}

// roleClient connects the real client engine, reports the welcome, waits
// for the link to drop (the parent cuts the path), then runs netdiag the
// way the desktop does after a drop and prints the report.
func roleClient(log *slog.Logger) error {
	c, err := client.New(client.Config{
		URL: relayURL(), Room: "nstest", Name: "alice", Key: client.NewKey(),
		DialTimeout: 2 * time.Second, HelloTimeout: 2 * time.Second, Logger: log,
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- c.Run(ctx) }()
	defer func() { cancel(); <-ran }()

	var prevPublic string
	var prevIfaces []string
	for {
		var ev client.Event
		select {
		case ev = <-c.Events():
		case <-ctx.Done():
			return fmt.Errorf("no drop within 30 s")
		}
		switch e := ev.(type) {
		case client.Welcomed:
			// What the desktop keeps from a good connection.
			good := netdiag.Run(ctx, netdiag.Target{RelayURL: relayURL(), STUNPorts: e.Welcome.STUN})
			prevPublic, prevIfaces = good.PublicAddr, good.Interfaces
			say("WELCOMED", map[string]any{"observed": e.Welcome.ObservedAddr, "stun": e.Welcome.STUN, "public": prevPublic})
		case client.LinkDropped:
			d := e.Drop
			say("DROPPED", map[string]any{"cause": d.Cause, "detected": d.Detected, "close_code": d.CloseCode,
				"silent_for_ms": d.At.Sub(d.LastFrameAt).Milliseconds()})
			r := netdiag.Run(ctx, netdiag.Target{
				RelayURL: d.RelayURL, STUNPorts: d.STUNPorts, ObservedAddr: d.ObservedAddr,
				PreviousPublic: prevPublic, PreviousInterfaces: prevIfaces,
				Drop:      &netdiag.DropInfo{At: d.At, Cause: d.Cause, CloseCode: d.CloseCode, Detected: d.Detected},
				Heartbeat: netdiag.Heartbeat{Interval: time.Duration(d.Heartbeat.IntervalMS) * time.Millisecond, Timeout: time.Duration(d.Heartbeat.TimeoutMS) * time.Millisecond},
				LastRTT:   c.State().RTT, StepTimeout: time.Second, Logger: log,
			})
			say("REPORT", r)
			return nil
		}
	}
}
