// Command heartline-cli is a terminal chat client for a Heartline relay: type a
// line to send it, read the room as it happens. It runs on the same engine as
// the desktop app (shared/client), so it reconnects, resumes and keeps unsent
// messages the same way.
//
//	heartline-cli --relay ws://127.0.0.1:8080/ws --room lobby --name alice
//
// Commands: /members, /retry, /check (is the link alive?), /quit. When
// standard input ends (a pipe), it waits until every typed message is
// acknowledged, then leaves. After a wake from sleep or a network change it
// checks its link at once and says so (--watch-network=false turns that
// off).
package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/heartline/heartline"
	"github.com/heartline/heartline/shared/client"
	"github.com/heartline/heartline/shared/protocol"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout)
	var usage usageError
	switch {
	case err == nil:
	case errors.As(err, &usage):
		fmt.Fprintln(os.Stderr, "heartline-cli:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "heartline-cli:", err)
		os.Exit(1)
	}
}

type usageError struct{ error }

type options struct {
	relay, room, name, avatar, token string
	stateDir                         string
	watchNetwork                     bool
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("heartline-cli", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.relay, "relay", "ws://127.0.0.1:8080/ws", "relay address (ws://host:port/ws, wss://..., or host:port), or an invite address host:port#token=... (sets --token)")
	fs.StringVar(&o.room, "room", "lobby", "room to join (a-z 0-9 - _)")
	fs.StringVar(&o.name, "name", os.Getenv("USER"), "your display name in the room")
	fs.StringVar(&o.avatar, "avatar", "", "avatar: builtin:<name> or sha256:<hex> (empty: initials)")
	fs.StringVar(&o.token, "token", os.Getenv("HEARTLINE_TOKEN"), "the relay's access token, if it has one (env HEARTLINE_TOKEN)")
	fs.StringVar(&o.stateDir, "state-dir", defaultStateDir(), "where this client keeps its member keys and unsent messages (one identity per relay, room and name)")
	watch := true
	if env := os.Getenv("HEARTLINE_WATCH_NETWORK"); env != "" {
		v, err := strconv.ParseBool(env)
		if err != nil {
			return o, usageError{fmt.Errorf("HEARTLINE_WATCH_NETWORK=%q: want true or false", env)}
		}
		watch = v
	}
	fs.BoolVar(&o.watchNetwork, "watch-network", watch, "check the link at once after a wake from sleep or a network change, instead of waiting for the heartbeat timeout (env HEARTLINE_WATCH_NETWORK)")
	if err := fs.Parse(args); err != nil {
		return o, usageError{err}
	}
	if fs.NArg() > 0 {
		return o, usageError{fmt.Errorf("unexpected argument %q (flags only; see --help)", fs.Arg(0))}
	}
	return o, nil
}

func defaultStateDir() string {
	if dir, err := os.UserConfigDir(); err == nil {
		return filepath.Join(dir, "heartline-cli")
	}
	return ".heartline-cli"
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	o, err := parseFlags(args, stdout)
	if err != nil {
		return err
	}
	// An invite's token is not part of the relay's identity (the client
	// takes it from the address).
	relay, _ := protocol.SplitInvite(o.relay)
	keyPath, outboxPath := stateFiles(o.stateDir, relay, o.room, o.name)
	key, err := loadOrCreateKey(keyPath)
	if err != nil {
		return err
	}
	outbox, err := client.NewFileOutbox(outboxPath)
	if err != nil {
		return err
	}
	c, err := client.New(client.Config{
		URL: o.relay, Room: o.room, Name: o.name, Avatar: o.avatar, Token: o.token,
		Key: key, Client: clientName(), Outbox: outbox, NoNetworkWatch: !o.watchNetwork,
	})
	if err != nil {
		return usageError{err}
	}

	out := &printer{w: stdout}
	var wg sync.WaitGroup
	wg.Go(func() { out.events(c) })
	inputDone := make(chan struct{})
	go func() { // ends with stdin; not waited for, since a terminal read cannot be interrupted
		defer close(inputDone)
		readInput(c, stdin, out)
	}()
	go func() {
		select {
		case <-inputDone:
			waitOutboxEmpty(ctx, c)
			c.Leave()
		case <-ctx.Done():
		}
	}()

	runErr := c.Run(ctx)
	wg.Wait() // the events channel closes when Run returns
	if errors.Is(runErr, context.Canceled) {
		return nil
	}
	return runErr
}

// clientName is what hello.client says, "heartline-cli/0.1.0", as the
// desktop app says "heartline-desktop/0.1.0".
func clientName() string { return "heartline-cli/" + heartline.Version() }

// stateFiles names the files that keep the member key and the unsent
// messages for a relay, room and name, the way the desktop app names its
// per-room files (client.RoomFile). One identity per name, kept on disk:
// running the client again with the same name is the same member coming
// back, not a stranger whose name clashes with the old one, and two names in
// one state directory are two members. Files from before this scheme are
// moved to their new names, so nobody loses their identity or outbox.
func stateFiles(dir, relay, room, name string) (keyPath, outboxPath string) {
	profile := protocol.NameFoldKey(strings.TrimSpace(name))
	keyPath = client.RoomFile(dir, "key.txt", relay, room, profile)
	outboxPath = client.RoomFile(dir, "outbox.json", relay, room, profile)
	legacy := legacyIdentityFile(dir, relay, room, name)
	return adopt(legacy+".key", keyPath), adopt(legacy+".outbox.json", outboxPath)
}

