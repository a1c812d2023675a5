package ui

import (
	"fmt"
	"image/color"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/heartline/heartline/desktop/chatview"
	"github.com/heartline/heartline/desktop/settings"
	"github.com/heartline/heartline/desktop/ui/widgets"
	"github.com/heartline/heartline/shared/client"
	"github.com/heartline/heartline/shared/protocol"
)

// maxDrops is how many dropped links the diagnostics view lists.
const maxDrops = 5

// roomView is the room screen and the state behind it. Every method runs on
// the UI goroutine.
type roomView struct {
	ui    *UI
	room  string
	state *roomState // its entry in the sidebar

	tl       *chatview.Timeline
	roster   chatview.Roster
	link     chatview.Link
	shownRTT time.Duration // the round-trip time in the header (see chatview.SteadyRTT)
	gate     chatview.BannerGate
	me       protocol.Member
	welcome  *protocol.Welcome
	drops    []client.Drop
	lastTick time.Time

	// readUpTo is where the person had read up to when the app last had
	// this room open (nil: nothing saved), until the first welcome.
	// contextOnly: that welcome replayed everything after it, so a history
	// gap the engine reports lies only in the context above (no marker).
	readUpTo    *settings.ResumePoint
	contextOnly bool
	// moreOnDevice: the local history holds messages older than the view's.
	moreOnDevice bool
	// older: asking the relay for what the device lacks (relayhistory.go).
	older relayOlder

	// widgets
	content      fyne.CanvasObject
	title        *widget.Label
	statusDot    *canvas.Circle
	statusText   *widget.Label
	hostInfo     *widget.Button
	banner       *fyne.Container
	bannerBg     *canvas.Rectangle
	bannerText   *widget.Label
	bannerButton *widget.Button
	list         *widgets.MessageList
	composer     *widgets.Composer
	mentions     *mentionRow
	membersHead  *widget.Label
	members      *widget.List
	membersPanel fyne.CanvasObject
	membersShown bool
	membersLive  bool // presence is current (connected)
	split        *container.Split
	empty        *fyne.Container
}

func newRoomView(u *UI, room string) *roomView {
	r := &roomView{ui: u, room: room, tl: chatview.NewTimeline(nil), lastTick: time.Now()}
	r.gate.Grace = u.opts.BannerGrace
	r.build()
	return r
}

