package ui

import (
	"context"
	"errors"
	"fmt"
	"image/color"
	"io"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/storage"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/heartline/heartline/assets"
	"github.com/heartline/heartline/desktop/avatars"
	"github.com/heartline/heartline/desktop/settings"
	"github.com/heartline/heartline/desktop/ui/widgets"
	"github.com/heartline/heartline/shared/names"
	"github.com/heartline/heartline/shared/protocol"
)

// applyTheme sets the colour scheme: the desktop's, or forced light or dark.
func applyTheme(a fyne.App, t settings.Theme) {
	switch t {
	case settings.ThemeLight:
		a.Settings().SetTheme(forcedVariant{theme.DefaultTheme(), theme.VariantLight})
	case settings.ThemeDark:
		a.Settings().SetTheme(forcedVariant{theme.DefaultTheme(), theme.VariantDark})
	default:
		a.Settings().SetTheme(theme.DefaultTheme())
	}
}

// forcedVariant is the default theme in one variant whatever the desktop says.
type forcedVariant struct {
	fyne.Theme
	v fyne.ThemeVariant
}

func (f forcedVariant) Color(n fyne.ThemeColorName, _ fyne.ThemeVariant) color.Color {
	return f.Theme.Color(n, f.v)
}

// profileForm is the part of the join and settings screens that edits who
// and where the person is.
type profileForm struct {
	ui     *UI
	relay  *widget.Entry
	name   *widget.Entry
	room   *widget.Entry
	token  *widget.Entry
	picker *avatarPicker
}

func newProfileForm(u *UI, p settings.Profile) *profileForm {
	f := &profileForm{ui: u}
	f.relay = widget.NewEntry()
	f.relay.SetPlaceHolder("192.168.1.20:7070 or wss://chat.example.org/ws")
	f.relay.SetText(p.Relay)
	f.relay.OnChanged = func(s string) {
		// A pasted invite address: its token goes to the token field.
		if relay, token := protocol.SplitInvite(s); token != "" {
			f.token.SetText(token)
			f.relay.SetText(relay)
		}
	}
	f.name = widget.NewEntry()
	f.name.SetPlaceHolder("How others see you")
	f.name.SetText(p.Name)
	f.name.Validator = func(s string) error {
		if _, err := names.Normalize(s); err != nil {
			return errors.New(errMessage(err))
		}
		return nil
	}
	f.room = widget.NewEntry()
	f.room.SetPlaceHolder("general")
	f.room.SetText(p.Room)
	f.room.Validator = func(s string) error {
		if err := protocol.ValidateRoom(s); err != nil {
			return errors.New(errMessage(err))
		}
		return nil
	}
	f.token = widget.NewPasswordEntry()
	f.token.SetPlaceHolder("Only if the relay asks for one")
	f.token.SetText(p.Token)
	f.picker = newAvatarPicker(u, p.Avatar, func() string { return f.name.Text }, func() (string, string) {
		return f.relay.Text, f.token.Text
	})
	f.name.OnChanged = func(string) { f.picker.refresh() }
	return f
}

// into copies the form into p.
func (f *profileForm) into(p *settings.Profile) {
	p.Relay = f.relay.Text
	p.Name = f.name.Text
	p.Room = f.room.Text
	p.Token = f.token.Text
	p.Avatar = f.picker.selected
}