// legacyIdentityFile is how heartline-cli named its files before it shared
// the desktop app's scheme (without the extension).
func legacyIdentityFile(dir, relay, room, name string) string {
	sum := sha256.Sum256([]byte(relay + "\x00" + room + "\x00" + protocol.NameFoldKey(strings.TrimSpace(name))))
	return filepath.Join(dir, room+"-"+hex.EncodeToString(sum[:6]))
}

// adopt moves the file at old to path unless path exists already, and
// returns the path to use: old itself if it could not be moved.
func adopt(old, path string) string {
	if _, err := os.Lstat(path); err == nil {
		return path
	}
	if _, err := os.Lstat(old); err != nil {
		return path
	}
	if err := os.Rename(old, path); err != nil {
		return old
	}
	return path
}

func loadOrCreateKey(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		if key := strings.TrimSpace(string(b)); protocol.ValidateKey(key) == nil {
			return key, nil
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("cannot keep the member key: %w", err)
	}
	key := client.NewKey()
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("cannot keep the member key: %w", err)
	}
	return key, nil
}

func readInput(c *client.Client, stdin io.Reader, out *printer) {
	sc := bufio.NewScanner(stdin)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		switch strings.TrimSpace(line) {
		case "":
			continue
		case "/quit":
			c.Leave()
			return
		case "/members":
			out.listMembers()
			continue
		case "/retry":
			for _, it := range c.Outbox() {
				if it.Status == client.Failed {
					_ = c.Retry(it.ID)
				}
			}
			c.RetryNow()
			continue
		case "/check":
			c.CheckNow()
			continue
		}
		if _, err := c.Send(line); err != nil {
			out.printf("! not sent: %v", err)
		}
	}
}

// waitOutboxEmpty returns once nothing typed is still waiting for the relay
// (failed messages do not count: they will not go anywhere without /retry).
func waitOutboxEmpty(ctx context.Context, c *client.Client) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		pending := false
		for _, it := range c.Outbox() {
			pending = pending || it.Status == client.Pending
		}
		if !pending || c.State().Phase == client.Stopped {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// printer renders engine events as lines of text and keeps the member list
// for /members.
type printer struct {
	mu      sync.Mutex
	w       io.Writer
	members map[string]protocol.Member
}

func (p *printer) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format+"\n", args...)
}

func clock(ms int64) string { return time.UnixMilli(ms).Format("15:04") }

func (p *printer) events(c *client.Client) {
	for ev := range c.Events() {
		switch e := ev.(type) {
		case client.StateChanged:
			p.state(e.State)
		case client.Welcomed:
			p.mu.Lock()
			p.members = map[string]protocol.Member{}
			for _, m := range e.Welcome.Members {
				p.members[m.ID] = m
			}
			p.mu.Unlock()
			p.printf("* joined %q as %s: %d member(s), %d message(s) in history", e.Welcome.Room, e.Welcome.You.Name, len(e.Welcome.Members), len(e.Welcome.History))
		case client.MessageReceived:
			p.printf("[%s] %s: %s", clock(e.Msg.TS), e.Msg.From.Name, e.Msg.Text)
		case client.OutboxChanged:
			if e.Item.Status == client.Failed {
				p.printf("! not sent (%s): %q. Type /retry to send failed messages again.", e.Item.Reason, e.Item.Text)
			}
		case client.MemberJoined:
			p.setMember(e.Member)
			p.printf("* %s joined", e.Member.Name)
		case client.MemberChanged:
			p.setMember(e.Member)
			p.printf("* %s is %s", e.Member.Name, e.Member.State)
		case client.MemberLeft:
			p.mu.Lock()
			delete(p.members, e.Member.ID)
			p.mu.Unlock()
			p.printf("* %s left (%s)", e.Member.Name, e.Reason)
		case client.HistoryGap:
			p.printf("* %s", e.Text())
		case client.RelayError:
			p.printf("! relay: %s", e.Error.Message)
		case client.LinkDropped:
			p.printf("* link dropped: %s", e.Drop.Cause)
		case client.NetworkChanged:
			p.printf("* %s (%s)", e.Text(), e.Change.Detail)
		case client.LinkChecked:
			if e.Alive { // a dead link is told by the drop that follows
				p.printf("* link checked: the relay answered in %s", e.RTT.Round(time.Millisecond))
			}
		}
	}
}

func (p *printer) state(s client.State) {
	switch s.Phase {
	case client.Connected:
		if s.RTT == 0 { // later RTT updates are not worth a line each
			p.printf("* connected")
		}
	case client.Reconnecting:
		if wait := time.Until(s.NextTry).Round(100 * time.Millisecond); wait > 0 {
			p.printf("* reconnecting in %s (attempt %d)", wait, s.Attempt)
		} else {
			p.printf("* reconnecting now (attempt %d)", s.Attempt)
		}
	case client.Stopped:
		p.printf("! stopped: %s", s.StopReason)
	}
}

func (p *printer) setMember(m protocol.Member) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.members == nil {
		p.members = map[string]protocol.Member{}
	}
	p.members[m.ID] = m
}

func (p *printer) listMembers() {
	p.mu.Lock()
	list := make([]protocol.Member, 0, len(p.members))
	for _, m := range p.members {
		list = append(list, m)
	}
	p.mu.Unlock()
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	var b strings.Builder
	fmt.Fprintf(&b, "* %d member(s):", len(list))
	for _, m := range list {
		fmt.Fprintf(&b, " %s (%s)", m.Name, m.State)
	}
	p.printf("%s", b.String())
}
