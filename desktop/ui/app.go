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
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/driver/desktop"

	"github.com/heartline/heartline/desktop/avatars"
	"github.com/heartline/heartline/desktop/chatview"
	"github.com/heartline/heartline/desktop/history"
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
	// StagedStart: Start opens the room to show first (the one selected
	// last time), shows the window with it, and opens the other saved rooms
	// after, one per turn of the UI goroutine (through Do), so the window
	// does not wait for them. False opens every room before showing.
	StagedStart bool
}

// UI is the running app: one window, a sidebar of rooms (each with its own
// engine, all running at once) and the selected room beside it.
type UI struct {
	app   fyne.App
	win   fyne.Window
	opts  Options
	log   *slog.Logger
	store *settings.Store
	prof  settings.Profile

	avatars *avatars.Cache
	// session and room are the selected room's engine and view (nil: none).
	session *session
	room    *roomView
	hosting *host
	// sessions starts and stops session and keeps the resume point.
	sessions *sessions
	// rooms is every room in the sidebar, with its counters; views holds
	// each one's screen, built once and kept while the room is listed.
	rooms   *rooms
	views   map[string]*roomView
	sidebar *sidebar
	main    *fyne.Container // holds the selected room's screen
	shell   fyne.CanvasObject

	keys []appShortcut // the keyboard shortcuts
	// settingsScroll scrolls the settings screen (scripts show its end).
	settingsScroll *container.Scroll
	batching       bool          // rooms are being opened at start: the sidebar refreshes once after
	switcher       *switcher     // the open quick switcher (nil: closed)
	sheet          dialog.Dialog // the open shortcuts sheet (nil: closed)
	search         *searchView   // the open search (nil: closed)
	finder         messageSearch // the local history's search (nil: none)
	// local is the device's message history (nil: it could not be
	// opened, localErr says why; the app works without it).
	local    *localHistory
	localErr error
	// deviceCounts are the unread counts the device kept, read once at start.
	deviceCounts map[history.RoomKey]history.RoomInfo

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
	u.views = map[string]*roomView{}
	u.rooms = &rooms{sessions: u.sessions, store: u.store, myName: u.prof.Name,
		onEvents:  u.roomEvents,
		onNotify:  u.notify,
		onChanged: u.roomChanged,
	}
	if opts.DataDir != "" {
		u.local, u.localErr = openLocalHistory(opts.DataDir, log, func() string { return u.rooms.myName })
		if u.localErr != nil {
			log.Warn("local history unavailable", "err", u.localErr)
		} else {
			u.rooms.hist = u.local
			u.finder = searcher{h: u.local, rooms: u.rooms}
		}
	}
	u.avatars = avatars.NewCache(avatars.Options{
		Dir:    filepath.Join(opts.DataDir, "avatars"),
		Logger: log,
		OnLoaded: func(string) {
			u.do(func() {
				for _, v := range u.views {
					v.list.Refresh()
					v.members.Refresh()
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
	u.sidebar = newSidebar(u)
	u.main = container.NewStack()
	split := container.NewHSplit(u.sidebar.content, u.main)
	split.Offset = 0.22
	u.shell = split
	u.setupShortcuts()

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
	u.rooms.myName = u.prof.Name
	entries := u.store.Rooms()
	if len(entries) == 0 && u.prof.AutoJoin && (u.prof.Relay != "" || u.prof.Host) {
		// Saved by a version with one room at a time: that room is the list.
		entries = []settings.RoomEntry{{Relay: u.prof.Relay, Room: u.prof.Room, Token: u.prof.Token, Host: u.prof.Host}}
		if u.prof.Host {
			entries[0].Relay = ""
		}
	}
	var failed []string
	if u.local != nil {
		u.deviceCounts = u.local.counts()
		u.pruneHistory()
	}
	sel := u.store.SelectedRoom()
	var later []settings.RoomEntry
	if u.opts.StagedStart && !join && len(entries) > 1 {
		// The room to show first; the others once the window is up.
		first := 0
		for i, e := range entries {
			if e.Key() == sel {
				first = i
			}
		}
		later = append(append(later, entries[:first]...), entries[first+1:]...)
		u.rooms.beginStart(entries)
		entries = entries[first : first+1]
	} else {
		u.rooms.beginStart(entries) // saved once, after
	}
	// One sidebar refresh for all of them, not one per room.
	u.batching = true
	for _, e := range entries {
		if err := u.openEntry(e); err != nil {
			u.log.Warn("could not open a saved room", "room", e.Room, "relay", e.Relay, "err", err)
			failed = append(failed, fmt.Sprintf("#%s: %v", e.Room, err))
		}
	}
	u.batching = false
	if len(later) == 0 {
		u.rooms.endStart()
	}
	u.sidebar.refresh()
	if u.rooms.find(sel) != nil {
		u.selectRoom(sel)
	} else if len(u.rooms.items) > 0 {
		u.selectRoom(u.rooms.items[0].Key())
	}
	if len(later) > 0 {
		u.openLater(later, failed)
		failed = nil
	}
	switch {
	case join:
		if err := u.join(u.prof); err != nil {
			u.showJoin()
			dialog.ShowError(err, u.win)
		}
	case len(u.rooms.items) > 0:
		u.showRoom()
	default:
		u.showJoin()
	}
	if len(failed) > 0 {
		dialog.ShowError(fmt.Errorf("some rooms could not be opened:\n%s", strings.Join(failed, "\n")), u.win)
	}
	u.win.Show()
}

// openLater opens saved rooms after the window is up, one per turn of the
// UI goroutine (each starts its engine and reads its page from the
// device), then saves the list once and tells which could not be opened
// (failed: those that failed before). Queued from another goroutine: before
// the app runs, fyne.Do on the main goroutine would run at once.
func (u *UI) openLater(entries []settings.RoomEntry, failed []string) {
	u.bg.Add(1)
	go func() {
		defer u.bg.Done()
		for _, e := range entries {
			u.do(func() {
				if u.rooms.find(e.Key()) != nil {
					return // joined meanwhile
				}
				if err := u.openEntry(e); err != nil {
					u.log.Warn("could not open a saved room", "room", e.Room, "relay", e.Relay, "err", err)
					failed = append(failed, fmt.Sprintf("#%s: %v", e.Room, err))
				}
			})
		}
		u.do(func() {
			u.rooms.endStart()
			u.sidebar.refresh()
			u.updateTitle()
			u.log.Debug("every saved room opened", "rooms", len(u.rooms.items), "cpu", cpuTime())
			if len(failed) > 0 {
				dialog.ShowError(fmt.Errorf("some rooms could not be opened:\n%s", strings.Join(failed, "\n")), u.win)
			}
		})
	}()
}

// tick updates what moves with time: the reconnect countdown, the banner
// after its grace, "Today" turning into "Yesterday"; and it rests the
// focused box's cursor once nobody typed for a while.
func (u *UI) tick(now time.Time) {
	u.warmOneView()
	// A box left alone stops blinking (each blink step is a frame).
	if f, ok := u.win.Canvas().Focused().(interface{ RestCursor(time.Time) bool }); ok {
		f.RestCursor(now)
	}
	for _, r := range u.rooms.items {
		u.sessions.tick(r.sess, now)
		if r.Link.Phase == chatview.PhaseReconnecting {
			u.sidebar.refreshRoom(r) // the countdown in its note
		}
	}
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

// now is the time the views show (one place to change for tests).
func (u *UI) now() time.Time { return time.Now() }

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
	u.main.Objects = []fyne.CanvasObject{u.room.content}
	u.main.Refresh()
	if u.screen != "room" {
		u.setContent("room", u.shell)
	}
	u.sidebar.syncSelection()
	u.win.Canvas().Focus(u.room.composer)
	u.updateTitle()
}

// join validates a profile and puts its room on screen: a room not in
// the sidebar yet is added (its engine starts; the others keep running), a
// listed one is selected. A new name or picture reconnects every room as
// the same member (no bye: the others see a rename).
func (u *UI) join(p settings.Profile) error {
	if err := validateProfile(&p); err != nil {
		return err
	}
	entry := settings.RoomEntry{Relay: p.Relay, Room: p.Room, Token: p.Token, Host: p.Host, Notify: settings.NotifyAll}
	if p.Host {
		entry.Relay = ""
		if p.HostToken == "" {
			p.HostToken = newRoomToken()
		}
	}
	renamed := p.Name != u.prof.Name || p.Avatar != u.prof.Avatar
	hostChanged := p.Host && (p.HostPort != u.prof.HostPort || p.HostToken != u.prof.HostToken) && u.hosting.running()
	p.AutoJoin = true
	u.prof = p
	u.rooms.myName = p.Name
	u.store.Save(p)
	existing := u.rooms.find(entry.Key())
	if hostChanged {
		u.stopHosting()
	}
	if renamed {
		for _, r := range u.rooms.items {
			if r != existing {
				u.rejoin(r)
			}
		}
	}
	if existing != nil {
		if existing.Entry.Token != entry.Token && !entry.Host {
			existing.Entry.Token = entry.Token
			u.rooms.save()
			renamed = true
		}
		if renamed || hostChanged {
			u.rejoin(existing)
		}
		u.selectRoom(existing.Key())
		u.showRoom()
		return nil
	}
	if err := u.openEntry(entry); err != nil {
		return err
	}
	u.selectRoom(entry.Key())
	u.showRoom()
	return nil
}

// addrOf is the address and token to reach a room with: the hosted room
// starts the embedded relay (or reuses it).
func (u *UI) addrOf(e settings.RoomEntry) (addr, token string, err error) {
	if !e.Host {
		relay, tok := e.Relay, e.Token
		if r, t := protocol.SplitInvite(relay); t != "" {
			relay, tok = r, t
		}
		return relay, tok, nil
	}
	if u.prof.HostToken == "" {
		u.prof.HostToken = newRoomToken()
		u.store.Save(u.prof)
	}
	addr, err = u.hosting.start(u.prof.HostPort, u.prof.HostToken)
	return addr, u.prof.HostToken, err
}

// openEntry starts a room of the sidebar and builds its view (not shown
// until selected).
func (u *UI) openEntry(e settings.RoomEntry) error {
	if err := protocol.ValidateRoom(e.Room); err != nil {
		return fmt.Errorf("Room: %s", errMessage(err))
	}
	addr, token, err := u.addrOf(e)
	if err != nil {
		return err
	}
	_, err = u.rooms.open(openRequest{Entry: e, Addr: addr, Token: token, Name: u.prof.Name, Avatar: u.prof.Avatar},
		func(r *roomState, readUpTo *settings.ResumePoint) {
			v := newRoomView(u, e.Room)
			v.state = r
			v.readUpTo = readUpTo
			u.views[r.Key()] = v
			if u.local != nil {
				// What the device holds shows at once, network or not.
				u.local.loadLatest(v)
				if in, ok := u.deviceCounts[keyOf(r).Normalized()]; ok {
					r.Unread, r.Mentions = in.Unread, in.Mentions
					if in.Last != nil {
						r.last.Epoch, r.last.Seq, r.last.TS = in.Last.Epoch, in.Last.Seq, in.Last.TS
					}
				}
			}
		})
	if err != nil {
		delete(u.views, e.Key())
		return err
	}
	u.refreshHostInfo()
	return nil
}

// rejoin reconnects one room as the person now is (name, picture, token).
func (u *UI) rejoin(r *roomState) {
	addr, token, err := u.addrOf(r.Entry)
	if err == nil {
		r.Addr = addr
		err = u.rooms.rejoin(r, u.prof.Name, u.prof.Avatar, token)
	}
	if err != nil {
		u.log.Warn("could not reconnect a room under the new name", "room", r.Entry.Room, "err", err)
	}
	if r == u.rooms.current() {
		u.session = r.sess
	}
}

// selectRoom puts a listed room on screen.
func (u *UI) selectRoom(key string) {
	r := u.rooms.selectRoom(key)
	if r == nil {
		return
	}
	u.room, u.session = u.views[key], r.sess
	if u.room != nil {
		u.room.updateStatus(time.Now())
	}
	if r.sess != nil {
		if err := u.avatars.SetRelay(r.sess.c.URL()); err != nil {
			u.log.Info("avatar fetches disabled", "err", err)
		}
	}
	u.diag = diagState{}
	if u.room != nil && u.room.welcome != nil {
		w := *u.room.welcome
		u.diag.welcome = &w
	}
	u.refreshHostInfo()
	if u.screen == "room" || u.screen == "" {
		u.showRoom()
	}
	u.updateTitle()
}

// roomEvents hands a room's batch to its view.
func (u *UI) roomEvents(r *roomState, evs []client.Event) {
	if v := u.views[r.Key()]; v != nil {
		v.apply(evs)
	}
	if r == u.rooms.current() {
		u.updateTitle()
	}
}

// roomChanged redraws the sidebar (one row, or all of it) and the title.
func (u *UI) roomChanged(r *roomState) {
	if u.sidebar == nil || u.batching {
		return
	}
	if r == nil {
		u.sidebar.refresh()
	} else {
		u.sidebar.refreshRoom(r)
	}
	u.updateTitle()
}

// openAt opens a room scrolled to one of its messages (a search result).
func (u *UI) openAt(key, epoch string, seq uint64) {
	u.selectRoom(key)
	u.showRoom()
	if u.room != nil {
		u.room.showMessage(epoch, seq)
	}
}

// warmOneView lays out one room's screen that was never shown, off
// screen, so that switching to it later costs what switching to a room
// seen before does (its rows exist). One per tick keeps each UI turn short.
func (u *UI) warmOneView() {
	size := u.main.Size()
	if u.screen != "room" || size.Width <= 0 {
		return
	}
	for _, r := range u.rooms.items {
		if v := u.views[r.Key()]; v != nil && v != u.room && v.list.Size().Width <= 0 {
			v.content.Resize(size)
			return
		}
	}
}

// pruneHistory drops local messages older than the retention setting, in
// the background.
func (u *UI) pruneHistory() {
	age := u.store.Retention().Age()
	if u.local == nil || age <= 0 {
		return
	}
	u.bg.Add(1)
	go func() {
		defer u.bg.Done()
		if n, err := u.local.prune(age); err != nil {
			u.log.Warn("local history: prune", "err", err)
		} else if n > 0 {
			u.log.Info("local history: pruned", "messages", n)
		}
	}()
}

// moveRoom moves the selected room up or down the sidebar.
func (u *UI) moveRoom(delta int) {
	if u.rooms.move(u.rooms.selected, delta) {
		u.sidebar.syncSelection()
	}
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

// leaveRoom leaves the selected room (bye) and takes it off the sidebar;
// with no room left the join screen shows.
func (u *UI) leaveRoom() {
	r := u.rooms.current()
	if r == nil {
		return
	}
	key := r.Key()
	u.rooms.leave(key)
	delete(u.views, key)
	u.room, u.session = nil, nil
	hosted := false
	for _, o := range u.rooms.items {
		hosted = hosted || o.Entry.Host
	}
	if !hosted {
		u.stopHosting()
	}
	if next := u.rooms.current(); next != nil {
		u.selectRoom(next.Key())
		u.showRoom()
		return
	}
	u.prof.AutoJoin = false
	u.store.Save(u.prof)
	u.updateTitle()
	u.showJoin()
}

// reconnect starts the selected room's engine again (after it stopped).
func (u *UI) reconnect() {
	if r := u.rooms.current(); r != nil {
		u.rejoin(r)
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

// notify raises a desktop notification for a message someone wrote in a
// room not in plain sight (the rooms controller decided it should: the
// room's level, or a mention). Mentions pass even with notifications
// switched off app-wide.
func (u *UI) notify(r *roomState, m protocol.Message, mention bool) {
	u.notifier.Enabled = u.prof.Notifications || mention
	defer func() { u.notifier.Enabled = u.prof.Notifications }()
	if n, ok := u.notifier.Arrived(r.Entry.Room, m.From.Name, m.Text, time.Now()); ok {
		if mention {
			n.Title = m.From.Name + " mentioned you in #" + r.Entry.Room
		}
		u.app.SendNotification(fyne.NewNotification(n.Title, n.Body))
	}
}

func (u *UI) focusChanged(focused bool) {
	u.rooms.focus(focused)
	if focused {
		u.notifier.Reset()
	}
	u.updateTitle()
}

// Unread is the unread count in the title: every room's (for tests).
func (u *UI) Unread() int { return u.rooms.totalUnread() }

func (u *UI) updateTitle() {
	room := ""
	if u.room != nil && u.screen == "room" {
		room = u.room.room
	}
	u.win.SetTitle(chatview.WindowTitle(u.opts.AppName, room, u.rooms.totalUnread()))
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
	u.session = nil
	u.rooms.stopAll() // saves the resume points: Fyne writes preferences after this hook
	u.stopHosting()
	u.bg.Wait() // a prune may still run
	if u.local != nil {
		u.local.close()
	}
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
