package widgets

import (
	"image"
	"math"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/heartline/heartline/desktop/chatview"
)

// MessageList is the room's virtualised message list: a widget.List over a
// chatview.Timeline with per-row heights, that follows new messages only while
// the person is at the bottom and otherwise offers "jump to latest (N new)".
//
// Row heights: every row gets an estimate from its text length as soon as it
// exists (cheap, so 10,000 rows cost nothing), and the exact height when it is
// first drawn; exact heights are applied after the frame, in one batch. A
// change that touches many rows (a new width, history inserted above) builds a
// fresh widget.List, whose heights can be set without a refresh each.
type MessageList struct {
	widget.BaseWidget

	TL *chatview.Timeline

	// Pictures resolves avatar references; nil draws initials only.
	Pictures func(ref string) image.Image
	// Connected reports whether the link is up (for "Sending…" vs "will send").
	Connected func() bool
	// OnRetry is called with the id of a failed own message to send again.
	OnRetry func(id string)
	// OnDiscard is called with the id of a failed own message to throw away.
	OnDiscard func(id string)
	// Now is the clock for day labels; nil means time.Now.
	Now func() time.Time
	// Defer runs f after the current frame; nil means fyne.Do. Tests replace
	// it to run the queued work when they choose.
	Defer func(f func())
	// Highlight reports whether a message calls for the person's attention
	// (it mentions them); such rows get a tinted background. nil: none.
	Highlight func(m *chatview.Message) bool
	// Marked is a message to show marked (a search result opened); nil: none.
	Marked *chatview.Message
	// OnTop is called when the person scrolls up to the oldest row (to
	// load older messages). nil: nothing happens.
	OnTop func()
	// OnJumpChanged is called when the jump control appears, disappears or
	// changes its count.
	OnJumpChanged func()

	scroll  chatview.Scroll
	list    *hookedList
	stack   *fyne.Container
	jump    *widget.Button
	jumpBox *fyne.Container

	width    float32
	heights  []float32 // per row, for width
	listH    []float32 // what the widget.List holds per row (-1: not set)
	exact    []bool
	fixes    map[int]float32
	fixQueue bool

	autoScrolling bool    // a scroll the list makes itself is under way
	lastY         float32 // scroll offset at the last callback
	mcache        struct {
		valid bool
		th    fyne.Theme
		ts    float32
		m     metrics
	}
}

// NewMessageList makes a list over tl.
func NewMessageList(tl *chatview.Timeline) *MessageList {
	m := &MessageList{TL: tl, fixes: map[int]float32{}}
	m.ExtendBaseWidget(m)
	m.jump = widget.NewButtonWithIcon(chatview.JumpLabel(0), theme.MoveDownIcon(), m.JumpToLatest)
	m.jump.Importance = widget.HighImportance
	m.jumpBox = container.NewPadded(container.NewVBox(layout.NewSpacer(),
		container.NewHBox(layout.NewSpacer(), m.jump, layout.NewSpacer())))
	m.jumpBox.Hide()
	m.list = m.newList()
	m.stack = container.NewStack(m.list, m.jumpBox)
	return m
}

// CreateRenderer implements fyne.Widget.
func (m *MessageList) CreateRenderer() fyne.WidgetRenderer {
	return widget.NewSimpleRenderer(m.stack)
}

// Resize re-estimates row heights when the width changes, and keeps the
// newest message in view when the height changes (a banner appearing above
// the list) while the person is at the bottom.
func (m *MessageList) Resize(s fyne.Size) {
	oldH := m.Size().Height
	m.BaseWidget.Resize(s)
	if w := s.Width; w > 0 && math.Abs(float64(w-m.width)) >= 1 {
		m.width = w
		m.rebuild()
		return
	}
	if s.Height != oldH && m.scroll.AtBottom() {
		m.scrollToBottom()
	}
}

// AtBottom reports whether the list follows new messages.
func (m *MessageList) AtBottom() bool { return m.scroll.AtBottom() }

// NewBelow is how many messages arrived below while the person was scrolled up.
func (m *MessageList) NewBelow() int { return m.scroll.NewBelow() }

// JumpVisible reports whether "jump to latest" shows.
func (m *MessageList) JumpVisible() bool { return m.jumpBox.Visible() }

// JumpText is the jump control's text.
func (m *MessageList) JumpText() string { return m.jump.Text }

// List is the underlying widget.List (for tests).
func (m *MessageList) List() *widget.List { return &m.list.List }

// Arrived tells the list that the timeline gained a message (own: the person
// sent it); it refreshes the changed rows and scrolls to the bottom if the
// person was there.
func (m *MessageList) Arrived(own bool) {
	m.arrived(m.scroll.Arrived(own))
}

