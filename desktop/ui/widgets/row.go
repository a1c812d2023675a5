package widgets

import (
	"image"
	"image/color"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/driver/desktop"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/heartline/heartline/desktop/chatview"
)

// row is one line of the message list: a day separator, a gap marker or a
// message. One template serves all three (widget.List recycles rows), showing
// only the parts the item needs.
type row struct {
	widget.BaseWidget
	m    *MessageList
	item chatview.Item

	hovered  bool
	showFull bool // tapped: keep the full date and time visible

	// day separator and gap marker
	lineL, lineR *canvas.Line
	dayText      *canvas.Text
	gapBg        *canvas.Rectangle
	gapIcon      *widget.Icon
	gapText      *canvas.Text

	// message
	hoverBg    *canvas.Rectangle
	avatar     *Avatar
	name       *canvas.Text
	when       *canvas.Text // short time beside the name, or in the gutter on hover
	full       *canvas.Text // full date and time, on hover or tap
	body       *widget.Label
	rich       *widget.RichText
	status     *canvas.Text
	retry      *widget.Hyperlink
	discard    *widget.Hyperlink
	usingRich  bool
	statusShow bool
}

func newRow(m *MessageList) *row {
	r := &row{m: m}
	r.lineL = canvas.NewLine(color.Gray{0x80})
	r.lineR = canvas.NewLine(color.Gray{0x80})
	r.dayText = canvas.NewText("", color.Black)
	r.dayText.TextStyle = fyne.TextStyle{Bold: true}
	r.gapBg = canvas.NewRectangle(color.Transparent)
	r.gapBg.CornerRadius = 6
	r.gapIcon = widget.NewIcon(theme.WarningIcon())
	r.gapText = canvas.NewText("", color.Black)
	r.gapText.TextStyle = fyne.TextStyle{Italic: true}
	r.hoverBg = canvas.NewRectangle(color.Transparent)
	r.avatar = NewAvatar(36)
	r.name = canvas.NewText("", color.Black)
	r.name.TextStyle = fyne.TextStyle{Bold: true}
	r.when = canvas.NewText("", color.Black)
	r.full = canvas.NewText("", color.Black)
	// Not Label.Selectable: its own right-click menu (copy the selection)
	// would hide the row's menu (copy text, copy link, retry, discard) over the text.
	r.body = widget.NewLabel("")
	r.body.Wrapping = fyne.TextWrapWord
	r.rich = widget.NewRichText()
	r.rich.Wrapping = fyne.TextWrapWord
	r.status = canvas.NewText("", color.Black)
	r.retry = widget.NewHyperlink("Retry", nil)
	r.retry.OnTapped = func() {
		if r.item.Msg != nil && r.m.OnRetry != nil {
			r.m.OnRetry(r.item.Msg.ID)
		}
	}
	r.discard = widget.NewHyperlink("Discard", nil)
	r.discard.OnTapped = func() {
		if r.item.Msg != nil && r.m.OnDiscard != nil {
			r.m.OnDiscard(r.item.Msg.ID)
		}
	}
	r.ExtendBaseWidget(r)
	return r
}

// set shows item in this row.
func (r *row) set(it chatview.Item) {
	if r.item.Msg != it.Msg {
		r.showFull = false
	}
	r.item = it
	r.sync()
	r.Refresh()
}

