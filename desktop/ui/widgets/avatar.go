// Package widgets holds the Heartline desktop's own Fyne widgets: the avatar,
// the composer and the virtualised message list.
package widgets

import (
	"image"
	"image/color"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/heartline/heartline/desktop/chatview"
	"github.com/heartline/heartline/shared/protocol"
)

// Presence colours: the dot on an avatar in the members panel.
var (
	OnlineColor = color.NRGBA{0x2e, 0xb8, 0x5c, 0xff}
	AwayColor   = color.NRGBA{0xf0, 0xa0, 0x20, 0xff}
)

// Avatar draws a member's picture in a circle, or their initials on a colour
// derived from their name; optionally with a presence dot.
type Avatar struct {
	widget.BaseWidget

	Side     float32
	name     string
	pic      image.Image
	presence string // "", protocol.StateOnline or protocol.StateAway
	dot      color.Color
}

// NewAvatar makes an avatar side pixels wide.
func NewAvatar(side float32) *Avatar {
	a := &Avatar{Side: side}
	a.ExtendBaseWidget(a)
	return a
}

// Set shows name's initials, or pic when it is not nil.
func (a *Avatar) Set(name string, pic image.Image) {
	if a.name == name && a.pic == pic {
		return
	}
	a.name, a.pic = name, pic
	a.Refresh()
}

// SetPresence shows a dot for online or away; "" shows none.
func (a *Avatar) SetPresence(state string) {
	if a.presence == state {
		return
	}
	a.presence = state
	a.Refresh()
}

// SetDot shows a dot of colour c where presence shows (the sidebar's link
// state); nil shows none. A presence, when set, wins.
func (a *Avatar) SetDot(c color.Color) {
	if a.dot == c {
		return
	}
	a.dot = c
	a.Refresh()
}

// Initials is what the avatar shows without a picture (for tests).
func (a *Avatar) Initials() string { return chatview.Initials(a.name) }

// HasPicture reports whether a picture is shown (for tests).
func (a *Avatar) HasPicture() bool { return a.pic != nil }

// MinSize is the avatar's side.
func (a *Avatar) MinSize() fyne.Size { return fyne.NewSquareSize(a.Side) }

// CreateRenderer implements fyne.Widget.
func (a *Avatar) CreateRenderer() fyne.WidgetRenderer {
	r := &avatarRenderer{
		a:      a,
		circle: canvas.NewCircle(color.Black),
		text:   canvas.NewText("", color.White),
		img:    &canvas.Image{FillMode: canvas.ImageFillStretch, ScaleMode: canvas.ImageScaleSmooth},
		ring:   canvas.NewCircle(color.Transparent),
		dot:    canvas.NewCircle(OnlineColor),
	}
	r.text.TextStyle = fyne.TextStyle{Bold: true}
	r.text.Alignment = fyne.TextAlignCenter
	r.ring.StrokeWidth = 2
	r.Refresh()
	return r
}

type avatarRenderer struct {
	a         *Avatar
	circle    *canvas.Circle
	text      *canvas.Text
	img       *canvas.Image
	ring, dot *canvas.Circle
}

func (r *avatarRenderer) Layout(size fyne.Size) {
	side := min(size.Width, size.Height)
	pos := fyne.NewPos((size.Width-side)/2, (size.Height-side)/2)
	r.circle.Move(pos)
	r.circle.Resize(fyne.NewSquareSize(side))
	r.img.Move(pos)
	r.img.Resize(fyne.NewSquareSize(side))
	r.img.CornerRadius = side / 2
	r.text.TextSize = side * 0.4
	ts := fyne.MeasureText(r.text.Text, r.text.TextSize, r.text.TextStyle)
	r.text.Move(fyne.NewPos(pos.X+(side-ts.Width)/2, pos.Y+(side-ts.Height)/2))
	r.text.Resize(ts)
	d := max(side*0.32, 8)
	dpos := fyne.NewPos(pos.X+side-d+1, pos.Y+side-d+1)
	r.ring.Move(dpos)
	r.ring.Resize(fyne.NewSquareSize(d))
	r.dot.Move(dpos)
	r.dot.Resize(fyne.NewSquareSize(d))
}

func (r *avatarRenderer) MinSize() fyne.Size { return r.a.MinSize() }

func (r *avatarRenderer) Refresh() {
	a := r.a
	if a.pic != nil {
		r.img.Image = a.pic
		r.img.Show()
		r.circle.Hide()
		r.text.Hide()
	} else {
		r.img.Hide()
		r.circle.FillColor = chatview.AvatarColor(a.name)
		r.text.Text = chatview.Initials(a.name)
		r.circle.Show()
		r.text.Show()
	}
	switch a.presence {
	case protocol.StateOnline, protocol.StateAway:
		r.dot.FillColor = OnlineColor
		if a.presence == protocol.StateAway {
			r.dot.FillColor = AwayColor
		}
		r.ring.StrokeColor = a.Theme().Color(theme.ColorNameBackground, fyne.CurrentApp().Settings().ThemeVariant())
		r.ring.FillColor = r.dot.FillColor
		r.dot.Show()
		r.ring.Show()
	case "":
		if a.dot == nil {
			r.dot.Hide()
			r.ring.Hide()
			break
		}
		r.dot.FillColor = a.dot
		r.ring.StrokeColor = a.Theme().Color(theme.ColorNameBackground, fyne.CurrentApp().Settings().ThemeVariant())
		r.ring.FillColor = a.dot
		r.dot.Show()
		r.ring.Show()
	default:
		r.dot.Hide()
		r.ring.Hide()
	}
	r.Layout(a.Size())
	r.circle.Refresh()
	r.text.Refresh()
	r.img.Refresh()
	r.dot.Refresh()
	r.ring.Refresh()
}

func (r *avatarRenderer) Objects() []fyne.CanvasObject {
	return []fyne.CanvasObject{r.circle, r.text, r.img, r.ring, r.dot}
}

func (r *avatarRenderer) Destroy() {}
