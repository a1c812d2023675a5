package chatview

import (
	"fmt"
	"math"
	"time"
)

// Phase is where the link to the relay stands (mirrors the client engine's phases).
type Phase int

const (
	PhaseOffline Phase = iota // not started
	PhaseConnecting
	PhaseConnected
	PhaseReconnecting // waiting for the next attempt after a drop
	PhaseStopped      // given up on for a reason the person must act on
)

// Link is what the view needs to know about the connection.
type Link struct {
	Phase      Phase
	RTT        time.Duration
	Attempt    int
	NextTry    time.Time // when Reconnecting: the next attempt
	LastError  string    // why the last link ended, in words
	StopReason string    // when Stopped: a sentence a person can read
	CloseCode  int
}

// Tone is how a status should look.
type Tone int

const (
	ToneOK Tone = iota
	ToneBusy
	ToneWarning
	ToneError
)

// StatusLine is the short status that is always visible in the room's header.
func StatusLine(l Link, now time.Time) (string, Tone) {
	switch l.Phase {
	case PhaseConnected:
		if l.RTT > 0 {
			return "Connected · " + FormatRTT(l.RTT), ToneOK
		}
		return "Connected", ToneOK
	case PhaseConnecting:
		return "Connecting…", ToneBusy
	case PhaseReconnecting:
		if s := secondsUntil(l.NextTry, now); s > 0 {
			return fmt.Sprintf("Reconnecting in %d s", s), ToneWarning
		}
		return "Reconnecting…", ToneWarning
	case PhaseStopped:
		return "Disconnected", ToneError
	}
	return "Offline", ToneWarning
}

// FormatRTT words a round-trip time: "23 ms", "<1 ms", "1.2 s".
func FormatRTT(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return "<1 ms"
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	default:
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
}

// SteadyRTT is the round-trip time to show, given the one shown and a new
// measurement: the shown one while the new one is within 20% or 2 ms of
// it (whichever is larger), the new one otherwise (0 shown: the new one).
// Every heartbeat measures a slightly different time; redrawing the header
// for each would redraw the window every few seconds for no news.
func SteadyRTT(shown, measured time.Duration) time.Duration {
	if shown <= 0 || measured <= 0 {
		return measured
	}
	diff := measured - shown
	if diff < 0 {
		diff = -diff
	}
	if diff <= max(shown/5, 2*time.Millisecond) {
		return shown
	}
	return measured
}

func secondsUntil(t, now time.Time) int {
	if t.IsZero() || !t.After(now) {
		return 0
	}
	return int(math.Ceil(t.Sub(now).Seconds()))
}

// Action is what the banner's button does.
type Action int

const (
	ActionNone         Action = iota
	ActionRetryNow            // skip the backoff wait
	ActionReconnect           // start again after a stop
	ActionOpenSettings        // the person must change something (name, token, room)
)

// Label is the button text for an action.
func (a Action) Label() string {
	switch a {
	case ActionRetryNow:
		return "Retry now"
	case ActionReconnect:
		return "Reconnect"
	case ActionOpenSettings:
		return "Open settings"
	}
	return ""
}

// Banner is the prominent strip above the messages when the link is in trouble.
type Banner struct {
	Show   bool
	Text   string
	Action Action
	Tone   Tone
}

// DefaultGrace is how long a link may be down before the banner appears, so that
// a blip that reconnects at once does not flash a warning.
const DefaultGrace = 1500 * time.Millisecond

// BannerGate decides whether the banner shows, holding back trouble that has not
// lasted the grace period. The zero value uses DefaultGrace.
type BannerGate struct {
	Grace time.Duration

	troubleSince time.Time
	connected    bool // the link was up at least once
}

// Banner returns the banner for l at now, and after how long it should be asked
// again (0: nothing will change on its own).
func (g *BannerGate) Banner(l Link, now time.Time) (Banner, time.Duration) {
	grace := g.Grace
	if grace <= 0 {
		grace = DefaultGrace
	}
	switch l.Phase {
	case PhaseConnected, PhaseOffline:
		g.troubleSince = time.Time{}
		g.connected = g.connected || l.Phase == PhaseConnected
		return Banner{}, 0
	case PhaseStopped:
		// A stop is not a blip: say so at once.
		return stoppedBanner(l), 0
	}
	if g.troubleSince.IsZero() {
		g.troubleSince = now
	}
	if waited := now.Sub(g.troubleSince); waited < grace {
		return Banner{}, grace - waited
	}
	b := troubleBanner(l, now, g.connected)
	if l.Phase == PhaseReconnecting && secondsUntil(l.NextTry, now) > 0 {
		return b, time.Second // the countdown moves
	}
	return b, 0
}

func troubleBanner(l Link, now time.Time, wasConnected bool) Banner {
	cause := ""
	if l.LastError != "" {
		cause = " (" + l.LastError + ")"
	}
	if !wasConnected && l.Phase == PhaseReconnecting {
		// Never got in: "connection lost" would be wrong.
		if s := secondsUntil(l.NextTry, now); s > 0 {
			return Banner{Show: true, Tone: ToneWarning, Action: ActionRetryNow,
				Text: fmt.Sprintf("Cannot reach the relay%s. Trying again in %d s. Check the relay address in Settings if this goes on.", cause, s)}
		}
		return Banner{Show: true, Tone: ToneWarning, Text: "Cannot reach the relay" + cause + ". Trying again…"}
	}
	if l.Phase == PhaseConnecting {
		if l.Attempt > 0 || l.LastError != "" {
			return Banner{Show: true, Tone: ToneWarning, Text: "Still trying to reach the relay" + cause + "…"}
		}
		return Banner{Show: true, Tone: ToneBusy, Text: "Connecting to the relay…"}
	}
	if s := secondsUntil(l.NextTry, now); s > 0 {
		return Banner{Show: true, Tone: ToneWarning, Action: ActionRetryNow,
			Text: fmt.Sprintf("Connection lost%s. Reconnecting in %d s. What you write is kept and sent when the link is back.", cause, s)}
	}
	return Banner{Show: true, Tone: ToneWarning,
		Text: "Connection lost" + cause + ". Reconnecting…"}
}

func stoppedBanner(l Link) Banner {
	reason := l.StopReason
	if reason == "" {
		reason = "The relay ended the connection."
	}
	act := ActionReconnect
	if l.CloseCode >= 4500 && l.CloseCode <= 4599 && l.CloseCode != 4502 && l.CloseCode != 4505 {
		// Unauthorized, name taken, bad name/room/avatar, unsupported version:
		// only a change of settings helps.
		act = ActionOpenSettings
	}
	return Banner{Show: true, Tone: ToneError, Action: act, Text: "Disconnected: " + reason}
}
