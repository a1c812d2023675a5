package client

import (
	"fmt"
	"time"

	"github.com/heartline/heartline/shared/protocol"
)

// Phase is where the engine stands.
type Phase int

const (
	// Offline: Run has not started, or has returned after ctx ended or Leave.
	Offline Phase = iota
	// Connecting: dialing the relay or waiting for its welcome.
	Connecting
	// Connected: welcomed; heartbeats flow.
	Connected
	// Reconnecting: the link dropped; waiting State.NextTry before the next
	// attempt (RetryNow skips the wait).
	Reconnecting
	// Stopped: the relay refused this client for a reason that retrying
	// cannot fix; State.StopReason says what to do.
	Stopped
)

func (p Phase) String() string {
	switch p {
	case Offline:
		return "offline"
	case Connecting:
		return "connecting"
	case Connected:
		return "connected"
	case Reconnecting:
		return "reconnecting"
	case Stopped:
		return "stopped"
	}
	return fmt.Sprintf("Phase(%d)", int(p))
}

// State is a snapshot of the engine for a status line.
type State struct {
	Phase       Phase
	RTT         time.Duration // last ping round trip, when connected (0 until the first pong)
	ClockOffset time.Duration // relay clock minus local clock, when connected
	Attempt     int           // reconnect attempt number (0 on the first connect and once connected)
	NextTry     time.Time     // when Reconnecting: when the next attempt starts
	LastError   string        // why the last link ended or the last attempt failed, in words
	StopReason  string        // when Stopped: a sentence a person can read
	CloseCode   int           // the close code behind LastError or StopReason, if any
}

// Event is one thing the engine tells its user. The concrete types are
// listed below; a switch on them should ignore types it does not know.
type Event interface{ isEvent() }

// StateChanged: the State moved (phase, RTT after a pong, next try...).
type StateChanged struct{ State State }

// Welcomed: the relay accepted the hello. Welcome.History is also delivered,
// without duplicates, as MessageReceived events, which is what a chat view
// should render.
type Welcomed struct{ Welcome protocol.Welcome }

// MessageReceived: a room message, delivered once per seq: live from others,
// replayed after a reconnect, or the client's own message once the relay
// acked it.
type MessageReceived struct {
	Msg protocol.Message
	Own bool // sent by this client (Msg.From is then the welcome's "you")
}

// OutboxChanged: an outbox item was added, sent (acked, Seq and TS set),
// failed (Reason set) or queued again by Retry.
type OutboxChanged struct{ Item OutboxItem }

// OutboxNotSaved: the outbox store could not write the message with this
// ID (a full disk, a folder gone): it stays queued, and is sent, while the
// engine runs, but would be lost if the app stopped now. It comes after
// the OutboxChanged that queued the message.
type OutboxNotSaved struct {
	ID  string
	Err error
}

// MemberJoined: someone joined the room.
type MemberJoined struct{ Member protocol.Member }

// MemberChanged: a member went away or came back, or changed name or avatar.
type MemberChanged struct{ Member protocol.Member }

// MemberLeft: a member left for good; Reason is one of protocol.Reason*.
type MemberLeft struct {
	Member protocol.Member
	Reason string
}

// HistoryGap: after a reconnect the relay could not replay everything
// missed (history pruned, or reset with a new epoch), so some messages may
// be missing. The latest page of history follows as MessageReceived events.
type HistoryGap struct {
	// EpochChanged: the relay's history was lost or reset; seqs started over.
	EpochChanged bool
	// HeldUpTo is the gap-free seq the client held before the gap.
	HeldUpTo uint64
}

// HistoryPage answers RequestHistory: older messages from the relay, oldest
// first, contiguous up to the request's Before; or Err when there are none
// to give (the relay refused or failed, the link dropped, or the room's
// history was reset since: ask again). More is false when the relay holds
// nothing older than the first of Messages.
type HistoryPage struct {
	ID       string
	Epoch    string
	Messages []protocol.Message
	More     bool
	Err      string
	// RetryAfter: the relay asked to wait this long before asking again.
	RetryAfter time.Duration
}

// Text is the sentence to show in the chat where the gap is.
func (g HistoryGap) Text() string {
	if g.EpochChanged {
		return "The relay's history was reset: earlier messages may be missing."
	}
	return "Some messages may be missing: the relay no longer had all of them."
}

