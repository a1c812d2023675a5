// Package ui is the Heartline desktop app's screens: join, room, settings and
// diagnostics. It drives the client engine (shared/client) and renders its
// events; it never touches a socket itself, except through the avatars
// package's HTTP upload and the embedded relay of host mode.
package ui

import (
	"context"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/driver/desktop"

	"github.com/heartline/heartline/desktop/avatars"
	"github.com/heartline/heartline/desktop/chatview"
	"github.com/heartline/heartline/desktop/settings"
	"github.com/heartline/heartline/shared/client"
	"github.com/heartline/heartline/shared/names"
	"github.com/heartline/heartline/shared/netdiag"
	"github.com/heartline/heartline/shared/protocol"
)

// Options configure the UI. Zero values: see each field.
type Options struct {
	// AppName is the name in titles and notifications; "" means "Heartline".
	AppName string
	// Version goes into the hello's client name ("heartline-desktop/<Version>").
	Version string
	// DataDir keeps the outbox, cached avatars and host mode's relay data;
	// "" means the app's storage directory.
	DataDir string
	// BannerGrace is how long trouble must last before the banner shows;
	// 0 means chatview.DefaultGrace (1.5 s).
	BannerGrace time.Duration
	// Icon is the window and tray icon; nil means Fyne's default.
	Icon fyne.Resource
	// Logger receives the app's log lines; nil discards them.
	Logger *slog.Logger
	// Diagnose runs a link check; nil means netdiag.Run. Tests replace it.
	Diagnose func(ctx context.Context, t netdiag.Target) netdiag.Report
	// Do runs f on the UI goroutine, later; nil means fyne.Do. (Fyne's test
	// driver runs fyne.Do at once on the caller's goroutine, so tests that
	// drive a live engine pass a serialising loop.)
	Do func(f func())
}

// UI is the running app: one window, one room at a time.
type UI struct {
	app   fyne.App
	win   fyne.Window
	opts  Options
	log   *slog.Logger
	store *settings.Store
	prof  settings.Profile

	avatars *avatars.Cache
	session *session
	room    *roomView
	hosting *host
	// sessions starts and stops session and keeps the resume point.
	sessions *sessions

	unread   chatview.Unread
	notifier chatview.Notifier
	hasTray  bool
	quitting bool
	stopping atomic.Bool // set once the app shuts down: late engine events are dropped

	diag     diagState
	diagView *diagView
	screen   string // "join", "room", "settings", "diagnostics"

	ctx    context.Context // ends when the app quits; owns background work
	cancel context.CancelFunc
	bg     sync.WaitGroup
	ticker *time.Ticker
}