// sync copies the item into the parts.
func (r *row) sync() {
	it := r.item
	m := r.m
	hideAll := func(objs ...fyne.CanvasObject) {
		for _, o := range objs {
			o.Hide()
		}
	}
	showAll := func(objs ...fyne.CanvasObject) {
		for _, o := range objs {
			o.Show()
		}
	}
	hideAll(r.lineL, r.lineR, r.dayText, r.gapBg, r.gapIcon, r.gapText,
		r.hoverBg, r.avatar, r.name, r.when, r.full, r.body, r.rich, r.status, r.retry, r.discard)
	switch it.Kind {
	case chatview.KindDay:
		r.dayText.Text = chatview.DayLabel(it.Day, m.now())
		showAll(r.lineL, r.lineR, r.dayText)
		return
	case chatview.KindGap:
		r.gapText.Text = it.Text
		showAll(r.gapBg, r.gapIcon, r.gapText)
		return
	}
	msg := it.Msg
	showAll(r.hoverBg)
	if it.GroupStart {
		r.name.Text = msg.From.Name
		r.when.Text = chatview.ShortTime(msg.Time)
		var pic = m.picture(msg.From.Avatar)
		r.avatar.Set(msg.From.Name, pic)
		showAll(r.avatar, r.name, r.when)
	} else if r.hovered {
		r.when.Text = chatview.ShortTime(msg.Time)
		r.when.Show()
	}
	if r.hovered || r.showFull {
		r.full.Text = chatview.FullTime(msg.Time)
		r.full.Show()
	}
	r.usingRich = chatview.HasLinks(msg.Text)
	if r.usingRich {
		var segs []widget.RichTextSegment
		for _, s := range chatview.SplitLinks(msg.Text) {
			if s.URL != nil {
				segs = append(segs, &widget.HyperlinkSegment{Text: s.Text, URL: s.URL})
			} else {
				segs = append(segs, &widget.TextSegment{Text: s.Text, Style: widget.RichTextStyleInline})
			}
		}
		r.rich.Segments = segs
		r.rich.Show()
	} else {
		r.body.Text = msg.Text
		r.body.Show()
	}
	r.statusShow = m.hasStatus(it)
	if r.statusShow {
		r.status.Text = chatview.StatusText(msg, m.connected())
		r.status.Show()
		if msg.Status == chatview.StatusFailed && m.OnRetry != nil {
			r.retry.Show()
		}
		if msg.Status == chatview.StatusFailed && m.OnDiscard != nil {
			r.discard.Show()
		}
	}
}

// heightFor measures the height this row needs at list width w.
func (r *row) heightFor(w float32) float32 {
	mt := r.m.metrics()
	switch r.item.Kind {
	case chatview.KindDay:
		return mt.dayH
	case chatview.KindGap:
		return mt.gapH
	}
	bodyW := w - mt.gutter - mt.rightPad + 2*mt.inner
	var bh float32
	if r.usingRich {
		r.rich.Resize(fyne.NewSize(bodyW, r.rich.MinSize().Height))
		bh = r.rich.MinSize().Height
	} else {
		r.body.Resize(fyne.NewSize(bodyW, r.body.MinSize().Height))
		bh = r.body.MinSize().Height
	}
	return mt.messageHeight(r.item, bh-2*mt.inner, r.m.statusKind(r.item))
}

// MouseIn shows the full date and time while the pointer is over the row.
func (r *row) MouseIn(*desktop.MouseEvent) {
	if r.item.Kind != chatview.KindMessage {
		return
	}
	r.hovered = true
	r.sync()
	r.Refresh()
}

// MouseMoved implements desktop.Hoverable.
func (r *row) MouseMoved(*desktop.MouseEvent) {}

// MouseOut hides the hover details.
func (r *row) MouseOut() {
	if !r.hovered {
		return
	}
	r.hovered = false
	r.sync()
	r.Refresh()
}

// Tapped toggles the full date and time (for touch screens, where nothing hovers).
func (r *row) Tapped(*fyne.PointEvent) {
	if r.item.Kind != chatview.KindMessage {
		return
	}
	r.showFull = !r.showFull
	r.sync()
	r.Refresh()
}

// TappedSecondary offers copying the text or links, and retrying or
// discarding a failed message.
func (r *row) TappedSecondary(ev *fyne.PointEvent) {
	items := rowMenuItems(r)
	if len(items) == 0 {
		return
	}
	c := fyne.CurrentApp().Driver().CanvasForObject(r)
	if c == nil {
		return
	}
	widget.ShowPopUpMenuAtPosition(fyne.NewMenu("", items...), c, ev.AbsolutePosition)
}