// ArrivedN is Arrived for a burst of n messages from others, with one refresh.
func (m *MessageList) ArrivedN(n int) {
	m.arrived(m.scroll.ArrivedN(n))
}

func (m *MessageList) arrived(follow bool) {
	m.Sync()
	if follow {
		m.scrollToBottom()
	}
	m.updateJump()
}

// Sync refreshes the rows that changed in the timeline (status changes,
// members renamed, a gap marker...), keeping the scroll position.
func (m *MessageList) Sync() {
	if m.width <= 0 && m.list != nil {
		// Never laid out (a room in the sidebar not opened yet): its first
		// Resize builds every row; nothing to keep in step until then.
		return
	}
	from := m.TL.TakeChanged()
	n := m.TL.Len()
	if from < 0 && n == len(m.heights) {
		return
	}
	if from < 0 || from > len(m.heights) {
		from = len(m.heights)
	}
	if n < from {
		from = n
	}
	if n-from > 64 || m.width <= 0 {
		m.rebuild()
		return
	}
	m.heights = m.heights[:from]
	m.exact = m.exact[:from]
	m.list.holdRefresh = true // one refresh for all the new heights (see applyFixes)
	for i := from; i < n; i++ {
		m.heights = append(m.heights, m.estimate(i))
		m.exact = append(m.exact, false)
		m.setListHeight(i, m.heights[i])
	}
	m.list.holdRefresh = false
	m.list.Refresh()
	if m.scroll.AtBottom() {
		m.scrollToBottom()
	}
}

// ScrollBy scrolls the list by dy (negative: up, towards older messages), as
// the mouse wheel would.
func (m *MessageList) ScrollBy(dy float32) {
	if m.list.scroller == nil {
		return
	}
	m.list.scroller.Scrolled(&fyne.ScrollEvent{Scrolled: fyne.NewDelta(0, -dy)})
}

// JumpToLatest scrolls to the newest message.
func (m *MessageList) JumpToLatest() {
	m.scroll.Scrolled(true)
	m.scrollToBottom()
	m.updateJump()
}

// Refresh redraws the rows (e.g. a new theme or "Today" becoming "Yesterday").
func (m *MessageList) Refresh() {
	m.list.Refresh()
	m.BaseWidget.Refresh()
}

// scrollToBottom shows the newest row; the scroll it causes is not the
// person's doing, so scrolled ignores it.
func (m *MessageList) scrollToBottom() {
	if m.TL.Len() == 0 || m.list.scroller == nil {
		return
	}
	m.autoScrolling = true
	m.list.ScrollToBottom()
	m.autoScrolling = false
	m.lastY = m.list.scroller.Offset.Y
}

func (m *MessageList) updateJump() {
	show := m.scroll.ShowJump()
	text := chatview.JumpLabel(m.scroll.NewBelow())
	if show == m.jumpBox.Visible() && text == m.jump.Text {
		return
	}
	m.jump.SetText(text)
	if show {
		m.jumpBox.Show()
	} else {
		m.jumpBox.Hide()
	}
	if m.OnJumpChanged != nil {
		m.OnJumpChanged()
	}
}

// scrolled is called whenever the list's offset changes. Reaching the
// bottom counts as "at the bottom"; moving up counts as reading older
// messages. Other moves (the offset clamped when rows shrink, scrolls the list
// made itself) leave the state alone, so a relayout never stops the list from
// following new messages.
func (m *MessageList) scrolled() {
	s := m.list.scroller
	if s == nil {
		return
	}
	y := s.Offset.Y
	movedUp := y < m.lastY-0.5
	m.lastY = y
	if m.autoScrolling {
		return
	}
	if movedUp && y <= theme.Padding() && m.OnTop != nil {
		do := m.Defer
		if do == nil {
			do = fyne.Do
		}
		do(m.OnTop) // not inside the scroll callback: it rebuilds the list
	}
	bottom := y+s.Size().Height >= s.Content.MinSize().Height-theme.Padding()*4
	switch {
	case bottom && (!m.scroll.AtBottom() || m.scroll.NewBelow() > 0):
		m.scroll.Scrolled(true)
	case !bottom && movedUp && m.scroll.AtBottom():
		m.scroll.Scrolled(false)
	default:
		return
	}
	m.updateJump()
}

