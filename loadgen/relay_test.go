package main

import (
	"context"
	"flag"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/heartline/heartline/relay/server"
)

// startRelay runs the real relay library on a free loopback port.
func startTestRelay(t *testing.T, cfg server.Config) string {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	loadgenCaps(&cfg)
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return "ws://" + srv.Addr().String() + "/ws"
}

// loadgenCaps lifts the per-address caps: the load generator is one host
// dialling from a few loopback addresses (these tests stay under the
// defaults, the benchmark runs do not).
func loadgenCaps(cfg *server.Config) {
	cfg.MaxConnsPerIP, cfg.MaxRoomMembersPerIP = -1, -1
}

// runMode runs a mode the way main does, with its summary discarded.
func runMode(t *testing.T, mode string, args ...string) any {
	t.Helper()
	fs := flag.NewFlagSet(mode, flag.ContinueOnError)
	c := commonFlags(fs)
	exec := modes[mode](fs)
	// This process is the relay too: sample it, not whatever else listens.
	args = append(args, "-q", "-pid", strconv.Itoa(os.Getpid()), "-src", "127.0.0.2-127.0.0.4")
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	e, err := c.env()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	devnull, _ := os.Open(os.DevNull)
	os.Stdout = devnull
	defer func() { os.Stdout = stdout; devnull.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := exec(ctx, e, c)
	if err != nil {
		t.Fatalf("%s: %v", mode, err)
	}
	return res
}

func TestFanoutAgainstRealRelayCountsEveryDelivery(t *testing.T) {
	url := startTestRelay(t, server.Config{Rate: 1000, Burst: 1000})
	res := runMode(t, "fanout", "-url", url, "-receivers", "20", "-senders", "3", "-rate", "50",
		"-duration", "1s", "-warmup", "0s", "-drain", "5s").(*fanoutResult)
	if res.Sent == 0 || res.Acked != res.Sent || res.Unacked != 0 {
		t.Fatalf("sent %d, acked %d, unacked %d: every message should be acked", res.Sent, res.Acked, res.Unacked)
	}
	// Each message reaches every member but its sender: 22 of the 23.
	if want := res.Sent * 22; res.Deliveries != want {
		t.Errorf("deliveries %d, want %d (sent %d x 22 members)", res.Deliveries, want, res.Sent)
	}
	l := res.Loss
	if l.Gaps+l.Backlog+l.Evicted+l.LostOnClose != 0 || l.Received != l.Expected || l.FinalSeq != uint64(res.Sent) {
		t.Errorf("loss on an unloaded relay: %s", l)
	}
	if res.Latency.Count != uint64(res.Deliveries) || res.Latency.P50 <= 0 || res.Latency.Max < res.Latency.P99 {
		t.Errorf("latency summary inconsistent with %d deliveries: %+v", res.Deliveries, res.Latency)
	}
}

func TestClosedLoopKeepsAtMostWindowInFlight(t *testing.T) {
	url := startTestRelay(t, server.Config{Rate: 100000, Burst: 100000})
	res := runMode(t, "fanout", "-url", url, "-receivers", "5", "-senders", "1", "-rate", "0",
		"-window", "4", "-echo", "ack", "-duration", "1s", "-warmup", "0s").(*fanoutResult)
	if res.Sent < 10 || res.Acked != res.Sent || res.Stalled {
		t.Fatalf("closed loop: sent %d, acked %d, stalled %v", res.Sent, res.Acked, res.Stalled)
	}
	if res.Loss.Gaps+res.Loss.Backlog != 0 {
		t.Errorf("loss: %s", res.Loss)
	}
}

func TestIdleHoldsMembersAndSamplesTheRelay(t *testing.T) {
	url := startTestRelay(t, server.Config{HeartbeatInterval: 200 * time.Millisecond, HeartbeatTimeout: 500 * time.Millisecond})
	res := runMode(t, "idle", "-url", url, "-n", "30", "-per-room", "10", "-hold", "1s").(*idleResult)
	if res.Joined != 30 || res.Rooms != 3 || len(res.Closed) != 0 {
		t.Fatalf("joined %d in %d rooms, closed %v", res.Joined, res.Rooms, res.Closed)
	}
	// 30 members pinging every 200 ms for ~1 s: about 150 pongs.
	if res.Pongs < 100 {
		t.Errorf("only %d pongs in %.1fs: heartbeats are not flowing", res.Pongs, res.HoldSeconds)
	}
	if res.Relay.RSSKiB <= 0 || res.Relay.FDs < 30 {
		t.Errorf("relay not sampled: %+v", res.Relay)
	}
}

func TestChurnObserverSeesEveryJoinAndLeave(t *testing.T) {
	url := startTestRelay(t, server.Config{Rate: 1000, Burst: 1000})
	res := runMode(t, "churn", "-url", url, "-members", "10", "-senders", "2", "-rate", "5",
		"-churn", "20", "-stay", "200ms", "-abrupt", "0.5", "-duration", "1s").(*churnResult)
	if res.ChurnJoined == 0 || res.ChurnJoined != res.Churners {
		t.Fatalf("%d of %d churners joined (%v)", res.ChurnJoined, res.Churners, res.JoinFailures)
	}
	if res.ByeClosed1000 != res.Byes || res.Byes+res.Abrupt != res.ChurnJoined {
		t.Errorf("byes %d (closed 1000: %d), abrupt %d, joined %d", res.Byes, res.ByeClosed1000, res.Abrupt, res.ChurnJoined)
	}
	want := map[string]int{"joined": int(res.ChurnJoined), "left:bye": int(res.Byes), "presence:away": int(res.Abrupt)}
	for k, v := range want {
		if res.Observed[k] != v {
			t.Errorf("observer saw %d %s, want %d (all: %v)", res.Observed[k], k, v, res.Observed)
		}
	}
	if l := res.Loss; l.Gaps+l.Backlog+l.Evicted+l.LostOnClose != 0 {
		t.Errorf("stable members lost messages: %s", l)
	}
}

// stormAcrossRestart runs storm mode with args against an in-process relay
// that it shuts down (1001 to every member) when the storm asks for the
// restart, and starts again on the same address and data directory after
// outage.
func stormAcrossRestart(t *testing.T, outage time.Duration, args ...string) *stormResult {
	t.Helper()
	cfg := server.Config{Listen: "127.0.0.1:0", DataDir: t.TempDir()}
	loadgenCaps(&cfg)
	first, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	addr := first.Addr().String()

	fs := flag.NewFlagSet("storm", flag.ContinueOnError)
	c := commonFlags(fs)
	exec := modes["storm"](fs)
	args = append(args, "-url", "ws://"+addr+"/ws", "-q", "-pid", strconv.Itoa(os.Getpid()), "-src", "127.0.0.2-127.0.0.4")
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	e, err := c.env()
	if err != nil {
		t.Fatal(err)
	}
	e.restartNow = make(chan struct{})
	stdout := os.Stdout
	devnull, _ := os.Open(os.DevNull)
	os.Stdout = devnull
	defer func() { os.Stdout = stdout; devnull.Close() }()

	type outcome struct {
		res any
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := exec(context.Background(), e, c)
		done <- outcome{res, err}
	}()
	select {
	case <-e.restartNow:
	case o := <-done:
		t.Fatalf("storm ended before the restart: %v", o.err)
	case <-time.After(30 * time.Second):
		t.Fatal("storm never asked for the restart")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := first.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(outage) // members keep typing into their outboxes meanwhile
	cfg.Listen = addr
	second, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := second.Start(); err != nil {
		t.Fatal(err)
	}
	defer second.Shutdown(context.Background())
	o := <-done
	if o.err != nil {
		t.Fatal(o.err)
	}
	return o.res.(*stormResult)
}

func TestStormMembersResumeAfterRelayRestart(t *testing.T) {
	res := stormAcrossRestart(t, 0, "-n", "40", "-per-room", "20", "-senders", "4",
		"-rate", "4", "-before", "500ms", "-after", "500ms", "-storm-timeout", "20s")
	if res.Back != 40 || res.NotRecovered != 0 || res.CloseCodes[1001] != 40 {
		t.Fatalf("back %d, not recovered %d, close codes %v", res.Back, res.NotRecovered, res.CloseCodes)
	}
	if res.Acked == 0 || res.Unacked != 0 || res.DupAccepts != 0 {
		t.Errorf("acked %d, unacked %d, one id under two seqs %d", res.Acked, res.Unacked, res.DupAccepts)
	}
	if l := res.Loss; l.Gaps+l.Backlog+l.Evicted+l.LostOnClose != 0 || l.Received != l.Expected {
		t.Errorf("loss across the restart: %s", l)
	}
}

func TestEngineStormResumesEveryEngineWithoutLoss(t *testing.T) {
	// The relay stays down for a second while 4 senders type 4 messages a
	// second each: those wait in the engines' outboxes.
	res := stormAcrossRestart(t, time.Second, "-engine", "-n", "50", "-per-room", "25", "-senders", "4",
		"-rate", "4", "-before", "500ms", "-after", "500ms", "-storm-timeout", "30s")
	g := res.Engine
	if res.Clients != "engine" || g == nil {
		t.Fatalf("clients %q: the storm did not use engines", res.Clients)
	}
	if res.Joined != 50 || res.Back != 50 || res.NotRecovered != 0 || res.CloseCodes[1001] != 50 || len(res.CloseCodes) != 1 {
		t.Fatalf("joined %d, back %d, not recovered %d, close codes %v (drops %v)", res.Joined, res.Back, res.NotRecovered, res.CloseCodes, g.Drops)
	}
	resumed := 0
	for _, n := range g.Attempts {
		resumed += n
	}
	if res.ResumeLatency.Count != 50 || resumed != 50 || res.ResumeLatency.P50 < 1000 {
		t.Errorf("resume latency %+v over a 1 s outage, attempts %v: every engine resumes once, after the outage", res.ResumeLatency, g.Attempts)
	}
	if g.QueuedOffline == 0 {
		t.Errorf("no message was typed while the relay was down (sent %d): the outbox path went untested", res.Sent)
	}
	if res.Sent == 0 || res.Acked != res.Sent || res.Unacked != 0 || g.Failed != 0 || res.DupAccepts != 0 {
		t.Errorf("typed %d, acked %d, pending %d, failed %d %v, acked twice %d: every message must be acked exactly once",
			res.Sent, res.Acked, res.Unacked, g.Failed, g.FailReasons, res.DupAccepts)
	}
	l := res.Loss
	// Each message reaches the 25 members of its room: 24 receivers and its sender's own ack.
	if g.HistoryGaps != 0 || l.Gaps+l.Backlog+l.Evicted+l.LostOnClose+l.Duplicates != 0 || l.Received != l.Expected || l.Expected != uint64(res.Sent)*25 {
		t.Errorf("history gaps %d; loss across the restart: %s (want %d deliveries)", g.HistoryGaps, l, res.Sent*25)
	}
}