// New builds the UI in app a. Call Start to show it.
func New(a fyne.App, opts Options) *UI {
	if opts.AppName == "" {
		opts.AppName = "Heartline"
	}
	if opts.BannerGrace == 0 {
		opts.BannerGrace = chatview.DefaultGrace
	}
	if opts.Diagnose == nil {
		opts.Diagnose = netdiag.Run
	}
	if opts.Do == nil {
		opts.Do = fyne.Do
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.DataDir == "" {
		if root := a.Storage().RootURI(); root != nil {
			opts.DataDir = root.Path()
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	u := &UI{app: a, opts: opts, log: log, store: settings.New(a.Preferences()), ctx: ctx, cancel: cancel}
	u.prof = u.store.Load()
	version := opts.Version
	if version == "" {
		version = "dev"
	}
	u.sessions = &sessions{store: u.store, dataDir: opts.DataDir, clientName: "heartline-desktop/" + version, log: log, do: u.do}
	u.hosting = &host{log: log, dataDir: opts.DataDir}
	u.avatars = avatars.NewCache(avatars.Options{
		Dir:    filepath.Join(opts.DataDir, "avatars"),
		Logger: log,
		OnLoaded: func(string) {
			u.do(func() {
				if u.room != nil {
					u.room.list.Refresh()
					u.room.members.Refresh()
				}
			})
		},
	})
	u.notifier.Enabled = u.prof.Notifications
	applyTheme(a, u.prof.Theme)

	u.win = a.NewWindow(opts.AppName)
	if opts.Icon != nil {
		u.win.SetIcon(opts.Icon)
	}
	u.win.Resize(fyne.NewSize(1000, 680))
	u.win.SetMaster()
	u.win.SetCloseIntercept(u.closeRequested)
	u.setupTray()

	a.Lifecycle().SetOnEnteredForeground(func() { u.focusChanged(true) })
	a.Lifecycle().SetOnExitedForeground(func() { u.focusChanged(false) })
	a.Lifecycle().SetOnStopped(u.shutdown)
	return u
}

// Window is the main window.
func (u *UI) Window() fyne.Window { return u.win }

// Profile is the settings in effect.
func (u *UI) Profile() settings.Profile { return u.prof }

// Start shows the window: the room directly if the person joined before (or
// the caller passed what is needed to join), the join screen otherwise.
// override holds values from the command line; join says to join at once.
func (u *UI) Start(override *settings.Profile, join bool) {
	if override != nil {
		u.prof = *override
		u.notifier.Enabled = u.prof.Notifications
		applyTheme(u.app, u.prof.Theme)
	}
	u.ticker = time.NewTicker(time.Second)
	u.bg.Add(1)
	go func() {
		defer u.bg.Done()
		for {
			select {
			case <-u.ctx.Done():
				return
			case now := <-u.ticker.C:
				u.do(func() { u.tick(now) })
			}
		}
	}()
	if join || u.prof.AutoJoin {
		if err := u.join(u.prof); err != nil {
			u.showJoin()
			dialog.ShowError(err, u.win)
		}
	} else {
		u.showJoin()
	}
	u.win.Show()
}

// tick updates what moves with time: the reconnect countdown, the banner
// after its grace, "Today" turning into "Yesterday".
func (u *UI) tick(now time.Time) {
	u.sessions.tick(u.session, now)
	if u.room == nil {
		return
	}
	if u.room.link.Phase != chatview.PhaseConnected || u.room.banner.Visible() {
		u.room.updateStatus(now)
	}
	if now.Day() != u.room.lastTick.Day() {
		u.room.list.Refresh()
	}
	u.room.lastTick = now
}

func (u *UI) setContent(screen string, c fyne.CanvasObject) {
	u.screen = screen
	u.win.SetContent(c)
}

// Screen names the screen showing (for tests and scripts).
func (u *UI) Screen() string { return u.screen }

// ShowScreen switches to a named screen (scripts): room, settings, diagnostics, join.
func (u *UI) ShowScreen(name string) error {
	switch name {
	case "room":
		if u.room == nil {
			return errNoSession
		}
		u.showRoom()
	case "settings":
		u.showSettings()
	case "diagnostics":
		u.showDiagnostics()
	case "join":
		u.showJoin()
	default:
		return fmt.Errorf("unknown screen %q (room, settings, diagnostics, join)", name)
	}
	return nil
}

func (u *UI) showRoom() {
	if u.room == nil {
		u.showJoin()
		return
	}
	u.setContent("room", u.room.content)
	u.win.Canvas().Focus(u.room.composer)
	u.updateTitle()
}

// join validates a profile, starts host mode if asked, and connects.
func (u *UI) join(p settings.Profile) error {
	if err := validateProfile(&p); err != nil {
		return err
	}
	token := p.Token
	if p.Host {
		if p.HostToken == "" {
			p.HostToken = newRoomToken()
		}
		addr, err := u.hosting.start(p.HostPort, p.HostToken)
		if err != nil {
			return err
		}
		p.Relay, token = addr, p.HostToken
	} else {
		u.stopHosting()
	}
	// Same relay and room (a new name, picture or token): keep the messages
	// on screen and come back as the same member (same key, no bye), so the
	// others see a rename, not someone leaving and joining.
	same := u.room != nil && u.session != nil && u.prof.Relay == p.Relay && u.prof.Room == p.Room
	room := u.room
	var sess *session
	cur := u.session
	u.session = nil
	s, err := u.sessions.join(cur, joinRequest{Profile: p, Token: token, Same: same}, func(readUpTo *settings.ResumePoint) {
		u.room = newRoomView(u, p.Room)
		u.room.readUpTo = readUpTo
		room = u.room
	}, func(evs []client.Event) {
		// Events of an earlier connection that were still queued are stale.
		if u.room == room && u.session == sess {
			room.apply(evs)
			u.updateTitle()
		}
	})
	if err != nil {
		if !same {
			u.room = nil
		}
		return err
	}
	u.session, sess = s, s
	if err := u.avatars.SetRelay(s.c.URL()); err != nil {
		u.log.Info("avatar fetches disabled", "err", err)
	}
	p.AutoJoin = true
	u.prof = p
	u.store.Save(p)
	u.refreshHostInfo()
	u.showRoom()
	return nil
}

// validateProfile checks what a person typed before anything connects, with
// messages that say what to fix.
func validateProfile(p *settings.Profile) error {
	name, err := names.Normalize(p.Name)
	if err != nil {
		return fmt.Errorf("Your name: %s", errMessage(err))
	}
	p.Name = name
	p.Room = strings.TrimSpace(p.Room)
	// An invite address brings the room's token: it goes where tokens go.
	if relay, token := protocol.SplitInvite(p.Relay); token != "" {
		p.Relay, p.Token = relay, token
	}
	if err := protocol.ValidateRoom(p.Room); err != nil {
		return fmt.Errorf("Room: %s", errMessage(err))
	}
	if err := protocol.ValidateAvatar(p.Avatar); err != nil {
		p.Avatar = ""
	}
	if !p.Host {
		if _, err := avatars.HTTPBase(p.Relay); err != nil {
			// The message already names the relay address; it only needs
			// to start a sentence.
			msg := err.Error()
			return errors.New(strings.ToUpper(msg[:1]) + msg[1:])
		}
	}
	return nil
}

func errMessage(err error) string {
	if fe, ok := err.(*protocol.FrameError); ok {
		return fe.Message
	}
	return err.Error()
}

// stopSession ends the current connection: with bye (leaving the room) or
// without (coming straight back, e.g. under a new name).
func (u *UI) stopSession(bye bool) {
	if u.session == nil {
		return
	}
	s := u.session
	u.session = nil
	u.sessions.stop(s, bye)
}

// endSession leaves the current room (bye) and forgets its view.
func (u *UI) endSession() {
	u.stopSession(true)
	u.room = nil
	u.unread.Focus(true)
	u.updateTitle()
}

func (u *UI) leaveRoom() {
	u.endSession()
	u.stopHosting()
	u.prof.AutoJoin = false
	u.store.Save(u.prof)
	u.showJoin()
}

// reconnect starts a new session with the same profile (after a stop).
func (u *UI) reconnect() {
	if err := u.join(u.prof); err != nil {
		dialog.ShowError(err, u.win)
	}
}

func (u *UI) retryNow() {
	if u.session != nil {
		u.session.c.RetryNow()
	}
}

func (u *UI) send(text string) {
	if u.session == nil {
		return
	}
	if _, err := u.session.c.Send(text); err != nil {
		dialog.ShowError(fmt.Errorf("the message was not queued: %v", err), u.win)
		if u.room != nil {
			u.room.composer.SetText(text) // give the text back
		}
	}
}

// Say sends a message as if typed (scripts).
func (u *UI) Say(text string) { u.send(text) }

func (u *UI) retry(id string) {
	if u.session == nil {
		return
	}
	if err := u.session.c.Retry(id); err != nil {
		dialog.ShowError(err, u.win)
	}
}

// discard throws a failed message away: out of the outbox and the view.
func (u *UI) discard(id string) {
	if u.session == nil {
		return
	}
	if err := u.session.c.Discard(id); err != nil {
		dialog.ShowError(err, u.win)
		return
	}
	// The engine also reports it, but not once it has stopped.
	if u.room != nil && u.room.tl.RemoveOutgoing(id) {
		u.room.list.Sync()
		u.room.updateEmpty()
	}
}

func (u *UI) pictures(ref string) image.Image { return u.avatars.Get(ref) }

// welcomed runs when the relay accepted the hello.
func (u *UI) welcomed(w protocol.Welcome) {
	u.diag.welcome = &w
}

// incoming handles a new message from someone else: unread count and
// notification while the window is not focused.
func (u *UI) incoming(m protocol.Message, now time.Time) {
	if !u.unread.Arrived(false) {
		return
	}
	if n, ok := u.notifier.Arrived(u.prof.Room, m.From.Name, m.Text, now); ok {
		u.app.SendNotification(fyne.NewNotification(n.Title, n.Body))
	}
}

func (u *UI) focusChanged(focused bool) {
	u.unread.Focus(focused)
	if focused {
		u.notifier.Reset()
	}
	u.updateTitle()
}

// Unread is the unread count in the title (for tests).
func (u *UI) Unread() int { return u.unread.Count() }

func (u *UI) updateTitle() {
	room := ""
	if u.room != nil {
		room = u.room.room
	}
	u.win.SetTitle(chatview.WindowTitle(u.opts.AppName, room, u.unread.Count()))
}

// do runs f on the UI goroutine, unless the app is shutting down (then the
// window is gone and f would touch a dead GL context).
func (u *UI) do(f func()) {
	if u.stopping.Load() {
		return
	}
	u.opts.Do(func() {
		if !u.stopping.Load() {
			f()
		}
	})
}

// setupTray puts an icon with Show and Quit in the system tray, where the
// platform has one.
func (u *UI) setupTray() {
	desk, ok := u.app.(desktop.App)
	if !ok || !trayAvailable() {
		return
	}
	u.hasTray = true
	show := fyne.NewMenuItem("Show "+u.opts.AppName, func() {
		u.win.Show()
		u.win.RequestFocus()
	})
	// Fyne adds its own "Quit" item to a tray menu.
	desk.SetSystemTrayMenu(fyne.NewMenu(u.opts.AppName, show))
	if u.opts.Icon != nil {
		desk.SetSystemTrayIcon(u.opts.Icon)
	}
}

// closeRequested hides to the tray when the person asked for that, else quits.
func (u *UI) closeRequested() {
	if u.prof.CloseToTray && u.hasTray && !u.quitting {
		u.win.Hide()
		return
	}
	u.Quit()
}

// Quit leaves the room and ends the app.
func (u *UI) Quit() {
	u.quitting = true
	u.app.Quit()
}

// shutdown runs when the app stops: leave the room, stop host mode and
// every background goroutine.
func (u *UI) shutdown() {
	if u.stopping.Swap(true) {
		return
	}
	if u.ticker != nil {
		u.ticker.Stop()
	}
	u.cancel()
	if u.session != nil {
		s := u.session
		u.session = nil
		u.sessions.stop(s, true) // saves the resume point: Fyne writes preferences after this hook
	}
	u.stopHosting()
	u.avatars.Close()
	u.bg.Wait()
}

// Close stops everything without quitting the Fyne app (tests).
func (u *UI) Close() { u.shutdown() }

// trayAvailable: on Linux and the BSDs the tray talks to the desktop over
// the D-Bus session bus; without one (a bare X server, a CI box) Fyne's
// systray crashes on quit, so the app goes without a tray icon there.
func trayAvailable() bool {
	switch runtime.GOOS {
	case "linux", "freebsd", "openbsd", "netbsd", "dragonfly":
	default:
		return true
	}
	if os.Getenv("DBUS_SESSION_BUS_ADDRESS") != "" {
		return true
	}
	_, err := os.Stat(fmt.Sprintf("/run/user/%d/bus", os.Getuid()))
	return err == nil
}
