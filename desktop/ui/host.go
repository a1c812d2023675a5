package ui

import (
	"fmt"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/heartline/heartline/shared/protocol"
)

// stopHosting stops the hosted room and takes its note off the room header.
func (u *UI) stopHosting() {
	u.hosting.stop()
	if u.room != nil {
		u.room.hostInfo.Hide()
	}
}

// refreshHostInfo shows the hosting note in the room header.
func (u *UI) refreshHostInfo() {
	h, r := u.hosting, u.room
	if r == nil {
		return
	}
	if h.srv == nil {
		r.hostInfo.Hide()
		return
	}
	addrs := h.lanAddrs()
	text := fmt.Sprintf("Hosting on port %d · invite others", h.port)
	if len(addrs) > 0 {
		text = "Hosting on " + addrs[0] + " · invite others"
	}
	r.hostInfo.SetText(text)
	r.hostInfo.Show()
}

// showHostInfo lists the invite addresses to give to others, with copy
// buttons.
func (u *UI) showHostInfo() {
	h := u.hosting
	if !h.running() {
		return
	}
	addrs := h.invites()
	box := container.NewVBox(widget.NewLabel("This computer hosts the room. People on your network join by pasting one of these\ninvite addresses as the relay address. The invite holds the room's access token:\nshare it only with people you want in the room."))
	if len(addrs) == 0 {
		box.Add(widget.NewLabel(fmt.Sprintf("(no network address found; on this computer use %s)", protocol.InviteAddress(h.localAddr(), h.token))))
	}
	for _, a := range addrs {
		a := a
		box.Add(container.NewBorder(nil, nil, nil,
			widget.NewButtonWithIcon("Copy", theme.ContentCopyIcon(), func() { u.app.Clipboard().SetContent(a) }),
			widget.NewLabelWithStyle(a, fyne.TextAlignLeading, fyne.TextStyle{Monospace: true})))
	}
	if len(addrs) > 0 {
		box.Add(widget.NewLabel("Someone without the app opens this in a browser instead:"))
		for _, a := range addrs {
			link := browserLink(a)
			box.Add(container.NewBorder(nil, nil, nil,
				widget.NewButtonWithIcon("Copy", theme.ContentCopyIcon(), func() { u.app.Clipboard().SetContent(link) }),
				widget.NewLabelWithStyle(link, fyne.TextAlignLeading, fyne.TextStyle{Monospace: true})))
		}
	}
	box.Add(widget.NewLabel("The room stays open while Heartline runs here; a firewall may have to allow the port."))
	dialog.ShowCustom("Hosting", "Close", box, u.win)
}
