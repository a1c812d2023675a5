package ui

import (
	"fmt"
	"strconv"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/heartline/heartline/desktop/settings"
)

var themeLabels = map[settings.Theme]string{
	settings.ThemeSystem: "Like the system",
	settings.ThemeLight:  "Light",
	settings.ThemeDark:   "Dark",
}

// showSettings shows the settings screen. Saving applies at once; a change
// of relay, room, name, picture or token reconnects (same member key, so the
// others see a rename, not a new member).
func (u *UI) showSettings() {
	p := u.prof
	cur := u.rooms.current()
	if cur != nil {
		// The room card is the room on screen.
		p.Relay, p.Room, p.Token, p.Host = cur.Entry.Relay, cur.Entry.Room, cur.Entry.Token, cur.Entry.Host
	}
	f := newProfileForm(u, p)
	roomNotify := widget.NewSelect(notifyChoices(), nil)
	if cur != nil {
		l := cur.Entry.Notify
		if l == "" {
			l = settings.NotifyAll
		}
		roomNotify.SetSelected(notifyLabels[l])
	} else {
		roomNotify.Disable()
	}
	privacy, retention := u.privacyCard(cur)

	notify := widget.NewCheck("Notify me of new messages while the window is in the background", nil)
	notify.SetChecked(p.Notifications)
	tray := widget.NewCheck("Closing the window keeps Heartline in the system tray", nil)
	tray.SetChecked(p.CloseToTray)
	if !u.hasTray {
		tray.Disable()
	}
	var opts []string
	for _, t := range settings.Themes {
		opts = append(opts, themeLabels[t])
	}
	themeSel := widget.NewRadioGroup(opts, nil)
	themeSel.Horizontal = true
	themeSel.SetSelected(themeLabels[p.Theme])

	errText := widget.NewLabel("")
	errText.Importance = widget.DangerImportance
	errText.Wrapping = fyne.TextWrapWord
	errText.Hide()

	back := func() {
		if u.room != nil {
			u.showRoom()
		} else {
			u.showJoin()
		}
	}
	save := widget.NewButtonWithIcon("Save", theme.ConfirmIcon(), func() {
		np := u.prof
		f.into(&np)
		np.Notifications = notify.Checked
		np.CloseToTray = tray.Checked
		for t, l := range themeLabels {
			if l == themeSel.Selected {
				np.Theme = t
			}
		}
		if err := validateProfile(&np); err != nil {
			errText.SetText(err.Error())
			errText.Show()
			return
		}
		np.Host = p.Host
		reconnect := u.room != nil && (np.Relay != p.Relay && !np.Host || np.Room != p.Room ||
			np.Name != u.prof.Name || np.Avatar != u.prof.Avatar || np.Token != p.Token)
		if cur != nil {
			u.rooms.setNotify(cur.Key(), notifyLevelOf(roomNotify.Selected))
		}
		if r := retentionOf(retention.Selected); r != u.store.Retention() {
			u.store.SaveRetention(r)
			u.pruneHistory()
		}
		u.notifier.Enabled = np.Notifications
		if np.Theme != u.prof.Theme {
			applyTheme(u.app, np.Theme)
		}
		u.prof.Notifications, u.prof.CloseToTray, u.prof.Theme = np.Notifications, np.CloseToTray, np.Theme
		u.store.Save(u.prof)
		if reconnect {
			if err := u.join(np); err != nil {
				errText.SetText(err.Error())
				errText.Show()
			}
			return
		}
		u.prof = np
		u.store.Save(np)
		back()
	})
	save.Importance = widget.HighImportance
	cancel := widget.NewButtonWithIcon("Back", theme.NavigateBackIcon(), back)

	relayItems := []*widget.FormItem{widget.NewFormItem("Relay address", f.relay), widget.NewFormItem("Access token", f.token)}
	if p.Host {
		hostNote := widget.NewLabel("This computer hosts the room (port " + strconv.Itoa(u.prof.HostPort) + "). Join another relay from the sidebar.")
		hostNote.Wrapping = fyne.TextWrapWord
		relayItems = []*widget.FormItem{widget.NewFormItem("Relay", hostNote)}
	}
	title := widget.NewLabelWithStyle("Settings", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	title.SizeName = theme.SizeNameHeadingText
	body := container.NewVBox(
		title,
		widget.NewCard("You", "", widget.NewForm(
			widget.NewFormItem("Name", f.name),
			widget.NewFormItem("Picture", f.picker.content),
		)),
		widget.NewCard("This room", "Another relay or room name joins that room too: it is added to the sidebar.",
			widget.NewForm(append(relayItems, widget.NewFormItem("Room", f.room), widget.NewFormItem("Notify me of", roomNotify))...)),
		widget.NewCard("App", "", widget.NewForm(
			widget.NewFormItem("Notifications", notify),
			widget.NewFormItem("Theme", themeSel),
			widget.NewFormItem("Tray", tray),
		)),
		privacy,
		errText,
		container.NewHBox(cancel, layout.NewSpacer(), save),
	)
	u.settingsScroll = container.NewVScroll(container.NewCenter(container.NewGridWrap(fyne.NewSize(620, body.MinSize().Height), body)))
	u.setContent("settings", u.settingsScroll)
}

var retentionLabels = map[settings.Retention]string{
	settings.KeepForever: "Forever",
	settings.KeepYear:    "1 year",
	settings.KeepMonth:   "30 days",
}

func retentionOf(label string) settings.Retention {
	for r, l := range retentionLabels {
		if l == label {
			return r
		}
	}
	return settings.KeepForever
}

// privacyCard is the settings' "Messages on this computer": how long they
// are kept, clearing the room on screen, and where the data lives.
func (u *UI) privacyCard(cur *roomState) (fyne.CanvasObject, *widget.RadioGroup) {
	var opts []string
	for _, r := range settings.Retentions {
		opts = append(opts, retentionLabels[r])
	}
	keep := widget.NewRadioGroup(opts, nil)
	keep.Horizontal = true
	keep.SetSelected(retentionLabels[u.store.Retention()])

	where := widget.NewLabel("")
	where.Wrapping = fyne.TextWrapBreak
	where.TextStyle.Monospace = true
	clear := widget.NewButtonWithIcon("Clear this room's history on this device", theme.DeleteIcon(), nil)
	clear.Importance = widget.DangerImportance
	switch {
	case u.local == nil && u.localErr != nil:
		where.SetText("Messages are not kept on this computer: " + u.localErr.Error())
		keep.Disable()
		clear.Disable()
	case u.local == nil:
		where.SetText("Messages are not kept on this computer.")
		keep.Disable()
		clear.Disable()
	default:
		where.SetText(u.local.path())
		if sz := u.local.size(); sz != "" {
			where.SetText(u.local.path() + "  (" + sz + ")")
		}
	}
	if cur == nil {
		clear.Disable()
	} else {
		clear.SetText("Clear #" + cur.Entry.Room + "'s history on this device")
	}
	clear.OnTapped = func() {
		dialog.ShowConfirm("Clear #"+cur.Entry.Room+"?",
			"Every message of #"+cur.Entry.Room+" kept on this computer is deleted.\nThe relay keeps its own recent history; this does not touch it.",
			func(ok bool) {
				if ok {
					u.clearRoomHistory(cur)
				}
			}, u.win)
	}
	form := widget.NewForm(
		widget.NewFormItem("Keep messages", keep),
		widget.NewFormItem("Stored in", where),
	)
	return widget.NewCard("Messages on this computer", "Kept so you can read and search them offline.",
		container.NewVBox(form, container.NewHBox(clear))), keep
}

// clearRoomHistory deletes a room's messages on this device and empties
// its view (what the relay sends from now on shows again).
func (u *UI) clearRoomHistory(r *roomState) {
	if u.local == nil {
		return
	}
	if err := u.local.clearRoom(r); err != nil {
		dialog.ShowError(fmt.Errorf("could not clear the history of #%s: %v", r.Entry.Room, err), u.win)
		return
	}
	if v := u.views[r.Key()]; v != nil {
		v.resetTimeline()
	}
	r.Unread, r.Mentions = 0, 0
	u.roomChanged(r)
}