// showJoin shows the first-run screen.
func (u *UI) showJoin() {
	p := u.prof
	f := newProfileForm(u, p)
	errText := widget.NewLabel("")
	errText.Importance = widget.DangerImportance
	errText.Wrapping = fyne.TextWrapWord
	errText.Hide()

	port := widget.NewEntry()
	port.SetText(fmt.Sprint(p.HostPort))

	fail := func(err error) {
		errText.SetText(err.Error())
		errText.Show()
	}
	joinBtn := widget.NewButtonWithIcon("Join room", theme.LoginIcon(), func() {
		np := u.prof
		f.into(&np)
		np.Host = false
		if err := u.join(np); err != nil {
			fail(err)
		}
	})
	joinBtn.Importance = widget.HighImportance
	hostBtn := widget.NewButtonWithIcon("Host a room on this computer", theme.ComputerIcon(), func() {
		np := u.prof
		f.into(&np)
		np.Host = true
		if _, err := fmt.Sscan(port.Text, &np.HostPort); err != nil || np.HostPort < 1 || np.HostPort > 65535 {
			fail(errors.New("Port: enter a number from 1 to 65535"))
			return
		}
		if err := u.join(np); err != nil {
			fail(err)
		}
	})
	f.relay.OnSubmitted = func(string) { joinBtn.OnTapped() }

	form := widget.NewForm(
		widget.NewFormItem("Your name", f.name),
		widget.NewFormItem("Room", f.room),
		widget.NewFormItem("Picture", f.picker.content),
	)
	joinForm := widget.NewForm(
		widget.NewFormItem("Relay address", f.relay),
		widget.NewFormItem("Access token", f.token),
	)
	hostForm := widget.NewForm(widget.NewFormItem("Port", port))

	logo := canvas.NewImageFromResource(u.opts.Icon)
	if u.opts.Icon == nil {
		logo = canvas.NewImageFromResource(theme.MailComposeIcon())
	}
	logo.FillMode = canvas.ImageFillContain
	logo.SetMinSize(fyne.NewSquareSize(56))
	title := widget.NewLabelWithStyle(u.opts.AppName, fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	title.SizeName = theme.SizeNameHeadingText
	sub := widget.NewLabel("A chat room that keeps its link alive.")
	head := container.NewHBox(logo, container.NewVBox(title, sub))

	joinCard := widget.NewCard("Join a room", "Someone runs a relay: enter its address.",
		container.NewVBox(joinForm, container.NewHBox(layout.NewSpacer(), joinBtn)))
	hostCard := widget.NewCard("Or host one", "This computer runs the relay; people on your network join its address.",
		container.NewVBox(hostForm, container.NewHBox(layout.NewSpacer(), hostBtn)))

	body := container.NewVBox(head, widget.NewCard("", "", form), joinCard, hostCard, errText)
	u.setContent("join", container.NewVScroll(container.NewCenter(container.NewGridWrap(fyne.NewSize(560, body.MinSize().Height), body))))
	u.updateTitle()
	u.win.Canvas().Focus(f.name)
}

// avatarPicker offers the built-in avatars, "initials", and a picture file
// (uploaded to the relay).
type avatarPicker struct {
	ui       *UI
	selected string
	name     func() string
	relay    func() (addr, token string)
	content  fyne.CanvasObject
	choices  []*choice
	custom   *choice
	status   *widget.Label
}

type choice struct {
	widget.BaseWidget
	ref    string
	avatar *widgets.Avatar
	ring   *canvas.Rectangle
	onTap  func()
}

func newChoice(ref string, onTap func()) *choice {
	c := &choice{ref: ref, avatar: widgets.NewAvatar(40), ring: canvas.NewRectangle(color.Transparent), onTap: onTap}
	c.ring.CornerRadius = 8
	c.ring.StrokeWidth = 2
	c.ExtendBaseWidget(c)
	return c
}

func (c *choice) Tapped(*fyne.PointEvent) { c.onTap() }

func (c *choice) CreateRenderer() fyne.WidgetRenderer {
	return widget.NewSimpleRenderer(container.NewStack(c.ring, container.NewPadded(c.avatar)))
}

func newAvatarPicker(u *UI, current string, name func() string, relay func() (string, string)) *avatarPicker {
	p := &avatarPicker{ui: u, selected: current, name: name, relay: relay}
	var row []fyne.CanvasObject
	add := func(ref string) *choice {
		c := newChoice(ref, nil)
		c.onTap = func() { p.selected = c.ref; p.refresh() }
		p.choices = append(p.choices, c)
		row = append(row, c)
		return c
	}
	add("") // initials
	for _, n := range assets.BuiltinAvatarNames() {
		add(protocol.BuiltinAvatar(n))
	}
	p.custom = add("")
	p.custom.Hide()
	if kind, _, _ := protocol.ParseAvatar(current); kind == "sha256" {
		p.custom.ref = current
		p.custom.Show()
	}
	p.status = widget.NewLabel("")
	p.status.Importance = widget.LowImportance
	p.status.Wrapping = fyne.TextWrapWord
	upload := widget.NewButtonWithIcon("Choose a picture…", theme.FolderOpenIcon(), p.choose)
	grid := container.NewGridWrap(fyne.NewSquareSize(52), row...)
	p.content = container.NewVBox(grid, container.NewBorder(nil, nil, upload, nil, p.status))
	p.refresh()
	return p
}

func (p *avatarPicker) refresh() {
	th := theme.Current()
	v := fyne.CurrentApp().Settings().ThemeVariant()
	for _, c := range p.choices {
		label := p.name()
		if c.ref == "" {
			if label == "" {
				label = "?"
			}
		}
		c.avatar.Set(label, p.ui.pictures(c.ref))
		if c.ref == p.selected && (c != p.choices[0] || p.selected == "") && c.Visible() {
			c.ring.StrokeColor = th.Color(theme.ColorNamePrimary, v)
		} else {
			c.ring.StrokeColor = color.Transparent
		}
		c.ring.Refresh()
	}
}

// choose lets the person pick a PNG or JPEG, shrinks it and uploads it to
// the relay in the relay field (a picture lives on the relay that serves it).
func (p *avatarPicker) choose() {
	d := dialog.NewFileOpen(func(rc fyne.URIReadCloser, err error) {
		if err != nil || rc == nil {
			return
		}
		data, err := io.ReadAll(io.LimitReader(rc, avatars.MaxPickedFile+1))
		rc.Close()
		if err != nil {
			p.status.SetText("Could not read the file: " + err.Error())
			return
		}
		p.upload(data)
	}, p.ui.win)
	d.SetFilter(storage.NewExtensionFileFilter([]string{".png", ".jpg", ".jpeg", ".PNG", ".JPG", ".JPEG"}))
	d.Show()
}

func (p *avatarPicker) upload(data []byte) {
	relay, token := p.relay()
	if p.ui.hosting.running() {
		relay, token = p.ui.hosting.localAddr(), p.ui.hosting.token
	}
	png, err := avatars.Prepare(data)
	if err != nil {
		p.status.SetText(err.Error())
		return
	}
	if relay == "" {
		p.status.SetText("Enter the relay address first: the picture is stored on the relay.")
		return
	}
	p.status.SetText("Uploading…")
	u := p.ui
	u.bg.Add(1)
	go func() {
		defer u.bg.Done()
		ctx, cancel := context.WithTimeout(u.ctx, 30*time.Second)
		defer cancel()
		ref, err := avatars.Upload(ctx, nil, relay, token, png)
		u.do(func() {
			if err != nil {
				p.status.SetText(err.Error())
				return
			}
			u.avatars.Put(ref, png)
			p.custom.ref = ref
			p.custom.Show()
			p.selected = ref
			p.status.SetText("Picture uploaded.")
			p.refresh()
		})
	}()
}
