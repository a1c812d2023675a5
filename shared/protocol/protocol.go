// Package protocol is Heartline's wire contract, version 1: the frames a client
// and a relay exchange over a WebSocket, their validation rules, and the close
// codes with the reconnect class each belongs to.
//
// It imports only the standard library so that any Go program can speak v1.
package protocol

import "time"

// Version is the protocol version a hello carries in "v".
const Version = 1

// Timing and size limits fixed by the protocol (not by relay configuration).
const (
	// HelloTimeout is how long a relay waits for the first frame (hello) after the
	// upgrade, and how long a client waits for its welcome.
	HelloTimeout = 10 * time.Second

	// DefaultHistoryPage is how many recent messages a welcome carries on a fresh join.
	DefaultHistoryPage = 50

	NameMaxLen  = 32  // display names, in code points after trimming
	RoomMaxLen  = 32  // room names: a-z 0-9 - _
	KeyMinLen   = 16  // member keys, in code points
	KeyMaxLen   = 128 // member keys, in code points
	MsgIDMaxLen = 64  // client message ids, in code points
)

// Frame types ("type" of every JSON object on the wire).
const (
	// client -> relay
	TypeHello = "hello"
	TypeMsg   = "msg" // also relay -> client
	TypePing  = "ping"
	TypeBye   = "bye"
	// TypeHistory asks for older messages (client -> relay) and carries them
	// (relay -> client): an addition to v1, sent only to a relay whose
	// welcome lists FeatureHistory.
	TypeHistory = "history"

	// relay -> client
	TypeWelcome  = "welcome"
	TypeAck      = "ack"
	TypeJoined   = "joined"
	TypePresence = "presence"
	TypeLeft     = "left"
	TypePong     = "pong"
	TypeError    = "error"
)

// Features a relay lists in its welcome: additions to v1 a client may use.
const (
	FeatureHistory = "history"
)

// HistoryMaxLimit is the most messages one history request gets.
const HistoryMaxLimit = 200

// Error codes carried in an error frame's "code".
const (
	ErrBadFrame    = "bad_frame"
	ErrUnknownType = "unknown_type"
	ErrTooLong     = "too_long"
	ErrRateLimited = "rate_limited"
	ErrNotJoined   = "not_joined"
	ErrBadName     = "bad_name"
	ErrBadKey      = "bad_key"
	ErrBadAvatar   = "bad_avatar"
	ErrBadRoom     = "bad_room"
	ErrRoomFull    = "room_full"
	ErrInternal    = "internal"
)

// Reasons a member left, in a left frame.
const (
	ReasonBye     = "bye"
	ReasonTimeout = "timeout"
	ReasonClosed  = "closed"
	ReasonKicked  = "kicked"
	ReasonSlow    = "slow"
)

// Member states.
const (
	StateOnline = "online"
	StateAway   = "away"
)