// rebuild estimates every row's height for the current width and puts a
// fresh widget.List in place, keeping the person's place in the messages.
func (m *MessageList) rebuild() {
	m.TL.TakeChanged()
	n := m.TL.Len()
	old := m.list
	firstRow := -1
	if old != nil && !m.scroll.AtBottom() && old.scroller != nil {
		firstRow = m.rowAt(old.scroller.Offset.Y)
	}
	m.heights = m.heights[:0]
	m.exact = m.exact[:0]
	clear(m.fixes)
	l := m.newList()
	for i := 0; i < n; i++ {
		h := m.estimate(i)
		m.heights = append(m.heights, h)
		m.exact = append(m.exact, false)
		l.SetItemHeight(i, h) // cheap: the new list has no renderer yet
	}
	m.listH = append(m.listH[:0], m.heights...)
	m.list = l
	if m.stack != nil {
		m.stack.Objects[0] = l
		l.Resize(m.stack.Size())
		m.stack.Refresh()
	}
	if firstRow >= 0 {
		l.ScrollTo(firstRow)
	} else {
		m.scrollToBottom()
	}
}

// rowAt returns the row at offset y, by the heights held.
func (m *MessageList) rowAt(y float32) int {
	sep := theme.Padding()
	var acc float32
	for i, h := range m.heights {
		acc += h + sep
		if acc > y {
			return i
		}
	}
	return max(len(m.heights)-1, 0)
}

func (m *MessageList) newList() *hookedList {
	l := &hookedList{owner: m}
	l.Length = func() int { return m.TL.Len() }
	l.CreateItem = func() fyne.CanvasObject { return newRow(m) }
	l.UpdateItem = m.updateItem
	l.HideSeparators = true
	l.OnSelected = func(id widget.ListItemID) { l.Unselect(id) }
	l.ExtendBaseWidget(l)
	return l
}

func (m *MessageList) updateItem(id widget.ListItemID, o fyne.CanvasObject) {
	r := o.(*row)
	if id >= m.TL.Len() {
		return
	}
	r.set(m.TL.Item(id))
	if m.width <= 0 || id >= len(m.heights) || m.exact[id] {
		return
	}
	h := r.heightFor(m.width)
	m.exact[id] = true
	if math.Abs(float64(h-m.heights[id])) < 0.5 {
		return
	}
	m.heights[id] = h
	m.fixes[id] = h
	if !m.fixQueue {
		m.fixQueue = true
		do := m.Defer
		if do == nil {
			do = fyne.Do
		}
		do(m.applyFixes)
	}
}

// setListHeight gives row i height h in the widget.List, which refreshes
// the whole list when a height changes; it reports whether it did.
func (m *MessageList) setListHeight(i int, h float32) bool {
	for len(m.listH) <= i {
		m.listH = append(m.listH, -1)
	}
	if m.listH[i] == h {
		return false
	}
	m.listH[i] = h
	m.list.SetItemHeight(i, h)
	return true
}

// applyFixes gives the list the exact heights measured while drawing.
func (m *MessageList) applyFixes() {
	m.fixQueue = false
	n := m.TL.Len()
	// Fyne's List.SetItemHeight refreshes the whole list for each height
	// that changes (every visible row set again): hold those back and
	// refresh once. (A room's first screen fixed ~10 rows: ~10 full list
	// refreshes before the window could show.)
	changed := false
	m.list.holdRefresh = true
	for id, h := range m.fixes {
		if id < n && m.setListHeight(id, h) {
			changed = true
		}
	}
	m.list.holdRefresh = false
	if changed {
		m.list.Refresh()
	}
	clear(m.fixes)
	if m.scroll.AtBottom() {
		m.scrollToBottom()
	}
}

// estimate guesses a row's height from its text, for rows not drawn yet.
func (m *MessageList) estimate(i int) float32 {
	it := m.TL.Item(i)
	mt := m.metrics()
	switch it.Kind {
	case chatview.KindDay:
		return mt.dayH
	case chatview.KindGap:
		return mt.gapH
	}
	bodyW := m.width - mt.gutter - mt.rightPad
	lines := 0
	for _, para := range strings.Split(it.Msg.Text, "\n") {
		w := float32(len([]rune(para))) * mt.charW
		lines += max(1, int(math.Ceil(float64(w*1.08/max(bodyW-2*mt.inner, 40)))))
	}
	return mt.messageHeight(it, float32(lines)*mt.lineH+float32(lines-1)*mt.lineSpacing, m.statusKind(it))
}

// statusKind: 0 no status line, 1 a status line, 2 a status line with Retry
// or Discard.
func (m *MessageList) statusKind(it chatview.Item) int {
	if !m.hasStatus(it) {
		return 0
	}
	if it.Msg.Status == chatview.StatusFailed && (m.OnRetry != nil || m.OnDiscard != nil) {
		return 2
	}
	return 1
}