func rowMenuItems(r *row) []*fyne.MenuItem {
	msg := r.item.Msg
	if r.item.Kind != chatview.KindMessage || msg == nil {
		return nil
	}
	app := fyne.CurrentApp()
	items := []*fyne.MenuItem{
		fyne.NewMenuItem("Copy text", func() { app.Clipboard().SetContent(msg.Text) }),
	}
	var links []string
	for _, s := range chatview.SplitLinks(msg.Text) {
		if s.URL != nil {
			links = append(links, s.URL.String())
		}
	}
	if len(links) > 0 {
		items = append(items, fyne.NewMenuItem("Copy link", func() { app.Clipboard().SetContent(strings.Join(links, "\n")) }))
	}
	items = append(items, fyne.NewMenuItem("Copy date and time", func() { app.Clipboard().SetContent(chatview.FullTime(msg.Time)) }))
	if msg.Own && msg.Status == chatview.StatusFailed && r.m.OnRetry != nil {
		items = append(items, fyne.NewMenuItem("Retry sending", func() { r.m.OnRetry(msg.ID) }))
	}
	if msg.Own && msg.Status == chatview.StatusFailed && r.m.OnDiscard != nil {
		items = append(items, fyne.NewMenuItem("Discard", func() { r.m.OnDiscard(msg.ID) }))
	}
	return items
}

// CreateRenderer implements fyne.Widget.
func (r *row) CreateRenderer() fyne.WidgetRenderer {
	return &rowRenderer{r: r}
}

type rowRenderer struct{ r *row }

func (rr *rowRenderer) Objects() []fyne.CanvasObject {
	r := rr.r
	return []fyne.CanvasObject{r.hoverBg, r.lineL, r.lineR, r.dayText, r.gapBg, r.gapIcon, r.gapText,
		r.avatar, r.name, r.when, r.full, r.body, r.rich, r.status, r.retry, r.discard}
}

func (rr *rowRenderer) MinSize() fyne.Size { return fyne.NewSize(100, 20) }

func (rr *rowRenderer) Destroy() {}

func (rr *rowRenderer) Refresh() {
	r := rr.r
	th := r.Theme()
	v := fyne.CurrentApp().Settings().ThemeVariant()
	fg := th.Color(theme.ColorNameForeground, v)
	dim := th.Color(theme.ColorNamePlaceHolder, v)
	mt := r.m.metrics()

	r.dayText.Color = dim
	r.dayText.TextSize = mt.small
	r.lineL.StrokeColor = th.Color(theme.ColorNameSeparator, v)
	r.lineR.StrokeColor = r.lineL.StrokeColor
	r.gapText.Color = fg
	r.gapText.TextSize = mt.small
	r.gapBg.FillColor = withAlpha(th.Color(theme.ColorNameWarning, v), 0x30)
	r.name.Color = fg
	r.name.TextSize = mt.textSize
	r.when.Color = dim
	r.when.TextSize = mt.small
	r.full.Color = dim
	r.full.TextSize = mt.small
	r.status.TextSize = mt.small
	r.status.Color = dim
	if r.item.Msg != nil && r.item.Msg.Status == chatview.StatusFailed {
		r.status.Color = th.Color(theme.ColorNameError, v)
	}
	r.hoverBg.FillColor = color.Transparent
	if m := r.item.Msg; m != nil && r.item.Kind == chatview.KindMessage {
		if r.m.Marked == m {
			r.hoverBg.FillColor = withAlpha(th.Color(theme.ColorNamePrimary, v), 0x40)
		} else if r.m.Highlight != nil && r.m.Highlight(m) {
			r.hoverBg.FillColor = withAlpha(th.Color(theme.ColorNameWarning, v), 0x30)
		}
	}
	if r.hovered {
		r.hoverBg.FillColor = th.Color(theme.ColorNameHover, v)
	}
	rr.Layout(r.Size())
	for _, o := range rr.Objects() {
		if o.Visible() {
			o.Refresh()
		}
	}
}

