package chatview

import (
	"fmt"
	"time"
)

// DayLabel names the day of a separator relative to now: "Today", "Yesterday",
// the weekday within the last week, otherwise the date (with the year only when
// it is not the current one).
func DayLabel(day, now time.Time) string {
	loc := now.Location()
	d := midnight(day, loc)
	today := midnight(now, loc)
	switch days := daysBetween(d, today); {
	case days == 0:
		return "Today"
	case days == 1:
		return "Yesterday"
	case days > 1 && days < 7:
		return d.Weekday().String()
	case d.Year() == today.Year():
		return d.Format("Monday 2 January")
	default:
		return d.Format("2 January 2006")
	}
}

// daysBetween counts calendar days from a to b (both local midnights); it is
// exact across daylight-saving changes because it rounds to whole days.
func daysBetween(a, b time.Time) int {
	h := b.Sub(a).Hours()
	if h >= 0 {
		return int((h + 12) / 24)
	}
	return -int((-h + 12) / 24)
}

// ShortTime is the time shown beside a message: "14:05".
func ShortTime(t time.Time) string { return t.Format("15:04") }

// FullTime is the time shown on hover or tap: "Saturday 21 November 2026, 14:05:09".
func FullTime(t time.Time) string { return t.Format("Monday 2 January 2006, 15:04:05") }

// StatusText words the delivery state of an own message. connected says whether
// the link is up, so that a pending message says why it waits.
func StatusText(m *Message, connected bool) string {
	if m == nil || !m.Own {
		return ""
	}
	switch m.Status {
	case StatusPending:
		if connected {
			return "Sending…"
		}
		return "Not sent yet: will send when connected"
	case StatusFailed:
		if m.Reason != "" {
			return "Not sent: " + m.Reason
		}
		return "Not sent"
	case StatusSent:
		return "Sent"
	}
	return ""
}

// GapText is what the marker for missing messages says when the engine gave no text.
const GapText = "Some messages from while you were away could not be recovered."

// JumpLabel is the text of the control that scrolls to the newest message.
func JumpLabel(newBelow int) string {
	switch {
	case newBelow <= 0:
		return "Jump to latest"
	case newBelow == 1:
		return "Jump to latest (1 new)"
	default:
		return fmt.Sprintf("Jump to latest (%d new)", newBelow)
	}
}