func (r *roomView) build() {
	u := r.ui
	r.title = widget.NewLabelWithStyle("#"+r.room, fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	r.title.SizeName = theme.SizeNameSubHeadingText
	r.statusDot = canvas.NewCircle(theme.Color(theme.ColorNameDisabled))
	r.statusText = widget.NewLabel("Offline")
	dot := container.NewCenter(container.NewGridWrap(fyne.NewSquareSize(10), r.statusDot))
	r.hostInfo = widget.NewButtonWithIcon("", theme.ComputerIcon(), func() { u.showHostInfo() })
	r.hostInfo.Importance = widget.LowImportance
	r.hostInfo.Hide()

	membersBtn := widget.NewButtonWithIcon("", theme.AccountIcon(), func() { r.toggleMembers() })
	diagBtn := widget.NewButtonWithIcon("", theme.InfoIcon(), func() { u.showDiagnostics() })
	settingsBtn := widget.NewButtonWithIcon("", theme.SettingsIcon(), func() { u.showSettings() })
	leaveBtn := widget.NewButtonWithIcon("Leave", theme.LogoutIcon(), func() { u.leaveRoom() })
	for _, b := range []*widget.Button{membersBtn, diagBtn, settingsBtn, leaveBtn} {
		b.Importance = widget.LowImportance
	}
	header := container.NewHBox(r.title, dot, r.statusText, r.hostInfo, layout.NewSpacer(),
		membersBtn, diagBtn, settingsBtn, leaveBtn)

	r.bannerBg = canvas.NewRectangle(color.Transparent)
	r.bannerBg.CornerRadius = 6
	r.bannerText = widget.NewLabel("")
	r.bannerText.Wrapping = fyne.TextWrapWord
	r.bannerButton = widget.NewButton("", func() { r.bannerAction() })
	r.banner = container.NewStack(r.bannerBg,
		container.NewPadded(container.NewBorder(nil, nil, nil, container.NewCenter(r.bannerButton), r.bannerText)))
	r.banner.Hide()

	r.list = widgets.NewMessageList(r.tl)
	r.list.Defer = u.do
	r.list.Pictures = u.pictures
	r.list.Connected = func() bool { return r.link.Phase == chatview.PhaseConnected }
	r.list.OnRetry = func(id string) { u.retry(id) }
	r.list.OnTop = func() { r.loadOlder() }
	r.list.Highlight = func(m *chatview.Message) bool { return !m.Own && chatview.Mentions(m.Text, u.prof.Name) }
	r.list.OnDiscard = func(id string) { u.discard(id) }

	r.composer = widgets.NewComposer()
	r.composer.SetPlaceHolder("Message #" + r.room + "   (Enter sends, Shift+Enter for a new line)")
	r.composer.OnSend = func(text string) { u.send(text) }
	r.composer.OnShortcut = u.handleShortcut
	r.composer.OnKey = func(ev *fyne.KeyEvent) bool { return r.composerKey(ev) }
	sendBtn := widget.NewButtonWithIcon("", theme.MailSendIcon(), func() { r.composer.Send() })
	sendBtn.Importance = widget.HighImportance
	composerRow := container.NewBorder(r.buildMentionRow(), nil, nil, container.NewVBox(layout.NewSpacer(), sendBtn), r.composer)

	r.membersHead = widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	r.members = widget.NewList(
		func() int { return r.roster.Len() },
		func() fyne.CanvasObject {
			av := widgets.NewAvatar(28)
			name := widget.NewLabel("")
			name.Truncation = fyne.TextTruncateEllipsis
			return container.NewBorder(nil, nil, av, nil, name)
		},
		func(id widget.ListItemID, o fyne.CanvasObject) {
			ms := r.roster.Sorted()
			if id >= len(ms) {
				return
			}
			m := ms[id]
			c := o.(*fyne.Container)
			name := c.Objects[0].(*widget.Label)
			av := c.Objects[1].(*widgets.Avatar)
			av.Set(m.Name, u.pictures(m.Avatar))
			if r.membersLive {
				av.SetPresence(m.State)
			} else {
				av.SetPresence("")
			}
			text := m.Name
			if m.ID == r.me.ID {
				text += " (you)"
			}
			if m.State == protocol.StateAway {
				text += " · away"
				name.Importance = widget.LowImportance
			} else {
				name.Importance = widget.MediumImportance
			}
			name.SetText(text)
		})
	r.members.HideSeparators = true
	r.members.OnSelected = func(id widget.ListItemID) { r.members.Unselect(id) }
	r.membersPanel = container.NewBorder(container.NewPadded(r.membersHead), nil, nil, nil, container.NewPadded(r.members))

	hint := widget.NewLabelWithStyle("No messages yet. Say hello!", fyne.TextAlignCenter, fyne.TextStyle{Italic: true})
	hint.Importance = widget.LowImportance
	r.empty = container.NewCenter(hint)
	r.empty.Hide()
	chat := container.NewBorder(r.banner, container.NewPadded(composerRow), nil, nil, container.NewStack(r.list, r.empty))
	r.split = container.NewHSplit(chat, r.membersPanel)
	r.split.Offset = 0.76
	r.membersShown = true
	r.content = container.NewBorder(container.NewVBox(container.NewPadded(header), widget.NewSeparator()), nil, nil, nil, r.split)
	r.updateMembers()
	r.updateStatus(time.Now())
}

func (r *roomView) toggleMembers() {
	r.membersShown = !r.membersShown
	if r.membersShown {
		r.membersPanel.Show()
		r.split.Offset = 0.76
	} else {
		r.membersPanel.Hide()
		r.split.Offset = 1
	}
	r.split.Refresh()
}

// apply renders a batch of engine events.
func (r *roomView) apply(events []client.Event) {
	u := r.ui
	now := time.Now()
	arrived, arrivedOwn, changed := 0, false, false
	membersChanged, stateChanged := false, false
	for _, ev := range events {
		switch e := ev.(type) {
		case client.StateChanged:
			r.link = linkOf(e.State)
			stateChanged = true
		case client.Welcomed:
			w := e.Welcome
			r.welcome = &w
			r.me = w.You
			r.tl.SetSelf(w.You.ID)
			r.tl.SetEpoch(w.Epoch)
			r.roster.Reset(w.Members)
			r.contextOnly = false
			if r.readUpTo != nil {
				r.contextOnly = w.Epoch == r.readUpTo.Epoch && holdsAllAfter(w.History, r.readUpTo.LastSeq, w.Seq)
				r.readUpTo = nil
			}
			membersChanged = true
			changed = true // a new epoch adds a marker
			if r.selected() {
				u.avatars.SetRelay(r.state.sess.c.URL())
				u.welcomed(w)
			}
		case client.MessageReceived:
			own := e.Own || (r.me.ID != "" && e.Msg.From.ID == r.me.ID)
			if r.tl.Add(e.Msg) {
				arrived++
				if own {
					arrivedOwn = true
				}
			}
			changed = true
		case client.OutboxChanged:
			if e.Item.Status == client.Discarded {
				r.tl.RemoveOutgoing(e.Item.ID)
				changed = true
				continue
			}
			o := outgoingOf(e.Item)
			_, known := r.tl.Own(o.ID)
			r.tl.UpdateOutgoing(o, r.me)
			if !known && o.Status == chatview.StatusPending {
				arrivedOwn = true
			}
			changed = true
		case client.MemberJoined:
			r.roster.Put(e.Member)
			membersChanged = true
		case client.MemberChanged:
			r.roster.Put(e.Member)
			membersChanged = true
		case client.MemberLeft:
			r.roster.Remove(e.Member.ID)
			membersChanged = true
		case client.HistoryPage:
			if r.gotRelayPage(e) > 0 {
				changed = true
			}
		case client.HistoryGap:
			if !r.contextOnly || e.EpochChanged {
				r.tl.MarkGap(e.Text())
			}
			r.contextOnly = false
			changed = true
		case client.LinkDropped:
			r.drops = append(r.drops, e.Drop)
			if len(r.drops) > maxDrops {
				r.drops = r.drops[len(r.drops)-maxDrops:]
			}
			if r.selected() {
				u.diagnoseDrop(e.Drop) // one check, not one per room
			}
		case client.OutboxNotSaved:
			// Send used to refuse the message then; now it is queued first.
			dialog.ShowError(fmt.Errorf("a message could not be saved on this computer (%v): it will still be sent while Heartline is open, but would be lost if Heartline closed before that", e.Err), u.win)
		case client.RelayError:
			u.log.Info("relay refused a request", "code", e.Error.Code, "message", e.Error.Message)
		}
	}
	switch {
	case arrivedOwn:
		r.list.Arrived(true)
	case arrived > 0:
		r.list.ArrivedN(arrived)
	case changed:
		r.list.Sync()
	}
	wasUp := r.membersLive
	r.membersLive = r.link.Phase == chatview.PhaseConnected
	if membersChanged || wasUp != r.membersLive {
		r.updateMembers()
	}
	r.updateEmpty()
	if r.selected() {
		r.updateStatus(now) // a room not on screen gets its status when shown
	}
	if stateChanged && r.selected() {
		u.refreshDiagnostics()
	}
}

// composerKey sees the composer's keys first: Tab completes a mention,
// Escape jumps to the latest message.
func (r *roomView) composerKey(ev *fyne.KeyEvent) bool {
	if r.completeKey(ev) {
		return true
	}
	return r.ui.typedKey(ev)
}

// selected reports whether this room is the one on screen.
func (r *roomView) selected() bool { return r.ui.room == r }

// holdsAllAfter reports whether history has every message with a seq in
// (from, to]: all that was posted after from, up to the room's latest.
func holdsAllAfter(history []protocol.Message, from, to uint64) bool {
	if to <= from {
		return true
	}
	seen := make(map[uint64]struct{}, len(history))
	for _, m := range history {
		if m.Seq > from && m.Seq <= to {
			seen[m.Seq] = struct{}{}
		}
	}
	return uint64(len(seen)) == to-from
}

// updateMembers redraws the members panel. While the link is down the list
// is what it was at the last contact, so it says so and shows no presence.
func (r *roomView) updateMembers() {
	head := r.roster.CountText()
	if !r.membersLive && r.roster.Len() > 0 {
		head = fmt.Sprintf("%d members · as last seen", r.roster.Len())
	}
	r.membersHead.SetText(head)
	r.members.Refresh()
}

// updateEmpty shows a hint in a room without messages.
func (r *roomView) updateEmpty() {
	if r.tl.Messages() == 0 && r.link.Phase == chatview.PhaseConnected {
		r.empty.Show()
	} else {
		r.empty.Hide()
	}
}

// updateStatus refreshes the header status and the banner; it also runs
// every second from the UI's ticker while the link is not connected.
func (r *roomView) updateStatus(now time.Time) {
	l := r.link
	l.RTT = chatview.SteadyRTT(r.shownRTT, l.RTT)
	r.shownRTT = l.RTT
	text, tone := chatview.StatusLine(l, now)
	// Only what changed is refreshed: a heartbeat that leaves the line as it
	// was (most of them) must not redraw the window.
	if r.statusText.Text != text {
		r.statusText.SetText(text)
	}
	if c := toneColor(tone); r.statusDot.FillColor != color.Color(c) {
		r.statusDot.FillColor = c
		r.statusDot.Refresh()
	}

	b, _ := r.gate.Banner(r.link, now)
	if !b.Show {
		if r.banner.Visible() {
			r.banner.Hide()
		}
		return
	}
	r.bannerText.SetText(b.Text)
	c := toneColor(b.Tone)
	r.bannerBg.FillColor = color.NRGBA{c.R, c.G, c.B, 0x38}
	r.bannerBg.StrokeColor = c
	r.bannerBg.StrokeWidth = 1
	r.bannerBg.Refresh()
	if lbl := b.Action.Label(); lbl != "" {
		r.bannerButton.SetText(lbl)
		r.bannerButton.Show()
	} else {
		r.bannerButton.Hide()
	}
	if !r.banner.Visible() {
		r.banner.Show()
	}
}

func (r *roomView) bannerAction() {
	b, _ := r.gate.Banner(r.link, time.Now())
	switch b.Action {
	case chatview.ActionRetryNow:
		r.ui.retryNow()
	case chatview.ActionReconnect:
		r.ui.reconnect()
	case chatview.ActionOpenSettings:
		r.ui.showSettings()
	}
}

func toneColor(t chatview.Tone) color.NRGBA {
	switch t {
	case chatview.ToneOK:
		return widgets.OnlineColor
	case chatview.ToneBusy:
		return color.NRGBA{0x1e, 0x88, 0xe5, 0xff}
	case chatview.ToneWarning:
		return widgets.AwayColor
	default:
		return color.NRGBA{0xe5, 0x39, 0x35, 0xff}
	}
}

// showMessage scrolls to a message (a search result).
func (r *roomView) showMessage(epoch string, seq uint64) {
	i := r.tl.Find(epoch, seq)
	if i < 0 && r.ui.local != nil {
		r.ui.local.loadAround(r, epoch, seq)
		r.list.Sync()
		i = r.tl.Find(epoch, seq)
	}
	if i < 0 {
		return
	}
	r.list.Marked = r.tl.Item(i).Msg
	r.list.ScrollToRow(i)
	r.list.Refresh()
}

// loadOlder shows the page of the local history before the oldest message
// on screen (the person scrolled to the top).
func (r *roomView) loadOlder() {
	if r.ui.local != nil && r.ui.local.loadOlder(r) {
		r.list.Sync()
		return
	}
	r.askRelayForOlder() // the device has nothing older: the relay may
}

// resetTimeline empties the view (its history was cleared on this device).
func (r *roomView) resetTimeline() {
	tl := chatview.NewTimeline(nil)
	if r.welcome != nil {
		tl.SetSelf(r.me.ID)
		tl.SetEpoch(r.welcome.Epoch)
	}
	r.tl = tl
	r.list.TL = tl
	r.list.Marked = nil
	r.moreOnDevice = false
	r.list.Sync()
	r.list.Refresh()
	r.updateEmpty()
}