func (rr *rowRenderer) Layout(size fyne.Size) {
	r := rr.r
	mt := r.m.metrics()
	switch r.item.Kind {
	case chatview.KindDay:
		ts := fyne.MeasureText(r.dayText.Text, r.dayText.TextSize, r.dayText.TextStyle)
		cx, cy := size.Width/2, size.Height/2
		r.dayText.Move(fyne.NewPos(cx-ts.Width/2, cy-ts.Height/2))
		r.dayText.Resize(ts)
		gap := 3 * mt.pad
		r.lineL.Position1 = fyne.NewPos(mt.gutter/2, cy)
		r.lineL.Position2 = fyne.NewPos(max(cx-ts.Width/2-gap, mt.gutter/2), cy)
		r.lineR.Position1 = fyne.NewPos(min(cx+ts.Width/2+gap, size.Width-mt.rightPad), cy)
		r.lineR.Position2 = fyne.NewPos(size.Width-mt.rightPad, cy)
		return
	case chatview.KindGap:
		r.gapBg.Move(fyne.NewPos(mt.gutter-mt.pad*2, mt.pad))
		r.gapBg.Resize(fyne.NewSize(size.Width-mt.gutter+mt.pad*2-mt.rightPad, size.Height-2*mt.pad))
		is := mt.lineH
		r.gapIcon.Move(fyne.NewPos(mt.gutter-mt.pad, (size.Height-is)/2))
		r.gapIcon.Resize(fyne.NewSquareSize(is))
		ts := fyne.MeasureText(r.gapText.Text, r.gapText.TextSize, r.gapText.TextStyle)
		r.gapText.Move(fyne.NewPos(mt.gutter+is+mt.pad, (size.Height-ts.Height)/2))
		r.gapText.Resize(ts)
		return
	}
	r.hoverBg.Move(fyne.NewPos(0, 0))
	r.hoverBg.Resize(size)
	y := float32(0)
	if r.item.GroupStart {
		y = mt.pad
		r.avatar.Move(fyne.NewPos((mt.gutter-mt.avatar)/2, y+mt.pad/2))
		r.avatar.Resize(fyne.NewSquareSize(mt.avatar))
		ns := fyne.MeasureText(r.name.Text, r.name.TextSize, r.name.TextStyle)
		r.name.Move(fyne.NewPos(mt.gutter, y))
		r.name.Resize(ns)
		ws := fyne.MeasureText(r.when.Text, r.when.TextSize, r.when.TextStyle)
		r.when.Move(fyne.NewPos(mt.gutter+ns.Width+2*mt.pad, y+ns.Height-ws.Height-1))
		r.when.Resize(ws)
		y += ns.Height + mt.pad
	} else {
		y = mt.pad / 2
		ws := fyne.MeasureText(r.when.Text, r.when.TextSize, r.when.TextStyle)
		r.when.Move(fyne.NewPos((mt.gutter-ws.Width)/2, (mt.lineH-ws.Height)/2+2))
		r.when.Resize(ws)
	}
	fs := fyne.MeasureText(r.full.Text, r.full.TextSize, r.full.TextStyle)
	r.full.Move(fyne.NewPos(size.Width-mt.rightPad-fs.Width, mt.pad/2))
	r.full.Resize(fs)

	bodyW := size.Width - mt.gutter - mt.rightPad + 2*mt.inner
	body := fyne.CanvasObject(r.body)
	if r.usingRich {
		body = r.rich
	}
	body.Resize(fyne.NewSize(bodyW, body.MinSize().Height))
	body.Move(fyne.NewPos(mt.gutter-mt.inner, y-mt.inner))
	if r.statusShow {
		sh := mt.statusH
		if r.retry.Visible() || r.discard.Visible() {
			sh = mt.failedH
		}
		sy := size.Height - sh + (sh-mt.statusH)/2
		ss := fyne.MeasureText(r.status.Text, r.status.TextSize, r.status.TextStyle)
		r.status.Move(fyne.NewPos(mt.gutter, sy))
		r.status.Resize(ss)
		// The actions follow the reason: "Not sent: ...  Retry  Discard".
		x := mt.gutter + ss.Width + mt.pad
		for _, link := range []*widget.Hyperlink{r.retry, r.discard} {
			if !link.Visible() {
				continue
			}
			bs := link.MinSize()
			link.Resize(bs)
			link.Move(fyne.NewPos(x, sy+ss.Height/2-bs.Height/2))
			x += bs.Width
		}
	}
}

func withAlpha(c color.Color, a uint8) color.Color {
	r, g, b, _ := c.RGBA()
	return color.NRGBA{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8), a}
}

func (m *MessageList) picture(ref string) image.Image {
	if m.Pictures == nil || ref == "" {
		return nil
	}
	return m.Pictures(ref)
}
