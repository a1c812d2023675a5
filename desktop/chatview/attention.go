package chatview

import (
	"fmt"
	"time"
)

// Scroll tracks whether the message list sits at the bottom and how many new
// messages arrived below the visible part. The list follows new messages only
// while the person is at the bottom; otherwise the count feeds a
// "jump to latest (N new)" control. The zero value is at the bottom.
type Scroll struct {
	away     bool // scrolled up, reading older messages
	newBelow int
}

// Scrolled records where the person scrolled to.
func (s *Scroll) Scrolled(atBottom bool) {
	s.away = !atBottom
	if atBottom {
		s.newBelow = 0
	}
}

// Arrived records a new message and reports whether the list should scroll to
// it. Sending a message always brings the person to the bottom.
func (s *Scroll) Arrived(own bool) (follow bool) {
	if own {
		s.away = false
		s.newBelow = 0
		return true
	}
	if !s.away {
		return true
	}
	s.newBelow++
	return false
}

// ArrivedN records n new messages from others at once (one refresh for a
// burst) and reports whether the list should follow them.
func (s *Scroll) ArrivedN(n int) (follow bool) {
	if !s.away {
		return true
	}
	if n > 0 {
		s.newBelow += n
	}
	return false
}

// AtBottom reports whether the list follows new messages.
func (s *Scroll) AtBottom() bool { return !s.away }

// NewBelow is how many messages arrived below since the person scrolled up.
func (s *Scroll) NewBelow() int { return s.newBelow }

// ShowJump reports whether the "jump to latest" control should show.
func (s *Scroll) ShowJump() bool { return s.away }

// Unread counts messages from others that arrived while the window was not
// focused; it resets when the window gains focus. The zero value is focused.
type Unread struct {
	blurred bool
	n       int
}

// Focus records that the window gained (true) or lost (false) focus.
func (u *Unread) Focus(focused bool) {
	u.blurred = !focused
	if focused {
		u.n = 0
	}
}

// Focused reports whether the window has focus.
func (u *Unread) Focused() bool { return !u.blurred }

// Arrived records a new message and reports whether it counts as unread.
func (u *Unread) Arrived(own bool) bool {
	if own || !u.blurred {
		return false
	}
	u.n++
	return true
}

// Count is the number of unread messages.
func (u *Unread) Count() int { return u.n }

// WindowTitle is the title for the window: the unread count first, so it shows
// in a task bar even when the title is cut short.
func WindowTitle(app, room string, unread int) string {
	t := app
	if room != "" {
		t = "#" + room + " - " + app
	}
	if unread > 0 {
		t = fmt.Sprintf("(%d) %s", unread, t)
	}
	return t
}

// Notifier decides when a desktop notification goes out for new messages while
// the window is not focused. Several messages within Quiet become one
// notification that counts them, so a busy room does not flood the desktop.
type Notifier struct {
	Enabled bool
	Quiet   time.Duration // 0 means 3 s

	last    time.Time
	pending int
}

// Notification is one desktop notification to show.
type Notification struct {
	Title, Body string
}

// Arrived is called for each new message from someone else while unfocused.
// It returns the notification to show now, if any.
func (n *Notifier) Arrived(room, from, text string, now time.Time) (Notification, bool) {
	if !n.Enabled {
		return Notification{}, false
	}
	quiet := n.Quiet
	if quiet <= 0 {
		quiet = 3 * time.Second
	}
	n.pending++
	if !n.last.IsZero() && now.Sub(n.last) < quiet {
		return Notification{}, false
	}
	count := n.pending
	n.pending = 0
	n.last = now
	title := from
	if room != "" {
		title = from + " in #" + room
	}
	if count > 1 {
		return Notification{Title: "#" + room, Body: fmt.Sprintf("%d new messages, the latest from %s: %s", count, from, Excerpt(text, 120))}, true
	}
	return Notification{Title: title, Body: Excerpt(text, 200)}, true
}

// Reset forgets held-back messages (the person looked at the window).
func (n *Notifier) Reset() { n.pending = 0 }

// Excerpt shortens text to at most max characters on one line.
func Excerpt(text string, max int) string {
	r := []rune(text)
	for i, c := range r {
		if c == '\n' || c == '\r' || c == '\t' {
			r[i] = ' '
		}
	}
	if len(r) <= max {
		return string(r)
	}
	return string(r[:max-1]) + "…"
}