// RelayError: the relay refused something that is not an outbox message
// (refusals of messages show up as OutboxChanged with Status Failed).
type RelayError struct{ Error protocol.Error }

// LinkDropped: an open link ended (not by Leave or the caller's ctx). The
// engine reconnects unless a StateChanged to Stopped follows.
type LinkDropped struct{ Drop Drop }

// How a dropped link was noticed (Drop.Detected).
const (
	// DetectedHeartbeat: no frame at all from the relay for the heartbeat
	// timeout; the socket may still look open (a half-open path).
	DetectedHeartbeat = "heartbeat timeout"
	// DetectedHelloTimeout: the relay took the connection but sent no welcome
	// in time.
	DetectedHelloTimeout = "no welcome in time"
	// DetectedCloseFrame: the relay closed the WebSocket with a close code.
	DetectedCloseFrame = "close frame from the relay"
	// DetectedReadError: the socket failed or closed without a close frame.
	DetectedReadError = "read error"
	// DetectedWriteError: sending on the socket failed.
	DetectedWriteError = "write error"
	// DetectedCheck: the relay did not answer a check of the link made at
	// once after a wake or a network change (or CheckNow).
	DetectedCheck = "no answer to a check"
	// DetectedAddressGone: the network changed and this computer no longer
	// has the address the link was using.
	DetectedAddressGone = "address gone"
)

// NetworkChanged: the computer woke from sleep, its network changed (an
// address, an interface, a route), or the app said so
// (NotifyNetworkChange). The engine acts at once: connected, it checks
// the link (LinkChecked follows, and LinkDropped if the link is dead);
// waiting to reconnect, it tries now; connecting, it lets the attempt
// finish and retries at once if it fails.
type NetworkChanged struct{ Change NetChange }

// Text is the line to show while the engine checks.
func (e NetworkChanged) Text() string {
	if e.Change.Woke {
		return "Back from sleep, checking the link…"
	}
	return "Network changed, checking the link…"
}

// LinkChecked: the answer to a check of a connected link (after a
// NetworkChanged, or Client.CheckNow). Alive: the relay answered (RTT is
// the round trip). Otherwise Cause says why the link is given up, a
// LinkDropped follows, and the engine reconnects at once, with no backoff
// wait.
type LinkChecked struct {
	Alive bool
	RTT   time.Duration
	Took  time.Duration // from the start of the check to its answer, or to giving up
	Cause string
}

// Drop describes one dropped link for the diagnostics view.
type Drop struct {
	At        time.Time // when the engine noticed
	Cause     string    // in words: "no reply from the relay for 25 s", "closed by the relay: 4001 ..."
	CloseCode int       // 0 when no close frame came (1006: closed without one)
	Detected  string    // how: one of the Detected* constants
	RelayURL  string    // the WebSocket URL dialed
	// From the welcome, when there was one.
	Welcomed     bool
	ObservedAddr string // the client's address as the relay saw it ("ip:port")
	STUNPorts    []int  // the relay's STUN ports, for the NAT check
	Heartbeat    protocol.Heartbeat
	// Timers at the moment of the drop.
	ConnectedAt time.Time     // when the link opened (zero if the dial never completed)
	WelcomedAt  time.Time     // when the welcome came (zero without one)
	LastFrameAt time.Time     // the last frame of any kind from the relay
	LastPingAt  time.Time     // the last ping sent
	LastPongAt  time.Time     // the last pong received
	RTT         time.Duration // the last measured round trip
}

func (StateChanged) isEvent()    {}
func (Welcomed) isEvent()        {}
func (MessageReceived) isEvent() {}
func (OutboxChanged) isEvent()   {}
func (OutboxNotSaved) isEvent()  {}
func (MemberJoined) isEvent()    {}
func (MemberChanged) isEvent()   {}
func (MemberLeft) isEvent()      {}
func (HistoryGap) isEvent()      {}
func (RelayError) isEvent()      {}
func (LinkDropped) isEvent()     {}
func (NetworkChanged) isEvent()  {}
func (LinkChecked) isEvent()     {}
func (HistoryPage) isEvent()     {}
