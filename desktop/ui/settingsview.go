package ui

import (
	"strconv"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
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
	f := newProfileForm(u, p)

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
		reconnect := u.room != nil && (np.Relay != u.prof.Relay && !np.Host || np.Room != u.prof.Room ||
			np.Name != u.prof.Name || np.Avatar != u.prof.Avatar || np.Token != u.prof.Token)
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
	if u.prof.Host {
		hostNote := widget.NewLabel("This computer hosts the room (port " + strconv.Itoa(u.prof.HostPort) + "). Leave the room to join another relay.")
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
		widget.NewCard("Room", "", widget.NewForm(append(relayItems, widget.NewFormItem("Room", f.room))...)),
		widget.NewCard("App", "", widget.NewForm(
			widget.NewFormItem("Notifications", notify),
			widget.NewFormItem("Theme", themeSel),
			widget.NewFormItem("Tray", tray),
		)),
		errText,
		container.NewHBox(cancel, layout.NewSpacer(), save),
	)
	u.setContent("settings", container.NewVScroll(container.NewCenter(container.NewGridWrap(fyne.NewSize(620, body.MinSize().Height), body))))
}
