package ui

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"fyne.io/fyne/v2"

	"github.com/heartline/heartline/shared/client"
	"github.com/heartline/heartline/shared/protocol"
)

// FollowScript runs commands from a file as it grows (like tail -f), for
// screenshots and demos driven from a shell script:
//
//	say TEXT          send TEXT as if typed (\n in TEXT is a newline)
//	wait DURATION     pause ("1.5s")
//	show SCREEN       room, settings, diagnostics or join
//	scroll up         scroll the message list up (to show "jump to latest")
//	scroll bottom     scroll the settings screen to its end (privacy)
//	retry             reconnect now instead of waiting for the backoff
//	check             check the link now (the diagnostics screen's button)
//	discard           discard every failed message (their Discard link)
//	join RELAY ROOM   join another room (the sidebar's Join), and open it
//	select ROOM       open a room of the sidebar by name (the first match)
//	switcher TEXT     open the quick switcher (Ctrl+K) and type TEXT
//	search all|room TEXT  search every room or this one and type TEXT
//	close             close the switcher, the search or the shortcuts sheet
//	unfocus           take the keyboard focus off the composer (nothing focused)
//	shortcuts         show the shortcuts sheet (Ctrl+/)
//	measure SECONDS   log (warn level) what the app costs: rooms connected,
//	                  goroutines, RSS, CPU over SECONDS idle, and the time to
//	                  switch to each room (docs/BENCHMARKS.md, "Desktop app")
//	quit              leave the room and quit
//
// Blank lines and lines starting with # are skipped. It returns when ctx
// ends or after quit.
func (u *UI) FollowScript(ctx context.Context, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	var partial string
	for {
		line, err := r.ReadString('\n')
		partial += line
		if errors.Is(err, io.EOF) {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(150 * time.Millisecond):
			}
			continue
		}
		if err != nil {
			return err
		}
		cmd := strings.TrimSpace(partial)
		partial = ""
		if cmd == "" || strings.HasPrefix(cmd, "#") {
			continue
		}
		quit, err := u.scriptCommand(ctx, cmd)
		if err != nil {
			u.log.Warn("script", "line", cmd, "err", err)
		}
		if quit {
			return nil
		}
	}
}

func (u *UI) scriptCommand(ctx context.Context, cmd string) (quit bool, err error) {
	verb, arg, _ := strings.Cut(cmd, " ")
	switch verb {
	case "say":
		text := strings.ReplaceAll(arg, `\n`, "\n")
		fyne.DoAndWait(func() { u.Say(text) })
	case "wait":
		d, err := time.ParseDuration(arg)
		if err != nil {
			return false, err
		}
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
	case "show":
		fyne.DoAndWait(func() { err = u.ShowScreen(arg) })
	case "scroll":
		fyne.DoAndWait(func() {
			if arg == "bottom" && u.screen == "settings" && u.settingsScroll != nil {
				u.settingsScroll.ScrollToBottom()
				return
			}
			if u.room != nil {
				u.room.list.ScrollBy(-600)
			}
		})
	case "retry":
		fyne.DoAndWait(u.retryNow)
	case "check":
		fyne.DoAndWait(func() {
			if u.session == nil {
				err = errNoSession
				return
			}
			u.runDiagnostics(nil, client.Drop{})
		})
	case "discard":
		fyne.DoAndWait(func() {
			if u.session == nil {
				err = errNoSession
				return
			}
			for _, it := range u.session.c.Outbox() {
				if it.Status == client.Failed {
					u.discard(it.ID)
				}
			}
		})
	case "join":
		relay, room, _ := strings.Cut(arg, " ")
		fyne.DoAndWait(func() {
			p := u.prof
			p.Relay, p.Room, p.Token, p.Host = relay, strings.TrimSpace(room), "", false
			err = u.join(p)
		})
	case "select":
		fyne.DoAndWait(func() {
			m := u.rooms.match(arg)
			if len(m) == 0 {
				err = fmt.Errorf("no room matches %q", arg)
				return
			}
			u.selectRoom(m[0].Key())
			u.showRoom()
		})
	case "switcher":
		fyne.DoAndWait(func() {
			u.showSwitcher()
			if u.switcher != nil {
				u.switcher.entry.SetText(arg)
			}
		})
	case "search":
		scope, text, _ := strings.Cut(arg, " ")
		fyne.DoAndWait(func() {
			u.showSearch(scope == "all")
			if u.search != nil {
				u.search.entry.SetText(text)
			}
		})
	case "measure":
		secs, perr := time.ParseDuration(arg + "s")
		if perr != nil {
			return false, perr
		}
		u.measure(ctx, secs)
	case "close":
		fyne.DoAndWait(u.closePopups)
	case "unfocus":
		fyne.DoAndWait(func() { u.win.Canvas().Unfocus() })
	case "shortcuts":
		fyne.DoAndWait(u.showShortcuts)
	case "quit":
		fyne.Do(u.Quit)
		return true, nil
	default:
		return false, fmt.Errorf("unknown command %q", verb)
	}
	return false, err
}

// Preload fills the room with n generated messages from a few made-up
// members, for measuring memory and scrolling with a long history (the
// --preload flag; never used in normal runs).
func (u *UI) Preload(n int) {
	if u.room == nil || n <= 0 {
		return
	}
	names := []string{"Ada", "Grace", "Linus", "Margaret", "Ken"}
	words := strings.Fields("the relay kept the link alive while the network changed address and every message arrived in order with its time")
	start := time.Now().Add(-time.Duration(n) * 30 * time.Second)
	tl := u.room.tl
	tl.SetEpoch("preload")
	for i := 0; i < n; i++ {
		name := names[(i/3)%len(names)]
		var b strings.Builder
		for j := 0; j < 4+(i*7)%23; j++ {
			if j > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(words[(i+j*3)%len(words)])
		}
		tl.Add(protocol.Message{
			Seq: uint64(i + 1), ID: fmt.Sprint("p", i),
			From: protocol.Member{ID: "preload-" + name, Name: name},
			Text: b.String(), TS: start.Add(time.Duration(i) * 30 * time.Second).UnixMilli(),
		})
	}
	u.room.list.Sync()
	u.room.list.JumpToLatest()
}