// metrics returns the row measurements for the current theme, measured once
// per theme and text size.
func (m *MessageList) metrics() metrics {
	th := m.Theme()
	ts := th.Size(theme.SizeNameText)
	if m.mcache.valid && m.mcache.th == th && m.mcache.ts == ts {
		return m.mcache.m
	}
	m.mcache.th, m.mcache.ts, m.mcache.valid = th, ts, true
	m.mcache.m = metricsFor(th)
	return m.mcache.m
}

func (m *MessageList) hasStatus(it chatview.Item) bool {
	return it.Msg != nil && it.Msg.Own && (it.Msg.Status == chatview.StatusPending || it.Msg.Status == chatview.StatusFailed)
}

func (m *MessageList) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

func (m *MessageList) connected() bool {
	return m.Connected == nil || m.Connected()
}

// hookedList is a widget.List that reports scrolling by the person (the List
// has no public hook for it). The scroller is found again whenever Fyne makes
// a new renderer.
type hookedList struct {
	widget.List
	owner    *MessageList
	scroller *container.Scroll
	// holdRefresh: the list's renderer skips refreshes (applyFixes sets
	// many heights, then refreshes once).
	holdRefresh bool
	refreshes   int // renderer refreshes done (tests)
}

// heldRenderer is the List's renderer, which skips refreshes while the
// list holds them.
type heldRenderer struct {
	fyne.WidgetRenderer
	list *hookedList
}

func (r *heldRenderer) Refresh() {
	if r.list.holdRefresh {
		return
	}
	r.list.refreshes++
	r.WidgetRenderer.Refresh()
}

func (l *hookedList) CreateRenderer() fyne.WidgetRenderer {
	r := l.List.CreateRenderer()
	for _, o := range r.Objects() {
		if s, ok := o.(*container.Scroll); ok {
			l.scroller = s
			inner := s.OnScrolled
			s.OnScrolled = func(p fyne.Position) {
				if inner != nil {
					inner(p)
				}
				l.owner.scrolled()
			}
		}
	}
	return &heldRenderer{WidgetRenderer: r, list: l}
}

// metrics are the row measurements for a theme.
type metrics struct {
	pad, inner       float32
	lineSpacing      float32
	failedH          float32
	gutter, rightPad float32
	avatar           float32
	textSize, small  float32
	lineH, headerH   float32
	charW            float32
	dayH, gapH       float32
	statusH          float32
}

func metricsFor(th fyne.Theme) metrics {
	ts := th.Size(theme.SizeNameText)
	small := th.Size(theme.SizeNameCaptionText)
	line := fyne.MeasureText("Ag", ts, fyne.TextStyle{})
	head := fyne.MeasureText("Ag", ts, fyne.TextStyle{Bold: true})
	smallH := fyne.MeasureText("Ag", small, fyne.TextStyle{})
	sample := "The quick brown fox jumps over the lazy dog, 0123456789."
	cw := fyne.MeasureText(sample, ts, fyne.TextStyle{}).Width / float32(len(sample))
	pad := th.Size(theme.SizeNamePadding)
	return metrics{
		pad:         pad,
		inner:       th.Size(theme.SizeNameInnerPadding),
		lineSpacing: th.Size(theme.SizeNameLineSpacing),
		failedH:     widget.NewHyperlink("Retry", nil).MinSize().Height,
		gutter:      56,
		rightPad:    2 * pad,
		avatar:      36,
		textSize:    ts,
		small:       small,
		lineH:       line.Height,
		headerH:     head.Height,
		charW:       cw,
		dayH:        smallH.Height + 4*pad,
		gapH:        line.Height + 5*pad,
		statusH:     smallH.Height + pad,
	}
}

// messageHeight is a message row's height given its body's height.
func (mt metrics) messageHeight(it chatview.Item, bodyH float32, status int) float32 {
	h := bodyH + mt.pad
	if it.GroupStart {
		h += mt.headerH + 2*mt.pad
	}
	switch status {
	case 1:
		h += mt.statusH
	case 2:
		h += mt.failedH
	}
	if it.GroupStart {
		h = max(h, mt.avatar+2*mt.pad)
	}
	return float32(math.Ceil(float64(h)))
}

// ScrollToRow shows row i (a search result) and counts as reading older
// messages unless it is the newest.
func (m *MessageList) ScrollToRow(i int) {
	if i < 0 || i >= m.TL.Len() {
		return
	}
	m.Sync()
	if i >= m.TL.Len()-1 {
		m.JumpToLatest()
		return
	}
	m.autoScrolling = true
	m.list.ScrollTo(i)
	m.autoScrolling = false
	if m.list.scroller != nil {
		m.lastY = m.list.scroller.Offset.Y
	}
	m.scroll.Scrolled(false)
	m.updateJump()
}
