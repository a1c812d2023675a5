package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/heartline/heartline"
	"github.com/heartline/heartline/internal/testutil"
	"github.com/heartline/heartline/relay/server"
	"github.com/heartline/heartline/shared/client"
	"github.com/heartline/heartline/shared/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func waitFor(t *testing.T, out *testutil.SyncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the output within 10 s:\n%s", want, out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func startRelay(t *testing.T) string { return startRelayOn(t, "127.0.0.1:0") }

func startRelayOn(t *testing.T, listen string) string {
	t.Helper()
	return startRelayWith(t, server.Config{DataDir: t.TempDir(), Listen: listen})
}

// freeRelayAddr reserves a port and frees it, for a relay started later:
// its host:port and its websocket URL.
func freeRelayAddr(t *testing.T) (addr, relay string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = ln.Addr().String()
	ln.Close()
	return addr, "ws://" + addr + "/ws"
}

func startRelayWith(t *testing.T, cfg server.Config) string {
	t.Helper()
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
		srv.Shutdown(ctx)
	})
	return "ws://" + srv.Addr().String() + "/ws"
}

type cliRun struct {
	out   *testutil.SyncBuffer
	stdin *io.PipeWriter
	done  chan error
}

func startCLI(t *testing.T, relay, stateDir, name string, flags ...string) *cliRun {
	t.Helper()
	pr, pw := io.Pipe()
	r := &cliRun{out: &testutil.SyncBuffer{}, stdin: pw, done: make(chan error, 1)}
	args := append([]string{"--relay", relay, "--room", "lobby", "--name", name, "--state-dir", stateDir}, flags...)
	go func() {
		r.done <- run(context.Background(), args, pr, r.out)
	}()
	t.Cleanup(func() { pw.Close() })
	return r
}

func (r *cliRun) say(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(r.stdin, line+"\n"); err != nil {
		t.Fatal(err)
	}
}

// end closes standard input and waits for the client to leave.
func (r *cliRun) end(t *testing.T) {
	t.Helper()
	r.stdin.Close()
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("run: %v\n%s", err, r.out.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the client did not leave after its input ended:\n%s", r.out.String())
	}
}

func TestTwoPeopleChat(t *testing.T) {
	relay := startRelay(t)
	dir := t.TempDir()
	alice := startCLI(t, relay, dir, "alice")
	waitFor(t, alice.out, `joined "lobby" as alice`)
	bob := startCLI(t, relay, dir, "bob")
	waitFor(t, alice.out, "* bob joined")

	alice.say(t, "hi bob")
	waitFor(t, bob.out, "alice: hi bob")
	bob.say(t, "hi alice, long time")
	waitFor(t, alice.out, "bob: hi alice, long time")

	bob.say(t, "/members")
	waitFor(t, bob.out, "* 2 member(s): alice (online) bob (online)")

	bob.end(t)
	waitFor(t, alice.out, "* bob left (bye)")
	alice.end(t)
}

func TestSameNameComesBackAsTheSameMember(t *testing.T) {
	relay := startRelay(t)
	dir := t.TempDir()
	first := startCLI(t, relay, dir, "carol")
	first.say(t, "before")
	waitFor(t, first.out, "carol: before") // own message, shown once acked
	first.end(t)

	// Same state dir and name: the stored key makes this the same member, so
	// the relay neither refuses the name nor treats carol as a stranger.
	again := startCLI(t, relay, dir, "Carol")
	waitFor(t, again.out, `joined "lobby" as Carol`)
	waitFor(t, again.out, "carol: before") // history from the welcome
	again.end(t)
}

// Lines piped in while the relay is down are all delivered, in order, once it
// is up; the client leaves only after the relay acknowledged them.
func TestPipedInputWaitsForTheRelay(t *testing.T) {
	addr, relay := freeRelayAddr(t)
	dir := t.TempDir()

	out := &testutil.SyncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(context.Background(), []string{"--relay", relay, "--room", "lobby", "--name", "erin", "--state-dir", dir},
			strings.NewReader("one\ntwo\nthree\n/members\nfour\n"), out)
	}()
	waitFor(t, out, "* reconnecting")
	select {
	case err := <-done:
		t.Fatalf("the client gave up while its messages were unsent: %v\n%s", err, out.String())
	default:
	}

	startRelayOn(t, addr)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v\n%s", err, out.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("the client did not deliver and leave:\n%s", out.String())
	}
	listener := startCLI(t, relay, dir, "dave")
	waitFor(t, listener.out, "erin: four") // from the history in dave's welcome
	got := listener.out.String()
	last := -1
	for _, line := range []string{"erin: one", "erin: two", "erin: three", "erin: four"} {
		i := strings.Index(got, line)
		if i < last {
			t.Fatalf("%q missing or out of order:\n%s", line, got)
		}
		last = i
	}
	listener.end(t)
}

// After a network change the client says so and checks its link at once;
// /check does the same on demand.
func TestNetworkChangeIsShownAndChecked(t *testing.T) {
	relay := startRelay(t)
	alice := startCLI(t, relay, t.TempDir(), "alice")
	waitFor(t, alice.out, "* connected")
	client.NotifyNetworkChange("wlan0 joined another network")
	waitFor(t, alice.out, "* Network changed, checking the link… (wlan0 joined another network)\n")
	waitFor(t, alice.out, "* link checked: the relay answered in ")
	alice.say(t, "/check")
	waitForCount(t, alice.out, "* link checked: the relay answered in ", 2)
	alice.end(t)
	if strings.Contains(alice.out.String(), "link dropped") {
		t.Fatalf("a live link was dropped:\n%s", alice.out.String())
	}
}

// --watch-network=false: changes are not acted on (nor shown); /check
// still works.
func TestWatchNetworkOff(t *testing.T) {
	relay := startRelay(t)
	bob := startCLI(t, relay, t.TempDir(), "bob", "--watch-network=false")
	waitFor(t, bob.out, "* connected")
	client.NotifyNetworkChange("eth0 moved")
	bob.say(t, "/check") // after the change: had it been heard, its line would come first
	waitFor(t, bob.out, "* link checked: the relay answered in ")
	bob.end(t)
	if strings.Contains(bob.out.String(), "Network changed") {
		t.Fatalf("a change was shown with --watch-network=false:\n%s", bob.out.String())
	}
}

func waitForCount(t *testing.T, out *testutil.SyncBuffer, want string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(out.String(), want) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%q not %d times in the output within 10 s:\n%s", want, n, out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestBadFlagsAreUsageErrors(t *testing.T) {
	cases := [][]string{
		{"--room", "Not A Room", "--name", "x", "--state-dir", t.TempDir()},
		{"--name", "", "--state-dir", t.TempDir()},
		{"--nonsense"},
		{"stray-argument"},
		{"--watch-network=maybe"},
	}
	for _, args := range cases {
		err := run(context.Background(), args, strings.NewReader(""), io.Discard)
		var usage usageError
		if !errors.As(err, &usage) {
			t.Errorf("run(%q) = %v; want a usage error (exit code 2)", args, err)
		}
	}
	t.Setenv("HEARTLINE_WATCH_NETWORK", "maybe")
	err := run(context.Background(), []string{"--state-dir", t.TempDir()}, strings.NewReader(""), io.Discard)
	var usage usageError
	if !errors.As(err, &usage) || !strings.Contains(err.Error(), "HEARTLINE_WATCH_NETWORK") {
		t.Errorf("a bad HEARTLINE_WATCH_NETWORK gave %v; want a usage error naming it", err)
	}
}

// An invite address (host:port#token=...) is enough to join a relay that
// needs a token.
func TestInviteAddressJoinsTokenRelay(t *testing.T) {
	relay := startRelayWith(t, server.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", Token: "invite-secret"})
	alice := startCLI(t, protocol.InviteAddress(relay, "invite-secret"), t.TempDir(), "alice")
	waitFor(t, alice.out, `joined "lobby" as alice`)
	alice.end(t)
}

// The hello names the client and its real version, as the desktop app's does.
func TestHelloNamesTheVersion(t *testing.T) {
	log := &testutil.SyncBuffer{}
	relay := startRelayWith(t, server.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(log, nil))})
	frank := startCLI(t, relay, t.TempDir(), "frank")
	waitFor(t, frank.out, `joined "lobby" as frank`)
	frank.end(t)
	waitFor(t, log, "client=heartline-cli/"+heartline.Version()+"\n")
}

// State kept under the names heartline-cli used before it shared the
// desktop app's scheme is moved to the new names: the member key stays the
// same and what was typed offline is still delivered.
func TestOldStateFilesAreAdopted(t *testing.T) {
	addr, relay := freeRelayAddr(t)
	dir := t.TempDir()

	// An offline run leaves a key and an outbox holding one message...
	ctx, cancel := context.WithCancel(context.Background())
	out := &testutil.SyncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--relay", relay, "--room", "lobby", "--name", "erin", "--state-dir", dir},
			strings.NewReader("typed while offline\n"), out)
	}()
	keyPath, outboxPath := stateFiles(dir, relay, "lobby", "erin")
	deadline := time.Now().Add(10 * time.Second)
	for b, _ := os.ReadFile(outboxPath); !bytes.Contains(b, []byte("typed while offline")); b, _ = os.ReadFile(outboxPath) {
		if time.Now().After(deadline) {
			t.Fatalf("the outbox %s never held the message:\n%s", outboxPath, out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	// ... which an older heartline-cli kept under its own names.
	legacy := legacyIdentityFile(dir, relay, "lobby", "erin")
	for from, to := range map[string]string{keyPath: legacy + ".key", outboxPath: legacy + ".outbox.json"} {
		if err := os.Rename(from, to); err != nil {
			t.Fatal(err)
		}
	}

	startRelayOn(t, addr)
	again := startCLI(t, relay, dir, "Erin")
	waitFor(t, again.out, "Erin: typed while offline") // acked: delivered from the adopted outbox
	again.end(t)
	if got, err := os.ReadFile(keyPath); err != nil || !bytes.Equal(got, key) {
		t.Errorf("member key file %s: %q, %v; want the old key %q", keyPath, got, err, key)
	}
	for _, old := range []string{legacy + ".key", legacy + ".outbox.json"} {
		if _, err := os.Stat(old); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("old file %s still there: %v", old, err)
		}
	}
}
